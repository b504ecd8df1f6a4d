using NativeVae.Core;

namespace NativeVae.Tiling;

/// <summary>
/// <see cref="Count"/> runs of <see cref="Length"/> elements of an activation, the first at flat index
/// <see cref="Start"/> and each <see cref="Stride"/> after the one before: a strip's rows in each channel, or one flat
/// range. Where the runs touch (a strip that is the whole image) they are one range, so they cost one copy.
/// </summary>
internal readonly record struct ElementRuns(long Start, int Count, int Length, long Stride)
{
    /// <summary>One range of <paramref name="length"/> elements from <paramref name="start"/>.</summary>
    public static ElementRuns Flat(long start, int length) => new(start, 1, length, length);

    /// <summary>Rows <paramref name="strip"/> of image <paramref name="n"/> of <paramref name="shape"/>, in every channel: full-width strips only.</summary>
    public static ElementRuns Rows(TensorShape shape, int n, TileRect strip)
    {
        if (strip.Left != 0 || strip.Width != shape.W)
            throw new ArgumentException($"tile {strip} of {shape} is not a full-width strip", nameof(strip));
        return new(RowBand.Offset(shape, n, 0, strip.Top), shape.C, strip.Height * shape.W, (long)shape.H * shape.W);
    }

    /// <summary>How many elements the runs hold.</summary>
    public long Elements => (long)Count * Length;

    /// <summary>First flat index past the last run.</summary>
    public long End => Start + (Count - 1) * Stride + Length;

    /// <summary>The runs as (start, length) ranges in order, merged into one where they touch.</summary>
    public IEnumerable<(long Start, long Length)> Ranges()
    {
        if (Stride == Length || Count == 1)
        {
            yield return (Start, Elements);
            yield break;
        }
        for (int i = 0; i < Count; i++) yield return (Start + i * Stride, Length);
    }
}
