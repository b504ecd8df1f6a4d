using NativeVae.Core;

namespace NativeVae.Tiling;

/// <summary>
/// Exact, seam-free tiling as an executor: an <see cref="IBackend"/> whose activations live in an
/// <see cref="ActivationSpace"/> off the device and whose every op runs on the device one tile at a time, so a model
/// runs unchanged and its output equals the untiled one. Tiles are full-width strips of about TileSize^2 elements
/// (<see cref="TilePlanner.Strips"/>).
/// <list type="bullet">
/// <item>a convolution layer is one device call per output tile (<see cref="IBackend.Conv2dRegion"/>): its input
///   window with the halo, padded only at the image's edge, a GroupNorm before it applied as a folded per-channel
///   affine while the input is packed, and the output's per-channel moments returned and merged in double. So a
///   GroupNorm + conv is one read of the input and one write of the output: no statistics pass, no stored
///   normalised tensor;</item>
/// <item>a GroupNorm of a tensor no convolution wrote (or a standalone one) gets its statistics from a pass over the
///   tiles;</item>
/// <item>attention runs whole (it only runs at the latent resolution); elementwise ops run in flat chunks.</item>
/// </list>
/// Model parameters stay device tensors of the wrapped backend and are passed through. Peak device memory is then
/// bounded by the tile size (plus the parameters and the mid-block attention), not by the image. On a pinned space
/// (<see cref="ActivationSpace.InPinned"/>, a device's page-locked memory) strips cross as DMAs queued behind the ops,
/// in 16 bits for a 16-bit device's feature maps, each tile's statistics are queued out beside it, and the host waits
/// only where it needs values: a GroupNorm's statistics, attention chunks, a download.
/// </summary>
internal sealed class TiledExecutor : IBackend
{
    /// <summary>Elementwise ops run over flat chunks of TileSize^2 times this many elements.</summary>
    private const int ChannelsPerChunk = 64;

    private const int PrimarySlot = TileWindows.PrimarySlot, SecondarySlot = TileWindows.SecondarySlot;

    private readonly IBackend _device;
    private readonly ActivationSpace _space;
    private readonly BandCache _bands;
    private readonly TileWindows _windows;
    private readonly HostParameters _parameters;

    /// <summary>Chunked attention's merge so far ([C, tokens] and [tokens]) and a chunk's log-sum-exp, reused across strips and calls.</summary>
    private float[] _attentionMerge = [], _attentionLogSumExp = [], _attentionChunkLogSumExp = [];

    /// <param name="space">where the activations live; the executor owns and disposes it.</param>
    public TiledExecutor(IBackend device, int tileSize, ActivationSpace space)
    {
        if (tileSize <= 0) throw new ArgumentOutOfRangeException(nameof(tileSize), tileSize, "tile size must be positive");
        _device = device;
        _space = space;
        TileSize = tileSize;
        _bands = new BandCache(space);
        _windows = new TileWindows(_bands);
        _parameters = new HostParameters(device);
    }

    /// <summary>The tile edge: each strip holds about TileSize^2 elements per channel of the layer's own resolution.</summary>
    public int TileSize { get; }

    /// <summary>Where the activations live.</summary>
    public ActivationSpace Space => _space;

    public string Name => $"exact tiling ({TileSize}{(_space.IsFile ? ", file store" : "")}) on {_device.Name}";

    public BackendKind Kind => _device.Kind;

    /// <summary>The device's memory: what the tile size bounds.</summary>
    public MemoryStats Memory => _device.Memory;

    /// <summary>
    /// The device's; NormConv2d never stores the normalised tensor here, whatever the device does. The executor runs
    /// attention in chunks itself and offers no <see cref="IBackend.AttentionOverKeys"/> of its own.
    /// </summary>
    public BackendCapabilities Capabilities => _device.Capabilities with { FusesNormIntoConv = true, ChunksAttention = false };

    public void ResetPeakMemory() => _device.ResetPeakMemory();

    /// <summary>Starts a call on a kept executor: the activations of earlier calls are dead.</summary>
    public void BeginCall() => _space.BeginCall();

    /// <summary>Host bytes kept for the next call: the activation space's memory and the staging and band buffers.</summary>
    public long RetainedBytes => (_space.IsFile ? 0 : _space.MediumBytes) + _windows.Bytes + _bands.Bytes +
        sizeof(float) * ((long)_attentionMerge.Length + _attentionLogSumExp.Length + _attentionChunkLogSumExp.Length);

