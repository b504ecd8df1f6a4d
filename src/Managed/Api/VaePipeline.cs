using System.Collections.Concurrent;
using NativeVae.Backends;
using NativeVae.Imaging;
using NativeVae.Models;
using NativeVae.Core;
using NativeVae.Tiling;

namespace NativeVae.Api;

/// <summary>
/// One encode or decode, start to end, on one backend: preprocess (pixels or an API tensor into the model's range)
/// -> model (untiled, exact-tiled, or blend-tiled) -> latent ops (mode, shift and scale; a sample is drawn on the
/// host) -> postprocess (float, uint8, images). The input is uploaded once and the result downloaded once, except
/// where tiling itself moves data (blend tiles, exact tiling's host activations). Not thread-safe: <see cref="Vae"/>
/// serialises calls.
/// </summary>
internal sealed class VaePipeline(IVaeModel model)
{
    /// <summary>
    /// Dry-run figures per (input shape, encode): one dry run per shape, for the tiling plan, the estimate, exact
    /// tiling's store, progress totals and the benchmark alike (the backend's storage is fixed per pipeline).
    /// </summary>
    private readonly ConcurrentDictionary<(TensorShape Shape, bool Encode), AutoTilingFigures> _figures = new();

    /// <summary>This shape's dry-run figures, measured on first use.</summary>
    public AutoTilingFigures Figures(TensorShape input, bool encode) =>
        _figures.GetOrAdd((input, encode), key => TilingPlan.Measure(model, key.Shape, key.Encode));

    private readonly PixelRange _range = new(model.ImageRange);

    private IBackend Device => model.Backend;

    /// <summary>The exact tile floor (<see cref="TilingPlan.SmallestExactTile"/>); tests of tiling on tiny images lower it.</summary>
    public int SmallestExactTile { get; set; } = TilingPlan.SmallestExactTile;

    /// <summary>Where exact tiling on a host-memory backend puts its activation store; the temp directory when null (tests set it).</summary>
    public string? ExactStoreDirectory { get; set; }

    /// <summary>Where exact tiling keeps its activations (<see cref="VaeOptions.ExactStore"/>).</summary>
    public ExactTilingStore ExactStore { get; set; }

    // ---- encode -------------------------------------------------------------------------------------------------

    public HostTensor<float> Encode(ImageBatch images, EncodeOptions options, long? memoryLimit, CancellationToken cancellation)
    {
        var (scale, shift) = _range.FromPixels;
        return Encode(images.Shape, ops => ops.ImageToTensor(images.Rgb, images.Count, images.Height, images.Width, scale, shift),
            options, memoryLimit, latentOps: true, cancellation);
    }

    /// <param name="images">[N, 3, H, W] in the API's [-1, 1].</param>
    /// <param name="latentOps">false returns the encoder's raw output (moments for AutoencoderKL), for parity tests.</param>
    public HostTensor<float> Encode(HostTensor<float> images, EncodeOptions options, long? memoryLimit, bool latentOps,
        CancellationToken cancellation) =>
        Encode(images.Shape, ops => Then(ops.Upload(images.Data, images.Shape, ops.ActivationDType(images.Shape)), t => Affine(ops, t, _range.FromApi)),
            options, memoryLimit, latentOps, cancellation);

    private HostTensor<float> Encode(TensorShape shape, Func<IBackend, Tensor> upload, EncodeOptions options, long? memoryLimit,
        bool latentOps, CancellationToken cancellation)
    {
        var scaling = LatentScaling.EncodeAffine(options.ScalingFactor, options.ShiftFactor);
        var plan = Plan(shape, encode: true, options.Tiling, options.TileSize, memoryLimit);
        using var call = Device.BeginCall(plan.CallKey(encode: true, shape));
        var ops = Ops(plan, shape, encode: true);
        try
        {
            var t = upload(ops);
            try
            {
                t = Then(t, x => RunModel(ops, plan, x, encode: true, options.Progress, cancellation));
                if (!latentOps) return Download(ops, t);
                if (model.EncodesMoments)
                {
                    if (options.SampleSeed is { } seed)
                    {
                        // The noise comes from a host generator: drawing it there costs one download, as the mode does.
                        var latent = LatentDistribution.Sample(Download(ops, t), seed);
                        LatentScaling.AfterEncode(latent.Data, options.ScalingFactor, options.ShiftFactor);
                        return latent;
                    }
                    t = Then(t, x => ops.SliceChannels(x, 0, x.Shape.C / 2)); // the mode: the mean half of the moments
                }
                t = Then(t, x => Affine(ops, x, scaling));
                return Download(ops, t);
            }
            finally
            {
                t.Dispose();
            }
        }
        finally
        {
            EndOps(ops);
        }
    }

