using NativeVae.Core;

namespace NativeVae.Tiling;

/// <summary>
/// Seam-free, memory-bounded execution: an <see cref="IBackend"/> whose activations live in host memory and whose
/// every op runs on the device one tile at a time, so a model runs unchanged and its output equals the untiled one.
/// <list type="bullet">
/// <item>convolutions: each output tile of at most <c>TileSize x TileSize</c> gets its input window with the halo
///   the kernel needs (zero padding and the 2x upsample materialised for the window only), then a padding-free
///   convolution on the device — the same sums as untiled;</item>
/// <item>GroupNorm: statistics per tile on the device, merged in double over the whole tensor (Chan et al.), then
///   applied per tile as a per-channel affine;</item>
/// <item>attention: over all tokens at once (it only runs at the latent resolution);</item>
/// <item>elementwise ops: in flat chunks.</item>
/// </list>
/// Model parameters stay device tensors of the wrapped backend and are passed through. Peak device memory is then
/// bounded by the tile size (plus the parameters and the mid-block attention), not by the image.
/// <para>
/// Where the device's memory is host RAM (<see cref="BackendCapabilities.MemoryIsHost"/>), holding the activations in
/// arrays would save nothing, so they live in an <see cref="ActivationStore"/> (a temporary file) instead; elsewhere
/// they are arrays, host RAM being plentiful beside a GPU's. Every op reads and writes them by row segments or flat
/// ranges, one code path for both.
/// </para>
/// </summary>
internal sealed class ExactTilingBackend : IBackend
{
    /// <summary>Elementwise ops run over flat chunks of TileSize^2 times this many elements.</summary>
    private const int ChannelsPerChunk = 64;

    /// <summary>Staging slots: a tile (or chunk) and a second operand or a source row beside it.</summary>
    private const int PrimarySlot = 0, SecondarySlot = 1;

    private readonly IBackend _device;
    private readonly Dictionary<Tensor, float[]> _hostCopies = new(ReferenceEqualityComparer.Instance);

    /// <summary>Freed in-RAM activations by length: a model run asks for the same sizes again and again, and fresh memory is slow to touch.</summary>
    private readonly Dictionary<long, Stack<float[]>> _freeArrays = new();

    /// <summary>Where the activations live on a host-memory device; null keeps them in arrays.</summary>
    private readonly ActivationStore? _store;

    /// <summary>Staging for tiles on their way to or from the device, each grown to the largest seen.</summary>
    private readonly float[][] _staging = [[], []];

    /// <summary>Cached row bands of stored activations (see <see cref="ReadBand"/>).</summary>
    private readonly CachedBand[] _bands = [new(), new()];
    private int _nextBand;

    /// <summary>The grid row of output tiles being gathered for the store (see <see cref="Scatter"/>).</summary>
    private readonly WriteBand _writeBand = new();

    /// <param name="storeDirectory">the store's directory on a host-memory device (tests); the temp directory when null.</param>
    /// <param name="expectedStoreBytes">the most the store may hold, checked against the disk's free space now.</param>
    /// <exception cref="IOException">the store cannot be created; the message names the directory.</exception>
    public ExactTilingBackend(IBackend device, int tileSize, string? storeDirectory = null, long expectedStoreBytes = 0)
    {
        if (tileSize <= 0) throw new ArgumentOutOfRangeException(nameof(tileSize), tileSize, "tile size must be positive");
        _device = device;
        TileSize = tileSize;
        // Created here, at plan time, so that a store that cannot be made fails the call before any work.
        // The store keeps elements as the device does: a 16-bit backend's values lose nothing in 16 bits.
        if (device.Capabilities.MemoryIsHost) _store = new ActivationStore(storeDirectory, expectedStoreBytes, device.StorageDType);
    }

    /// <summary>The largest output tile edge, in elements of the layer's own resolution.</summary>
    public int TileSize { get; }

    /// <summary>Whether activations live in a temporary file rather than host arrays.</summary>
    public bool UsesStore => _store is not null;

    /// <summary>How the store keeps elements (the device's storage dtype); F32 without a store.</summary>
    public DType StoreElements => _store?.Elements ?? DType.F32;

    /// <summary>Reports each finished device tile (for progress bars).</summary>
    public Action? TileDone { get; set; }

    public string Name => $"exact tiling ({TileSize}{(UsesStore ? ", file store" : "")}) on {_device.Name}";