    public Tensor Allocate(TensorShape shape, DType dtype = DType.F32)
    {
        if (dtype != DType.F32) throw new NotSupportedException($"{Name}: activations are F32, not {dtype}");
        return _space.New(shape);
    }

    public Tensor Upload(ReadOnlySpan<float> data, TensorShape shape, DType dtype = DType.F32)
    {
        if (data.Length != shape.ElementCount) throw new ArgumentException($"upload of {data.Length} values into {shape}");
        var t = (SpaceTensor)Allocate(shape, dtype);
        _space.Write(t, 0, data);
        return t;
    }

    public void Download(Tensor tensor, Span<float> destination)
    {
        var t = Own(tensor, nameof(tensor));
        if (destination.Length != t.ElementCount) throw new ArgumentException($"download of {t} into {destination.Length} values");
        _space.Read(t, 0, destination);
    }

    public void Synchronize() => _device.Synchronize();

    /// <summary>Weights are the device's tensors: prepared by the device, passed through to it.</summary>
    public Tensor PrepareConvWeight(Tensor weight, Conv2dSpec spec) => _device.PrepareConvWeight(weight, spec);

    public Tensor Conv2d(Tensor input, Tensor weight, Tensor? bias, Conv2dSpec spec, Tensor? residual = null) =>
        ConvLayer(Own(input, nameof(input)), null, weight, bias, spec, residual);

    public Tensor NormConv2d(Tensor input, GroupNormSpec norm, Tensor weight, Tensor? bias, Conv2dSpec spec, Tensor? residual = null)
    {
        var x = Own(input, nameof(input));
        OpShapes.GroupNorm(x, norm.Gamma, norm.Beta, norm.Groups);
        return ConvLayer(x, Fold(x, norm.Gamma, norm.Beta, norm.Groups, norm.Eps, norm.Silu), weight, bias, spec, residual);
    }

    /// <summary>
    /// A convolution layer, one <see cref="IBackend.Conv2dRegion"/> per output tile: the tile's input window inside
    /// the (upsampled) input, padded where it meets the image's edge, the folded norm applied as it is packed. The
    /// output keeps the merged moments its tiles returned.
    /// </summary>
    private SpaceTensor ConvLayer(SpaceTensor x, HostNorm? norm, Tensor weight, Tensor? bias, Conv2dSpec spec, Tensor? residual)
    {
        var r = residual is null ? null : Own(residual, nameof(residual));
        var outShape = OpShapes.Conv2d(x, weight, bias, spec, r);
        var y = _space.New(outShape);
        try
        {
            int kernel = weight.Shape[2];
            int upsample = spec.Upsample2x ? 2 : 1;
            // Null once a tile comes without them: a GroupNorm of the output then measures them itself. On a pinned
            // space the device's statistics of each tile are queued out beside the activations instead, and merged
            // (one host wait) only when a GroupNorm of the output asks for them.
            ChannelMoments? moments = new ChannelMoments(outShape.N, outShape.C);
            // On a device with memory of its own, an upsampling conv is cut where its windows start and end on whole
            // input rows: the device upsamples them itself, and a quarter of the bytes cross to it. The CPU upsamples
            // on the host, where it costs a copy, and keeps its Winograd path and the moments it returns.
            bool deviceUpsample = upsample == 2 && spec.Stride == 1 && kernel % 2 == 1 && _device.Kind != BackendKind.Cpu;
            var strips = deviceUpsample
                ? TilePlanner.ParityStrips(outShape.H, outShape.W, TileSize, spec.PadTop % 2)
                : TilePlanner.Strips(outShape.H, outShape.W, TileSize);
            var tileStatistics = new TileStatistics(_space, outShape.N, outShape.N * strips.Count, outShape.C);
            y.PendingMoments = tileStatistics;
            for (int n = 0; n < outShape.N; n++)
            {
                using var folded = norm?.Upload(_device, n, x.Shape.C);
                foreach (var tile in strips)
                {
                    var rows = TilePlanner.Clip(TilePlanner.InputWindow(tile.Top, tile.Height, spec.Stride, spec.PadTop, kernel), x.Shape.H * upsample);
                    var cols = TilePlanner.Clip(TilePlanner.InputWindow(tile.Left, tile.Width, spec.Stride, spec.PadLeft, kernel), x.Shape.W * upsample);
                    bool wholeRows = cols.Start == 0 && cols.Length == x.Shape.W * upsample
                                     && (upsample == 1 || (deviceUpsample && rows.Start % 2 == 0 && rows.Length % 2 == 0));
                    var tileSpec = new Conv2dSpec(spec.Stride, rows.PadBefore, rows.PadAfter, cols.PadBefore, cols.PadAfter,
                        Upsample2x: wholeRows && upsample == 2, Relu: spec.Relu);
                    // A window of whole input rows is uploaded as it is stored; any other is gathered (and upsampled) on the host.
                    using var window = wholeRows
                        ? UploadRows(x, n, new TileRect(rows.Start / upsample, 0, rows.Length / upsample, x.Shape.W), PrimarySlot)
                        : _device.Upload(_windows.Window(x, n, rows, cols, upsample), TensorShape.Nchw(1, x.Shape.C, rows.Length, cols.Length));
                    using var residualTile = r is null ? null : UploadRows(r, n, tile, SecondarySlot);
                    var result = _device.Conv2dRegion(window, folded?.Spec, weight, bias, tileSpec, residualTile,
                        tileStatistics.Queued ? ConvMoments.Device : ConvMoments.Host);
                    using (result.Output)
                    {
                        if (tileStatistics.Queued) tileStatistics.Add(_device, result.Output, n, result.Statistics);
                        else if (result.Moments is { } tileMoments) moments?.Merge(n, tileMoments, 0);
                        else moments = null;
                        Scatter(result.Output, y, n, tile);
                    }
                }
            }
            if (!tileStatistics.Queued)
            {
                y.PendingMoments = null;
                tileStatistics.Dispose();
                y.Moments = moments;
            }
            return y;
        }
        catch
        {
            y.Dispose();
            throw;
        }
    }

