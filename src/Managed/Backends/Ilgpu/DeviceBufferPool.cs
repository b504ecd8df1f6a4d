using ILGPU;
using ILGPU.Runtime;

namespace NativeVae.Backends.Ilgpu;

/// <summary>
/// Reuses device buffers by exact byte length. A model run asks for the same handful of sizes every time, so
/// after the first call nothing is allocated (fresh memory is slow to touch, and device allocation synchronises).
/// Thread-safe. Buffers are freed when the pool is disposed or trimmed.
/// </summary>
internal sealed class DeviceBufferPool : IDisposable
{
    private readonly Accelerator _accelerator;
    private readonly Dictionary<long, Stack<MemoryBuffer1D<byte, Stride1D.Dense>>> _free = new();
    private readonly object _lock = new();
    private long _liveBytes;
    private long _pooledBytes;
    private long _peakBytes;
    private bool _disposed;

    public DeviceBufferPool(Accelerator accelerator) => _accelerator = accelerator;

    public MemoryStats Stats
    {
        get { lock (_lock) return new MemoryStats(_liveBytes, _pooledBytes, _peakBytes); }
    }

    public MemoryBuffer1D<byte, Stride1D.Dense> Rent(long bytes)
    {
        // Zero-length tensors still get a real (1-byte) buffer so that views are always valid.
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
        return _accelerator.Allocate1D<byte>(size);
    }

    public void Return(MemoryBuffer1D<byte, Stride1D.Dense> buffer)
    {
        lock (_lock)
        {
            _liveBytes -= buffer.Length;
            if (_disposed)
            {
                buffer.Dispose();
                return;
            }
            if (!_free.TryGetValue(buffer.Length, out var stack))
                _free[buffer.Length] = stack = new Stack<MemoryBuffer1D<byte, Stride1D.Dense>>();
            stack.Push(buffer);
            _pooledBytes += buffer.Length;
        }
    }

    /// <summary>Frees every pooled (not live) buffer.</summary>
    public void Trim()
    {
        lock (_lock)
        {
            foreach (var stack in _free.Values)
                while (stack.Count > 0) stack.Pop().Dispose();
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