    public BackendKind Kind => _device.Kind;

    /// <summary>The device's memory: what the tile size bounds.</summary>
    public MemoryStats Memory => _device.Memory;

    /// <summary>The device's, except that NormConv2d runs as GroupNorm then Conv2d over tiles (the default).</summary>
    public BackendCapabilities Capabilities => _device.Capabilities with { FusesNormIntoConv = false, GathersChannelMoments = false };

    public void ResetPeakMemory() => _device.ResetPeakMemory();

    public Tensor Allocate(TensorShape shape, DType dtype = DType.F32)
    {
        if (dtype != DType.F32) throw new NotSupportedException($"{Name}: activations are F32, not {dtype}");
        return NewActivation(shape);
    }

    public Tensor Upload(ReadOnlySpan<float> data, TensorShape shape, DType dtype = DType.F32)
    {
        var t = (HostActivation)Allocate(shape, dtype);
        if (data.Length != t.ElementCount) throw new ArgumentException($"upload of {data.Length} values into {shape}");
        t.Write(0, data);
        return t;
    }

    public void Download(Tensor tensor, Span<float> destination)
    {
        var t = Host(tensor, nameof(tensor));
        if (destination.Length != t.ElementCount) throw new ArgumentException($"download of {t} into {destination.Length} values");
        t.Read(0, destination);
    }

    public void Synchronize() => _device.Synchronize();

    public Tensor Conv2d(Tensor input, Tensor weight, Tensor? bias, Conv2dSpec spec, Tensor? residual = null)
    {
        var x = Host(input, nameof(input));
        var r = residual is null ? null : Host(residual, nameof(residual));
        var outShape = OpShapes.Conv2d(x, weight, bias, spec, r);
        var y = NewActivation(outShape);
        int kernel = weight.Shape[2];
        int upsample = spec.Upsample2x ? 2 : 1;
        var padless = new Conv2dSpec(spec.Stride, 0, 0, 0, 0);
        for (int n = 0; n < outShape.N; n++)
        {
            foreach (var tile in TilePlanner.Grid(outShape.H, outShape.W, TileSize))
            {
                var rows = TilePlanner.InputWindow(tile.Top, tile.Height, spec.Stride, spec.PadTop, kernel);
                var cols = TilePlanner.InputWindow(tile.Left, tile.Width, spec.Stride, spec.PadLeft, kernel);
                using var window = _device.Upload(GatherWindow(x, n, rows, cols, upsample),
                    TensorShape.Nchw(1, x.Shape.C, rows.Length, cols.Length));
                using var residualTile = r is null ? null : _device.Upload(Crop(r, n, tile), TensorShape.Nchw(1, r.Shape.C, tile.Height, tile.Width));
                using var outTile = _device.Conv2d(window, weight, bias, padless, residualTile);
                Scatter(outTile, y, n, tile);
            }
        }
        return y;
    }

    public Tensor GroupNorm(Tensor input, Tensor gamma, Tensor beta, int groups, float eps, bool fuseSilu)
    {
        var x = Host(input, nameof(input));
        OpShapes.GroupNorm(x, gamma, beta, groups);
        float[] stats;
        using (var statsTensor = (HostActivation)GroupNormStatistics(x, groups)) stats = ReadAll(statsTensor);
        float[] g = HostCopy(gamma), b = HostCopy(beta);
        int n = x.Shape.N, c = x.Shape.C, perGroup = c / groups;
        var scale = new float[n * c];
        var shift = new float[n * c];
        for (int i = 0; i < n; i++)
        {
            for (int ch = 0; ch < c; ch++)
            {
                int s = (i * groups + ch / perGroup) * 2;
                double mean = stats[s];
                double variance = stats[s + 1] / ((double)perGroup * x.Shape.H * x.Shape.W);
                double a = g[ch] / Math.Sqrt(variance + eps);
                scale[i * c + ch] = (float)a;
                shift[i * c + ch] = (float)(b[ch] - mean * a);
            }
        }
        var affineShape = new TensorShape(n, c);
        using var scaleT = new HostActivation(affineShape, scale);
        using var shiftT = new HostActivation(affineShape, shift);
        return ChannelAffine(x, scaleT, shiftT, fuseSilu);
    }

