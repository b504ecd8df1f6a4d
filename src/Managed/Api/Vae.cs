using NativeVae.Api;
using NativeVae.Backends;
using NativeVae.Imaging;
using NativeVae.Models;
using NativeVae.Models.AutoencoderKl;
using NativeVae.Models.QwenImage;
using NativeVae.Models.Taesd;
using NativeVae.Formats;
using NativeVae.Loading;
using NativeVae.Core;
using SixLabors.ImageSharp;

namespace NativeVae;

/// <summary>
/// A loaded VAE: diffusers' <c>remote_encode</c> / <c>remote_decode</c>, run locally.
/// <para>
/// Thread safety: one instance may be called from several threads; calls are serialised (the device and its
/// buffer pool are shared), so parallel callers queue. Weights are uploaded once and shared by every call.
/// </para>
/// <para>
/// Tensors given to and returned by this class are host tensors: images <c>[N, 3, H, W]</c> in [-1, 1] (for every
/// family, TAESD included, so that tensors are interchangeable), latents <c>[N, C, H/8, W/8]</c> or packed FLUX
/// latents <c>[N, seq, 64]</c> for decode. Each call uploads its input once and downloads its result once.
/// </para>
/// </summary>
public sealed class Vae : IVae
{
    private readonly IVaeModel _model;
    private readonly VaePipeline _pipeline;
    private readonly VaeOptions _options;
    private readonly LatentNormalization? _normalization;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly bool _ownsBackend;
    private bool _disposed;

    /// <param name="ownsBackend">Dispose the model's backend with this instance (false when the backend is shared).</param>
    internal Vae(IVaeModel model, VaeOptions options, float? scalingFactor, float? shiftFactor, bool ownsBackend = true)
    {
        _model = model;
        _pipeline = new VaePipeline(model) { ExactStore = options.ExactStore };
        _ownsBackend = ownsBackend;
        _options = options;
        _normalization = model.PipelineNormalization;
        ScalingFactor = options.ScalingFactor ?? scalingFactor;
        ShiftFactor = options.ShiftFactor ?? shiftFactor;
    }

    /// <summary>
    /// Loads a VAE from a converted NativeVae file, any published checkpoint layout (diffusers folder or single file,
    /// LDM with or without prefix, FLUX.1 <c>ae</c>, PyTorch <c>.pth</c>/<c>.ckpt</c>), or a TAESD encoder/decoder pair.
    /// </summary>
    /// <exception cref="FileNotFoundException">nothing at <paramref name="path"/>.</exception>
    /// <exception cref="InvalidDataException">the file is malformed or not a VAE; the message names file and tensor.</exception>
    public static Vae Load(string path, VaeOptions? options = null)
    {
        options ??= new();
        var loaded = VaeLoader.Open(path, new VaeLoadOptions(options.Family));
        IBackend? backend = null;
        try
        {
            backend = BackendFactory.Create(options.Device, options.DType);
            IVaeModel model;
            if (loaded.QwenConfig is { } qwen)
            {
                // Each half uploads on its first use; the file closes after the second.
                model = new QwenImageModel(backend, qwen, loaded.Weights, weightsOwner: loaded, frames: loaded.Family.IsVideo());
            }
            else if (loaded.KlConfig is { } kl)
            {
                // The model uploads each half on its first use and closes the file after the second.
                model = new AutoencoderKlModel(backend, kl, loaded.Weights, weightsOwner: loaded);
            }
            else
            {
                model = new TaesdModel(backend, loaded.TinyConfig!, loaded.Weights);
                loaded.Dispose();
            }
            float? scaling = loaded.ScalingFactor;
            float? shift = loaded.ShiftFactor;
            return new Vae(model, options, scaling, shift) { Family = loaded.Family };
        }
        catch
        {
            loaded.Dispose();
            backend?.Dispose();
            throw;
        }
    }

    /// <summary>The model family (sd, sdxl, flux, taesd, taesdxl, taef1, taef2).</summary>
    public ModelFamily Family { get; internal init; }

