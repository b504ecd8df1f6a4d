using NativeVae.Core;

namespace NativeVae.Tiling;

/// <summary>
/// Output tiles gathered into full-width row bands, each written with one call per channel once its grid row is
/// complete (tiles come row-major and span the width) or when <see cref="Flush"/> ends the op.
/// </summary>
internal sealed class BandWriter(ActivationSpace space)
{
    private SpaceTensor? _target;
    private int _n, _top, _height;
    private float[] _data = [];

    /// <summary>Copies the tile <paramref name="block"/> [C, h, w] into y[n, :, tile].</summary>
    public void Write(ReadOnlySpan<float> block, SpaceTensor y, int n, TileRect tile)
    {
        if (_target is not null && !(ReferenceEquals(_target, y) && _n == n && _top == tile.Top && _height == tile.Height)) Flush();
        var s = y.Shape;
        if (_target is null)
        {
            long length = (long)s.C * tile.Height * s.W;
            if (_data.LongLength < length) _data = new float[length];
            (_target, _n, _top, _height) = (y, n, tile.Top, tile.Height);
        }
        var band = new RowBand(_data, s.W, tile.Height, tile.Top);
        for (int c = 0; c < s.C; c++)
        {
            for (int row = 0; row < tile.Height; row++)
                block.Slice((c * tile.Height + row) * tile.Width, tile.Width).CopyTo(band.Row(c, tile.Top + row).Slice(tile.Left, tile.Width));
        }
        if (tile.Left + tile.Width == s.W) Flush();
    }

    /// <summary>Writes the pending band.</summary>
    public void Flush()
    {
        if (_target is not { } y) return;
        _target = null;
        if (y.IsDisposed) return;
        var band = new RowBand(_data, y.Shape.W, _height, _top);
        for (int c = 0; c < y.Shape.C; c++) space.Write(y, RowBand.Offset(y.Shape, _n, c, _top), band.Channel(c));
    }

    /// <summary>Bytes of the band buffer.</summary>
    public long Bytes => _data.LongLength * sizeof(float);

    /// <summary>Drops the buffer (at the end of a call).</summary>
    public void Clear()
    {
        _target = null;
        _data = [];
    }
}
