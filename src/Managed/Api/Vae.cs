using NativeVae.Api;
using NativeVae.Backends;
using NativeVae.Backends.Ilgpu;
using NativeVae.Imaging;
using NativeVae.Models;
using NativeVae.Models.AutoencoderKl;
using NativeVae.Models.Taesd;
using NativeVae.Weights;
using NativeVae.Tensors;
using NativeVae.Tiling;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

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
/// latents <c>[N, seq, 64]</c> for decode.
/// </para>
/// </summary>
public sealed class Vae : IDisposable
{
    /// <summary>Budget share of the device's memory that <see cref="TilingMode.Auto"/> plans to use.</summary>
    private const double UsableMemoryFraction = 0.8;

    /// <summary>Exact tiling's default output tile edge, in elements of each layer.</summary>
    private const int DefaultExactTile = 256;

    private const int SmallestExactTile = 4;

    private readonly IVaeModel _model;
    private readonly VaeOptions _options;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly bool _ownsBackend;
    private bool _disposed;

    /// <param name="ownsBackend">Dispose the model's backend with this instance (false when the backend is shared).</param>
    internal Vae(IVaeModel model, VaeOptions options, float? scalingFactor, float? shiftFactor, bool ownsBackend = true)
    {
        _model = model;
        _ownsBackend = ownsBackend;
        _options = options;
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
        if (options.DType != DType.F32)
            throw new NotSupportedException($"dtype {options.DType}: the kernels store and compute fp32 only (fp16 storage is not implemented yet)");
        var loaded = VaeLoader.Open(path, new VaeLoadOptions(options.Family));
        IBackend? backend = null;
        try
        {
            backend = BackendFactory.Create(options.Device);
            IVaeModel model;
            if (loaded.KlConfig is { } kl)
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
    public ModelFamily Family { get; private init; }

    /// <summary>The device running the model, e.g. "ILGPU CUDA (NVIDIA H100)".</summary>
    public string DeviceName => _model.Backend.Name;

    public int LatentChannels => _model.LatentChannels;

    /// <summary>Pixels per latent element along each axis.</summary>
    public int DownsampleFactor => _model.DownsampleFactor;

    /// <summary>The family's published scaling factor (pass it in the options to apply it, as with diffusers).</summary>
    public float? ScalingFactor { get; }

    /// <summary>The family's published shift factor (FLUX.1: 0.1159), or null.</summary>
    public float? ShiftFactor { get; }

    /// <summary>Peak device bytes so far (parameters, activations and the buffer pool).</summary>
    public long PeakDeviceBytes => _model.Backend.Memory.PeakBytes;

    // ---- encode -------------------------------------------------------------------------------------------------

    /// <summary>Encodes one image file (PNG, JPEG, WebP or BMP) to a latent [1, C, H/8, W/8].</summary>
    /// <exception cref="InvalidDataException">the file is not an accepted image, is corrupt, or is over the pixel limit.</exception>
    public HostTensor<float> Encode(string imagePath, EncodeOptions? options = null)
    {
        using var image = ImageInput.Load(imagePath, _options.MaxImagePixels);
        return Encode([image], options);
    }

    /// <summary>Encodes one image from a stream; <paramref name="name"/> names it in errors.</summary>
    public HostTensor<float> Encode(Stream imageStream, EncodeOptions? options = null, string name = "image stream")
    {
        using var image = ImageInput.Load(imageStream, name, _options.MaxImagePixels);
        return Encode([image], options);
    }

    /// <summary>Encodes a batch of images of one size (any pixel type: RGBA and grayscale become RGB).</summary>
    public HostTensor<float> Encode(IReadOnlyList<Image> images, EncodeOptions? options = null)
    {
        var (bytes, height, width) = PrepareImages(images);
        return Locked(() =>
        {
            using var t = _model.Backend.ImageToTensor(bytes, images.Count, height, width, ImageScale, ImageShift);
            return EncodeCore(Download(t), options ?? new(), CancellationToken.None);
        });
    }

    /// <summary>Encodes images given as a tensor [N, 3, H, W] in [-1, 1].</summary>
    public HostTensor<float> Encode(HostTensor<float> images, EncodeOptions? options = null) =>
        EncodeAsync(images, options).GetAwaiter().GetResult();

    /// <inheritdoc cref="Encode(HostTensor{float}, EncodeOptions?)"/>
    public Task<HostTensor<float>> EncodeAsync(HostTensor<float> images, EncodeOptions? options = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Shape.Rank != 4 || images.Shape.C != OpShapes.RgbChannels)
            throw new ArgumentException($"images must be [N, 3, H, W], got {images.Shape}", nameof(images));
        return Task.Run(() => Locked(() => EncodeCore(ToModelRange(images), options ?? new(), cancellation)), cancellation);
    }

    /// <summary>Encodes one image file asynchronously.</summary>
    public Task<HostTensor<float>> EncodeAsync(string imagePath, EncodeOptions? options = null, CancellationToken cancellation = default) =>
        Task.Run(() => Encode(imagePath, options), cancellation);

    // ---- decode -------------------------------------------------------------------------------------------------

    /// <summary>
    /// Decodes latents [N, C, h, w], or packed FLUX latents [N, seq, 64] with <see cref="DecodeOptions.Height"/> and
    /// <see cref="DecodeOptions.Width"/>, computing <c>latents / scaling_factor + shift_factor</c> first (each when given).
    /// </summary>
    /// <exception cref="ArgumentException">the latents' shape does not fit the model, or packed latents lack height/width.</exception>
    public DecodeResult Decode(HostTensor<float> latents, DecodeOptions? options = null) =>
        DecodeAsync(latents, options).GetAwaiter().GetResult();

    /// <inheritdoc cref="Decode"/>
    public Task<DecodeResult> DecodeAsync(HostTensor<float> latents, DecodeOptions? options = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(latents);
        options ??= new();
        var z = latents.Shape.Rank == 3
            ? FluxLatentPacking.Unpack(latents, options.Height, options.Width)
            : new HostTensor<float>(latents.Shape, (float[])latents.Data.Clone());
        if (z.Shape.Rank != 4 || z.Shape.C != LatentChannels)
            throw new ArgumentException($"latents must be [N, {LatentChannels}, h, w] (or packed [N, seq, {LatentChannels * 4}]), got {latents.Shape}", nameof(latents));
        LatentScaling.BeforeDecode(z.Data, options.ScalingFactor, options.ShiftFactor);
        return Task.Run(() => Locked(() => DecodeCore(z, options, cancellation)), cancellation);
    }

    // ---- the work -----------------------------------------------------------------------------------------------

    private HostTensor<float> EncodeCore(HostTensor<float> images, EncodeOptions options, CancellationToken cancellation)
    {
        var moments = Run(images, encode: true, options.Tiling, options.TileSize, options.Progress, cancellation);
        var latent = !_model.EncodesMoments ? moments
            : options.SampleSeed is { } seed ? LatentDistribution.Sample(moments, seed) : LatentDistribution.Mode(moments);
        LatentScaling.AfterEncode(latent.Data, options.ScalingFactor, options.ShiftFactor);
        return latent;
    }

    /// <summary>The encoder's raw output (moments for AutoencoderKL) with the chosen tiling; for parity tests.</summary>
    internal HostTensor<float> EncodeMoments(HostTensor<float> images, EncodeOptions options) =>
        Locked(() => Run(ToModelRange(images), encode: true, options.Tiling, options.TileSize, options.Progress, CancellationToken.None));

    private DecodeResult DecodeCore(HostTensor<float> latents, DecodeOptions options, CancellationToken cancellation)
    {
        var image = Run(latents, encode: false, options.Tiling, options.TileSize, options.Progress, cancellation);
        var s = image.Shape;
        if (options.Output == DecodeOutput.FloatTensor)
            return new DecodeResult(options.Output) { FloatTensor = FromModelRange(image) };

        var rgb = new byte[s.ElementCount];
        using (var t = _model.Backend.Upload(image.Data, s))
            _model.Backend.TensorToImage(t, rgb, PixelScale, PixelShift);
        if (options.Output == DecodeOutput.UInt8Tensor)
            return new DecodeResult(options.Output) { UInt8Tensor = new HostTensor<byte>(new TensorShape(s.N, s.H, s.W, OpShapes.RgbChannels), rgb) };

        int imageBytes = s.H * s.W * OpShapes.RgbChannels;
        var images = new List<Image<Rgb24>>(s.N);
        for (int n = 0; n < s.N; n++) images.Add(ImageOutput.FromBytes(rgb.AsSpan(n * imageBytes, imageBytes), s.W, s.H));
        if (options.Output == DecodeOutput.Images) return new DecodeResult(options.Output) { Images = images };

        var encoded = images.Select(i => ImageOutput.Encode(i, options.ImageFormat, options.JpegQuality)).ToList();
        foreach (var i in images) i.Dispose();
        return new DecodeResult(options.Output) { EncodedImages = encoded };
    }

    /// <summary>Runs encode (images -> moments) or decode (latents -> images) with the chosen tiling.</summary>
    private HostTensor<float> Run(HostTensor<float> input, bool encode, TilingMode tiling, int? tileSize,
        IProgress<VaeProgress>? progress, CancellationToken cancellation)
    {
        if (tileSize is <= 0) throw new ArgumentOutOfRangeException(nameof(tileSize), tileSize, "tile size must be positive");
        int factor = _model.DownsampleFactor;
        if (tiling == TilingMode.Auto) (tiling, tileSize) = PlanAuto(input, encode);
        using var call = _model.Backend.BeginCall($"{(encode ? "encode" : "decode")} {input.Shape} {tiling} {tileSize}");
        switch (tiling)
        {
            case TilingMode.None:
                return RunWhole(_model.Backend, input, encode, progress, cancellation);
            case TilingMode.Exact:
            {
                // The caller's tile is in pixels; each layer tiles its own output with that many elements.
                var ops = new ExactTilingBackend(_model.Backend, tileSize ?? DefaultExactTile);
                return RunWhole(ops, input, encode, progress, cancellation);
            }
            case TilingMode.Blend:
            {
                int sampleTile = tileSize ?? _model.SampleSize;
                int latentTile = sampleTile / factor;
                if (latentTile <= 0) throw new ArgumentException($"blend tile {sampleTile} is smaller than the downsampling factor {factor}");
                int inputTile = encode ? sampleTile : latentTile;
                // diffusers tiles only inputs larger than one tile.
                if (input.Shape.H <= inputTile && input.Shape.W <= inputTile)
                    return RunWhole(_model.Backend, input, encode, progress, cancellation);
                var tileProgress = progress is null ? null : new Progress<(int Done, int Total)>(p => progress.Report(new VaeProgress(p.Done, p.Total)));
                return BlendTiling.Run(input, inputTile, encode ? latentTile : sampleTile,
                    tile => RunWhole(_model.Backend, tile, encode, null, cancellation), tileProgress, cancellation);
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(tiling), tiling, "unknown tiling mode");
        }
    }

    private HostTensor<float> RunWhole(IBackend ops, HostTensor<float> input, bool encode, IProgress<VaeProgress>? progress,
        CancellationToken cancellation)
    {
        int blocks = CountBlocks(input.Shape, encode);
        int done = 0;
        BlockObserver observe = (_, _) =>
        {
            cancellation.ThrowIfCancellationRequested();
            progress?.Report(new VaeProgress(++done, blocks));
        };
        using var x = ops.Upload(input.Data, input.Shape);
        using var y = encode ? _model.Encode(ops, x, observe) : _model.Decode(ops, x, observe);
        return Download(y, ops);
    }

    /// <summary>How many observed blocks a run has (for progress), from a dry run.</summary>
    private int CountBlocks(TensorShape shape, bool encode)
    {
        using var dry = new DryRunBackend();
        int count = 0;
        using var x = dry.Allocate(shape);
        using var y = encode ? _model.Encode(dry, x, (_, _) => count++) : _model.Decode(dry, x, (_, _) => count++);
        return count;
    }

    /// <summary>
    /// Auto tiling: untiled when the dry-run peak of activations fits the budget, else exact tiling with the
    /// largest power-of-two tile whose worst convolution step (plus the attention) fits.
    /// </summary>
    internal (TilingMode Mode, int? Tile) PlanAuto(HostTensor<float> input, bool encode)
    {
        long budget = MemoryBudget();
        // The CPU backend applies GroupNorm inside the convolution that follows it (IBackend.NormConv2d).
        using var dry = new DryRunBackend { FusesNormIntoConv = _model.Backend.Kind == BackendKind.Cpu };
        using (var x = dry.Allocate(input.Shape))
        using (encode ? _model.Encode(dry, x) : _model.Decode(dry, x)) { }
        if (dry.PeakBytes <= budget) return (TilingMode.None, null);
        for (int tile = DefaultExactTile; tile >= SmallestExactTile; tile /= 2)
        {
            long need = Math.Max(dry.MaxAttentionBytes, dry.Convolutions.Max(c => c.TileBytes(tile)));
            if (need <= budget) return (TilingMode.Exact, tile);
        }
        throw new InsufficientMemoryException(
            $"{input.Shape}: even {SmallestExactTile}-element tiles need more than the {budget} bytes available; raise MemoryLimitBytes");
    }

    /// <summary>Bytes a call's activations may take: the caller's limit, else a share of the device's free memory.</summary>
    private long MemoryBudget()
    {
        if (_options.MemoryLimitBytes is { } limit) return limit;
        long total = _model.Backend is IlgpuBackend { Kind: BackendKind.IlgpuCuda } gpu
            ? gpu.Accelerator.MemorySize
            : GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        return (long)(total * UsableMemoryFraction) - _model.Backend.Memory.LiveBytes;
    }

    // ---- pixel ranges -------------------------------------------------------------------------------------------

    private bool ZeroToOne => _model.ImageRange == ImageRange.ZeroToOne;

    /// <summary>ImageToTensor's mapping of pixel/255 into the model's range.</summary>
    private float ImageScale => ZeroToOne ? 1f : 2f;

    private float ImageShift => ZeroToOne ? 0f : -1f;

    /// <summary>TensorToImage's mapping of the model's range back to [0, 1].</summary>
    private float PixelScale => ZeroToOne ? 1f : 0.5f;

    private float PixelShift => ZeroToOne ? 0f : 0.5f;

    /// <summary>API tensors are in [-1, 1]; TAESD models work in [0, 1].</summary>
    private HostTensor<float> ToModelRange(HostTensor<float> images) =>
        Affine(images, ZeroToOne ? 0.5f : 1f, ZeroToOne ? 0.5f : 0f);

    private HostTensor<float> FromModelRange(HostTensor<float> images) =>
        ZeroToOne ? Affine(images, 2f, -1f) : images;

    private HostTensor<float> Affine(HostTensor<float> x, float scale, float shift)
    {
        using var t = _model.Backend.Upload(x.Data, x.Shape);
        using var y = _model.Backend.ScaleShift(t, scale, shift);
        return Download(y);
    }

    // ---- helpers ------------------------------------------------------------------------------------------------

    private (byte[] Bytes, int Height, int Width) PrepareImages(IReadOnlyList<Image> images)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Count == 0) throw new ArgumentException("no images to encode", nameof(images));
        byte[]? all = null;
        int height = 0, width = 0;
        for (int i = 0; i < images.Count; i++)
        {
            var source = images[i] ?? throw new ArgumentNullException(nameof(images), $"image {i} is null");
            if ((long)source.Width * source.Height > _options.MaxImagePixels)
                throw new ArgumentException($"image {i}: {source.Width}x{source.Height} exceeds the limit of {_options.MaxImagePixels} pixels");
            using var rgb = ImageInput.ToRgb(source);
            var sized = ImageInput.ResizeToMultiple(rgb, _model.DownsampleFactor);
            try
            {
                if (i == 0)
                {
                    (height, width) = (sized.Height, sized.Width);
                    all = new byte[checked((long)images.Count * height * width * OpShapes.RgbChannels)];
                }
                else if (sized.Height != height || sized.Width != width)
                    throw new ArgumentException($"image {i} is {sized.Width}x{sized.Height} after resizing, image 0 is {width}x{height}: a batch needs one size");
                sized.CopyPixelDataTo(all.AsSpan(i * height * width * OpShapes.RgbChannels, height * width * OpShapes.RgbChannels));
            }
            finally
            {
                if (!ReferenceEquals(sized, rgb)) sized.Dispose();
            }
        }
        return (all!, height, width);
    }

    private HostTensor<float> Download(Tensor t, IBackend? ops = null)
    {
        var result = new HostTensor<float>(t.Shape);
        (ops ?? _model.Backend).Download(t, result.Data);
        return result;
    }

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

    public void Dispose()
    {
        _gate.Wait();
        try
        {
            if (_disposed) return;
            _disposed = true;
            var backend = _model.Backend;
            _model.Dispose();
            if (_ownsBackend) backend.Dispose();
        }
        finally
        {
            _gate.Release();
        }
    }
}
