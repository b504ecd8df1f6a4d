using NativeVae.Core;

namespace NativeVae.Tiling;

/// <summary>
/// Full-size activations of a tiled run, off the device: regions of one medium (host memory beside a GPU, a temporary
/// file where the device's memory is host RAM), handed out by a <see cref="RegionPool"/> and read and written by flat
/// element ranges. Its size is the high-water mark of the live activations.
/// </summary>
internal sealed class ActivationSpace : IDisposable
{
    private readonly IActivationMedium _medium;
    private readonly RegionPool _regions = new();

    private ActivationSpace(IActivationMedium medium)
    {
        _medium = medium;
        ElementBytes = medium.Elements.ByteSize();
    }

    /// <summary>A space in host arrays (fp32).</summary>
    public static ActivationSpace InMemory() => new(new HostMedium());

    /// <summary>
    /// A space in page-locked host memory of <paramref name="device"/>'s (fp32): its strips cross to and from the device
    /// as queued DMAs (<see cref="CopyIn"/>, <see cref="CopyOut"/>).
    /// </summary>
    public static ActivationSpace InPinned(IPinnedTransfers device) => new(new PinnedMedium(device));

    /// <summary>A space in a temporary file of <paramref name="directory"/> (the temp directory when null).</summary>
    /// <param name="plannedBytes">what the plan expects the space to hold, checked against the disk's free space now.</param>
    /// <param name="elements">how the file keeps elements: a 16-bit backend's values lose nothing in 16 bits.</param>
    /// <exception cref="IOException">the file cannot be created, or the disk has less free than planned.</exception>
    public static ActivationSpace InFile(string? directory, long plannedBytes, DType elements) =>
        new(new ActivationStore(directory, plannedBytes, elements));

    /// <summary>Whether the activations live in a file (rather than host memory).</summary>
    public bool IsFile => _medium is ActivationStore;

    /// <summary>Whether the device copies strips straight in and out of the space (page-locked memory).</summary>
    public bool IsPinned => _medium is PinnedMedium;

    /// <summary>How elements are kept.</summary>
    public DType Elements => _medium.Elements;

    /// <summary>Bytes per kept element.</summary>
    public int ElementBytes { get; }

    /// <summary>The space's size: the most bytes its live activations have needed at once (plus any fragmentation).</summary>
    public long Bytes => _regions.End;

    /// <summary>Bytes of the live activations.</summary>
    public long LiveBytes => _regions.LiveBytes;

    /// <summary>Which call's activations are live: those of earlier calls are dead, and freeing one does nothing.</summary>
    public int Generation { get; private set; }

    /// <summary>
    /// Starts a new call on a kept space: every activation is dead (a failed call may have left some undisposed), and
    /// the medium keeps its memory for the new ones.
    /// </summary>
    public void BeginCall()
    {
        Generation++;
        _regions.Clear();
    }

    /// <summary>Bytes the medium holds (host memory kept for the next call; the file's length).</summary>
    public long MediumBytes => _medium.Length;

    /// <summary>A new activation (contents unspecified).</summary>
    /// <exception cref="IOException">the medium cannot grow to hold it.</exception>
    public SpaceTensor New(TensorShape shape)
    {
        long bytes = checked(shape.ElementCount * ElementBytes);
        long offset = _regions.Allocate(bytes);
        try
        {
            _medium.EnsureLength(_regions.End);
        }
        catch
        {
            _regions.Free(offset, bytes);
            throw;
        }
        return new SpaceTensor(this, shape, offset, Generation);
    }

    /// <summary>Fills <paramref name="destination"/> with <paramref name="t"/>'s elements from flat index <paramref name="start"/>.</summary>
    public void Read(SpaceTensor t, long start, Span<float> destination)
    {
        CheckRange(t, start, destination.Length);
        _medium.Read(t.ByteOffset + start * ElementBytes, destination);
    }

    /// <summary>Writes <paramref name="source"/> to <paramref name="t"/>'s elements from flat index <paramref name="start"/>.</summary>
    public void Write(SpaceTensor t, long start, ReadOnlySpan<float> source)
    {
        CheckRange(t, start, source.Length);
        t.Version++;
        _medium.Write(t.ByteOffset + start * ElementBytes, source);
    }

    /// <summary>
    /// Queues a copy of <paramref name="count"/> of <paramref name="t"/>'s elements from flat index
    /// <paramref name="start"/> into F32 device tensor <paramref name="target"/> from its element
    /// <paramref name="targetStart"/> (a pinned space only).
    /// </summary>
    public void CopyIn(SpaceTensor t, long start, Tensor target, long targetStart, int count)
    {
        CheckRange(t, start, count);
        Pinned.CopyIn(t.ByteOffset + start * ElementBytes, target, targetStart * ElementBytes, (long)count * ElementBytes);
    }

    /// <summary>
    /// Queues a copy of <paramref name="count"/> elements of F32 device tensor <paramref name="source"/> from its element
    /// <paramref name="sourceStart"/> into <paramref name="t"/>'s from flat index <paramref name="start"/> (a pinned space only).
    /// </summary>
    public void CopyOut(Tensor source, long sourceStart, SpaceTensor t, long start, int count)
    {
        CheckRange(t, start, count);
        t.Version++;
        Pinned.CopyOut(source, sourceStart * ElementBytes, t.ByteOffset + start * ElementBytes, (long)count * ElementBytes);
    }

    /// <summary>
    /// Runs <paramref name="copies"/> (of <see cref="CopyOut"/>) on device tensor <paramref name="source"/> in the F32
    /// form they take: a 16-bit one is converted on the device first, once, into a tensor disposed after (a pinned
    /// space only).
    /// </summary>
    public void CopyOutOf(Tensor source, Action<Tensor> copies)
    {
        var single = Pinned.AsCopyable(source);
        try
        {
            copies(single);
        }
        finally
        {
            if (!ReferenceEquals(single, source)) single.Dispose();
        }
    }

    private PinnedMedium Pinned => _medium as PinnedMedium
        ?? throw new InvalidOperationException("device copies straight to and from the activation space need a pinned space");

    /// <summary>Returns a disposed activation's region.</summary>
    internal void Free(SpaceTensor t)
    {
        if (t.Generation == Generation) _regions.Free(t.ByteOffset, t.ElementCount * ElementBytes);
    }

    private static void CheckRange(SpaceTensor t, long start, int length)
    {
        ObjectDisposedException.ThrowIf(t.IsDisposed, t);
        if (start < 0 || start + length > t.ElementCount)
            throw new ArgumentOutOfRangeException(nameof(start), start, $"elements [{start}, {start + length}) are outside {t.Shape}");
    }

    public void Dispose() => _medium.Dispose();
}