    // ---- decode -------------------------------------------------------------------------------------------------

    /// <param name="latents">[N, C, h, w], unpacked and checked against the model.</param>
    public DecodeResult Decode(HostTensor<float> latents, DecodeOptions options, long? memoryLimit, CancellationToken cancellation)
    {
        var scaling = LatentScaling.DecodeAffine(options.ScalingFactor, options.ShiftFactor);
        var plan = Plan(latents.Shape, encode: false, options.Tiling, options.TileSize, memoryLimit);
        using var call = Device.BeginCall(plan.CallKey(encode: false, latents.Shape));
        var ops = Ops(plan, latents.Shape, encode: false);
        try
        {
            var t = ops.Upload(latents.Data, latents.Shape, ops.ActivationDType(latents.Shape));
            try
            {
                t = Then(t, x => Affine(ops, x, scaling));
                t = Then(t, x => RunModel(ops, plan, x, encode: false, options.Progress, cancellation));
                if (options.Output == DecodeOutput.FloatTensor)
                {
                    t = Then(t, x => Affine(ops, x, _range.ToApi));
                    var floats = Download(ops, t);
                    RequireFinite(floats.Data.LongCount(v => !float.IsFinite(v)), floats.Shape, model.Backend.Name);
                    return DecodeResult.OfFloatTensor(floats);
                }
                return ToPixels(ops, t, options);
            }
            finally
            {
                t.Dispose();
            }
        }
        finally
        {
            EndOps(ops);
        }
    }

    /// <summary>8-bit pixels converted on the device and downloaded once, then as a tensor, images or files.</summary>
    private DecodeResult ToPixels(IBackend ops, Tensor image, DecodeOptions options)
    {
        var s = image.Shape;
        var rgb = new byte[s.ElementCount];
        var (scale, shift) = _range.ToPixels;
        RequireFinite(ops.TensorToImage(image, rgb, scale, shift), s, model.Backend.Name);
        if (options.Output == DecodeOutput.UInt8Tensor)
            return DecodeResult.OfUInt8Tensor(new HostTensor<byte>(new TensorShape(s.N, s.H, s.W, OpShapes.RgbChannels), rgb));

        var images = ImageOutput.FromBatch(rgb, s.N, s.H, s.W);
        if (options.Output == DecodeOutput.Images) return DecodeResult.OfImages(images);

        var encoded = images.Select(i => ImageOutput.Encode(i, options.ImageFormat, options.JpegQuality)).ToList();
        foreach (var i in images) i.Dispose();
        return DecodeResult.OfEncodedImages(encoded);
    }

    // ---- the model ----------------------------------------------------------------------------------------------

    /// <summary>The caller's tiling, <see cref="TilingMode.Auto"/> resolved from this shape's (cached) dry-run figures.</summary>
    /// <exception cref="ArgumentException">a blend tile the model's blend algorithm cannot use (see <see cref="BlendTileRule"/>).</exception>
    public TilingPlan Plan(TensorShape input, bool encode, TilingMode mode, int? tile, long? memoryLimit)
    {
        var plan = TilingPlan.Choose(model, mode, tile, memoryLimit, () => Figures(input, encode), SmallestExactTile);
        // Refused before any work, whatever the input's size, so that a tile is valid or not for the family alone.
        if (plan.Mode == TilingMode.Blend)
            BlendRule(encode).Require(BlendTile(plan), plan.Tile is null ? "the model's sample_size" : null);
        return plan;
    }

