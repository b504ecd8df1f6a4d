using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;

namespace NativeVae.Kernels.Cpu;

/// <summary>One unit of a parallel CPU kernel: item <c>item</c> of a job, run by worker <c>worker</c>.</summary>
internal interface IWorkItem
{
    void Execute(int item, int worker);
}

/// <summary>
/// A fixed set of worker threads (the calling thread is worker 0) that run the items of one job at a time,
/// taking items dynamically so a busy core does not stall the others. Jobs are unmanaged structs passed by
/// reference, so running one allocates nothing (Parallel.For allocates closures and partitions per call).
/// Each worker owns grow-only, 64-byte aligned scratch buffers that kernels reuse call after call: fresh
/// memory costs a page fault per 4 KiB on first touch.
/// </summary>
internal sealed unsafe class CpuWorkers : IDisposable
{
    /// <summary>Scratch slots per worker; kernels name theirs with the constants below.</summary>
    public const int ScratchSlots = 4;


    private readonly Thread[] _threads;
    private readonly SemaphoreSlim _start;
    private readonly ManualResetEventSlim _done = new(false);
    private readonly object _runLock = new();
    private readonly Scratch[] _scratch;
    private readonly Scratch[] _shared = new Scratch[ScratchSlots];
    private readonly float** _tables;

    // The job in flight: a pointer to the caller's struct (alive on its stack until Run returns) and a thunk.
    private void* _job;
    private delegate*<void*, int, int, void> _thunk;
    private int _itemCount;
    private int _nextItem;
    private int _pending;
    private ExceptionDispatchInfo? _failure;
    private volatile bool _disposed;

    public CpuWorkers(int workerCount = 0)
    {
        Count = workerCount > 0 ? workerCount : Environment.ProcessorCount;
        _scratch = new Scratch[Count * ScratchSlots];
        _tables = (float**)NativeMemory.AllocZeroed((nuint)(Count * ScratchSlots), (nuint)sizeof(float*));
        _start = new SemaphoreSlim(0);
        _threads = new Thread[Count - 1];
        for (int i = 0; i < _threads.Length; i++)
        {
            int worker = i + 1;
            _threads[i] = new Thread(() => WorkerLoop(worker)) { IsBackground = true, Name = $"NativeVae CPU worker {worker}" };
            _threads[i].Start();
        }
    }

    /// <summary>Number of workers, the calling thread included.</summary>
    public int Count { get; }

    /// <summary>Bytes held by scratch buffers.</summary>
    public long ScratchBytes
    {
        get
        {
            long total = 0;
            foreach (var s in _scratch) total += s.Bytes;
            foreach (var s in _shared) total += s.Bytes;
            return total;
        }
    }

    /// <summary>Runs <c>job.Execute(i, worker)</c> for every i in [0, itemCount) on all workers; returns when all are done.</summary>
    public void Run<TJob>(int itemCount, ref TJob job) where TJob : unmanaged, IWorkItem
    {
        if (itemCount <= 0) return;
        lock (_runLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (itemCount == 1 || Count == 1)
            {
                for (int i = 0; i < itemCount; i++) job.Execute(i, 0);
                return;
            }
            fixed (TJob* p = &job)
            {
                _job = p;
                _thunk = &Thunk<TJob>.Invoke;
                _itemCount = itemCount;
                _nextItem = 0;
                _failure = null;
                int helpers = Math.Min(_threads.Length, itemCount - 1);
                _pending = helpers + 1;
                _done.Reset();
                _start.Release(helpers);
                Work(0);
                _done.Wait();
                _job = null;
            }
            _failure?.Throw();
        }
    }

    /// <summary>
    /// A worker's scratch buffer of at least <paramref name="floats"/> floats, 64-byte aligned, contents
    /// unspecified. Valid until the same worker asks for the same slot again.
    /// </summary>
    public float* WorkerScratch(int worker, int slot, long floats) => _scratch[worker * ScratchSlots + slot].Get(floats);

    /// <summary>
    /// Makes every worker's scratch slot hold at least <paramref name="floats"/> floats and returns a table,
    /// indexed by worker, of their addresses, for unmanaged jobs to find their scratch.
    /// </summary>
    public float** ScratchTable(int slot, long floats)
    {
        for (int worker = 0; worker < Count; worker++)
            _tables[slot * Count + worker] = WorkerScratch(worker, slot, floats);
        return _tables + slot * Count;
    }

    /// <summary>A scratch buffer shared by all workers (filled before a job, read during it).</summary>
    public float* SharedScratch(int slot, long floats) => _shared[slot].Get(floats);

    private void WorkerLoop(int worker)
    {
        while (true)
        {
            _start.Wait();
            if (_disposed) return;
            Work(worker);
        }
    }

    private void Work(int worker)
    {
        try
        {
            int item;
            while ((item = Interlocked.Increment(ref _nextItem) - 1) < _itemCount)
                _thunk(_job, item, worker);
        }
        catch (Exception e)
        {
            // Stop handing out items; the caller rethrows the first failure.
            Interlocked.Exchange(ref _nextItem, int.MaxValue / 2);
            Interlocked.CompareExchange(ref _failure, ExceptionDispatchInfo.Capture(e), null);
        }
        if (Interlocked.Decrement(ref _pending) == 0) _done.Set();
    }

    private static class Thunk<TJob> where TJob : unmanaged, IWorkItem
    {
        public static void Invoke(void* job, int item, int worker) => ((TJob*)job)->Execute(item, worker);
    }

    public void Dispose()
    {
        lock (_runLock)
        {
            if (_disposed) return;
            _disposed = true;
            _start.Release(_threads.Length);
        }
        foreach (var t in _threads) t.Join();
        for (int i = 0; i < _scratch.Length; i++) _scratch[i].Free();
        for (int i = 0; i < _shared.Length; i++) _shared[i].Free();
        NativeMemory.Free(_tables);
        _start.Dispose();
        _done.Dispose();
    }

    private struct Scratch
    {
        private void* _pointer;
        public long Bytes;

        public float* Get(long floats)
        {
            long bytes = checked(floats * sizeof(float));
            if (bytes > Bytes)
            {
                Free();
                _pointer = (void*)HostMemory.Allocate(bytes);
                Bytes = bytes;
            }
            return (float*)_pointer;
        }

        public void Free()
        {
            if (_pointer != null) HostMemory.Free((nint)_pointer, Bytes);
            _pointer = null;
            Bytes = 0;
        }
    }
}
