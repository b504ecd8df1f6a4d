using NativeVae.Core;
namespace NativeVae.Backends;

/// <summary>
/// Reuses buffers across ops, with the accounting every backend reports (<see cref="MemoryStats"/>). A request takes
/// the smallest free buffer of at least its size and at most <see cref="MaxSlack"/> times it; only when none fits is
/// a new one allocated. A model run asks for the same handful of sizes every time, so after the first call nothing
/// is allocated (fresh memory is slow to touch, device allocation synchronises). Thread-safe.
/// <para>
/// With <c>releaseOnGrowth</c>, a request that no free buffer can serve first frees the free buffers smaller than
/// it: a decoder's activations grow from 8 MiB to 256 MiB, and buffers of a past stage would otherwise sit idle
/// beside the larger ones (in SD's 512x512 decode, 264 MiB of them at the peak).
/// </para>
/// </summary>
/// <typeparam name="T">The buffer handle (a device buffer, a native pointer).</typeparam>
/// <param name="free">Frees a buffer, given its capacity.</param>
internal sealed class BufferPool<T>(Func<long, T> allocate, Action<T, long> free, bool releaseOnGrowth = false) : IDisposable
    where T : notnull
{
    /// <summary>A free buffer up to this many times larger than the request is reused rather than left idle.</summary>
    public const int MaxSlack = 2;

    private readonly SortedList<long, Stack<T>> _free = new();
    private readonly object _lock = new();
    private long _liveBytes;
    private long _pooledBytes;
    private long _peakBytes;
    private bool _disposed;

    public MemoryStats Stats
    {
        get { lock (_lock) return new MemoryStats(_liveBytes, _pooledBytes, _peakBytes); }
    }

    /// <summary>A buffer of at least <paramref name="bytes"/> (and one) bytes; return it under its capacity.</summary>
    public (T Buffer, long Capacity) Rent(long bytes)
    {
        long size = Math.Max(bytes, 1);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            int index = FirstAtLeast(size);
            if (index < _free.Count && _free.Keys[index] <= size * MaxSlack)
            {
                long capacity = _free.Keys[index];
                var stack = _free.Values[index];
                var buffer = stack.Pop();
                if (stack.Count == 0) _free.RemoveAt(index);
                _pooledBytes -= capacity;
                _liveBytes += capacity;
                return (buffer, capacity);
            }
            if (releaseOnGrowth)
                while (_free.Count > 0 && _free.Keys[0] < size) FreeAll(0);
            _liveBytes += size;
            _peakBytes = Math.Max(_peakBytes, _liveBytes + _pooledBytes);
        }
        return (allocate(size), size);
    }

    public void Return(T buffer, long capacity)
    {
        lock (_lock)
        {
            _liveBytes -= capacity;
            if (_disposed)
            {
                free(buffer, capacity);
                return;
            }
            if (!_free.TryGetValue(capacity, out var stack)) _free[capacity] = stack = new Stack<T>();
            stack.Push(buffer);
            _pooledBytes += capacity;
        }
    }

    /// <summary>Frees a live buffer instead of pooling it (its size will not be asked for again).</summary>
    public void Free(T buffer, long capacity)
    {
        lock (_lock) _liveBytes -= capacity;
        free(buffer, capacity);
    }

    /// <summary>
    /// Counts memory held beside the pool (packed conv weights) as live, so that the peak includes it while it is
    /// held; a negative <paramref name="bytes"/> when it is freed.
    /// </summary>
    public void TrackExternal(long bytes)
    {
        lock (_lock)
        {
            _liveBytes += bytes;
            _peakBytes = Math.Max(_peakBytes, _liveBytes + _pooledBytes);
        }
    }

    /// <summary>Frees every pooled (not live) buffer.</summary>
    public void Trim()
    {
        lock (_lock)
        {
            while (_free.Count > 0) FreeAll(_free.Count - 1);
        }
    }

    /// <summary>Frees every pooled buffer and restarts the peak at the live bytes (benchmarks measure one case at a time).</summary>
    public void ResetPeak()
    {
        Trim();
        lock (_lock) _peakBytes = _liveBytes;
    }

    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed) return;
            _disposed = true;
        }
        Trim();
    }

    /// <summary>Frees the free buffers of the <paramref name="index"/>-th capacity (under the lock).</summary>
    private void FreeAll(int index)
    {
        long capacity = _free.Keys[index];
        foreach (var buffer in _free.Values[index])
        {
            free(buffer, capacity);
            _pooledBytes -= capacity;
        }
        _free.RemoveAt(index);
    }

    /// <summary>Index of the first free capacity >= size (binary search over the sorted keys).</summary>
    private int FirstAtLeast(long size)
    {
        var keys = _free.Keys;
        int lo = 0, hi = keys.Count;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (keys[mid] < size) lo = mid + 1;
            else hi = mid;
        }
        return lo;
    }
}
