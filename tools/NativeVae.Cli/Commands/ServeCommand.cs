using System.CommandLine;
using Microsoft.Extensions.Logging;
using NativeVae.Server;

namespace NativeVae.Cli.Commands;

/// <summary>
/// <c>nativevae serve --model PATH [--model NAME=PATH ...]</c>: a hybrid-inference endpoint that diffusers'
/// <c>remote_decode(endpoint=...)</c>, ComfyUI-HFRemoteVae and SD.Next talk to unchanged. Runs until SIGTERM or Ctrl+C,
/// then drains.
/// </summary>
internal sealed class ServeCommand : ICommand
{
    private const int BytesPerMiB = 1 << 20;
    private const double FlopsPerTflop = 1e12;

    public Command Build(TextWriter stdout, TextWriter stderr)
    {
        var defaults = new VaeServerOptions();
        var models = new Option<string[]>("--model")
        {
            HelpName = "[NAME=]PATH",
            Required = true,
            Arity = ArgumentArity.OneOrMore,
            AllowMultipleArgumentsPerToken = false,
            Description = "a VAE to serve at /NAME/ (repeat for more); NAME defaults to the file or folder name without its " +
                "extension. A single model is served at / too",
        };
        var host = new Option<string>("--host")
        {
            HelpName = "ADDRESS",
            Description = $"address to bind; any but loopback needs --token or {VaeServerOptions.TokenEnvironmentVariable}, " +
                $"or --insecure [default: {defaults.Host}]",
        };
        var port = OptionParsers.PositiveInt("--port", "N", $"port to listen on [default: {VaeServerOptions.DefaultPort}]", ushort.MaxValue);
        var device = ModelOptions.DeviceOption();
        var dtype = ModelOptions.DTypeOption();
        var exactStore = ModelOptions.ExactStoreOption();
        var family = ModelOptions.FamilyOption();
        var token = new Option<string>("--token")
        {
            HelpName = "T",
            Description = $"bearer token every request but the health probes must send (Authorization: Bearer T) " +
                $"[default: the {VaeServerOptions.TokenEnvironmentVariable} environment variable, else none]",
        };
        var insecure = new Option<bool>("--insecure") { Description = "serve a non-loopback address without a token (a trusted network)" };
        var queue = OptionParsers.PositiveInt("--queue", "N", $"requests that may wait per model; more get 503 with Retry-After [default: {defaults.QueueCapacity}]");
        var timeout = OptionParsers.PositiveInt("--timeout", "SECONDS", $"longest a request may take, queueing included (then 504) [default: {defaults.RequestTimeout.TotalSeconds}]");
        var maxBody = OptionParsers.PositiveInt("--max-body-mb", "MB", $"largest request body; larger get 413 [default: {defaults.MaxBodyBytes / BytesPerMiB}]",
            int.MaxValue / BytesPerMiB);
        var batchWindow = OptionParsers.PositiveInt("--batch-window-ms", "MS", "run concurrent requests of one shape and parameters as one batch, " +
            "waiting up to MS for them [default: off]");
        var maxBatch = OptionParsers.PositiveInt("--max-batch", "N", $"most batch items in one batched run [default: {defaults.MaxBatch}]");
        var maxPixels = OptionParsers.PositiveLong("--max-pixels", "N", $"largest image in pixels, to encode or to decode to [default: {ImageFiles.DefaultMaxPixels} = 4096x4096]");
        var drain = OptionParsers.PositiveInt("--drain-timeout", "SECONDS", "on SIGTERM, how long queued and running requests may finish " +
            $"while new ones get 503; those left then get 503 with Retry-After [default: {defaults.DrainTimeout.TotalSeconds}]", allowZero: true);
        var maxTflop = OptionParsers.PositiveInt("--max-request-tflop", "T", "most model work one request may ask for, in TFLOP " +
            $"(its dry run, every batch item counted); more gets 413 [default: {defaults.MaxRequestFlops / FlopsPerTflop}]");
        var idleRelease = OptionParsers.PositiveInt("--idle-release-seconds", "S", "a model idle this long gives back the buffers and " +
            $"call plans it keeps for reuse [default: {defaults.IdleReleaseAfter.TotalSeconds}]", allowZero: true);
        var maxRetained = OptionParsers.PositiveInt("--max-retained-mb", "MB", "most memory a model keeps for reuse between runs; " +
            $"more is given back after the run [default: {defaults.MaxRetainedBytes / BytesPerMiB}]", int.MaxValue / BytesPerMiB, allowZero: true);
        var logFormat = OptionParsers.Choice("--log-format", "request logs as text lines or one JSON object per line [default: text]",
            ("text", LogFormat.Text), ("json", LogFormat.Json));
        var command = new Command("serve", "serve models over diffusers' hybrid-inference HTTP protocol (remote_encode / remote_decode)")
        {
            models, host, port, device, dtype, exactStore, family, token, insecure, queue, timeout, maxBody, batchWindow, maxBatch, maxPixels,
            drain, maxTflop, idleRelease, maxRetained, logFormat,
        };
        command.SetAction(parse =>
        {
            var options = new VaeServerOptions
            {
                Host = parse.GetValue(host) ?? defaults.Host,
                Port = parse.GetValue(port) ?? VaeServerOptions.DefaultPort,
                Token = parse.GetValue(token) ?? NonEmpty(Environment.GetEnvironmentVariable(VaeServerOptions.TokenEnvironmentVariable)),
                Insecure = parse.GetValue(insecure),
                QueueCapacity = parse.GetValue(queue) ?? defaults.QueueCapacity,
                RequestTimeout = parse.GetValue(timeout) is int seconds ? TimeSpan.FromSeconds(seconds) : defaults.RequestTimeout,
                MaxBodyBytes = parse.GetValue(maxBody) is int mb ? (long)mb * BytesPerMiB : defaults.MaxBodyBytes,
                BatchWindow = parse.GetValue(batchWindow) is int ms ? TimeSpan.FromMilliseconds(ms) : TimeSpan.Zero,
                MaxBatch = parse.GetValue(maxBatch) ?? defaults.MaxBatch,
                DrainTimeout = parse.GetValue(drain) is int drainSeconds ? TimeSpan.FromSeconds(drainSeconds) : defaults.DrainTimeout,
                MaxRequestFlops = parse.GetValue(maxTflop) is int tflop ? (long)(tflop * FlopsPerTflop) : defaults.MaxRequestFlops,
                IdleReleaseAfter = parse.GetValue(idleRelease) is int idle ? TimeSpan.FromSeconds(idle) : defaults.IdleReleaseAfter,
                MaxRetainedBytes = parse.GetValue(maxRetained) is int retainedMb ? (long)retainedMb * BytesPerMiB : defaults.MaxRetainedBytes,
                ConfigureLogging = logging => AddConsole(logging, parse.GetValue(logFormat) ?? LogFormat.Text),
            };
            var vaeOptions = new VaeOptions
            {
                Device = parse.GetValue(device) ?? DevicePreference.Auto,
                DType = parse.GetValue(dtype) ?? DType.F32,
                Family = parse.GetValue(family),
                MaxImagePixels = parse.GetValue(maxPixels) ?? ImageFiles.DefaultMaxPixels,
                ExactStore = parse.GetValue(exactStore) ?? ExactTilingStore.Auto,
            };
            var specs = parse.GetValue(models)!.Select(ParseModel).ToList();
            var served = new List<ServedModel>();
            try
            {
                foreach (var (name, path) in specs)
                {
                    var vae = Vae.Load(path, vaeOptions);
                    served.Add(new ServedModel(name, vae));
                    stdout.WriteLine($"loaded {name}: {vae.Family.Name()} from {path} on {vae.DeviceName}");
                }
                var server = VaeServer.Create(served, options);
                served.Clear();
                return Serve(server, stdout);
            }
            finally
            {
                foreach (var model in served) model.Vae.Dispose();
            }
        });
        return command;
    }