    public Tensor GroupNormStatistics(Tensor input, int groups)
    {
        var x = Host(input, nameof(input));
        var shape = OpShapes.GroupNormStatistics(x, groups);
        var values = new float[shape.ElementCount];
        long perGroupPerPixel = x.Shape.C / groups;
        for (int n = 0; n < x.Shape.N; n++)
        {
            var count = new double[groups];
            var mean = new double[groups];
            var m2 = new double[groups];
            foreach (var tile in TilePlanner.Grid(x.Shape.H, x.Shape.W, TileSize))
            {
                using var t = _device.Upload(Crop(x, n, tile), TensorShape.Nchw(1, x.Shape.C, tile.Height, tile.Width));
                using var s = _device.GroupNormStatistics(t, groups);
                var partial = new float[groups * 2];
                _device.Download(s, partial);
                double tileCount = perGroupPerPixel * tile.Height * tile.Width;
                for (int g = 0; g < groups; g++)
                {
                    // Chan, Golub, LeVeque: merge (count, mean, M2) of two disjoint sets.
                    double total = count[g] + tileCount;
                    double delta = partial[2 * g] - mean[g];
                    mean[g] += delta * tileCount / total;
                    m2[g] += partial[2 * g + 1] + delta * delta * count[g] * tileCount / total;
                    count[g] = total;
                }
                TileDone?.Invoke();
            }
            for (int g = 0; g < groups; g++)
            {
                values[(n * groups + g) * 2] = (float)mean[g];
                values[(n * groups + g) * 2 + 1] = (float)m2[g];
            }
        }
        var result = NewActivation(shape);
        result.Write(0, values);
        return result;
    }

    public Tensor ChannelAffine(Tensor input, Tensor scale, Tensor shift, bool fuseSilu)
    {
        var x = Host(input, nameof(input));
        var outShape = OpShapes.ChannelAffine(x, scale, shift);
        float[] sc = HostCopy(scale), sh = HostCopy(shift);
        var y = NewActivation(outShape);
        int c = x.Shape.C;
        var rowShape = new TensorShape(1, c);
        for (int n = 0; n < x.Shape.N; n++)
        {
            using var scaleRow = _device.Upload(sc.AsSpan(n * c, c), rowShape);
            using var shiftRow = _device.Upload(sh.AsSpan(n * c, c), rowShape);
            foreach (var tile in TilePlanner.Grid(x.Shape.H, x.Shape.W, TileSize))
            {
                using var t = _device.Upload(Crop(x, n, tile), TensorShape.Nchw(1, c, tile.Height, tile.Width));
                using var o = _device.ChannelAffine(t, scaleRow, shiftRow, fuseSilu);
                Scatter(o, y, n, tile);
            }
        }
        return y;
    }

    public Tensor Attention(Tensor q, Tensor k, Tensor v, float scale)
    {
        var shape = OpShapes.Attention(Host(q, nameof(q)), Host(k, nameof(k)), Host(v, nameof(v)));
        // Attention mixes all tokens, so it runs whole; it only runs at the latent resolution.
        using var dq = UploadWhole((HostActivation)q);
        using var dk = UploadWhole((HostActivation)k);
        using var dv = UploadWhole((HostActivation)v);
        using var o = _device.Attention(dq, dk, dv, scale);
        var y = NewActivation(shape);
        // One operand at a time through the staging buffer: the host holds a quarter of the attention's bytes, not all.
        var values = Staging(shape.ElementCount, PrimarySlot);
        _device.Download(o, values);
        y.Write(0, values);
        TileDone?.Invoke();
        return y;
    }

    /// <summary>A whole activation on the device, through the staging buffer.</summary>
    private Tensor UploadWhole(HostActivation x)
    {
        var values = Staging(x.ElementCount, PrimarySlot);
        x.Read(0, values);
        return _device.Upload(values, x.Shape);
    }

    public Tensor Unary(UnaryOp op, Tensor input) => Chunked(Host(input, nameof(input)), null, (a, _) => _device.Unary(op, a));

    public Tensor Add(Tensor a, Tensor b)
    {
        var ta = Host(a, nameof(a));
        var tb = Host(b, nameof(b));
        OpShapes.SameShape(ta, tb, "add");
        return Chunked(ta, tb, (x, y) => _device.Add(x, y!));
    }

    public Tensor ScaleShift(Tensor input, float scale, float shift) =>
        Chunked(Host(input, nameof(input)), null, (a, _) => _device.ScaleShift(a, scale, shift));

