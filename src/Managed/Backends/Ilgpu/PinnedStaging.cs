using ILGPU.Runtime;

namespace NativeVae.Backends.Ilgpu;

/// <summary>
/// Page-locked host buffers through which the backend's uploads and downloads pass, so that each copy is one
/// asynchronous DMA on the backend's stream instead of the driver's synchronous staging of pageable memory. A rented
/// buffer stays in flight until the stream next drains (<see cref="Drained"/>), since an upload queued on it may not
/// have run yet; then it is free for the next copy. Buffers are powers of two from 64 KiB, kept for reuse up to
/// <see cref="RetainedLimit"/>.
/// </summary>
internal sealed class PinnedStaging(Accelerator accelerator) : IDisposable
{
    private const long SmallestBuffer = 64 << 10;

    /// <summary>Bytes in flight past which the caller drains the stream before renting more (weight uploads queue many).</summary>
    public const long InFlightLimit = 64L << 20;

    /// <summary>Free bytes kept for the next call; past it the largest free buffers are returned to the driver.</summary>
    public const long RetainedLimit = 256L << 20;

    private readonly List<PageLockedArray1D<byte>> _free = [];
    private readonly List<PageLockedArray1D<byte>> _inFlight = [];

    /// <summary>Bytes rented since the stream last drained.</summary>
    private long InFlightBytes { get; set; }

    /// <summary>Whether renting <paramref name="bytes"/> more should wait for the stream first.</summary>
    public bool ShouldDrainBefore(long bytes) => InFlightBytes > 0 && InFlightBytes + bytes > InFlightLimit;

    /// <summary>A page-locked buffer of at least <paramref name="bytes"/>, in flight until <see cref="Drained"/>.</summary>
    public PageLockedArray1D<byte> Rent(long bytes)
    {
        int best = -1;
        for (int i = 0; i < _free.Count; i++)
            if (_free[i].Length >= bytes && (best < 0 || _free[i].Length < _free[best].Length)) best = i;
        PageLockedArray1D<byte> buffer;
        if (best >= 0)
        {
            buffer = _free[best];
            _free.RemoveAt(best);
        }
        else
        {
            long size = SmallestBuffer;
            while (size < bytes) size *= 2;
            buffer = accelerator.AllocatePageLocked1D<byte>(size);
        }
        _inFlight.Add(buffer);
        InFlightBytes += buffer.Length;
        return buffer;
    }

    /// <summary>The stream has drained: every rented buffer is free again.</summary>
    public void Drained()
    {
        _free.AddRange(_inFlight);
        _inFlight.Clear();
        InFlightBytes = 0;
        _free.Sort((a, b) => a.Length.CompareTo(b.Length));
        long kept = _free.Sum(b => b.Length);
        while (kept > RetainedLimit && _free.Count > 0)
        {
            var largest = _free[^1];
            _free.RemoveAt(_free.Count - 1);
            kept -= largest.Length;
            largest.Dispose();
        }
    }

    /// <summary>Frees every buffer; the stream must have drained.</summary>
    public void Dispose()
    {
        foreach (var buffer in _free.Concat(_inFlight)) buffer.Dispose();
        _free.Clear();
        _inFlight.Clear();
        InFlightBytes = 0;
    }
}
