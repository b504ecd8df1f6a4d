using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Prometheus;

namespace NativeVae.Server;

/// <summary>
/// A self-hosted hybrid-inference VAE endpoint: diffusers' <c>remote_encode</c>/<c>remote_decode</c>, ComfyUI's and
/// SD.Next's remote VAE nodes talk to it unchanged (the protocol of remote-protocol.md), on Kestrel.
/// <para>
/// Each model is mounted at <c>/&lt;name&gt;/</c>: <c>POST /name/</c> and <c>/name/predict</c> encode or decode (decided
/// from the request), <c>/name/encode</c> and <c>/name/decode</c> say which, <c>GET /name/info</c> describes the model.
/// A single model is also mounted at <c>/</c>. <c>GET /</c> and <c>/health</c> answer <c>Ok</c> (503 while draining),
/// <c>/metrics</c> is Prometheus text. Calls on one model run one at a time behind a bounded queue.
/// </para>
/// </summary>
public sealed partial class VaeServer : IAsyncDisposable
{
    private static readonly string[] ReservedNames = ["health", "metrics", "predict", "encode", "decode", "info"];

    private readonly WebApplication _app;
    private readonly VaeServerOptions _options;
    private readonly Dictionary<string, (ServedModel Model, ModelWorker Worker)> _models = new(StringComparer.Ordinal);
    private readonly HashSet<string> _probePaths = new(StringComparer.Ordinal) { "/", "/health" };
    private readonly byte[]? _token;
    private readonly ServerMetrics _metrics = new();
    private readonly ILogger _log;
    private volatile bool _draining;
    private readonly CancellationTokenSource _drainExpired = new();
    private int _inFlight;
    private bool _started;