    public long CountNonFinite(Tensor input)
    {
        var x = Host(input, nameof(input));
        long bad = 0;
        ForEachChunk(x.ElementCount, (start, length) =>
        {
            var chunk = Staging(length, PrimarySlot);
            x.Read(start, chunk);
            foreach (float v in chunk)
                if (!float.IsFinite(v)) bad++;
        });
        return bad;
    }

    public Tensor SliceChannels(Tensor input, int start, int count)
    {
        var x = Host(input, nameof(input));
        var y = NewActivation(OpShapes.SliceChannels(x, start, count));
        long plane = (long)x.Shape.H * x.Shape.W;
        for (int n = 0; n < x.Shape.N; n++)
        {
            // The channels of one batch item are contiguous in both tensors.
            long from = ((long)n * x.Shape.C + start) * plane, to = (long)n * count * plane;
            ForEachChunk(count * plane, (offset, length) =>
            {
                var chunk = Staging(length, PrimarySlot);
                x.Read(from + offset, chunk);
                y.Write(to + offset, chunk);
            });
        }
        return y;
    }

    public Tensor ImageToTensor(ReadOnlySpan<byte> rgb, int batch, int height, int width, float scale, float shift)
    {
        var y = NewActivation(OpShapes.ImageToTensor(rgb.Length, batch, height, width));
        int bandBytes = width * OpShapes.RgbChannels;
        // Bands of whole rows: each is contiguous in the interleaved image.
        for (int n = 0; n < batch; n++)
        {
            foreach (var band in Bands(height, width))
            {
                var pixels = rgb.Slice(checked(((n * height) + band.Top) * bandBytes), band.Height * bandBytes);
                using var t = _device.ImageToTensor(pixels, 1, band.Height, width, scale, shift);
                Scatter(t, y, n, band);
            }
        }
        return y;
    }

    public void TensorToImage(Tensor input, Span<byte> rgb, float scale, float shift)
    {
        var x = Host(input, nameof(input));
        OpShapes.TensorToImage(x, rgb.Length);
        var s = x.Shape;
        int rowBytes = s.W * OpShapes.RgbChannels;
        for (int n = 0; n < s.N; n++)
        {
            foreach (var band in Bands(s.H, s.W))
            {
                using var t = _device.Upload(Crop(x, n, band), TensorShape.Nchw(1, s.C, band.Height, s.W));
                _device.TensorToImage(t, rgb.Slice(checked(((n * s.H) + band.Top) * rowBytes), band.Height * rowBytes), scale, shift);
            }
        }
    }

    public void Dispose()
    {
        _hostCopies.Clear();
        _freeArrays.Clear();
        _staging[PrimarySlot] = [];
        _staging[SecondarySlot] = [];
        foreach (var band in _bands) band.Clear();
        _writeBand.Clear();
        _store?.Dispose();
    }

    /// <summary>Full-width bands of about a tile's area, for the image conversions.</summary>
    private List<TileRect> Bands(int height, int width)
    {
        int rows = (int)Math.Clamp((long)TileSize * TileSize / width, 1, height);
        var bands = new List<TileRect>();
        for (int top = 0; top < height; top += rows) bands.Add(new TileRect(top, 0, Math.Min(rows, height - top), width));
        return bands;
    }

    /// <summary>Calls <paramref name="body"/> with (start, length) over [0, total) in chunks of TileSize^2 x ChannelsPerChunk.</summary>
    private void ForEachChunk(long total, Action<long, int> body)
    {
        long chunk = (long)TileSize * TileSize * ChannelsPerChunk;
        for (long start = 0; start < total; start += chunk) body(start, (int)Math.Min(chunk, total - start));
    }

    /// <summary>Runs an elementwise device op over flat chunks.</summary>
    private HostActivation Chunked(HostActivation a, HostActivation? b, Func<Tensor, Tensor?, Tensor> op)
    {
        var y = NewActivation(a.Shape);
        ForEachChunk(a.ElementCount, (start, length) =>
        {
            var shape = TensorShape.Nchw(1, 1, 1, length);
            var chunkA = Staging(length, PrimarySlot);
            a.Read(start, chunkA);
            using var da = _device.Upload(chunkA, shape);
            Tensor? db = null;
            if (b is not null)
            {
                var chunkB = Staging(length, SecondarySlot);
                b.Read(start, chunkB);
                db = _device.Upload(chunkB, shape);
            }
            using (db)
            {
                using var o = op(da, db);
                _device.Download(o, chunkA);
            }
            y.Write(start, chunkA);
            TileDone?.Invoke();
        });
        return y;
    }

