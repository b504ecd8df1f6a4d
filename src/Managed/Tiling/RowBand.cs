using NativeVae.Core;

namespace NativeVae.Tiling;

/// <summary>
/// Full-width rows of one image's channels in a host buffer: <c>Row(c, r)</c> is x[n, c, r, :] for rows
/// [<paramref name="firstRow"/>, firstRow + <paramref name="rows"/>), kept channel by channel.
/// </summary>
internal readonly struct RowBand(float[] data, int width, int rows, int firstRow)
{
    public Span<float> Row(int c, int row) => data.AsSpan(checked((int)(((long)c * rows + row - firstRow) * width)), width);

    /// <summary>The flat index of x[n, c, row, 0] in a tensor of shape <paramref name="s"/>.</summary>
    public static long Offset(TensorShape s, int n, int c, int row) => (((long)n * s.C + c) * s.H + row) * s.W;
}
