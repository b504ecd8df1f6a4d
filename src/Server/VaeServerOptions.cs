using Microsoft.Extensions.Logging;

namespace NativeVae.Server;

/// <summary>How a <see cref="VaeServer"/> listens, queues, batches and protects itself.</summary>
public sealed record VaeServerOptions
{
    /// <summary>The port the published endpoints' toolkit listens on.</summary>
    public const int DefaultPort = 8000;

    /// <summary>Environment variable that holds the bearer token when none is given in the options.</summary>
    public const string TokenEnvironmentVariable = "NATIVEVAE_TOKEN";

    /// <summary>Address to bind: an IP address or <c>localhost</c>. Default loopback; any other address needs a token.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>Port to bind; 0 picks a free one (see <see cref="VaeServer.BaseAddress"/>).</summary>
    public int Port { get; init; } = DefaultPort;

    /// <summary>Bearer token every request but the health probes must carry; null serves without one (loopback only, unless <see cref="Insecure"/>).</summary>
    public string? Token { get; init; }

    /// <summary>Allows binding a non-loopback address without a token (a trusted network, or auth in front of the server).</summary>
    public bool Insecure { get; init; }

    /// <summary>Requests that may wait per model while one runs; when the queue is full the answer is 503 with Retry-After.</summary>
    public int QueueCapacity { get; init; } = 16;

    /// <summary>Longest a request may take, queueing included; past it the work is cancelled and the answer is 504.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(300);

    /// <summary>Largest request body; larger ones get 413 before they are read.</summary>
    public long MaxBodyBytes { get; init; } = 256L << 20;

    /// <summary>Most batch items (the N of a tensor) one request may carry.</summary>
    public int MaxItemsPerRequest { get; init; } = 16;

    /// <summary>How long the worker waits for more requests of the same shape and parameters to run with the first; zero turns batching off.</summary>
    public TimeSpan BatchWindow { get; init; } = TimeSpan.Zero;

    /// <summary>Most batch items one batched run holds.</summary>
    public int MaxBatch { get; init; } = 8;

    /// <summary>
    /// How long a stopping server (SIGTERM) lets queued and running requests finish; meanwhile it answers new
    /// requests, on new and open connections, with 503 and Retry-After. Requests still waiting or running when it
    /// ends are cancelled and answered 503 with Retry-After too.
    /// </summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Most work one request may ask for, in floating-point operations of the model (its dry run under the requested
    /// tiling, every batch item counted); more is refused with 413 before any work. The default takes one SD/FLUX
    /// decode of 2048x2048 (42 TFLOP) twice over.
    /// </summary>
    public long MaxRequestFlops { get; init; } = 100_000_000_000_000;

    /// <summary>
    /// A model idle this long gives back what it keeps for reuse (pooled buffers, the call plans that make a
    /// repeated shape fast); the next call of a shape plans again. Zero gives it back after every run.
    /// </summary>
    public TimeSpan IdleReleaseAfter { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Most bytes a model keeps for reuse between runs; after a run that leaves more, it gives them back at once.</summary>
    public long MaxRetainedBytes { get; init; } = 2L << 30;

    /// <summary>Seconds a 503 asks the client to wait (its Retry-After header).</summary>
    public int RetryAfterSeconds { get; init; } = 1;

    /// <summary>Where the server's logs go (request logs, errors); null keeps none. The CLI adds the console.</summary>
    public Action<ILoggingBuilder>? ConfigureLogging { get; init; }

    /// <exception cref="ArgumentException">a value is out of range; the message names it.</exception>
    internal void Validate()
    {
        if (Port is < 0 or > ushort.MaxValue) throw new ArgumentException($"port {Port} must be 0 to {ushort.MaxValue}");
        if (QueueCapacity < 1) throw new ArgumentException($"queue capacity {QueueCapacity} must be at least 1");
        if (RequestTimeout <= TimeSpan.Zero) throw new ArgumentException($"request timeout {RequestTimeout} must be positive");
        if (MaxBodyBytes < 1) throw new ArgumentException($"body limit {MaxBodyBytes} must be positive");
        if (MaxItemsPerRequest < 1) throw new ArgumentException($"items per request {MaxItemsPerRequest} must be at least 1");
        if (BatchWindow < TimeSpan.Zero) throw new ArgumentException($"batch window {BatchWindow} must not be negative");
        if (MaxBatch < 1) throw new ArgumentException($"max batch {MaxBatch} must be at least 1");
        if (DrainTimeout < TimeSpan.Zero) throw new ArgumentException($"drain timeout {DrainTimeout} must not be negative");
        if (MaxRequestFlops < 1) throw new ArgumentException($"request FLOP limit {MaxRequestFlops} must be positive");
        if (IdleReleaseAfter < TimeSpan.Zero) throw new ArgumentException($"idle release time {IdleReleaseAfter} must not be negative");
        if (MaxRetainedBytes < 0) throw new ArgumentException($"retained memory cap {MaxRetainedBytes} must not be negative");
        if (Token is { Length: 0 }) throw new ArgumentException("the bearer token is empty");
    }
}

/// <summary>A loaded model and the name it is served under (<c>/name/</c>).</summary>
/// <param name="Name">URL segment: letters, digits, '.', '_' and '-'.</param>
/// <param name="Vae">The model; the server disposes it when it stops.</param>
public sealed record ServedModel(string Name, Vae Vae);