    /// <summary>
    /// x[n, :, rows, cols] of the input as the convolution sees it: 2x nearest-upsampled when
    /// <paramref name="upsample"/> is 2, zero outside the input.
    /// </summary>
    private Span<float> GatherWindow(HostActivation x, int n, (int Start, int Length) rows, (int Start, int Length) cols, int upsample)
    {
        var s = x.Shape;
        int virtualH = s.H * upsample, virtualW = s.W * upsample;
        var window = Staging((long)s.C * rows.Length * cols.Length, PrimarySlot);
        window.Clear();
        // The window's columns inside the input, and the source columns they read.
        int firstX = Math.Max(cols.Start, 0), endX = Math.Min(cols.Start + cols.Length, virtualW);
        if (endX <= firstX) return window;
        int srcFirst = firstX / upsample;
        int firstY = Math.Max(rows.Start, 0), endY = Math.Min(rows.Start + rows.Length, virtualH);
        if (endY <= firstY) return window;
        var band = ReadBand(x, n, firstY / upsample, (endY - 1) / upsample);
        for (int c = 0; c < s.C; c++)
        {
            for (int vy = firstY; vy < endY; vy++)
            {
                var source = band.Row(c, vy / upsample);
                var dst = window.Slice((c * rows.Length + vy - rows.Start) * cols.Length + (firstX - cols.Start), endX - firstX);
                if (upsample == 1)
                {
                    source.Slice(srcFirst, dst.Length).CopyTo(dst);
                    continue;
                }
                for (int i = 0; i < dst.Length; i++) dst[i] = source[(firstX + i) / upsample];
            }
        }
        return window;
    }

    /// <summary>x[n, :, tile] as a contiguous [C, h, w] block.</summary>
    private Span<float> Crop(HostActivation x, int n, TileRect tile)
    {
        var s = x.Shape;
        var block = Staging((long)s.C * tile.Height * tile.Width, PrimarySlot);
        var band = ReadBand(x, n, tile.Top, tile.Top + tile.Height - 1);
        for (int c = 0; c < s.C; c++)
        {
            for (int y = 0; y < tile.Height; y++)
                band.Row(c, tile.Top + y).Slice(tile.Left, tile.Width).CopyTo(block.Slice((c * tile.Height + y) * tile.Width, tile.Width));
        }
        return block;
    }

    /// <summary>
    /// Rows [first, last] of every channel of x[n], full width. An array-backed activation is viewed in place; a
    /// stored one is read with one call per channel into a cached band, which the other tiles of the same grid row
    /// reuse (per-row reads made a system call for every row of every tile).
    /// </summary>
    private RowBand ReadBand(HostActivation x, int n, int first, int last)
    {
        if (x.Array is { } array) return new RowBand(array, x.Shape.W, firstPlane: (long)n * x.Shape.C, rowsPerPlane: x.Shape.H, firstRow: 0);
        FlushWrites();
        foreach (var cached in _bands)
        {
            if (cached.Covers(x, n, first, last)) return cached.View;
        }
        // Two bands: a convolution reads its input's and its residual's rows for every tile.
        var band = _bands[_nextBand];
        _nextBand = (_nextBand + 1) % _bands.Length;
        band.Load(x, n, first, last);
        return band.View;
    }

    /// <summary>
    /// Downloads a device tile [1, C, h, w] into y[n, :, tile]. Into a stored activation the tiles of one grid row
    /// gather in a band written with one call per channel once the row is complete (tiles come row-major and span
    /// the width), or when <see cref="FlushWrites"/> ends the op.
    /// </summary>
    private void Scatter(Tensor deviceTile, HostActivation y, int n, TileRect tile)
    {
        var block = Staging(deviceTile.ElementCount, PrimarySlot);
        _device.Download(deviceTile, block);
        var s = y.Shape;
        if (y.Array is not null)
        {
            for (int c = 0; c < s.C; c++)
            {
                for (int row = 0; row < tile.Height; row++)
                    y.Write(RowOffset(s, n, c, tile.Top + row) + tile.Left, block.Slice((c * tile.Height + row) * tile.Width, tile.Width));
            }
        }
        else
        {
            if (!_writeBand.Holds(y, n, tile.Top, tile.Height)) FlushWrites();
            _writeBand.Begin(y, n, tile.Top, tile.Height);
            for (int c = 0; c < s.C; c++)
            {
                for (int row = 0; row < tile.Height; row++)
                    block.Slice((c * tile.Height + row) * tile.Width, tile.Width).CopyTo(_writeBand.Row(c, row).Slice(tile.Left, tile.Width));
            }
            if (tile.Left + tile.Width == s.W) FlushWrites();
        }
        TileDone?.Invoke();
    }