    /// <summary>The plan of one call and its cost, from this shape's (cached) dry run; nothing runs.</summary>
    public VaeCallPlan Estimate(TensorShape input, bool encode, TilingMode mode, int? tile, long? memoryLimit)
    {
        var plan = Plan(input, encode, mode, tile, memoryLimit);
        var figures = Figures(input, encode);
        long flops = figures.Flops;
        // An upper bound that needs no dry run per tile.
        if (plan.Mode == TilingMode.Blend && !IsSingleBlendTile(input, BlendInputTile(plan, encode)))
            flops = (long)(flops * BlendTiling.MaxOverlapWork(model.IsTiny ? TinyBlendTiling.DiffusersOverlapFactor : BlendTiling.DiffusersOverlapFactor));
        return new VaeCallPlan(plan.Mode, plan.Tile, flops, figures.UntiledBytes);
    }

    /// <summary>The blend tile in pixels: the caller's, else the model's sample size (512 for the TAESD family, as diffusers).</summary>
    private int BlendTile(TilingPlan plan) => plan.Tile ?? model.SampleSize;

    /// <summary>The blend tile in input elements: pixels to encode, latents to decode.</summary>
    private int BlendInputTile(TilingPlan plan, bool encode) => encode ? BlendTile(plan) : BlendTile(plan) / model.DownsampleFactor;

    /// <summary>Whether one blend tile covers the input, which then runs untiled as diffusers runs it.</summary>
    private bool IsSingleBlendTile(TensorShape input, int inputTile) => model.IsTiny
        ? TinyBlendTiling.IsSingleTile(input.H, input.W, inputTile)
        : BlendTiling.IsSingleTile(input.H, input.W, inputTile);

    private BlendTileRule BlendRule(bool encode) => model.IsTiny
        ? TinyBlendTiling.Rule(model.DownsampleFactor, encode)
        : BlendTiling.Rule(model.DownsampleFactor);

    /// <summary>
    /// The backend the call's ops run on: the device, or exact tiling over it (disposed after the call). Exact tiling
    /// makes its store here, before any work, so that a store that cannot be created fails the call at once.
    /// </summary>
    private IBackend Ops(TilingPlan plan, TensorShape input, bool encode)
    {
        if (plan.Mode != TilingMode.Exact) return Device;
        // The store reaches the size the dry run's allocations reach through the same allocator: the disk must have it free.
        long storeBytes = PlannedStoreBytes(input, encode);
        // The caller's tile is in pixels; each layer cuts its own output into strips of about tile x tile elements.
        int tile = plan.Tile ?? TilingPlan.DefaultExactTile;
        if (ActivationsInFile(plan.ActivationsInFile))
            return new TiledExecutor(Device, tile, ActivationSpace.InFile(ExactStoreDirectory, storeBytes, Device.StorageDType));
        // In memory the executor and its buffers are kept for the next call: fresh memory is slow to touch, and a
        // repeated call finds its activations' pages already there.
        if (_keptExecutor?.TileSize != tile)
        {
            _keptExecutor?.Dispose();
            _keptExecutor = null;
            _keptExecutor = new TiledExecutor(Device, tile, HostSpace());
        }
        _keptExecutor.BeginCall();
        return _keptExecutor;
    }

    /// <summary>Whether exact tiling's activations go to a file: as <see cref="ExactStore"/> says, else <paramref name="auto"/>.</summary>
    private bool ActivationsInFile(bool auto) => ExactStore switch
    {
        ExactTilingStore.File => true,
        ExactTilingStore.Memory => false,
        _ => auto,
    };

    /// <summary>
    /// The backend of one video call: the device untiled, or (exact, asked for or chosen by the budget) a tiled executor
    /// over the device whose activation space holds every layer's frame and causal history, in a file where the
    /// device's memory is host RAM (the CPU backend, whose memory it then bounds) or as <see cref="ExactStore"/> says,
    /// sized by the video's dry run (its store made now, before any work). The caller ends it with <see cref="EndOps"/>.
    /// </summary>
    public IBackend VideoOps(IVideoVaeModel video, TensorShape frame, bool encode, TilingMode mode, int? tile, long? memoryLimit)
    {
        VideoFigures Figures() => VideoFiguresOf(video, frame, encode);
        if (TilingPlan.ChooseVideo(model, mode, memoryLimit, Figures) != TilingMode.Exact) return Device;
        int size = tile ?? TilingPlan.DefaultExactTile;
        return ActivationsInFile(Device.Kind == BackendKind.Cpu)
            ? new TiledExecutor(Device, size, ActivationSpace.InFile(ExactStoreDirectory, Figures().StoreBytes, Device.StorageDType))
            : new TiledExecutor(Device, size, HostSpace());
    }

