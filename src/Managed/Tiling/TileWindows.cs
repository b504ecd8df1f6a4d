using NativeVae.Core;

namespace NativeVae.Tiling;

/// <summary>
/// Staging for what goes to and from the device, and the convolution windows that are not whole rows of a stored
/// activation (a 2x upsample materialised for the window only) gathered into contiguous <c>[C, h, w]</c> blocks. Two
/// staging buffers (an input and a second operand), each grown to the largest block and reused.
/// </summary>
internal sealed class TileWindows(BandCache bands)
{
    /// <summary>Staging slots: a tile (or chunk) and a second operand beside it.</summary>
    public const int PrimarySlot = 0, SecondarySlot = 1;

    private readonly float[][] _staging = [[], []];

    /// <summary>A staging buffer, at least <paramref name="length"/> long (a tile, a chunk or one attention operand: below 2^31).</summary>
    public Span<float> Staging(long length, int slot)
    {
        if (_staging[slot].LongLength < length) _staging[slot] = new float[length];
        return _staging[slot].AsSpan(0, checked((int)length));
    }

    /// <summary>
    /// x[n, :, rows, cols] as the convolution sees it: 2x nearest-upsampled when <paramref name="upsample"/> is 2, the
    /// window inside the (upsampled) input, in staging. Valid until the next read.
    /// </summary>
    public Span<float> Window(SpaceTensor x, int n, ClippedWindow rows, ClippedWindow cols, int upsample)
    {
        var s = x.Shape;
        var band = bands.Rows(x, n, rows.Start / upsample, (rows.Start + rows.Length - 1) / upsample);
        var window = Staging((long)s.C * rows.Length * cols.Length, PrimarySlot);
        for (int c = 0; c < s.C; c++)
        {
            for (int vy = rows.Start; vy < rows.Start + rows.Length; vy++)
            {
                var source = band.Row(c, vy / upsample);
                var dst = window.Slice((c * rows.Length + vy - rows.Start) * cols.Length, cols.Length);
                if (upsample == 1)
                {
                    source.Slice(cols.Start, cols.Length).CopyTo(dst);
                    continue;
                }
                for (int i = 0; i < dst.Length; i++) dst[i] = source[(cols.Start + i) / upsample];
            }
        }
        return window;
    }

    /// <summary>Bytes of the staging buffers.</summary>
    public long Bytes => (_staging[PrimarySlot].LongLength + _staging[SecondarySlot].LongLength) * sizeof(float);

    /// <summary>Drops the buffers (at the end of a call).</summary>
    public void Clear()
    {
        _staging[PrimarySlot] = [];
        _staging[SecondarySlot] = [];
    }
}