    private VaeServer(IReadOnlyList<ServedModel> models, VaeServerOptions options)
    {
        _options = options;
        _token = options.Token is null ? null : Encoding.UTF8.GetBytes(options.Token);
        var address = ParseHost(options.Host);
        if (!IPAddress.IsLoopback(address) && _token is null && !options.Insecure)
            throw new ArgumentException($"host {options.Host} is not a loopback address: serving it needs a bearer token " +
                $"(--token, or the {VaeServerOptions.TokenEnvironmentVariable} environment variable), or --insecure for a trusted network");

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        options.ConfigureLogging?.Invoke(builder.Logging);
        // The drain runs before Kestrel stops (ServerDrain); Kestrel then has the grace to send the last replies.
        builder.Services.Configure<HostOptions>(host => host.ShutdownTimeout = options.DrainTimeout + 2 * ServerDrain.ReplyGrace);
        builder.Services.AddSingleton<IHostedService>(new ServerDrain(this));
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = options.MaxBodyBytes;
            kestrel.Listen(address, options.Port, listen =>
            {
                listen.Protocols = Microsoft.AspNetCore.Server.Kestrel.Core.HttpProtocols.Http1;
                KestrelErrorReplies.Use(listen, kestrel.Limits);
            });
        });
        _app = builder.Build();
        _log = _app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("NativeVae.Server");
        _app.Lifetime.ApplicationStopping.Register(() => _draining = true);

        foreach (var model in models)
            _models.Add(model.Name, (model, new ModelWorker(model, options, _metrics, _log)));
        MapRoutes(models.Count == 1 ? models[0].Name : null);
    }

    /// <summary>A server for <paramref name="models"/>; it owns them from here on (disposes them when it stops).</summary>
    /// <exception cref="ArgumentException">no models, a bad or repeated name, a bad option, or a non-loopback host without a token.</exception>
    public static VaeServer Create(IReadOnlyList<ServedModel> models, VaeServerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(models);
        options ??= new();
        options.Validate();
        if (models.Count == 0) throw new ArgumentException("no models to serve: give at least one");
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var model in models)
        {
            if (!ModelName().IsMatch(model.Name))
                throw new ArgumentException($"model name '{model.Name}': use letters, digits, '.', '_' and '-' (it is a URL segment)");
            if (model.Name.Trim('.').Length == 0)
                throw new ArgumentException($"model name '{model.Name}': a URL segment of dots only is resolved away ('.' is the folder, '..' its parent)");
            if (ReservedNames.Contains(model.Name, StringComparer.OrdinalIgnoreCase))
                throw new ArgumentException($"model name '{model.Name}' is one of the server's own paths ({string.Join(", ", ReservedNames)})");
            if (!names.Add(model.Name)) throw new ArgumentException($"model name '{model.Name}' is given twice");
        }
        return new VaeServer(models, options);
    }

    /// <summary>The address the server listens on, e.g. <c>http://127.0.0.1:8000/</c> (the real port when 0 was asked).</summary>
    public Uri BaseAddress { get; private set; } = new("http://127.0.0.1/");

    /// <summary>How long a stop lets requests in flight finish.</summary>
    internal TimeSpan DrainTimeout => _options.DrainTimeout;

    /// <summary>Work requests being handled now (read, queued, running or being answered).</summary>
    internal int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>Runs started on a model so far.</summary>
    internal int RunsStarted(string model) => _models[model].Worker.RunsStarted;

    /// <summary>The models' names, each served at <c>/name/</c>.</summary>
    public IReadOnlyCollection<string> ModelNames => _models.Keys;

    /// <summary>Binds the address and starts answering.</summary>
    /// <exception cref="IOException">the address is in use or cannot be bound.</exception>
    public async Task StartAsync(CancellationToken cancellation = default)
    {
        ReserveThreadPool(_models.Count);
        await _app.StartAsync(cancellation);
        _started = true;
        var addresses = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses;
        BaseAddress = new Uri(addresses.First().TrimEnd('/') + "/");
    }

    /// <summary>Waits until the process is asked to stop (SIGTERM, Ctrl+C) or <paramref name="cancellation"/> fires.</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellation = default) => _app.WaitForShutdownAsync(cancellation);

    /// <summary>Drains: health turns 503, new requests get 503, running and queued ones finish within the drain timeout.</summary>
    public async Task StopAsync(CancellationToken cancellation = default)
    {
        _draining = true;
        if (_started) await _app.StopAsync(cancellation);
        _started = false;
    }

    /// <summary>Marks the server draining: health and new requests answer 503 from here on.</summary>
    internal void BeginDrain() => _draining = true;

    /// <summary>The drain time ran out: requests still queued or running are cancelled and answered 503.</summary>
    internal void EndDrain() => _drainExpired.Cancel();

    /// <summary>Stops, then disposes the models.</summary>
    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _drainExpired.Dispose();
        foreach (var (model, worker) in _models.Values)
        {
            await worker.DisposeAsync();
            model.Vae.Dispose();
        }
        await _app.DisposeAsync();
    }

    // ---- routes -------------------------------------------------------------------------------------------------

    private void MapRoutes(string? rootModel)
    {
        _app.UseStatusCodePages(async status =>
        {
            var http = status.HttpContext;
            await ProtocolReplies.WriteJsonAsync(http.Response, "error",
                $"{http.Response.StatusCode}: nothing answers {http.Request.Method} {http.Request.Path}; models: " +
                string.Join(", ", _models.Keys.Select(name => $"POST /{name}/")));
        });
        _app.Use(async (context, next) =>
        {
            if (_token is null || IsProbe(context.Request) || HasToken(context.Request)) await next(context);
            else await ProtocolReplies.WriteErrorAsync(context.Response, StatusCodes.Status401Unauthorized,
                "missing or wrong bearer token: send the header 'Authorization: Bearer <token>'");
        });
        _app.MapMethods("/", GetOrHead, Health);
        _app.MapMethods("/health", GetOrHead, Health);
        _app.MapMetrics("/metrics", _metrics.Registry);
        foreach (var name in _models.Keys)
        {
            MapModel("/" + name, name);
            _probePaths.UnionWith(["/" + name, "/" + name + "/", "/" + name + "/health"]);
            _app.MapMethods("/" + name, GetOrHead, Health);
            _app.MapMethods("/" + name + "/health", GetOrHead, Health);
        }
        if (rootModel is not null) MapModel("", rootModel);
    }

    private void MapModel(string prefix, string name)
    {
        _app.MapPost(prefix == "" ? "/" : prefix, context => HandleAsync(context, name, null));
        _app.MapPost(prefix + "/predict", context => HandleAsync(context, name, null));
        _app.MapPost(prefix + "/encode", context => HandleAsync(context, name, Operation.Encode));
        _app.MapPost(prefix + "/decode", context => HandleAsync(context, name, Operation.Decode));
        _app.MapMethods(prefix + "/info", GetOrHead, context => InfoAsync(context, name));
    }

    /// <summary>HEAD answers wherever GET does (probes and monitors use it), with the same status and headers.</summary>
    private static readonly string[] GetOrHead = [HttpMethods.Get, HttpMethods.Head];

    private bool IsProbe(HttpRequest request) =>
        (HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method)) && _probePaths.Contains(request.Path.Value ?? "/");

    private bool HasToken(HttpRequest request)
    {
        const string Scheme = "Bearer ";
        string header = request.Headers.Authorization.ToString();
        if (!header.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase)) return false;
        // Constant-time, so a wrong token's timing tells nothing of the right one.
        return CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(header[Scheme.Length..].Trim()), _token);
    }

    private Task Health(HttpContext context)
    {
        context.Response.StatusCode = _draining ? StatusCodes.Status503ServiceUnavailable : StatusCodes.Status200OK;
        context.Response.ContentType = "text/plain";
        return context.Response.WriteAsync(_draining ? "Draining" : "Ok");
    }

    private async Task InfoAsync(HttpContext context, string name)
    {
        var vae = _models[name].Model.Vae;
        context.Response.ContentType = ProtocolReplies.JsonContentType;
        await using var json = new System.Text.Json.Utf8JsonWriter(context.Response.Body);
        json.WriteStartObject();
        json.WriteString("name", name);
        json.WriteString("family", vae.Family.Name());
        json.WriteNumber("latent_channels", vae.LatentChannels);
        json.WriteNumber("downsample_factor", vae.DownsampleFactor);
        WriteNullable(json, "scaling_factor", vae.ScalingFactor);
        WriteNullable(json, "shift_factor", vae.ShiftFactor);
        json.WriteStartArray("latent_forms");
        foreach (var form in vae.SupportedLatentForms) json.WriteStringValue(form.Name());
        json.WriteEndArray();
        json.WriteString("device", vae.DeviceName);
        json.WriteNumber("max_image_pixels", vae.MaxImagePixels);
        json.WriteEndObject();
    }

    private static void WriteNullable(System.Text.Json.Utf8JsonWriter json, string key, float? value)
    {
        if (value is float v) json.WriteNumber(key, v);
        else json.WriteNull(key);
    }

    // ---- the work -----------------------------------------------------------------------------------------------

    private async Task HandleAsync(HttpContext context, string name, Operation? route)
    {
        long started = Stopwatch.GetTimestamp();
        Interlocked.Increment(ref _inFlight);
        var (model, worker) = _models[name];
        var kind = ProtocolRequests.OperationOf(context.Request, route);
        string operation = kind.ToString().ToLowerInvariant();
        int status = StatusCodes.Status200OK;
        long requestBytes = 0, replyBytes = 0;
        int batchItems = 0;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, _drainExpired.Token);
        deadline.CancelAfter(_options.RequestTimeout);
        try
        {
            if (_draining)
                throw new ProtocolException(StatusCodes.Status503ServiceUnavailable, "the server is shutting down; retry (another replica answers)");
            var request = await ProtocolRequests.ReadAsync(context.Request, model.Vae, kind, _options, deadline.Token);
            requestBytes = request.BodyBytes;
            if (!worker.TryEnqueue(request.Job))
                throw new ProtocolException(StatusCodes.Status503ServiceUnavailable,
                    $"model '{name}' already has {_options.QueueCapacity} requests waiting, the most it queues; retry later");
            var reply = await request.Job.Reply.WaitAsync(deadline.Token);
            batchItems = request.Job.RanInBatchOf;
            replyBytes = await ProtocolReplies.WriteAsync(context.Response, reply, request.Base64Reply, context.RequestAborted);
        }
        catch (Exception error) when (ProtocolError.ClientWentAway(context, error))
        {
            // Its work was cancelled, and there is no one to answer: the client's doing, not a fault of the server.
            status = ClientClosedRequest;
        }
        catch (OperationCanceledException) when (_drainExpired.IsCancellationRequested)
        {
            status = StatusCodes.Status503ServiceUnavailable;
            await ProtocolReplies.WriteErrorAsync(context.Response, status,
                $"the server is shutting down and its drain time of {_options.DrainTimeout.TotalSeconds:0.#} s ran out before this request finished; retry (another replica answers)",
                _options.RetryAfterSeconds, closeConnection: true);
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            status = StatusCodes.Status504GatewayTimeout;
            await ProtocolReplies.WriteErrorAsync(context.Response, status,
                $"the request took longer than this server's timeout of {_options.RequestTimeout.TotalSeconds:0.#} s and was cancelled");
        }
        catch (Exception error)
        {
            status = ProtocolError.StatusOf(error);
            if (status == StatusCodes.Status500InternalServerError)
                _log.LogError(error, "{Method} {Path}: internal error", context.Request.Method, context.Request.Path);
            bool retry = status == StatusCodes.Status503ServiceUnavailable;
            // While draining, the client should take its next request elsewhere, not to this connection.
            await ProtocolReplies.WriteErrorAsync(context.Response, status, ProtocolError.MessageOf(error, status),
                retry ? _options.RetryAfterSeconds : null, closeConnection: _draining);
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
            var elapsed = Stopwatch.GetElapsedTime(started);
            _metrics.Request(name, operation, status, elapsed);
            _log.LogInformation("{Method} {Path}{Query} {Status} {Operation} model={Model} {ElapsedMs:0.0} ms in={RequestBytes} out={ReplyBytes} batch={BatchItems}",
                context.Request.Method, context.Request.Path, context.Request.QueryString, status, operation, name,
                elapsed.TotalMilliseconds, requestBytes, replyBytes, batchItems);
        }
    }

    /// <summary>nginx's status for a request whose client closed the connection; logged, never sent.</summary>
    private const int ClientClosedRequest = 499;

    /// <summary>Pool threads kept for Kestrel, timers and probes beside the ones running models.</summary>
    private const int ThreadsForRequests = 4;

    /// <summary>Pool threads a model call may block: the call itself and the caller waiting on it.</summary>
    private const int ThreadsPerModel = 2;

    /// <summary>
    /// Raises the thread pool's minimum so that model calls, which block pool threads while they use every core, never
    /// leave Kestrel, the request timeouts and the health probes without one: with the CPU saturated the pool adds no
    /// threads of its own, and a disconnect or a deadline would go unnoticed until the call ends.
    /// </summary>
    private static void ReserveThreadPool(int models)
    {
        ThreadPool.GetMinThreads(out int workers, out int completionPorts);
        int wanted = ThreadsForRequests + ThreadsPerModel * models;
        if (workers < wanted) ThreadPool.SetMinThreads(wanted, completionPorts);
    }

    private static IPAddress ParseHost(string host)
    {
        if (string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase)) return IPAddress.Loopback;
        if (IPAddress.TryParse(host, out var address)) return address;
        throw new ArgumentException($"host '{host}' must be an IP address (127.0.0.1, 0.0.0.0, ::) or localhost");
    }

    [GeneratedRegex("^[A-Za-z0-9._-]+$")]
    private static partial Regex ModelName();
}
