using NativeVae.Core;

namespace NativeVae.Tiling;

/// <summary>
/// Full-size activations of a tiled run, off the device: regions of one medium (host memory beside a GPU, a temporary
/// file where the device's memory is host RAM), handed out by a <see cref="RegionPool"/> and read and written by flat
/// element ranges. Its size is the high-water mark of the live activations. Each activation keeps its elements as
/// fp32 or in 16 bits (<see cref="SpaceTensor.Elements"/>), as the space's rule says for its shape.
/// </summary>
internal sealed class ActivationSpace : IDisposable
{
    private readonly IActivationMedium _medium;
    private readonly Func<TensorShape, DType> _keptAs;
    private readonly RegionPool _regions = new();

    private ActivationSpace(IActivationMedium medium, Func<TensorShape, DType> keptAs)
    {
        _medium = medium;
        _keptAs = keptAs;
    }

    /// <summary>A space in host arrays (fp32).</summary>
    public static ActivationSpace InMemory() => new(new HostMedium(), _ => DType.F32);

    /// <summary>
    /// A space in page-locked host memory of <paramref name="device"/>'s: its strips cross to and from the device as
    /// queued DMAs (<see cref="CopyIn"/>, <see cref="CopyOut"/>). Each activation is kept as the device stores its
    /// shape (<paramref name="storedAs"/>), so a 16-bit device's feature maps cross the bus in 16 bits and lose nothing.
    /// </summary>
    /// <param name="storage">the device's 16-bit format, or F32.</param>
    public static ActivationSpace InPinned(IPinnedTransfers device, DType storage, Func<TensorShape, DType> storedAs) =>
        new(new PinnedMedium(device, storage), storedAs);

    /// <summary>A space in a temporary file of <paramref name="directory"/> (the temp directory when null).</summary>
    /// <param name="plannedBytes">what the plan expects the space to hold, checked against the disk's free space now.</param>
    /// <param name="elements">how the file keeps elements: a 16-bit backend's values lose nothing in 16 bits.</param>
    /// <exception cref="IOException">the file cannot be created, or the disk has less free than planned.</exception>
    public static ActivationSpace InFile(string? directory, long plannedBytes, DType elements) =>
        new(new ActivationStore(directory, plannedBytes, elements), _ => elements);

    /// <summary>Whether the activations live in a file (rather than host memory).</summary>
    public bool IsFile => _medium is ActivationStore;

    /// <summary>Whether the device copies strips straight in and out of the space (page-locked memory).</summary>
    public bool IsPinned => _medium is PinnedMedium;

    /// <summary>How feature maps' elements are kept (fp32, or the device's 16-bit format).</summary>
    public DType Elements => _medium.Elements;

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

    /// <summary>A new activation (contents unspecified), kept as the space's rule says for its shape or as <paramref name="kept"/>.</summary>
    /// <exception cref="IOException">the medium cannot grow to hold it.</exception>
    public SpaceTensor New(TensorShape shape, DType? kept = null)
    {
        var elements = kept ?? _keptAs(shape);
        if (!_medium.Holds(elements))
            throw new NotSupportedException($"this activation space keeps {_medium.Elements.ShortName()} or fp32 elements, not {elements.ShortName()}");
        long bytes = RegionBytes(shape, elements);
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
        return new SpaceTensor(this, shape, elements, offset, Generation);
    }

    /// <summary>Fills <paramref name="destination"/> with <paramref name="t"/>'s elements from flat index <paramref name="start"/>.</summary>
    public void Read(SpaceTensor t, long start, Span<float> destination) =>
        Read(t, ElementRuns.Flat(start, destination.Length), destination);

    /// <summary>Writes <paramref name="source"/> to <paramref name="t"/>'s elements from flat index <paramref name="start"/>.</summary>
    public void Write(SpaceTensor t, long start, ReadOnlySpan<float> source) =>
        Write(t, ElementRuns.Flat(start, source.Length), source);