    /// <summary>Writes the pending band of tiles to the store (each op that scatters ends with it).</summary>
    private void FlushWrites() => _writeBand.Flush();

    /// <summary>The flat index of x[n, c, row, 0].</summary>
    private static long RowOffset(TensorShape s, int n, int c, int row) => (((long)n * s.C + c) * s.H + row) * s.W;

    /// <summary>A staging buffer, at least <paramref name="length"/> long (a tile, a chunk or one attention operand: below 2^31).</summary>
    private Span<float> Staging(long length, int slot)
    {
        if (_staging[slot].LongLength < length) _staging[slot] = new float[length];
        return _staging[slot].AsSpan(0, checked((int)length));
    }

    /// <summary>A new activation, from the freed ones when one of this size is free (contents unspecified).</summary>
    private HostActivation NewActivation(TensorShape shape)
    {
        long length = shape.ElementCount;
        if (_store is not null) return new HostActivation(shape, _store, _store.Allocate(length), this);
        var data = _freeArrays.TryGetValue(length, out var stack) && stack.Count > 0 ? stack.Pop() : new float[length];
        return new HostActivation(shape, data, this);
    }

    private void Release(float[] data)
    {
        if (!_freeArrays.TryGetValue(data.LongLength, out var stack)) _freeArrays[data.LongLength] = stack = new Stack<float[]>();
        stack.Push(data);
    }

    /// <summary>All of a small activation's values (statistics, affines) in one array.</summary>
    private static float[] ReadAll(HostActivation t)
    {
        var values = new float[t.ElementCount];
        t.Read(0, values);
        return values;
    }

    /// <summary>A small parameter tensor's values on the host (device parameters are downloaded once).</summary>
    private float[] HostCopy(Tensor t)
    {
        if (t is HostActivation h) return ReadAll(h);
        if (!_hostCopies.TryGetValue(t, out var values))
        {
            values = new float[t.ElementCount];
            _device.Download(t, values);
            _hostCopies[t] = values;
        }
        return values;
    }

    private static HostActivation Host(Tensor tensor, string name)
    {
        ArgumentNullException.ThrowIfNull(tensor, name);
        if (tensor is not HostActivation h)
            throw new ArgumentException($"tensor '{name}' {tensor} is a device tensor; exact tiling takes activations it allocated", name);
        if (h.IsDisposed) throw new ObjectDisposedException(name, $"tensor '{name}' {tensor.Shape} was disposed");
        return h;
    }

    /// <summary>
    /// Full-width rows of one batch item's channels: <c>Row(c, r)</c> is x[n, c, r, :], kept at
    /// <c>data[((firstPlane + c) * rowsPerPlane + r - firstRow) * width]</c>.
    /// </summary>
    private readonly struct RowBand(float[] data, int width, long firstPlane, long rowsPerPlane, int firstRow)
    {
        public Span<float> Row(int c, int row) =>
            data.AsSpan(checked((int)(((firstPlane + c) * rowsPerPlane + row - firstRow) * width)), width);
    }

    /// <summary>A band of a stored activation's rows, read once for the tiles that need it.</summary>
    private sealed class CachedBand
    {
        private HostActivation? _source;
        private int _n, _first, _last, _version;
        private float[] _data = [];

        public RowBand View { get; private set; }

        public bool Covers(HostActivation x, int n, int first, int last) =>
            ReferenceEquals(_source, x) && !x.IsDisposed && _version == x.Version && _n == n && _first <= first && last <= _last;

        public void Load(HostActivation x, int n, int first, int last)
        {
            var s = x.Shape;
            int rows = last - first + 1;
            long perChannel = (long)rows * s.W;
            if (_data.LongLength < perChannel * s.C) _data = new float[perChannel * s.C];
            for (int c = 0; c < s.C; c++)
                x.Read(RowOffset(s, n, c, first), _data.AsSpan(checked((int)(c * perChannel)), checked((int)perChannel)));
            (_source, _n, _first, _last, _version) = (x, n, first, last, x.Version);
            View = new RowBand(_data, s.W, firstPlane: 0, rowsPerPlane: rows, firstRow: first);
        }