    /// <summary>The device running the model, e.g. "ILGPU CUDA (NVIDIA H100)".</summary>
    public string DeviceName => _model.Backend.Name;

    /// <summary>Channels of a latent (4 for SD and SDXL, 16 for FLUX.1, 32 for TAEF2).</summary>
    public int LatentChannels => _model.LatentChannels;

    /// <summary>
    /// The latent forms encode can return (<see cref="EncodeOptions.Form"/>) and decode recognises from the shape:
    /// raw for every family, and FLUX.2's normalised patchified and packed forms.
    /// </summary>
    public IReadOnlyList<LatentForm> SupportedLatentForms => LatentForms.Supported(_normalization);

    /// <summary>Pixels per latent element along each axis.</summary>
    public int DownsampleFactor => _model.DownsampleFactor;

    /// <summary>The family's published scaling factor (pass it in the options to apply it, as with diffusers).</summary>
    public float? ScalingFactor { get; }

    /// <summary>The family's published shift factor (FLUX.1: 0.1159), or null.</summary>
    public float? ShiftFactor { get; }

    /// <summary>The largest image, in pixels, that encode accepts and decode produces (<see cref="VaeOptions.MaxImagePixels"/>).</summary>
    public long MaxImagePixels => _options.MaxImagePixels;

    /// <summary>Peak device bytes so far (parameters, activations and the buffer pool).</summary>
    public long PeakDeviceBytes => _model.Backend.Memory.PeakBytes;

    /// <summary>
    /// Bytes kept between calls for reuse: pooled buffers and the call plans that make a repeated shape fast (weights
    /// not included). They grow with the largest call so far; <see cref="ReleaseMemory"/> gives them back.
    /// </summary>
    public long RetainedBytes
    {
        get
        {
            var memory = _model.Backend.Memory;
            return memory.PooledBytes + _model.Backend.PlannedBytes + _pipeline.RetainedBytes;
        }
    }

    /// <summary>
    /// Gives back what calls keep for reuse (<see cref="RetainedBytes"/>) and the image codec's pooled buffers; waits
    /// for a running call. The next call of a shape allocates afresh (and plans again), so call it when idle: a
    /// server after an idle while, or after a call far larger than usual.
    /// </summary>
    public void ReleaseMemory()
    {
        Locked(() =>
        {
            _model.Backend.ResetPeakMemory();
            _pipeline.ReleaseMemory();
            ImageInput.ReleaseRetainedBuffers();
            return true;
        });
    }

    // ---- encode -------------------------------------------------------------------------------------------------

    /// <summary>Encodes one image file (PNG, JPEG, WebP or BMP) to a latent [1, C, H/8, W/8].</summary>
    /// <exception cref="InvalidDataException">the file is not an accepted image, is corrupt, or is over the pixel limit.</exception>
    public HostTensor<float> Encode(string imagePath, EncodeOptions? options = null)
    {
        using var image = ImageInput.Load(imagePath, _options.MaxImagePixels);
        return Encode([image], options);
    }

    /// <summary>Encodes one image from a stream; <paramref name="name"/> names it in errors.</summary>
    public HostTensor<float> Encode(Stream imageStream, EncodeOptions? options = null, string name = "image stream") =>
        EncodeAsync(imageStream, options, name).GetAwaiter().GetResult();

    /// <summary>Encodes one image (PNG, JPEG, WebP or BMP bytes) from a stream; <paramref name="name"/> names it in errors.</summary>
    /// <exception cref="InvalidDataException">the bytes are not an accepted image, are corrupt, or are over the pixel limit.</exception>
    public Task<HostTensor<float>> EncodeAsync(Stream imageStream, EncodeOptions? options = null, string name = "image stream",
        CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(imageStream);
        var checkedOptions = CheckEncode(options);
        return Task.Run(() =>
        {
            using var image = ImageInput.Load(imageStream, name, _options.MaxImagePixels);
            var batch = ImageBatch.From([image], _model.DownsampleFactor, _options.MaxImagePixels);
            return InForm(Locked(() => _pipeline.Encode(batch, checkedOptions, _options.MemoryLimitBytes, cancellation)), checkedOptions);
        }, cancellation);
    }