    public Tensor GroupNorm(Tensor input, Tensor gamma, Tensor beta, int groups, float eps, bool fuseSilu)
    {
        var x = Own(input, nameof(input));
        OpShapes.GroupNorm(x, gamma, beta, groups);
        var norm = Fold(x, gamma, beta, groups, eps, fuseSilu);
        return Affine(x, norm);
    }

    public Tensor GroupNormStatistics(Tensor input, int groups)
    {
        var x = Own(input, nameof(input));
        var shape = OpShapes.GroupNormStatistics(x, groups);
        return Upload(MomentsOf(x).GroupStatistics(groups), shape);
    }

    public Tensor ChannelAffine(Tensor input, Tensor scale, Tensor shift, bool fuseSilu)
    {
        var x = Own(input, nameof(input));
        OpShapes.ChannelAffine(x, scale, shift);
        return Affine(x, new HostNorm(HostValues(scale), HostValues(shift), fuseSilu));
    }

    /// <summary>x * scale + shift per (image, channel), then SiLU, tile by tile.</summary>
    private SpaceTensor Affine(SpaceTensor x, HostNorm norm)
    {
        var y = _space.New(x.Shape);
        for (int n = 0; n < x.Shape.N; n++)
        {
            using var folded = norm.Upload(_device, n, x.Shape.C);
            foreach (var tile in TilePlanner.Strips(x.Shape.H, x.Shape.W, TileSize))
            {
                using var t = UploadRows(x, n, tile, PrimarySlot);
                using var o = _device.ChannelAffine(t, folded.Spec.Scale, folded.Spec.Shift, norm.Silu);
                Scatter(o, y, n, tile);
            }
        }
        return y;
    }

    /// <summary>The GroupNorm of <paramref name="x"/> folded with its statistics into a per-channel affine, on the host.</summary>
    private HostNorm Fold(SpaceTensor x, Tensor gamma, Tensor beta, int groups, float eps, bool silu)
    {
        int count = x.Shape.N * x.Shape.C;
        var scale = new float[count];
        var shift = new float[count];
        MomentsOf(x).Fold(_parameters.Of(gamma), _parameters.Of(beta), groups, eps, scale, shift);
        return new HostNorm(scale, shift, silu);
    }