    /// <summary>
    /// Exact tiling's activations in host memory: page-locked memory of the device's where it copies straight to and
    /// from it (ILGPU), so strips cross the bus as queued DMAs with no host copy and no host wait between ops.
    /// </summary>
    private ActivationSpace HostSpace() =>
        Device is IPinnedTransfers pinned ? ActivationSpace.InPinned(pinned, Device.StorageDType, Device.ActivationDType) : ActivationSpace.InMemory();

    /// <summary>The plan of one video call of <paramref name="latentFrames"/> latent frames and its cost, from the (cached) dry run; nothing runs.</summary>
    public VaeCallPlan EstimateVideo(IVideoVaeModel video, TensorShape frame, bool encode, int latentFrames, TilingMode mode, int? tile, long? memoryLimit)
    {
        var figures = VideoFiguresOf(video, frame, encode);
        var chosen = TilingPlan.ChooseVideo(model, mode, memoryLimit, () => figures);
        return new VaeCallPlan(chosen, chosen == TilingMode.Exact ? tile ?? TilingPlan.DefaultExactTile : null, figures.Flops(latentFrames), figures.UntiledBytes);
    }

    private VideoFigures VideoFiguresOf(IVideoVaeModel video, TensorShape frame, bool encode) =>
        _videoFigures.GetOrAdd((frame, encode), key => TilingPlan.MeasureVideo(video, key.Frame, key.Encode));

    /// <summary>Video dry runs, per frame shape and direction.</summary>
    private readonly ConcurrentDictionary<(TensorShape Frame, bool Encode), VideoFigures> _videoFigures = new();

    /// <summary>The size exact tiling's store reaches for this input (from the cached dry run; 0 before one ran).</summary>
    public long PlannedStoreBytes(TensorShape input, bool encode) =>
        _figures.TryGetValue((input, encode), out var figures) ? figures.StoreBytes : 0;

    /// <summary>Ends a call's ops: an executor made for the call is disposed (its file store goes with it).</summary>
    public void EndOps(IBackend ops)
    {
        if (ops is TiledExecutor executor) LastExactSpaceBytes = executor.Space.Bytes;
        if (!ReferenceEquals(ops, Device) && !ReferenceEquals(ops, _keptExecutor)) ops.Dispose();
    }

    /// <summary>
    /// The size of the last exact call's activation space: the most its live activations needed at once (over every
    /// call of a kept in-memory space). Tests hold the dry run's plan to it.
    /// </summary>
    public long LastExactSpaceBytes { get; private set; }

    /// <summary>The in-memory exact tiling executor kept between calls; null until one runs.</summary>
    private TiledExecutor? _keptExecutor;

    /// <summary>Bytes the kept executor holds for the next call (its activation space and buffers).</summary>
    public long RetainedBytes => _keptExecutor?.RetainedBytes ?? 0;

    /// <summary>Gives back what <see cref="RetainedBytes"/> counts.</summary>
    public void ReleaseMemory()
    {
        _keptExecutor?.Dispose();
        _keptExecutor = null;
    }