    /// <summary>Encodes a batch of images of one size (any pixel type: RGBA and grayscale become RGB).</summary>
    /// <exception cref="ArgumentException">no images, a null image, one over the pixel limit, or sizes that differ after resizing.</exception>
    public HostTensor<float> Encode(IReadOnlyList<Image> images, EncodeOptions? options = null)
    {
        var checkedOptions = CheckEncode(options);
        var batch = ImageBatch.From(images, _model.DownsampleFactor, _options.MaxImagePixels);
        return InForm(Locked(() => _pipeline.Encode(batch, checkedOptions, _options.MemoryLimitBytes, CancellationToken.None)), checkedOptions);
    }

    /// <summary>
    /// Encodes images given as a tensor [N, 3, H, W] in [-1, 1]. Sides that are not multiples of
    /// <see cref="DownsampleFactor"/> are resized down to one by nearest neighbour, as diffusers' image processor does
    /// with a tensor (image files are resized the same way, with Lanczos).
    /// </summary>
    /// <exception cref="ArgumentException">the tensor is not [N, 3, H, W], a side is shorter than the factor, or a blend tile the family cannot use (see <see cref="EncodeOptions.TileSize"/>).</exception>
    public HostTensor<float> Encode(HostTensor<float> images, EncodeOptions? options = null) =>
        EncodeAsync(images, options).GetAwaiter().GetResult();

    /// <inheritdoc cref="Encode(HostTensor{float}, EncodeOptions?)"/>
    public Task<HostTensor<float>> EncodeAsync(HostTensor<float> images, EncodeOptions? options = null, CancellationToken cancellation = default)
    {
        CheckImages(images);
        var checkedOptions = CheckEncode(options);
        InputChecks.RequireFinite(images, "images");
        var sized = ImageTensorSize.ResizeToMultiple(images, DownsampleFactor);
        return Task.Run(() => InForm(Locked(() => _pipeline.Encode(sized, checkedOptions, _options.MemoryLimitBytes, latentOps: true, cancellation)), checkedOptions), cancellation);
    }

    /// <summary>Encodes one image file asynchronously.</summary>
    public Task<HostTensor<float>> EncodeAsync(string imagePath, EncodeOptions? options = null, CancellationToken cancellation = default) =>
        Task.Run(() => Encode(imagePath, options), cancellation);

    /// <summary>The encoder's raw output (moments for AutoencoderKL) with the chosen tiling; for parity tests.</summary>
    internal HostTensor<float> EncodeMoments(HostTensor<float> images, EncodeOptions options)
    {
        CheckImages(images);
        return Locked(() => _pipeline.Encode(images, options, _options.MemoryLimitBytes, latentOps: false, CancellationToken.None));
    }

    private void CheckImages(HostTensor<float> images)
    {
        InputChecks.RequireImages(images.Shape, _options.MaxImagePixels, "VaeOptions.MaxImagePixels");
    }

    /// <summary>The options (defaults for null) once their latent form fits this model; before any work.</summary>
    private EncodeOptions CheckEncode(EncodeOptions? options)
    {
        options ??= new();
        LatentForms.CheckEncode(options, _normalization, Family.Name());
        return options;
    }

    private HostTensor<float> InForm(HostTensor<float> raw, EncodeOptions options) =>
        LatentForms.FromRaw(raw, options.Form, _normalization, _model.HasFrameAxis);