    /// <summary>
    /// <paramref name="x"/>'s per-channel moments: those its convolution returned or queued, else a statistics pass
    /// over its tiles (kept for the next GroupNorm of it).
    /// </summary>
    private ChannelMoments MomentsOf(SpaceTensor x)
    {
        if (x.PendingMoments is { } pending)
        {
            x.Moments = pending.Merged();
            x.PendingMoments = null;
            pending.Dispose();
        }
        if (x.Moments is { } known) return known;
        var s = x.Shape;
        var strips = TilePlanner.Strips(s.H, s.W, TileSize);
        using var statistics = new TileStatistics(_space, s.N, s.N * strips.Count, s.C);
        for (int n = 0; n < s.N; n++)
        {
            foreach (var tile in strips)
            {
                using var t = UploadRows(x, n, tile, PrimarySlot);
                statistics.Add(_device, t, n);
            }
        }
        x.Moments = statistics.Merged();
        return x.Moments;
    }

    /// <summary>Per pixel across channels: each strip of all channels is normalised on its own, no statistics pass.</summary>
    public Tensor RmsNorm(Tensor input, Tensor gamma, bool fuseSilu)
    {
        var x = Own(input, nameof(input));
        var y = _space.New(OpShapes.RmsNorm(x, gamma));
        for (int n = 0; n < x.Shape.N; n++)
        {
            foreach (var tile in TilePlanner.Strips(x.Shape.H, x.Shape.W, TileSize))
            {
                using var t = UploadRows(x, n, tile, PrimarySlot);
                using var o = _device.RmsNorm(t, gamma, fuseSilu);
                Scatter(o, y, n, tile);
            }
        }
        return y;
    }

    public Tensor Attention(Tensor q, Tensor k, Tensor v, float scale)
    {
        var (tq, tk, tv) = (Own(q, nameof(q)), Own(k, nameof(k)), Own(v, nameof(v)));
        var shape = OpShapes.Attention(tq, tk, tv);
        var strips = TilePlanner.Strips(shape.H, shape.W, TileSize);
        if (strips.Count > 1 && _device.Capabilities.ChunksAttention) return ChunkedAttention(tq, tk, tv, scale, strips);
        // Attention mixes all tokens: on a device that cannot chunk it, it runs whole (at the latent resolution).
        using var dq = UploadWhole(tq);
        using var dk = UploadWhole(tk);
        using var dv = UploadWhole(tv);
        using var o = _device.Attention(dq, dk, dv, scale);
        var y = _space.New(shape);
        WriteFlat(o, y, 0);
        return y;
    }