        public void Clear()
        {
            _source = null;
            _data = [];
        }
    }
    /// <summary>One grid row of output tiles of a stored activation, gathered to be written with one call per channel.</summary>
    private sealed class WriteBand
    {
        private HostActivation? _target;
        private int _n, _top, _height;
        private float[] _data = [];

        public bool Holds(HostActivation y, int n, int top, int height) =>
            _target is null || (ReferenceEquals(_target, y) && _n == n && _top == top && _height == height);

        public void Begin(HostActivation y, int n, int top, int height)
        {
            if (_target is not null) return;
            long length = (long)y.Shape.C * height * y.Shape.W;
            if (_data.LongLength < length) _data = new float[length];
            (_target, _n, _top, _height) = (y, n, top, height);
        }

        public Span<float> Row(int c, int row)
        {
            int width = _target!.Shape.W;
            return _data.AsSpan(checked((int)(((long)c * _height + row) * width)), width);
        }

        public void Flush()
        {
            if (_target is not { } y) return;
            _target = null;
            if (y.IsDisposed) return;
            var s = y.Shape;
            long perChannel = (long)_height * s.W;
            for (int c = 0; c < s.C; c++)
                y.Write(RowOffset(s, _n, c, _top), _data.AsSpan(checked((int)(c * perChannel)), checked((int)perChannel)));
        }

        public void Clear()
        {
            _target = null;
            _data = [];
        }
    }

    /// <summary>
    /// An activation held off the device: a host array, or a region of the owner's store. Read and written by flat
    /// element ranges; disposing returns the memory to the owner for reuse.
    /// </summary>
    private sealed class HostActivation : Tensor
    {
        private readonly ExactTilingBackend? _owner;
        private readonly ActivationStore? _store;
        private readonly long _storeOffset;
        private float[]? _array;
        private int _disposed;

        /// <summary>In a host array (affines made here have no owner and go to the GC).</summary>
        public HostActivation(TensorShape shape, float[] data, ExactTilingBackend? owner = null) : base(shape, DType.F32)
        {
            _array = data;
            _owner = owner;
        }

        /// <summary>In the store's region at <paramref name="byteOffset"/>.</summary>
        public HostActivation(TensorShape shape, ActivationStore store, long byteOffset, ExactTilingBackend owner) : base(shape, DType.F32)
        {
            _store = store;
            _storeOffset = byteOffset;
            _owner = owner;
        }

        public override bool IsDisposed => Volatile.Read(ref _disposed) != 0;

        /// <summary>Fills <paramref name="destination"/> with the elements from flat index <paramref name="start"/>.</summary>
        public void Read(long start, Span<float> destination)
        {
            CheckRange(start, destination.Length);
            if (_store is not null) _store.Read(_storeOffset + start * _store.ElementBytes, destination);
            else Values.AsSpan(checked((int)start), destination.Length).CopyTo(destination);
        }

        /// <summary>Bumped by every write, so that a cached copy of rows knows when it is stale.</summary>
        public int Version { get; private set; }

        /// <summary>The host array, or null when the values are in the store.</summary>
        public float[]? Array => _store is null ? Values : null;

        /// <summary>Writes <paramref name="source"/> to the elements from flat index <paramref name="start"/>.</summary>
        public void Write(long start, ReadOnlySpan<float> source)
        {
            CheckRange(start, source.Length);
            Version++;
            if (_store is not null) _store.Write(_storeOffset + start * _store.ElementBytes, source);
            else source.CopyTo(Values.AsSpan(checked((int)start), source.Length));
        }

        private float[] Values => _array ?? throw new ObjectDisposedException(nameof(HostActivation));

        private void CheckRange(long start, int length)
        {
            ObjectDisposedException.ThrowIf(IsDisposed, this);
            if (start < 0 || start + length > ElementCount)
                throw new ArgumentOutOfRangeException(nameof(start), start, $"elements [{start}, {start + length}) are outside {Shape}");
        }

        public override void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
            if (_store is not null)
            {
                _store.Free(_storeOffset, ElementCount);
                return;
            }
            var data = Interlocked.Exchange(ref _array, null);
            if (data is not null) _owner?.Release(data);
        }
    }
}