    /// <summary>
    /// The raw latent <c>[N, C, h, w]</c> that decode would make of latents of shape <paramref name="latents"/> in
    /// any form the model takes (<see cref="SupportedLatentForms"/>; packed ones with the options' height and width),
    /// checked as the call checks them: nothing is run. The decoded image is <c>[N, 3, h*f, w*f]</c>.
    /// </summary>
    /// <exception cref="ArgumentException">a shape no form of this model has, packed latents without height and width, or factors beside a normalised form.</exception>
    public TensorShape RawLatentShape(TensorShape latents, DecodeOptions? options = null)
    {
        options ??= new();
        var z = LatentForms.RawShape(latents, options, LatentChannels, DownsampleFactor, SupportedLatentForms, Family.Name(), _model.HasFrameAxis);
        InputChecks.RequireLatents(z, latents, LatentChannels);
        return z;
    }

    /// <summary><see cref="RawLatentShape"/>, and the decoded image within the pixel limit.</summary>
    private TensorShape DecodableShape(TensorShape latents, DecodeOptions options)
    {
        var z = RawLatentShape(latents, options);
        InputChecks.RequireDecodedSize(z, DownsampleFactor, _options.MaxImagePixels);
        return z;
    }

    // ---- decode -------------------------------------------------------------------------------------------------

    /// <summary>
    /// Decodes latents [N, C, h, w], or packed latents [N, seq, 4C] with <see cref="DecodeOptions.Height"/> and
    /// <see cref="DecodeOptions.Width"/>, or FLUX.2's patchified [N, 4C, h/2, w/2] (see <see cref="LatentForm"/>),
    /// computing <c>latents / scaling_factor + shift_factor</c> first (each when given, raw and FLUX.1 latents only).
    /// </summary>
    /// <exception cref="ArgumentException">the latents' shape does not fit the model, packed latents lack height/width, or a blend tile the family cannot use (see <see cref="DecodeOptions.TileSize"/>).</exception>
    public DecodeResult Decode(HostTensor<float> latents, DecodeOptions? options = null) =>
        DecodeAsync(latents, options).GetAwaiter().GetResult();

    /// <inheritdoc cref="Decode"/>
    public Task<DecodeResult> DecodeAsync(HostTensor<float> latents, DecodeOptions? options = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(latents);
        options ??= new();
        DecodableShape(latents.Shape, options);
        InputChecks.RequireFinite(latents, "latents");
        var z = LatentForms.ToRaw(latents, options, LatentChannels, DownsampleFactor, _normalization, Family.Name(), _model.HasFrameAxis);
        return Task.Run(() => Locked(() => _pipeline.Decode(z, options, _options.MemoryLimitBytes, cancellation)), cancellation);
    }

    // ---- video --------------------------------------------------------------------------------------------------

    /// <summary>True for a video family (wan, wan22): <see cref="EncodeVideo"/> and <see cref="DecodeVideo"/> take its videos.</summary>
    public bool IsVideo => _model is IVideoVaeModel && Family.IsVideo();

    /// <summary>
    /// Encodes a video <c>[N, 3, T, H, W]</c> in [-1, 1] (sides multiples of <see cref="DownsampleFactor"/>) to its
    /// latent <c>[N, C, 1 + (T - 1) / 4, H/f, W/f]</c> (f = 8, or 16 for Wan 2.2), as diffusers' AutoencoderKLWan: the first frame alone, then
    /// chunks of 4. T must be 1 + 4k unless <see cref="EncodeOptions.DropTrailingFrames"/>. Frames stream through the
    /// model one at a time, so memory does not grow with T. Untiled, or with <see cref="TilingMode.Exact"/> (auto: when
    /// the untiled pass's dry run exceeds <see cref="VaeOptions.MemoryLimitBytes"/> or the free memory) in strips of
    /// every layer over an activation space (a file beside the CPU backend), equal to untiled.
    /// </summary>
    /// <exception cref="ArgumentException">not a video family, another shape, frames that would be dropped, sides not multiples of the factor, non-finite values, or blend tiling asked for.</exception>
    public HostTensor<float> EncodeVideo(HostTensor<float> video, EncodeOptions? options = null) =>
        EncodeVideoAsync(video, options).GetAwaiter().GetResult();