    /// <summary>
    /// Attention strip by strip: each strip of queries against each strip of keys (<see cref="IBackend.AttentionOverKeys"/>),
    /// the chunks merged on the host by their log-sum-exp (<see cref="AttentionChunks"/>). So its memory is a few
    /// strips', not the whole tensors' (SD's mid-block at 4096x4096: 262144 tokens of 512 channels, 512 MiB each).
    /// </summary>
    private SpaceTensor ChunkedAttention(SpaceTensor q, SpaceTensor k, SpaceTensor v, float scale, List<TileRect> strips)
    {
        var s = q.Shape;
        var y = _space.New(s);
        try
        {
            for (int n = 0; n < s.N; n++)
            {
                foreach (var queries in strips)
                {
                    int tokens = queries.Height * s.W;
                    var merged = Reused(ref _attentionMerge, s.C * tokens);
                    var mergedLogSumExp = Reused(ref _attentionLogSumExp, tokens);
                    var chunkLogSumExp = Reused(ref _attentionChunkLogSumExp, tokens);
                    using var dq = UploadRows(q, n, queries, PrimarySlot);
                    bool first = true;
                    foreach (var keys in strips)
                    {
                        using var dk = UploadRows(k, n, keys, SecondarySlot);
                        using var dv = UploadRows(v, n, keys, SecondarySlot);
                        var chunk = _device.AttentionOverKeys(dq, dk, dv, scale);
                        using (chunk.Output)
                        using (chunk.LogSumExp)
                        {
                            // The log-sum-exp is copied out first: a device without host tensors downloads both through one staging buffer.
                            FromDevice(chunk.LogSumExp).CopyTo(first ? mergedLogSumExp : chunkLogSumExp);
                            var output = FromDevice(chunk.Output);
                            if (first) output.CopyTo(merged);
                            else AttentionChunks.Merge(merged, mergedLogSumExp, output, chunkLogSumExp);
                        }
                        first = false;
                    }
                    _space.Write(y, ElementRuns.Rows(s, n, queries), merged);
                }
            }
            return y;
        }
        catch
        {
            y.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A whole activation on the device. One operand at a time goes through the staging buffer (the host holds a
    /// quarter of the attention's bytes, not all), or none on a host-memory device.
    /// </summary>
    private Tensor UploadWhole(SpaceTensor x) => ReadFlat(x, 0, x.Shape, PrimarySlot);

    public Tensor Unary(UnaryOp op, Tensor input) => Chunked(Own(input, nameof(input)), null, (a, _) => _device.Unary(op, a));

    public Tensor Add(Tensor a, Tensor b)
    {
        var ta = Own(a, nameof(a));
        var tb = Own(b, nameof(b));
        OpShapes.SameShape(ta, tb, "add");
        return Chunked(ta, tb, (x, y) => _device.Add(x, y!));
    }

    public Tensor ScaleShift(Tensor input, float scale, float shift) =>
        Chunked(Own(input, nameof(input)), null, (a, _) => _device.ScaleShift(a, scale, shift));

    public long CountNonFinite(Tensor input)
    {
        var x = Own(input, nameof(input));
        long bad = 0;
        ForEachChunk(x.ElementCount, (start, length) =>
        {
            var chunk = _windows.Staging(length, PrimarySlot);
            _space.Read(x, start, chunk);
            foreach (float v in chunk)
                if (!float.IsFinite(v)) bad++;
        });
        return bad;
    }

    /// <summary>Strips of output rows, each from the <c>Factor</c> times as many input rows it folds: exact, no halo.</summary>
    public Tensor SpaceToDepth(Tensor current, Tensor? previous, PixelShuffleSpec spec)
    {
        var x = Own(current, nameof(current));
        var before = previous is null ? null : Own(previous, nameof(previous));
        var y = _space.New(OpShapes.SpaceToDepth(x, before, spec));
        int f = spec.Factor;
        for (int n = 0; n < x.Shape.N; n++)
        {
            foreach (var tile in TilePlanner.Strips(y.Shape.H, y.Shape.W, TileSize))
            {
                var rows = new TileRect(tile.Top * f, 0, tile.Height * f, x.Shape.W);
                using var t = UploadRows(x, n, rows, PrimarySlot);
                using var p = before is null ? null : UploadRows(before, n, rows, SecondarySlot);
                using var o = _device.SpaceToDepth(t, p, spec);
                Scatter(o, y, n, tile);
            }
        }
        return y;
    }

    /// <summary>Strips of input rows, each to the <c>Factor</c> times as many output rows it unfolds to: exact, no halo.</summary>
    public Tensor DepthToSpace(Tensor input, PixelShuffleSpec spec, int frame)
    {
        var x = Own(input, nameof(input));
        var y = _space.New(OpShapes.DepthToSpace(x, spec, frame));
        int f = spec.Factor;
        for (int n = 0; n < x.Shape.N; n++)
        {
            foreach (var tile in TilePlanner.Strips(x.Shape.H, x.Shape.W, TileSize))
            {
                using var t = UploadRows(x, n, tile, PrimarySlot);
                using var o = _device.DepthToSpace(t, spec, frame);
                Scatter(o, y, n, new TileRect(tile.Top * f, 0, tile.Height * f, y.Shape.W));
            }
        }
        return y;
    }

    public Tensor SliceChannels(Tensor input, int start, int count)
    {
        var x = Own(input, nameof(input));
        var y = _space.New(OpShapes.SliceChannels(x, start, count));
        long plane = (long)x.Shape.H * x.Shape.W;
        for (int n = 0; n < x.Shape.N; n++)
        {
            // The channels of one batch item are contiguous in both tensors.
            long from = ((long)n * x.Shape.C + start) * plane, to = (long)n * count * plane;
            ForEachChunk(count * plane, (offset, length) =>
            {
                var chunk = _windows.Staging(length, PrimarySlot);
                _space.Read(x, from + offset, chunk);
                _space.Write(y, to + offset, chunk);
            });
        }
        return y;
    }

    public Tensor ImageToTensor(ReadOnlySpan<byte> rgb, int batch, int height, int width, float scale, float shift)
    {
        var y = _space.New(OpShapes.ImageToTensor(rgb.Length, batch, height, width));
        int bandBytes = width * OpShapes.RgbChannels;
        // Bands of whole rows: each is contiguous in the interleaved image.
        for (int n = 0; n < batch; n++)
        {
            foreach (var band in TilePlanner.Strips(height, width, TileSize))
            {
                var pixels = rgb.Slice(checked(((n * height) + band.Top) * bandBytes), band.Height * bandBytes);
                using var t = _device.ImageToTensor(pixels, 1, band.Height, width, scale, shift);
                Scatter(t, y, n, band);
            }
        }
        return y;
    }

    public long TensorToImage(Tensor input, Span<byte> rgb, float scale, float shift)
    {
        var x = Own(input, nameof(input));
        OpShapes.TensorToImage(x, rgb.Length);
        var s = x.Shape;
        int rowBytes = s.W * OpShapes.RgbChannels;
        long nonFinite = 0;
        for (int n = 0; n < s.N; n++)
        {
            foreach (var band in TilePlanner.Strips(s.H, s.W, TileSize))
            {
                using var t = UploadRows(x, n, band, PrimarySlot);
                nonFinite += _device.TensorToImage(t, rgb.Slice(checked(((n * s.H) + band.Top) * rowBytes), band.Height * rowBytes), scale, shift);
            }
        }
        return nonFinite;
    }

    public void Dispose()
    {
        _attentionMerge = _attentionLogSumExp = _attentionChunkLogSumExp = [];
        _parameters.Clear();
        _windows.Clear();
        _bands.Clear();
        _space.Dispose();
    }

    /// <summary>Calls <paramref name="body"/> with (start, length) over [0, total) in chunks of TileSize^2 x ChannelsPerChunk.</summary>
    private void ForEachChunk(long total, Action<long, int> body)
    {
        long chunk = (long)TileSize * TileSize * ChannelsPerChunk;
        for (long start = 0; start < total; start += chunk) body(start, (int)Math.Min(chunk, total - start));
    }

    /// <summary>Runs an elementwise device op over flat chunks.</summary>
    private SpaceTensor Chunked(SpaceTensor a, SpaceTensor? b, Func<Tensor, Tensor?, Tensor> op)
    {
        var y = _space.New(a.Shape);
        ForEachChunk(a.ElementCount, (start, length) =>
        {
            var shape = TensorShape.Nchw(1, 1, 1, length);
            using var da = ReadFlat(a, start, shape, PrimarySlot);
            using var db = b is null ? null : ReadFlat(b, start, shape, SecondarySlot);
            using var o = op(da, db);
            WriteFlat(o, y, start);
        });
        return y;
    }

    /// <summary><paramref name="shape"/>'s count of <paramref name="x"/>'s elements from flat index <paramref name="start"/>, as a device tensor.</summary>
    private Tensor ReadFlat(SpaceTensor x, long start, TensorShape shape, int slot) =>
        ReadRuns(x, ElementRuns.Flat(start, checked((int)shape.ElementCount)), shape, slot);

    /// <summary>A device tensor's elements into <paramref name="y"/> from flat index <paramref name="start"/>.</summary>
    private void WriteFlat(Tensor deviceTensor, SpaceTensor y, long start) =>
        WriteRuns(deviceTensor, y, ElementRuns.Flat(start, checked((int)deviceTensor.ElementCount)));

    /// <summary>
    /// <paramref name="x"/>'s elements in <paramref name="runs"/> as a device tensor of <paramref name="shape"/>: copied
    /// straight from a pinned space, else filled on the host (in place, or staged in <paramref name="slot"/>).
    /// </summary>
    private Tensor ReadRuns(SpaceTensor x, ElementRuns runs, TensorShape shape, int slot)
    {
        if (!_space.IsPinned) return ToDevice(shape, values => _space.Read(x, runs, values), slot);
        var t = _device.Allocate(shape);
        _space.CopyIn(x, runs, t);
        return t;
    }

    /// <summary>A device tensor's elements into <paramref name="y"/>'s <paramref name="runs"/>: copied straight to a pinned space, else through the host.</summary>
    private void WriteRuns(Tensor deviceTensor, SpaceTensor y, ElementRuns runs)
    {
        if (_space.IsPinned) _space.CopyOut(deviceTensor, y, runs);
        else _space.Write(y, runs, FromDevice(deviceTensor));
    }

    /// <summary>
    /// A device tensor of <paramref name="shape"/> filled by <paramref name="fill"/>: in place where the device's tensors
    /// are host memory, else in staging slot <paramref name="slot"/> and uploaded.
    /// </summary>
    private Tensor ToDevice(TensorShape shape, SpanAction fill, int slot)
    {
        if (_device is IHostTensors host)
        {
            var t = _device.Allocate(shape);
            if (host.TryGetElements(t, out var elements))
            {
                fill(elements);
                return t;
            }
            t.Dispose();
        }
        var staged = _windows.Staging(shape.ElementCount, slot);
        fill(staged);
        return _device.Upload(staged, shape);
    }

    /// <summary>A device tensor's values: in place where the device's tensors are host memory, else downloaded to staging.</summary>
    private Span<float> FromDevice(Tensor t)
    {
        if (_device is IHostTensors host && host.TryGetElements(t, out var elements)) return elements;
        var staged = _windows.Staging(t.ElementCount, PrimarySlot);
        _device.Download(t, staged);
        return staged;
    }

    /// <summary><paramref name="length"/> elements of <paramref name="buffer"/>, grown first if it is shorter.</summary>
    private static Span<float> Reused(ref float[] buffer, int length)
    {
        if (buffer.Length < length) buffer = new float[length];
        return buffer.AsSpan(0, length);
    }

    /// <summary>Fills a span (a device tensor's elements or staging).</summary>
    private delegate void SpanAction(Span<float> values);

    /// <summary>x[n, :, strip] (full-width rows, contiguous in each channel) as a device tensor.</summary>
    private Tensor UploadRows(SpaceTensor x, int n, TileRect strip, int slot) =>
        ReadRuns(x, ElementRuns.Rows(x.Shape, n, strip), TensorShape.Nchw(1, x.Shape.C, strip.Height, x.Shape.W), slot);

    /// <summary>A device strip [1, C, h, W] into y[n, :, rows]: one run of rows per channel of y.</summary>
    private void Scatter(Tensor deviceTile, SpaceTensor y, int n, TileRect strip) =>
        WriteRuns(deviceTile, y, ElementRuns.Rows(y.Shape, n, strip));

    /// <summary>A small host tensor's values (a scale or shift the model made), or a device parameter's host copy.</summary>
    private float[] HostValues(Tensor t)
    {
        if (t is not SpaceTensor s) return _parameters.Of(t);
        var values = new float[s.ElementCount];
        _space.Read(s, 0, values);
        return values;
    }

    private SpaceTensor Own(Tensor tensor, string name)
    {
        ArgumentNullException.ThrowIfNull(tensor, name);
        if (tensor is not SpaceTensor t)
            throw new ArgumentException($"tensor '{name}' {tensor} is a device tensor; exact tiling takes activations it allocated", name);
        if (t.IsDisposed) throw new ObjectDisposedException(name, $"tensor '{name}' {tensor.Shape} was disposed");
        return t;
    }

    /// <summary>A folded GroupNorm on the host: [N * C] scale and shift, then SiLU when <see cref="Silu"/>.</summary>
    private sealed record HostNorm(float[] Scale, float[] Shift, bool Silu)
    {
        /// <summary>Image <paramref name="n"/>'s rows [1, C] on the device.</summary>
        public DeviceNorm Upload(IBackend device, int n, int channels)
        {
            var shape = new TensorShape(1, channels);
            var scale = device.Upload(Scale.AsSpan(n * channels, channels), shape);
            try
            {
                return new DeviceNorm(new FoldedNorm(scale, device.Upload(Shift.AsSpan(n * channels, channels), shape), Silu));
            }
            catch
            {
                scale.Dispose();
                throw;
            }
        }
    }

    /// <summary>A folded norm's device rows, disposed together.</summary>
    private sealed class DeviceNorm(FoldedNorm spec) : IDisposable
    {
        public FoldedNorm Spec { get; } = spec;

        public void Dispose()
        {
            Spec.Scale.Dispose();
            Spec.Shift.Dispose();
        }
    }
}