    /// <summary>Fills <paramref name="destination"/> with <paramref name="t"/>'s elements in <paramref name="runs"/>, in order.</summary>
    public void Read(SpaceTensor t, ElementRuns runs, Span<float> destination)
    {
        CheckRuns(t, runs, destination.Length);
        int done = 0;
        foreach (var (start, length) in runs.Ranges())
        {
            _medium.Read(ByteOf(t, start), destination.Slice(done, (int)length), t.Elements);
            done += (int)length;
        }
    }

    /// <summary>Writes <paramref name="source"/> to <paramref name="t"/>'s elements in <paramref name="runs"/>, in order.</summary>
    public void Write(SpaceTensor t, ElementRuns runs, ReadOnlySpan<float> source)
    {
        CheckRuns(t, runs, source.Length);
        t.Version++;
        int done = 0;
        foreach (var (start, length) in runs.Ranges())
        {
            _medium.Write(ByteOf(t, start), source.Slice(done, (int)length), t.Elements);
            done += (int)length;
        }
    }

    /// <summary>
    /// Queues the copy of <paramref name="t"/>'s elements in <paramref name="runs"/> into F32 device tensor
    /// <paramref name="target"/>, which they fill in order: one DMA per run, or per range where runs touch (a pinned
    /// space only).
    /// </summary>
    public void CopyIn(SpaceTensor t, ElementRuns runs, Tensor target)
    {
        CheckRuns(t, runs, target.ElementCount);
        Pinned.CopyIn(ByteRanges(t, runs), t.Elements, target);
    }

    /// <summary>
    /// Queues the copy of device tensor <paramref name="source"/>'s elements (any dtype the device holds), in NCHW
    /// order, into <paramref name="t"/>'s <paramref name="runs"/> (a pinned space only).
    /// </summary>
    public void CopyOut(Tensor source, SpaceTensor t, ElementRuns runs)
    {
        CheckRuns(t, runs, source.ElementCount);
        t.Version++;
        Pinned.CopyOut(source, t.Elements, ByteRanges(t, runs));
    }

    /// <summary>Byte offset in the medium of <paramref name="t"/>'s element <paramref name="index"/>.</summary>
    private static long ByteOf(SpaceTensor t, long index) => t.ByteOffset + index * t.Elements.ByteSize();

    private static IEnumerable<(long Byte, long Bytes)> ByteRanges(SpaceTensor t, ElementRuns runs) =>
        runs.Ranges().Select(r => (ByteOf(t, r.Start), r.Length * t.Elements.ByteSize()));

    private PinnedMedium Pinned => _medium as PinnedMedium
        ?? throw new InvalidOperationException("device copies straight to and from the activation space need a pinned space");

    /// <summary>Returns a disposed activation's region.</summary>
    internal void Free(SpaceTensor t)
    {
        if (t.Generation == Generation) _regions.Free(t.ByteOffset, RegionBytes(t.Shape, t.Elements));
    }

    /// <summary>
    /// Regions start at multiples of this many bytes: where 16-bit and fp32 activations share a space, no fp32 element
    /// then straddles a chunk's edge, and every copy starts aligned.
    /// </summary>
    private const long RegionAlignment = 16;

    private static long RegionBytes(TensorShape shape, DType elements)
    {
        long bytes = checked(shape.ElementCount * elements.ByteSize());
        return (bytes + RegionAlignment - 1) / RegionAlignment * RegionAlignment;
    }

    private static void CheckRuns(SpaceTensor t, ElementRuns runs, long values)
    {
        if (runs.Elements != values)
            throw new ArgumentException($"runs of {runs.Elements} elements of {t.Shape} do not match {values} values", nameof(runs));
        if (runs.Count < 1 || runs.Length < 0 || runs.Count > 1 && runs.Stride < runs.Length)
            throw new ArgumentOutOfRangeException(nameof(runs), runs, "runs must be one or more, in order, and apart");
        ObjectDisposedException.ThrowIf(t.IsDisposed, t);
        if (runs.Start < 0 || runs.End > t.ElementCount)
            throw new ArgumentOutOfRangeException(nameof(runs), runs, $"elements [{runs.Start}, {runs.End}) are outside {t.Shape}");
    }

    public void Dispose() => _medium.Dispose();
}