    /// <inheritdoc cref="EncodeVideo"/>
    public Task<HostTensor<float>> EncodeVideoAsync(HostTensor<float> video, EncodeOptions? options = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(video);
        options ??= new();
        var model = CheckEncodeVideo(video.Shape, options);
        var s = video.Shape;
        InputChecks.RequireFinite(video, "video");
        return RunVideo(model, s, encode: true, options.Tiling, options.TileSize, pipeline => pipeline.Encode(video, options, cancellation), cancellation);
    }

    /// <summary>
    /// Decodes a video latent <c>[N, C, T', h, w]</c> to the video <c>[N, 3, 1 + 4(T' - 1), h*f, w*f]</c> in [-1, 1]
    /// (clamped, as diffusers' _decode), computing <c>latents / scaling_factor + shift_factor</c> first when given.
    /// One latent frame at a time; untiled, or with <see cref="TilingMode.Exact"/> as <see cref="EncodeVideo"/>.
    /// </summary>
    /// <exception cref="ArgumentException">not a video family, another shape, non-finite values, frames over the pixel limit, or blend tiling asked for.</exception>
    public HostTensor<float> DecodeVideo(HostTensor<float> latents, DecodeOptions? options = null) =>
        DecodeVideoAsync(latents, options).GetAwaiter().GetResult();

    /// <inheritdoc cref="DecodeVideo"/>
    public Task<HostTensor<float>> DecodeVideoAsync(HostTensor<float> latents, DecodeOptions? options = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(latents);
        options ??= new();
        var model = CheckDecodeVideo(latents.Shape, options);
        var s = latents.Shape;
        InputChecks.RequireFinite(latents, "latents");
        return RunVideo(model, s, encode: false, options.Tiling, options.TileSize, pipeline => pipeline.Decode(latents, options, cancellation), cancellation);
    }

    /// <summary>One video call on the backend its tiling asks for (the device, or exact tiling's executor, ended after the call).</summary>
    private Task<HostTensor<float>> RunVideo(IVideoVaeModel model, TensorShape input, bool encode, TilingMode tiling, int? tile,
        Func<VideoPipeline, HostTensor<float>> run, CancellationToken cancellation) =>
        Task.Run(() => Locked(() =>
        {
            var ops = _pipeline.VideoOps(model, VideoFrames.FrameShape(input), encode, tiling, tile, _options.MemoryLimitBytes);
            try
            {
                return run(new VideoPipeline(model, ops));
            }
            finally
            {
                _pipeline.EndOps(ops);
            }
        }), cancellation);

    /// <summary>
    /// What <see cref="EncodeVideo"/> of a video of <paramref name="video"/> <c>[N, 3, T, H, W]</c> would do with
    /// <paramref name="options"/>: checked as the call checks them, its tiling and FLOPs from a dry run of a few
    /// frames, nothing run. Waits for a running call.
    /// </summary>
    /// <exception cref="ArgumentException">the shape or an option is refused, as the call would refuse it.</exception>
    public VaeCallPlan PlanEncodeVideo(TensorShape video, EncodeOptions? options = null)
    {
        options ??= new();
        var model = CheckEncodeVideo(video, options);
        int latentFrames = model.LatentFrames(video[VideoFrames.FrameAxis]);
        return Locked(() => _pipeline.EstimateVideo(model, VideoFrames.FrameShape(video), encode: true, latentFrames, options.Tiling, options.TileSize,
            _options.MemoryLimitBytes));
    }

    /// <summary>What <see cref="DecodeVideo"/> of latents of <paramref name="latents"/> <c>[N, C, T', h, w]</c> would do, as <see cref="PlanEncodeVideo"/>.</summary>
    /// <exception cref="ArgumentException">the shape or an option is refused, as the call would refuse it.</exception>
    public VaeCallPlan PlanDecodeVideo(TensorShape latents, DecodeOptions? options = null)
    {
        options ??= new();
        var model = CheckDecodeVideo(latents, options);
        return Locked(() => _pipeline.EstimateVideo(model, VideoFrames.FrameShape(latents), encode: false, latents[VideoFrames.FrameAxis], options.Tiling,
            options.TileSize, _options.MemoryLimitBytes));
    }

