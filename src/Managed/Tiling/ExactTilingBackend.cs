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
/// </summary>
internal sealed class ExactTilingBackend : IBackend
{
    private readonly IBackend _device;
    private readonly Dictionary<Tensor, float[]> _hostCopies = new(ReferenceEqualityComparer.Instance);

    /// <summary>Freed activations by length: a model run asks for the same sizes again and again, and fresh memory is slow to touch.</summary>
    private readonly Dictionary<long, Stack<float[]>> _freeArrays = new();

    /// <summary>Staging for one tile on its way to or from the device, grown to the largest tile seen.</summary>
    private float[] _staging = [];

    public ExactTilingBackend(IBackend device, int tileSize)
    {
        if (tileSize <= 0) throw new ArgumentOutOfRangeException(nameof(tileSize), tileSize, "tile size must be positive");
        _device = device;
        TileSize = tileSize;
    }

    /// <summary>The largest output tile edge, in elements of the layer's own resolution.</summary>
    public int TileSize { get; }

    /// <summary>Reports each finished device tile (for progress bars).</summary>
    public Action? TileDone { get; set; }

    public string Name => $"exact tiling ({TileSize}) on {_device.Name}";

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
        if (data.Length != t.Data.Length) throw new ArgumentException($"upload of {data.Length} values into {shape}");
        data.CopyTo(t.Data);
        return t;
    }

    public void Download(Tensor tensor, Span<float> destination)
    {
        var t = Host(tensor, nameof(tensor));
        if (destination.Length != t.Data.Length) throw new ArgumentException($"download of {t} into {destination.Length} values");
        t.Data.CopyTo(destination);
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
        using var stats = (HostActivation)GroupNormStatistics(x, groups);
        float[] g = HostCopy(gamma), b = HostCopy(beta);
        int n = x.Shape.N, c = x.Shape.C, perGroup = c / groups;
        var scale = new float[n * c];
        var shift = new float[n * c];
        for (int i = 0; i < n; i++)
        {
            for (int ch = 0; ch < c; ch++)
            {
                int s = (i * groups + ch / perGroup) * 2;
                double mean = stats.Data[s];
                double variance = stats.Data[s + 1] / ((double)perGroup * x.Shape.H * x.Shape.W);
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
        var result = NewActivation(shape);
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
                result.Data[(n * groups + g) * 2] = (float)mean[g];
                result.Data[(n * groups + g) * 2 + 1] = (float)m2[g];
            }
        }
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
        using var dq = _device.Upload(((HostActivation)q).Data, shape);
        using var dk = _device.Upload(((HostActivation)k).Data, shape);
        using var dv = _device.Upload(((HostActivation)v).Data, shape);
        using var o = _device.Attention(dq, dk, dv, scale);
        var y = NewActivation(shape);
        _device.Download(o, y.Data);
        TileDone?.Invoke();
        return y;
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

    public long CountNonFinite(Tensor input) => Host(input, nameof(input)).Data.LongCount(v => !float.IsFinite(v));

    public Tensor SliceChannels(Tensor input, int start, int count)
    {
        var x = Host(input, nameof(input));
        var y = NewActivation(OpShapes.SliceChannels(x, start, count));
        OpShapes.CopyChannels(x.Data, x.Shape, start, count, y.Data);
        return y;
    }

    public Tensor ImageToTensor(ReadOnlySpan<byte> rgb, int batch, int height, int width, float scale, float shift)
    {
        using var t = _device.ImageToTensor(rgb, batch, height, width, scale, shift);
        var y = NewActivation(t.Shape);
        _device.Download(t, y.Data);
        return y;
    }

    public void TensorToImage(Tensor input, Span<byte> rgb, float scale, float shift)
    {
        var x = Host(input, nameof(input));
        using var t = _device.Upload(x.Data, x.Shape);
        _device.TensorToImage(t, rgb, scale, shift);
    }

    public void Dispose()
    {
        _hostCopies.Clear();
        _freeArrays.Clear();
        _staging = [];
    }

    /// <summary>Runs an elementwise device op over flat chunks of TileSize^2 x 64 elements.</summary>
    private HostActivation Chunked(HostActivation a, HostActivation? b, Func<Tensor, Tensor?, Tensor> op)
    {
        const int ChannelsPerChunk = 64;
        long chunk = (long)TileSize * TileSize * ChannelsPerChunk;
        var y = NewActivation(a.Shape);
        for (long start = 0; start < a.Data.LongLength; start += chunk)
        {
            int length = (int)Math.Min(chunk, a.Data.LongLength - start);
            var shape = TensorShape.Nchw(1, 1, 1, length);
            using var da = _device.Upload(a.Data.AsSpan((int)start, length), shape);
            using var db = b is null ? null : _device.Upload(b.Data.AsSpan((int)start, length), shape);
            using var o = op(da, db);
            _device.Download(o, y.Data.AsSpan((int)start, length));
            TileDone?.Invoke();
        }
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
        var window = Staging((long)s.C * rows.Length * cols.Length);
        window.Clear();
        for (int c = 0; c < s.C; c++)
        {
            long plane = ((long)n * s.C + c) * s.H;
            for (int wy = 0; wy < rows.Length; wy++)
            {
                int vy = rows.Start + wy;
                if (vy < 0 || vy >= virtualH) continue;
                long srcRow = (plane + vy / upsample) * s.W;
                int dstRow = (c * rows.Length + wy) * cols.Length;
                for (int wx = 0; wx < cols.Length; wx++)
                {
                    int vx = cols.Start + wx;
                    if (vx >= 0 && vx < virtualW) window[dstRow + wx] = x.Data[srcRow + vx / upsample];
                }
            }
        }
        return window;
    }

    /// <summary>x[n, :, tile] as a contiguous [C, h, w] block.</summary>
    private Span<float> Crop(HostActivation x, int n, TileRect tile)
    {
        var s = x.Shape;
        var block = Staging((long)s.C * tile.Height * tile.Width);
        for (int c = 0; c < s.C; c++)
        {
            for (int y = 0; y < tile.Height; y++)
            {
                long src = ((((long)n * s.C + c) * s.H) + tile.Top + y) * s.W + tile.Left;
                x.Data.AsSpan((int)src, tile.Width).CopyTo(block.Slice((c * tile.Height + y) * tile.Width, tile.Width));
            }
        }
        return block;
    }

    /// <summary>Downloads a device tile [1, C, h, w] into y[n, :, tile].</summary>
    private void Scatter(Tensor deviceTile, HostActivation y, int n, TileRect tile)
    {
        var block = Staging(deviceTile.ElementCount);
        _device.Download(deviceTile, block);
        var s = y.Shape;
        for (int c = 0; c < s.C; c++)
        {
            for (int row = 0; row < tile.Height; row++)
            {
                long dst = ((((long)n * s.C + c) * s.H) + tile.Top + row) * s.W + tile.Left;
                block.Slice((c * tile.Height + row) * tile.Width, tile.Width).CopyTo(y.Data.AsSpan((int)dst, tile.Width));
            }
        }
        TileDone?.Invoke();
    }

    /// <summary>The staging buffer, at least <paramref name="length"/> long (a tile: always far below 2^31).</summary>
    private Span<float> Staging(long length)
    {
        if (_staging.LongLength < length) _staging = new float[length];
        return _staging.AsSpan(0, checked((int)length));
    }

    /// <summary>A host activation, from the freed ones when one of this size is free (contents unspecified).</summary>
    private HostActivation NewActivation(TensorShape shape)
    {
        long length = shape.ElementCount;
        var data = _freeArrays.TryGetValue(length, out var stack) && stack.Count > 0 ? stack.Pop() : new float[length];
        return new HostActivation(shape, data, this);
    }

    private void Release(float[] data)
    {
        if (!_freeArrays.TryGetValue(data.LongLength, out var stack)) _freeArrays[data.LongLength] = stack = new Stack<float[]>();
        stack.Push(data);
    }

    /// <summary>A small parameter tensor's values on the host (device parameters are downloaded once).</summary>
    private float[] HostCopy(Tensor t)
    {
        if (t is HostActivation h) return h.Data;
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

    /// <summary>An activation in host memory; disposing returns its array to the owner's free list.</summary>
    private sealed class HostActivation(TensorShape shape, float[] data, ExactTilingBackend? owner = null) : Tensor(shape, DType.F32)
    {
        private float[]? _data = data;

        public float[] Data => _data ?? throw new ObjectDisposedException(nameof(HostActivation));

        public override bool IsDisposed => _data is null;

        public override void Dispose()
        {
            var data = Interlocked.Exchange(ref _data, null);
            if (data is not null) owner?.Release(data);
        }
    }
}
