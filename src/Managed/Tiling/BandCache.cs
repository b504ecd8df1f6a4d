using NativeVae.Core;

namespace NativeVae.Tiling;

/// <summary>
/// Row bands of activations read once for the tiles that need them: a band is read with one call per channel and
/// reused by the other tiles of its grid row (per-row reads made a system call for every row of every tile). Two
/// bands, since a convolution reads its input's and its residual's rows for every tile.
/// </summary>
internal sealed class BandCache(ActivationSpace space)
{
    private readonly Slot[] _slots = [new(), new()];
    private int _next;

    /// <summary>Rows [<paramref name="first"/>, <paramref name="last"/>] of every channel of x[n], full width.</summary>
    public RowBand Rows(SpaceTensor x, int n, int first, int last)
    {
        foreach (var slot in _slots)
        {
            if (slot.Covers(x, n, first, last)) return slot.View;
        }
        var band = _slots[_next];
        _next = (_next + 1) % _slots.Length;
        band.Load(space, x, n, first, last);
        return band.View;
    }

    /// <summary>Bytes of the band buffers.</summary>
    public long Bytes => _slots.Sum(slot => slot.Bytes);

    /// <summary>Drops the buffers (at the end of a call).</summary>
    public void Clear()
    {
        foreach (var slot in _slots) slot.Clear();
    }

    private sealed class Slot
    {
        private SpaceTensor? _source;
        private int _n, _first, _last, _version;
        private float[] _data = [];

        public RowBand View { get; private set; }

        public long Bytes => _data.LongLength * sizeof(float);

        public bool Covers(SpaceTensor x, int n, int first, int last) =>
            ReferenceEquals(_source, x) && !x.IsDisposed && _version == x.Version && _n == n && _first <= first && last <= _last;

        public void Load(ActivationSpace space, SpaceTensor x, int n, int first, int last)
        {
            var s = x.Shape;
            int rows = last - first + 1;
            if (_data.LongLength < (long)rows * s.W * s.C) _data = new float[(long)rows * s.W * s.C];
            View = new RowBand(_data, s.W, rows, first);
            space.Read(x, ElementRuns.Rows(s, n, new TileRect(first, 0, rows, s.W)), _data.AsSpan(0, rows * s.W * s.C));
            (_source, _n, _first, _last, _version) = (x, n, first, last, x.Version);
        }

        public void Clear()
        {
            _source = null;
            _data = [];
        }
    }
}