    /// <summary>The checks of a video encode that need no values; the video model.</summary>
    private IVideoVaeModel CheckEncodeVideo(TensorShape s, EncodeOptions options)
    {
        var model = VideoModel("video");
        if (s.Rank != VideoFrames.Rank || s[1] != OpShapes.RgbChannels)
            throw new ArgumentException($"video must be [N, 3, T, H, W], got {s}");
        RequireVideoSides(s, "video", 1);
        int frames = s[VideoFrames.FrameAxis], used = model.UsableFrames(frames);
        if (used != frames && !options.DropTrailingFrames)
            throw new ArgumentException(
                $"video {s} has {frames} frames; {Family.Name()} encodes 1 + {QwenImageConfig.ChunkFrames}k, so the last {frames - used} would be dropped " +
                $"(as diffusers drops them): give {used} or {used + QwenImageConfig.ChunkFrames} frames, or set EncodeOptions.DropTrailingFrames");
        if (options.Form != LatentForm.Raw) throw new ArgumentException($"EncodeOptions.Form {options.Form}: video latents are raw only");
        RequireVideoTiling(options.Tiling, options.TileSize, "EncodeOptions");
        return model;
    }

    /// <summary>The checks of a video decode that need no values; the video model.</summary>
    private IVideoVaeModel CheckDecodeVideo(TensorShape s, DecodeOptions options)
    {
        var model = VideoModel("video latents");
        if (s.Rank != VideoFrames.Rank || s[1] != LatentChannels)
            throw new ArgumentException($"video latents must be [N, {LatentChannels}, T', h, w], got {s}");
        RequireVideoSides(s, "video latents", DownsampleFactor);
        RequireVideoTiling(options.Tiling, options.TileSize, "DecodeOptions");
        return model;
    }

    /// <summary>The frames of a <paramref name="frames"/>-frame video that <see cref="EncodeVideo"/> uses: 1 + 4k (a video family only).</summary>
    public int UsableFrames(int frames) => VideoModel("video").UsableFrames(frames);

    /// <summary>The latent frames <see cref="EncodeVideo"/> makes of a <paramref name="frames"/>-frame video (a video family only).</summary>
    public int LatentFrames(int frames) => VideoModel("video").LatentFrames(frames);

    private IVideoVaeModel VideoModel(string what) =>
        IsVideo ? (IVideoVaeModel)_model
        : throw new ArgumentException($"{what}: {Family.Name()} is an image VAE; video needs a video family (wan, wan22)");

    /// <summary>Every dimension at least 1, each frame within the pixel cap, and (for pixels) sides multiples of the factor.</summary>
    private void RequireVideoSides(TensorShape s, string what, int pixelsPerElement)
    {
        InputChecks.RequireNonEmpty(s, what);
        long height = (long)s[3] * pixelsPerElement, width = (long)s[4] * pixelsPerElement;
        if (height * width > _options.MaxImagePixels)
            throw new ArgumentException($"{what} {s}: frames of {width}x{height} exceed the limit of {_options.MaxImagePixels} pixels (VaeOptions.MaxImagePixels)");
        if (pixelsPerElement == 1 && (s[3] % DownsampleFactor != 0 || s[4] % DownsampleFactor != 0))
            throw new ArgumentException($"{what} {s}: height and width must be multiples of {DownsampleFactor}");
    }

    /// <summary>Video tiles exactly or not at all: a blend would put seams in every frame, and flicker between them.</summary>
    private void RequireVideoTiling(TilingMode tiling, int? tile, string options)
    {
        TilingPlan.RequireTile(tiling, tile, _pipeline.SmallestExactTile);
        if (tiling == TilingMode.Blend)
            throw new ArgumentException($"{options}.Tiling {tiling}: video runs untiled or with exact tiles (TilingMode.Exact), which equal untiled; blended tiles would seam every frame");
    }


    // ---- planning -----------------------------------------------------------------------------------------------

