using System.Runtime.InteropServices;

namespace NativeVae.Backends.Cpu;

/// <summary>
/// Reuses 64-byte aligned native buffers by exact byte length (the CPU twin of DeviceBufferPool): a model run
/// asks for the same sizes every time, and fresh memory costs a page fault per 4 KiB on first touch.
/// Thread-safe. Buffers are freed when the pool is trimmed or disposed.
/// </summary>
internal sealed unsafe class NativeBufferPool : IDisposable
{
    private const int Alignment = 64;

    private readonly Dictionary<long, Stack<nint>> _free = new();
    private readonly object _lock = new();
    private long _liveBytes;
    private long _pooledBytes;
    private long _peakBytes;
    private bool _disposed;

    public MemoryStats Stats
    {
        get { lock (_lock) return new MemoryStats(_liveBytes, _pooledBytes, _peakBytes); }
    }

    /// <summary>A buffer of at least one byte; <paramref name="bytes"/> is the key it is returned under.</summary>
    public nint Rent(long bytes)
    {
        long size = Math.Max(bytes, 1);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _liveBytes += size;
            if (_free.TryGetValue(size, out var stack) && stack.Count > 0)
            {
                _pooledBytes -= size;
                return stack.Pop();
            }
            _peakBytes = Math.Max(_peakBytes, _liveBytes + _pooledBytes);
        }
        return (nint)NativeMemory.AlignedAlloc((nuint)size, Alignment);
    }

    public void Return(nint buffer, long bytes)
    {
        long size = Math.Max(bytes, 1);
        lock (_lock)
        {
            _liveBytes -= size;
            if (_disposed)
            {
                NativeMemory.AlignedFree((void*)buffer);
                return;
            }
            if (!_free.TryGetValue(size, out var stack))
                _free[size] = stack = new Stack<nint>();
            stack.Push(buffer);
            _pooledBytes += size;
        }
    }

    /// <summary>
    /// Counts memory allocated beside the pool (packed conv weights) as live, so that the peak includes it at the
    /// moment it is held; a negative <paramref name="bytes"/> when it is freed.
    /// </summary>
    public void TrackExternal(long bytes)
    {
        lock (_lock)
        {
            _liveBytes += bytes;
            _peakBytes = Math.Max(_peakBytes, _liveBytes + _pooledBytes);
        }
    }

    /// <summary>Frees a live buffer instead of pooling it (its size will not be asked for again).</summary>
    public void Free(nint buffer, long bytes)
    {
        lock (_lock) _liveBytes -= Math.Max(bytes, 1);
        NativeMemory.AlignedFree((void*)buffer);
    }

    /// <summary>Frees every pooled (not live) buffer.</summary>
    public void Trim()
    {
        lock (_lock)
        {
            foreach (var stack in _free.Values)
                while (stack.Count > 0) NativeMemory.AlignedFree((void*)stack.Pop());
            _free.Clear();
            _pooledBytes = 0;
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
}