    /// <summary>Encode (images -> encoder output) or decode (latents -> images) of <paramref name="x"/> per the plan.</summary>
    private Tensor RunModel(IBackend ops, TilingPlan plan, Tensor x, bool encode, IProgress<VaeProgress>? progress,
        CancellationToken cancellation)
    {
        if (plan.Mode != TilingMode.Blend) return Forward(ops, x, encode, progress, cancellation);

        // Plan has checked the tile against the family's rule, so it is a whole number of latents.
        int sampleTile = BlendTile(plan);
        int latentTile = sampleTile / model.DownsampleFactor;
        int inputTile = BlendInputTile(plan, encode), outputTile = encode ? latentTile : sampleTile;
        if (IsSingleBlendTile(x.Shape, inputTile)) return Forward(ops, x, encode, progress, cancellation);

        // Blend tiles are cut and blended on the host, as diffusers does with its tensors.
        var tileProgress = progress is null ? null : new Progress<(int Done, int Total)>(p => progress.Report(new VaeProgress(p.Done, p.Total)));
        // A decoder that ends with a clamp (Wan, Qwen-Image) blends its unclamped tiles, and the blend is clamped: diffusers' tiled_decode.
        bool clampBlend = !encode && model.ClampsDecode;
        HostTensor<float> RunTile(HostTensor<float> tile)
        {
            using var t = ops.Upload(tile.Data, tile.Shape, ops.ActivationDType(tile.Shape));
            using var y = Forward(ops, t, encode, null, cancellation, unclamped: clampBlend);
            return Download(ops, y);
        }
        var host = Download(ops, x);
        var blended = model.IsTiny
            ? TinyBlendTiling.Run(host, inputTile, outputTile, RunTile, tileProgress, cancellation)
            : BlendTiling.Run(host, inputTile, outputTile, RunTile, tileProgress, cancellation);
        if (clampBlend)
            for (long i = 0; i < blended.Data.LongLength; i++) blended.Data[i] = Math.Clamp(blended.Data[i], -1f, 1f);
        return ops.Upload(blended.Data, blended.Shape, ops.ActivationDType(blended.Shape));
    }

    private Tensor Forward(IBackend ops, Tensor x, bool encode, IProgress<VaeProgress>? progress, CancellationToken cancellation,
        bool unclamped = false)
    {
        BlockObserver observe;
        if (progress is null)
        {
            observe = (_, _) => cancellation.ThrowIfCancellationRequested();
        }
        else
        {
            int blocks = Figures(x.Shape, encode).Blocks;
            int done = 0;
            observe = (_, _) =>
            {
                cancellation.ThrowIfCancellationRequested();
                progress.Report(new VaeProgress(++done, blocks));
            };
        }
        return encode ? model.Encode(ops, x, observe) : unclamped ? model.DecodeUnclamped(ops, x, observe) : model.Decode(ops, x, observe);
    }

    // ---- helpers ------------------------------------------------------------------------------------------------

    /// <summary>
    /// <paramref name="op"/> of <paramref name="current"/>; when it returns a new tensor, <paramref name="current"/> is
    /// disposed. On a throw the caller still owns <paramref name="current"/>.
    /// </summary>
    private static Tensor Then(Tensor current, Func<Tensor, Tensor> op)
    {
        var next = op(current);
        if (!ReferenceEquals(next, current)) current.Dispose();
        return next;
    }

    /// <summary>
    /// A decoded image with NaN or infinity is an error, not black pixels: inputs are checked finite, so the model made
    /// them (an fp16 overflow, or weights holding NaN). The count comes with the image's download (no pass of its own).
    /// </summary>
    /// <param name="what">what was decoded: image, or video.</param>
    /// <exception cref="InvalidDataException">the image holds non-finite values.</exception>
    internal static void RequireFinite(long nonFinite, TensorShape decoded, string device, string what = "image")
    {
        if (nonFinite > 0)
            throw new InvalidDataException(
                $"the decoded {what} {decoded} holds {nonFinite} NaN or infinite value(s): the model overflowed or its weights hold NaN ({device}); nothing was returned");
    }

    /// <summary><c>x * scale + shift</c> on the backend, or <paramref name="x"/> itself for no affine.</summary>
    private static Tensor Affine(IBackend ops, Tensor x, (float Scale, float Shift)? affine) =>
        affine is { } a ? ops.ScaleShift(x, a.Scale, a.Shift) : x;

    private static HostTensor<float> Download(IBackend ops, Tensor t)
    {
        var result = new HostTensor<float>(t.Shape);
        ops.Download(t, result.Data);
        return result;
    }
}