    /// <summary>
    /// What <see cref="Encode(HostTensor{float}, EncodeOptions?)"/> of images of <paramref name="images"/>
    /// <c>[N, 3, H, W]</c> would do with <paramref name="options"/>: checked as the call checks them, nothing run.
    /// Waits for a running call (the dry run shares the model).
    /// </summary>
    /// <exception cref="ArgumentException">the shape or an option is refused, as the call would refuse it.</exception>
    /// <exception cref="InsufficientMemoryException">the call would not fit the memory budget.</exception>
    public VaeCallPlan PlanEncode(TensorShape images, EncodeOptions? options = null)
    {
        InputChecks.RequireImages(images, _options.MaxImagePixels, "VaeOptions.MaxImagePixels");
        options ??= new();
        var input = ImageTensorSize.AtMultiple(images, DownsampleFactor);
        return Locked(() => _pipeline.Estimate(input, encode: true, options.Tiling, options.TileSize, _options.MemoryLimitBytes));
    }

    /// <summary>
    /// What <see cref="Decode"/> of latents of <paramref name="latents"/> (<c>[N, C, h, w]</c>, or packed with the
    /// options' height and width) would do with <paramref name="options"/>: checked as the call checks them, nothing
    /// run. Waits for a running call.
    /// </summary>
    /// <exception cref="ArgumentException">the shape or an option is refused, as the call would refuse it.</exception>
    /// <exception cref="InsufficientMemoryException">the call would not fit the memory budget.</exception>
    public VaeCallPlan PlanDecode(TensorShape latents, DecodeOptions? options = null)
    {
        options ??= new();
        var z = DecodableShape(latents, options);
        return Locked(() => _pipeline.Estimate(z, encode: false, options.Tiling, options.TileSize, _options.MemoryLimitBytes));
    }

    /// <summary>What <see cref="TilingMode.Auto"/> chooses for this input (see <see cref="TilingPlan.Choose"/>); for tests.</summary>
    internal (TilingMode Mode, int? Tile) PlanAuto(HostTensor<float> input, bool encode)
    {
        var plan = _pipeline.Plan(input.Shape, encode, TilingMode.Auto, null, _options.MemoryLimitBytes);
        return (plan.Mode, plan.Tile);
    }

    /// <summary>The exact tile floor (tests of tiling on tiny images lower it).</summary>
    internal int SmallestExactTile
    {
        get => _pipeline.SmallestExactTile;
        init => _pipeline.SmallestExactTile = value;
    }

    /// <summary>The directory of exact tiling's activation store on a host-memory backend (tests); the temp directory when null.</summary>
    internal string? ExactStoreDirectory
    {
        get => _pipeline.ExactStoreDirectory;
        set => _pipeline.ExactStoreDirectory = value;
    }

    /// <summary>The size of the last exact call's activation space (tests compare it with the plan).</summary>
    internal long LastExactSpaceBytes => _pipeline.LastExactSpaceBytes;

    /// <summary>This input shape's dry-run figures, as the calls plan from them (measured once per shape).</summary>
    internal AutoTilingFigures Figures(TensorShape input, bool encode) => Locked(() => _pipeline.Figures(input, encode));

    /// <summary>The size exact tiling's store is planned to reach for this input (after a plan or call of it).</summary>
    internal long PlannedStoreBytes(TensorShape input, bool encode) => _pipeline.PlannedStoreBytes(input, encode);

    // ---- locking ------------------------------------------------------------------------------------------------

    private T Locked<T>(Func<T> work)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _gate.Wait();
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return work();
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Frees the weights and, unless shared, the device; waits for a running call to finish.</summary>
    public void Dispose()
    {
        _gate.Wait();
        try
        {
            if (_disposed) return;
            _disposed = true;
            var backend = _model.Backend;
            _pipeline.ReleaseMemory();
            _model.Dispose();
            if (_ownsBackend) backend.Dispose();
        }
        finally
        {
            _gate.Release();
        }
    }
}
