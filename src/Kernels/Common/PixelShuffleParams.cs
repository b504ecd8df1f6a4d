namespace NativeVae.Kernels;

// A parameter block passed by value to both the ILGPU and the CPU kernels of the pixel shuffles, and the index math
// both share, so that the two cannot disagree on a channel order. Sizes are ints: the backend refuses tensors whose
// element count does not fit one launch.

/// <summary>
/// Space to depth (with a mean over channel groups) or depth to space (with repeated channels) over
/// <c>[Batch, C, H, W]</c>. A block of <see cref="Factor"/>^2 pixels of <see cref="Frames"/> frames holds channels
/// <c>(c * Frames + t) * Factor^2 + s</c>, with <c>s = dy * Factor + dx</c>, or <c>dx * Factor + dy</c> when
/// <see cref="WidthFirst"/> is set.
/// </summary>
internal struct PixelShuffleParams
{
    public int Batch;
    public int InChannels;
    public int InHeight;
    public int InWidth;
    public int OutChannels;
    public int OutHeight;
    public int OutWidth;
    public int Factor;
    public int Frames;
    /// <summary>Space to depth: channels averaged into one output channel. Depth to space: repeats of each input channel.</summary>
    public int Group;
    /// <summary>Depth to space: the frame of the block this output is.</summary>
    public int Frame;
    public int WidthFirst;
    /// <summary>Space to depth of two frames: 0 when the earlier frame is the zero padding in front of a video.</summary>
    public int HasPrevious;
}

/// <summary>The block index math of <see cref="PixelShuffleParams"/>, for the GPU and CPU kernels alike.</summary>
internal static class PixelShuffleIndex
{
    /// <summary>The row offset inside a block of sub-position <paramref name="s"/>.</summary>
    public static int SubRow(PixelShuffleParams p, int s) => p.WidthFirst != 0 ? s % p.Factor : s / p.Factor;

    /// <summary>The column offset inside a block of sub-position <paramref name="s"/>.</summary>
    public static int SubColumn(PixelShuffleParams p, int s) => p.WidthFirst != 0 ? s / p.Factor : s % p.Factor;

    /// <summary>Sub-position of the pixel at block offset (<paramref name="dy"/>, <paramref name="dx"/>).</summary>
    public static int SubPosition(PixelShuffleParams p, int dy, int dx) => p.WidthFirst != 0 ? dx * p.Factor + dy : dy * p.Factor + dx;

    /// <summary>
    /// Space to depth: the frame (0 earlier, <c>Frames - 1</c> current) that block channel <paramref name="j"/> reads.
    /// </summary>
    public static int SourceFrame(PixelShuffleParams p, int j)
    {
        int area = p.Factor * p.Factor;
        return j % (p.Frames * area) / area;
    }

    /// <summary>
    /// Space to depth: the element of a frame <c>[Batch, InChannels, InHeight, InWidth]</c> that block channel
    /// <paramref name="j"/> of output pixel (<paramref name="y"/>, <paramref name="x"/>) of image <paramref name="n"/> reads.
    /// </summary>
    public static int SourceIndex(PixelShuffleParams p, int n, int j, int y, int x)
    {
        int area = p.Factor * p.Factor;
        int c = j / (p.Frames * area), s = j % area;
        int row = y * p.Factor + SubRow(p, s), column = x * p.Factor + SubColumn(p, s);
        return ((n * p.InChannels + c) * p.InHeight + row) * p.InWidth + column;
    }

    /// <summary>
    /// Depth to space: the element of the input that output element (<paramref name="n"/>, <paramref name="o"/>,
    /// <paramref name="row"/>, <paramref name="column"/>) of frame <see cref="PixelShuffleParams.Frame"/> copies.
    /// </summary>
    public static int DepthSource(PixelShuffleParams p, int n, int o, int row, int column)
    {
        int y = row / p.Factor, x = column / p.Factor;
        int s = SubPosition(p, row - y * p.Factor, column - x * p.Factor);
        int j = (o * p.Frames + p.Frame) * p.Factor * p.Factor + s;
        return ((n * p.InChannels + j / p.Group) * p.InHeight + y) * p.InWidth + x;
    }
}
