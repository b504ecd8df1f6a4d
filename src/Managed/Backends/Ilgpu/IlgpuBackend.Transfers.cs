using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;

namespace NativeVae.Backends.Ilgpu;

/// <summary>
/// Host-device traffic of an <see cref="IlgpuBackend"/> since it was made: copies each way through staging, host waits,
/// and bytes copied straight from and to page-locked blocks (<see cref="Core.IPinnedTransfers"/>).
/// </summary>
internal readonly record struct DeviceTransfers(long HostToDevice, long DeviceToHost, long Synchronizations,
    long FromPinnedBytes = 0, long ToPinnedBytes = 0)
{
    public static DeviceTransfers operator -(DeviceTransfers a, DeviceTransfers b) =>
        new(a.HostToDevice - b.HostToDevice, a.DeviceToHost - b.DeviceToHost, a.Synchronizations - b.Synchronizations,
            a.FromPinnedBytes - b.FromPinnedBytes, a.ToPinnedBytes - b.ToPinnedBytes);
}

// Every op of the backend is queued on its own stream (not the legacy NULL stream, which would serialise against
// copies on any other stream), and the host waits for it only where it needs a result: a download. Uploads and
// downloads go through page-locked staging (PinnedStaging), so an upload returns at once and a download is one DMA
// and one wait. A decode to pixels is then one upload, one download (the image bytes with the count of non-finite
// values beside them) and one synchronisation.
internal sealed partial class IlgpuBackend
{
    private long _hostToDevice;
    private long _deviceToHost;
    private long _synchronizations;

    /// <summary>Copies and host waits so far (tests count them per call).</summary>
    public DeviceTransfers Transfers => new(_hostToDevice, _deviceToHost, _synchronizations, _fromPinnedBytes, _toPinnedBytes);

    /// <summary>The stream every kernel and copy of this backend is queued on.</summary>
    public AcceleratorStream Stream => _stream;

    /// <summary>Waits for the stream; the staging buffers in flight are free again.</summary>
    private void Wait()
    {
        _stream.Synchronize();
        _staging.Drained();
        _synchronizations++;
    }

    /// <summary>Queues a copy of <paramref name="data"/> into <paramref name="target"/> (same length) and returns.</summary>
    private void CopyIn(ArrayView<byte> target, ReadOnlySpan<byte> data)
    {
        if (data.Length != target.Length)
            throw new ArgumentException($"upload of {data.Length} bytes into a {target.Length}-byte view", nameof(data));
        if (data.IsEmpty) return;
        if (_staging.ShouldDrainBefore(data.Length)) Wait();
        var pinned = _staging.Rent(data.Length);
        data.CopyTo(pinned.Span);
        target.CopyFrom(_stream, pinned.ArrayView.SubView(0, data.Length));
        _hostToDevice++;
    }

    /// <summary>
    /// Copies the views one after the other into one staging buffer and waits once; the bytes returned are valid until
    /// the backend's next copy.
    /// </summary>
    private ReadOnlySpan<byte> CopyOut(ReadOnlySpan<ArrayView<byte>> sources)
    {
        long total = 0;
        foreach (var source in sources) total += source.Length;
        var pinned = _staging.Rent(Math.Max(total, 1));
        long at = 0;
        foreach (var source in sources)
        {
            if (source.Length > 0) source.CopyTo(_stream, pinned.ArrayView.SubView(at, source.Length));
            at += source.Length;
        }
        _deviceToHost++;
        Wait();
        return pinned.Span[..checked((int)total)];
    }

    /// <summary>Copies <paramref name="source"/> into <paramref name="destination"/> (same length in bytes), waiting once.</summary>
    private void CopyOut<T>(ArrayView<byte> source, Span<T> destination) where T : unmanaged
    {
        var bytes = MemoryMarshal.AsBytes(destination);
        if (bytes.Length != source.Length)
            throw new ArgumentException($"download of a {source.Length}-byte view into {bytes.Length} bytes", nameof(destination));
        CopyOut([source]).CopyTo(bytes);
    }
}
