using NativeVae.Core;

namespace NativeVae.Tiling;

/// <summary>A rectangle of output rows [Top, Top+Height) and columns [Left, Left+Width).</summary>
internal readonly record struct TileRect(int Top, int Left, int Height, int Width);

/// <summary>
/// Cuts a plane into full-width strips of about <c>tile x tile</c> elements (at least one row), top to bottom: a
/// strip's rows are contiguous in every channel, so it is read, uploaded and written without gathering, and its
/// halo is two rows of the width. The device then holds about tile^2 elements per channel, whatever the image's shape.
/// </summary>
internal static class TilePlanner
{
    public static List<TileRect> Strips(int height, int width, int tile)
    {
        if (tile <= 0) throw new ArgumentOutOfRangeException(nameof(tile), tile, "tile size must be positive");
        int rows = StripGeometry.Rows(height, width, tile);
        var strips = new List<TileRect>();
        for (int top = 0; top < height; top += rows) strips.Add(new TileRect(top, 0, Math.Min(rows, height - top), width));
        return strips;
    }

    /// <summary>
    /// Strips as <see cref="Strips"/>, but every boundary between two strips has the parity <paramref name="parity"/>
    /// (0 or 1): an even number of rows per strip, the first one more when the parity is odd. A convolution of a 2x
    /// upsampled input with odd kernel and top padding p cut at boundaries of parity p reads whole input rows in every
    /// strip (its window starts and ends on even upsampled rows), so the device upsamples the original rows itself.
    /// </summary>
    public static List<TileRect> ParityStrips(int height, int width, int tile, int parity)
    {
        if (parity is not (0 or 1)) throw new ArgumentOutOfRangeException(nameof(parity), parity, "a parity is 0 or 1");
        int rows = Math.Max(2, StripGeometry.Rows(height, width, tile) / 2 * 2);
        var strips = new List<TileRect>();
        for (int top = 0, end = rows + parity; top < height; top = end, end += rows)
            strips.Add(new TileRect(top, 0, Math.Min(end, height) - top, width));
        return strips;
    }

    /// <summary>
    /// The input window a convolution output tile reads, in the (possibly 2x upsampled) input's coordinates:
    /// rows [start, start + length). Parts outside the input are zero padding.
    /// </summary>
    public static (int Start, int Length) InputWindow(int outputStart, int outputLength, int stride, int padBefore, int kernel) =>
        (outputStart * stride - padBefore, (outputLength - 1) * stride + kernel);

    /// <summary>
    /// <see cref="InputWindow"/> clipped to the input's <paramref name="size"/> (in the possibly upsampled input's
    /// coordinates): rows [Start, Start + Length) that exist, and the zero padding the convolution adds before and
    /// after them, which is the layer's own padding at the image's edge and none inside it.
    /// </summary>
    public static ClippedWindow Clip((int Start, int Length) window, int size)
    {
        int start = Math.Max(window.Start, 0), end = Math.Min(window.Start + window.Length, size);
        if (end <= start)
            throw new InvalidOperationException($"a convolution tile reads input rows [{window.Start}, {window.Start + window.Length}) that lie outside the input's {size}");
        return new ClippedWindow(start, end - start, start - window.Start, window.Start + window.Length - end);
    }
}

/// <summary>Input rows (or columns) [Start, Start + Length) of a tile, and the zero padding around them.</summary>
internal readonly record struct ClippedWindow(int Start, int Length, int PadBefore, int PadAfter);