    private static int Serve(VaeServer server, TextWriter stdout)
    {
        try
        {
            server.StartAsync().GetAwaiter().GetResult();
            foreach (var name in server.ModelNames) stdout.WriteLine($"serving {name} at {new Uri(server.BaseAddress, name + "/")}");
            if (server.ModelNames.Count == 1) stdout.WriteLine($"serving {server.ModelNames.First()} at {server.BaseAddress} too");
            stdout.WriteLine("Ctrl+C or SIGTERM stops (in-flight requests finish first)");
            server.WaitForShutdownAsync().GetAwaiter().GetResult();
        }
        finally
        {
            server.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
        return ExitCodes.Success;
    }

    /// <summary>NAME=PATH, or PATH served under its file name without extension.</summary>
    internal static (string Name, string Path) ParseModel(string spec)
    {
        int equals = spec.IndexOf('=');
        if (equals > 0) return (spec[..equals], spec[(equals + 1)..]);
        string name = Path.GetFileNameWithoutExtension(Path.TrimEndingDirectorySeparator(spec));
        if (name.Length == 0) throw new UsageException($"--model '{spec}': give it a name, as NAME=PATH");
        return (name, spec);
    }

    private static string? NonEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;

    private enum LogFormat { Text, Json }

    private static void AddConsole(ILoggingBuilder logging, LogFormat format)
    {
        if (format == LogFormat.Json) logging.AddJsonConsole();
        else logging.AddSimpleConsole(console => { console.SingleLine = true; console.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fff "; });
        // Kestrel's per-connection chatter and the hosting lifetime lines stay out of the request log.
        logging.AddFilter("Microsoft", LogLevel.Warning);
        logging.AddFilter("Microsoft.Hosting.Lifetime", LogLevel.Information);
    }
}
