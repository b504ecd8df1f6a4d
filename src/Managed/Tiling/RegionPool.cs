namespace NativeVae.Tiling;

/// <summary>
/// First-fit allocation of regions in one linear space of bytes (a file, or host memory), with freed regions merged
/// with their free neighbours: a model run frees and asks for regions of many sizes, and reusing only exact sizes
/// let a 4096x4096 exact decode's store grow past the disk. Its high-water mark is the space's size.
/// </summary>
internal sealed class RegionPool
{
    /// <summary>Free regions, sorted by offset, none adjacent to another.</summary>
    private readonly List<(long Offset, long Length)> _free = [];

    /// <summary>The end of the highest region handed out: the space the regions need.</summary>
    public long End { get; private set; }

    /// <summary>Bytes in regions handed out and not freed.</summary>
    public long LiveBytes { get; private set; }

    /// <summary>A region of <paramref name="length"/> bytes; returns its offset.</summary>
    public long Allocate(long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        LiveBytes += length;
        for (int i = 0; i < _free.Count; i++)
        {
            var (offset, free) = _free[i];
            if (free < length) continue;
            if (free == length) _free.RemoveAt(i);
            else _free[i] = (offset + length, free - length);
            return offset;
        }
        // A free region at the end grows into the new one rather than leaving a hole below it.
        if (_free.Count > 0 && _free[^1].Offset + _free[^1].Length == End)
        {
            long start = _free[^1].Offset;
            _free.RemoveAt(_free.Count - 1);
            End = start + length;
            return start;
        }
        long end = End;
        End += length;
        return end;
    }

    /// <summary>Frees every region at once (a new call: what an earlier one left is dead).</summary>
    public void Clear()
    {
        _free.Clear();
        if (End > 0) _free.Add((0, End));
        LiveBytes = 0;
    }

    /// <summary>Returns a region from <see cref="Allocate"/>, merged with the free regions beside it.</summary>
    public void Free(long offset, long length)
    {
        LiveBytes -= length;
        int i = _free.BinarySearch((offset, 0), OffsetOrder.Instance);
        if (i >= 0) throw new InvalidOperationException($"region at byte {offset} freed twice");
        i = ~i;
        if (i > 0 && _free[i - 1].Offset + _free[i - 1].Length == offset)
        {
            offset = _free[i - 1].Offset;
            length += _free[i - 1].Length;
            _free.RemoveAt(--i);
        }
        if (i < _free.Count && offset + length == _free[i].Offset)
        {
            length += _free[i].Length;
            _free.RemoveAt(i);
        }
        _free.Insert(i, (offset, length));
    }

    private sealed class OffsetOrder : IComparer<(long Offset, long Length)>
    {
        public static readonly OffsetOrder Instance = new();

        public int Compare((long Offset, long Length) a, (long Offset, long Length) b) => a.Offset.CompareTo(b.Offset);
    }

    /// <summary>
    /// The size a pool reaches over a run's allocations and frees, in order ((tensor number, bytes, freed), as a dry
    /// run records them): what the same run's activation space will need.
    /// </summary>
    public static long Replay(IEnumerable<(int Tensor, long Bytes, bool Freed)> allocations)
    {
        var pool = new RegionPool();
        var offsets = new Dictionary<int, long>();
        foreach (var (tensor, bytes, freed) in allocations)
        {
            if (!freed) offsets[tensor] = pool.Allocate(bytes);
            else if (offsets.Remove(tensor, out long offset)) pool.Free(offset, bytes);
        }
        return pool.End;
    }
}
