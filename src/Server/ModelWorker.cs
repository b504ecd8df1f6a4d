using System.Threading.Channels;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace NativeVae.Server;

/// <summary>
/// Runs one model's jobs one run at a time, behind a bounded queue. With a batch window, it holds the first job of
/// a run that long for more jobs of the same key (same item shape and parameters) and runs them as one batch.
/// A job whose request was cancelled before its run starts is dropped; a batch is cancelled only when every one of
/// its requests is.
/// </summary>
internal sealed class ModelWorker : IAsyncDisposable
{
    private readonly ServedModel _model;
    private readonly VaeServerOptions _options;
    private readonly ServerMetrics _metrics;
    private readonly ILogger _log;
    private readonly Channel<VaeJob> _queue;
    private readonly Task _loop;
    private int _depth;
    private int _runsStarted;

    public ModelWorker(ServedModel model, VaeServerOptions options, ServerMetrics metrics, ILogger log)
    {
        (_model, _options, _metrics, _log) = (model, options, metrics, log);
        _queue = Channel.CreateBounded<VaeJob>(new BoundedChannelOptions(options.QueueCapacity) { SingleReader = true });
        _loop = Task.Run(RunLoopAsync);
    }

    /// <summary>Runs started so far (for tests that must act while one runs).</summary>
    internal int RunsStarted => Volatile.Read(ref _runsStarted);

    /// <summary>Jobs waiting (not the one running).</summary>
    public int Depth => Volatile.Read(ref _depth);

    /// <summary>Queues a job; false when the queue is full or the worker is stopping.</summary>
    public bool TryEnqueue(VaeJob job)
    {
        Interlocked.Increment(ref _depth);
        if (_queue.Writer.TryWrite(job))
        {
            _metrics.QueueDepth(_model.Name, Depth);
            return true;
        }
        Interlocked.Decrement(ref _depth);
        return false;
    }

    private async Task RunLoopAsync()
    {
        VaeJob? carried = null;
        while (true)
        {
            var first = carried;
            carried = null;
            if (first is null)
            {
                if (!await WaitForWorkAsync()) return;
                if (!_queue.Reader.TryRead(out first)) continue;
            }
            var batch = new List<VaeJob> { first };
            if (_options.BatchWindow > TimeSpan.Zero && first.BatchKey is { } key)
                carried = await GatherAsync(batch, key);
            Interlocked.Add(ref _depth, -batch.Count);
            _metrics.QueueDepth(_model.Name, Depth);
            await RunAsync(RefuseOverCost(batch));
            if (_model.Vae.RetainedBytes > _options.MaxRetainedBytes || _options.IdleReleaseAfter == TimeSpan.Zero) ReleaseMemory();
        }
    }

    /// <summary>
    /// Waits for a job; false when the worker stops. While memory is kept for reuse, a wait longer than
    /// <see cref="VaeServerOptions.IdleReleaseAfter"/> gives it back first.
    /// </summary>
    private async Task<bool> WaitForWorkAsync()
    {
        if (_model.Vae.RetainedBytes > 0)
        {
            using var idle = new CancellationTokenSource(_options.IdleReleaseAfter);
            try
            {
                return await _queue.Reader.WaitToReadAsync(idle.Token);
            }
            catch (OperationCanceledException)
            {
                ReleaseMemory();
            }
        }
        return await _queue.Reader.WaitToReadAsync();
    }

    /// <summary>
    /// Gives back the model's pooled buffers and call plans, then the managed heap's free memory (request bodies and
    /// replies are large arrays): after one large request the process returns to about its idle size.
    /// </summary>
    private void ReleaseMemory()
    {
        long retained = _model.Vae.RetainedBytes;
        _model.Vae.ReleaseMemory();
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        _log.LogDebug("{Model}: gave back {MiB} MiB kept for reuse", _model.Name, retained >> 20);
    }

