using System.Collections.Concurrent;
using System.Net.Http.Headers;
using Microsoft.Extensions.Logging;
using NativeVae.Backends.Cpu;
using NativeVae.Models.AutoencoderKl;
using NativeVae.Server;
using NativeVae.Tests.Support;
using NativeVae.Weights;

namespace NativeVae.Tests.Server;

/// <summary>
/// A real <see cref="VaeServer"/> on a free loopback port, serving seeded small models ("sd": 4 latent channels,
/// "flux": 16, no quant convs) on CPU backends of their own, beside identical local models to compare with.
/// </summary>
internal sealed class ServerHarness : IAsyncDisposable
{
    public const string Sd = "sd";
    public const string Flux = "flux";
    public const string Sd8 = "sd8";

    /// <summary>Four levels, so 8x like every published VAE (what RemoteVae expects of a reply); narrow, so still fast.</summary>
    public static AutoencoderKlConfig Small8 { get; } = AutoencoderKlConfig.Small with { BlockOutChannels = [16, 16, 32, 32] };

    private ServerHarness(VaeServer server, CollectingLogger logs)
    {
        Server = server;
        Logs = logs;
        Http = new HttpClient { BaseAddress = server.BaseAddress };
    }

    public VaeServer Server { get; }

    public HttpClient Http { get; }

    public CollectingLogger Logs { get; }

    /// <summary>The same model as the server's "sd", for expected results (its own backend: backends are not shared across threads).</summary>
    public Vae LocalSd { get; } = CreateVae(AutoencoderKlConfig.Small);

    public Vae LocalFlux { get; } = CreateVae(SyntheticVae.SmallFlux);

    public Vae LocalSd8 { get; } = CreateVae(Small8);

    /// <summary>The published factors the harness's models report (not 1 and none, so that applying them shows).</summary>
    public const float ScalingFactor = 0.5f, ShiftFactor = 0.25f;

    public static Vae CreateVae(AutoencoderKlConfig config, long maxImagePixels = NativeVae.Imaging.ImageInput.DefaultMaxPixels)
    {
        var weights = InMemoryWeights.Seeded(SeededWeights.DefaultSeed, AutoencoderKlParameters.Enumerate(config));
        var model = new AutoencoderKlModel(new CpuBackend(), config, weights);
        return new Vae(model, new VaeOptions { MaxImagePixels = maxImagePixels }, ScalingFactor, ShiftFactor, ownsBackend: true);
    }

    /// <summary>Starts a server with "sd" (and "flux" when asked) on a free port.</summary>
    public static async Task<ServerHarness> StartAsync(VaeServerOptions? options = null, bool withFlux = false, bool withSd8 = false,
        long maxImagePixels = NativeVae.Imaging.ImageInput.DefaultMaxPixels)
    {
        var logs = new CollectingLogger();
        var models = new List<ServedModel> { new(Sd, CreateVae(AutoencoderKlConfig.Small, maxImagePixels)) };
        if (withFlux) models.Add(new(Flux, CreateVae(SyntheticVae.SmallFlux, maxImagePixels)));
        if (withSd8) models.Add(new(Sd8, CreateVae(Small8, maxImagePixels)));
        var server = VaeServer.Create(models, (options ?? new()) with { Port = 0, ConfigureLogging = logging => logging.AddProvider(logs) });
        await server.StartAsync();
        return new ServerHarness(server, logs);
    }

    /// <summary>POSTs <paramref name="body"/> with the given headers (null leaves a header out, as diffusers' encode does).</summary>
    public async Task<HttpResponseMessage> PostAsync(string pathAndQuery, byte[] body, string? contentType = WireTensor.BinaryContentType,
        string? accept = WireTensor.BinaryContentType, CancellationToken cancellation = default)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, pathAndQuery) { Content = new ByteArrayContent(body) };
        if (contentType is not null) request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        if (accept is not null) request.Headers.Accept.ParseAdd(accept);
        return await Http.SendAsync(request, cancellation);
    }

    /// <summary>The <c>shape=..&amp;shape=..</c> part of a query, as Python's requests writes a list.</summary>
    public static string ShapeQuery(TensorShape shape) => string.Join("&", shape.Dims.ToArray().Select(d => $"shape={d}"));

    public static HostTensor<float> RandomLatents(TensorShape shape, string stream) =>
        new(shape, SeededWeights.Uniform(SeededWeights.DefaultSeed, stream, checked((int)shape.ElementCount)).Select(v => 2 * v).ToArray());

    public static HostTensor<float> RandomImages(TensorShape shape, string stream) =>
        new(shape, SeededWeights.Uniform(SeededWeights.DefaultSeed, stream, checked((int)shape.ElementCount)));

    /// <summary>The reply's tensor, rebuilt as diffusers does: from the body and the <c>shape</c>/<c>dtype</c> headers alone.</summary>
    public static async Task<(TensorShape Shape, WireDType DType, byte[] Body)> ReadTensorAsync(HttpResponseMessage response)
    {
        Assert.That(response.IsSuccessStatusCode, Is.True, await response.Content.ReadAsStringAsync());
        var shape = WireTensor.ParseShapeHeader(response.Headers.GetValues("shape").Single());
        var dtype = WireTensor.ParseDType(response.Headers.GetValues("dtype").Single());
        return (shape, dtype, await response.Content.ReadAsByteArrayAsync());
    }

    /// <summary>The <c>error</c> of a JSON error reply, asserting the status.</summary>
    public static async Task<string> ErrorOf(HttpResponseMessage response, int status)
    {
        string text = await response.Content.ReadAsStringAsync();
        Assert.That((int)response.StatusCode, Is.EqualTo(status), text);
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/json"), text);
        using var json = System.Text.Json.JsonDocument.Parse(text);
        return json.RootElement.GetProperty("error").GetString()!;
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await Server.DisposeAsync();
        LocalSd.Dispose();
        LocalFlux.Dispose();
        LocalSd8.Dispose();
    }
}

/// <summary>Keeps the server's log lines, so that tests can see what it logged (a cancelled request, an error).</summary>
internal sealed class CollectingLogger : ILoggerProvider, ILogger
{
    private readonly ConcurrentQueue<string> _lines = new();

    public IReadOnlyCollection<string> Lines => _lines;

    public ILogger CreateLogger(string categoryName) => this;

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        // The exception's type and message (not its stack), so that a test sees what a 500 was.
        if (IsEnabled(logLevel)) _lines.Enqueue(formatter(state, exception) + (exception is null ? "" : $" [{exception.GetType().FullName}: {exception.Message}]"));
    }

    public void Dispose() { }
}
