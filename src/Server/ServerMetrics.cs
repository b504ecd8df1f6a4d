using Prometheus;

namespace NativeVae.Server;

/// <summary>
/// The server's Prometheus metrics (prometheus-net), in a registry of its own so that servers in one process (tests)
/// do not share counters. Served at <c>/metrics</c>.
/// </summary>
internal sealed class ServerMetrics
{
    /// <summary>Latency buckets from 5 ms to about 82 s: a tiny decode to a large tiled one.</summary>
    private static readonly double[] LatencyBuckets = Histogram.ExponentialBuckets(start: 0.005, factor: 2, count: 15);

    /// <summary>Batch sizes 1 to 16.</summary>
    private static readonly double[] BatchBuckets = Histogram.LinearBuckets(start: 1, width: 1, count: 16);

    private readonly Counter _requests;
    private readonly Histogram _latency;
    private readonly Gauge _queueDepth;
    private readonly Histogram _batchSize;
    private readonly Gauge _devicePeakBytes;

    public ServerMetrics()
    {
        Registry = Metrics.NewCustomRegistry();
        DotNetStats.Register(Registry);
        var factory = Metrics.WithCustomRegistry(Registry);
        _requests = factory.CreateCounter("nativevae_requests_total", "Requests answered, by model, operation and HTTP status.",
            labelNames: ["model", "operation", "status"]);
        _latency = factory.CreateHistogram("nativevae_request_duration_seconds", "Time from request to reply, queueing included.",
            new HistogramConfiguration { LabelNames = ["model", "operation"], Buckets = LatencyBuckets });
        _queueDepth = factory.CreateGauge("nativevae_queue_depth", "Requests waiting for a model.", labelNames: ["model"]);
        _batchSize = factory.CreateHistogram("nativevae_batch_size", "Batch items per model run (dynamic batching stacks requests).",
            new HistogramConfiguration { LabelNames = ["model"], Buckets = BatchBuckets });
        _devicePeakBytes = factory.CreateGauge("nativevae_device_peak_bytes", "Peak device memory of a model so far.", labelNames: ["model"]);
    }

    public CollectorRegistry Registry { get; }

    public void Request(string model, string operation, int status, TimeSpan elapsed)
    {
        _requests.WithLabels(model, operation, status.ToString(System.Globalization.CultureInfo.InvariantCulture)).Inc();
        _latency.WithLabels(model, operation).Observe(elapsed.TotalSeconds);
    }

    public void QueueDepth(string model, int depth) => _queueDepth.WithLabels(model).Set(depth);

    public void Batch(string model, int items, long devicePeakBytes)
    {
        _batchSize.WithLabels(model).Observe(items);
        _devicePeakBytes.WithLabels(model).Set(devicePeakBytes);
    }
}