    /// <summary>
    /// Fails the jobs whose dry run is refused (a tile below the floor, memory over the budget) or whose work is over
    /// <see cref="VaeServerOptions.MaxRequestFlops"/>, before any of the batch runs; returns the rest.
    /// </summary>
    private List<VaeJob> RefuseOverCost(List<VaeJob> batch)
    {
        var accepted = new List<VaeJob>(batch.Count);
        foreach (var job in batch)
        {
            try
            {
                if (job.Plan(_model.Vae) is { } plan && plan.Flops > _options.MaxRequestFlops)
                    throw new ProtocolException(StatusCodes.Status413PayloadTooLarge,
                        $"`shape` {job.InputShape}: the request needs {Tflop(plan.Flops)} TFLOP ({plan.Tiling.ToString().ToLowerInvariant()} " +
                        $"tiling), over this server's limit of {Tflop(_options.MaxRequestFlops)} TFLOP per request; send fewer items or a smaller size");
                accepted.Add(job);
            }
            catch (Exception error)
            {
                job.Fail(error);
            }
        }
        return accepted;
    }

    private const double FlopsPerTflop = 1e12;

    private static string Tflop(long flops) => (flops / FlopsPerTflop).ToString("0.##", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Adds jobs of <paramref name="key"/> to the batch until the window closes or the batch is full; returns a job that does not fit.</summary>
    private async Task<VaeJob?> GatherAsync(List<VaeJob> batch, object key)
    {
        using var window = new CancellationTokenSource(_options.BatchWindow);
        int items = batch[0].Items;
        while (items < _options.MaxBatch)
        {
            if (!_queue.Reader.TryRead(out var next))
            {
                try
                {
                    if (!await _queue.Reader.WaitToReadAsync(window.Token)) return null;
                }
                catch (OperationCanceledException)
                {
                    return null;
                }
                continue;
            }
            if (!key.Equals(next.BatchKey) || items + next.Items > _options.MaxBatch) return next;
            batch.Add(next);
            items += next.Items;
        }
        return null;
    }

    private async Task RunAsync(List<VaeJob> batch)
    {
        foreach (var job in batch.Where(j => j.Cancellation.IsCancellationRequested)) job.Cancel();
        batch.RemoveAll(j => j.Cancellation.IsCancellationRequested);
        if (batch.Count == 0) return;
        try
        {
            await RunBatchAsync(batch);
        }
        catch (Exception) when (batch.Count > 1)
        {
            // One bad input (a NaN, say) must not fail the requests it was batched with: run each alone, so that
            // each gets its own answer.
            _log.LogInformation("batch of {Jobs} requests on {Model} failed; running them one by one", batch.Count, _model.Name);
            foreach (var job in batch) await RunAsync([job]);
        }
        catch (Exception error)
        {
            batch[0].Fail(error);
        }
    }

    private async Task RunBatchAsync(List<VaeJob> batch)
    {
        using var allCancelled = batch.Count == 1 ? null : new AllCancelled(batch);
        var cancellation = allCancelled?.Token ?? batch[0].Cancellation;
        int items = batch.Sum(j => j.Items);
        Interlocked.Increment(ref _runsStarted);
        var replies = await batch[0].RunAsync(_model.Vae, batch, cancellation);
        _metrics.Batch(_model.Name, items, _model.Vae.PeakDeviceBytes);
        for (int i = 0; i < batch.Count; i++)
        {
            batch[i].RanInBatchOf = items;
            batch[i].Complete(replies[i]);
        }
    }

    /// <summary>Stops taking jobs and lets the queued ones finish.</summary>
    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _loop;
    }

    /// <summary>A token that fires when every job of a batch has been cancelled.</summary>
    private sealed class AllCancelled : IDisposable
    {
        private readonly CancellationTokenSource _source = new();
        private readonly List<CancellationTokenRegistration> _registrations = [];
        private int _live;

        public AllCancelled(IReadOnlyList<VaeJob> batch)
        {
            _live = batch.Count;
            foreach (var job in batch)
            {
                _registrations.Add(job.Cancellation.Register(() =>
                {
                    if (Interlocked.Decrement(ref _live) == 0) _source.Cancel();
                }));
            }
        }

        public CancellationToken Token => _source.Token;

        public void Dispose()
        {
            foreach (var registration in _registrations) registration.Dispose();
            _source.Dispose();
        }
    }
}
