using NativeVae.Models.QwenImage;
using System.Net.Http.Headers;
using NativeVae.Api;
using NativeVae.Core;
using NativeVae.Imaging;
using NativeVae.Remote;

namespace NativeVae;

/// <summary>
/// <see cref="IVae"/> over a hybrid-inference endpoint: the client side of diffusers' <c>remote_decode</c> /
/// <c>remote_encode</c> protocol, for Hugging Face's published endpoints (<see cref="RemoteEndpoints"/>) or a NativeVae
/// server. Each call is one HTTP POST (one per image for <see cref="DecodeOutput.EncodedImages"/>, since such a reply
/// holds one image) whose query string is what diffusers sends for the same call, plus NativeVae's extensions
/// (<c>tiling</c>, <c>tile_size</c>, <c>jpeg_quality</c>, <c>sample_seed</c>) only when they differ from the defaults.
/// <para>
/// Results equal a local <see cref="Vae"/>'s for the same model: images are built from the endpoint's uint8 pixels
/// exactly as the local decode builds them. The options' <c>Progress</c> receives nothing: the protocol reports no
/// progress. Replies are not trusted: their shape and dtype headers are checked against the request, and their bodies
/// are read only up to the size those allow.
/// </para>
/// <para>Thread safety: calls hold no shared state besides the <see cref="HttpClient"/>, and may run in parallel.</para>
/// </summary>
public sealed class RemoteVae : IVae
{
    /// <summary>Every published VAE family downsamples 8x.</summary>

    private const int MinJpegQuality = 1;
    private const int MaxJpegQuality = 100;

    /// <summary>A PNG holds at most about 3 bytes a pixel plus a filter byte a row and deflate's stored-block framing.</summary>
    private const int MaxEncodedBytesPerPixel = 4;

    /// <summary>Room for an encoded image's headers and metadata beyond its pixels.</summary>
    private const int EncodedImageOverheadBytes = 1 << 20;

    private const string ShapeHeader = "shape";
    private const string DTypeHeader = "dtype";
    private const string AnyContentType = "*/*";

    private readonly HttpClient _http;
    private readonly bool _ownsHttp;
    private readonly RemoteVaeOptions _options;
    private volatile bool _disposed;

    /// <summary>A client with its own <see cref="HttpClient"/>, disposed with it.</summary>
    /// <param name="options">The endpoint and how to call it.</param>
    /// <exception cref="ArgumentException">an option is invalid; the message names it.</exception>
    public RemoteVae(RemoteVaeOptions options) : this(options, http: null) { }

    /// <summary>
    /// A client over the caller's <see cref="HttpClient"/>, which it does not dispose: the typed-client shape of
    /// <c>services.AddHttpClient&lt;RemoteVae&gt;()</c>. The client's own <see cref="HttpClient.Timeout"/> still applies
    /// beside <see cref="RemoteVaeOptions.Timeout"/>; <see cref="HttpClient.BaseAddress"/> is not used.
    /// </summary>
    /// <param name="httpClient">The client to send with.</param>
    /// <param name="options">The endpoint and how to call it.</param>
    /// <exception cref="ArgumentException">an option is invalid; the message names it.</exception>
    public RemoteVae(HttpClient httpClient, RemoteVaeOptions options) : this(options, httpClient ?? throw new ArgumentNullException(nameof(httpClient))) { }

    private RemoteVae(RemoteVaeOptions options, HttpClient? http)
    {
        Validate(options);
        _options = options;
        _ownsHttp = http is null;
        // The call's deadline is RemoteVaeOptions.Timeout, over all retries; HttpClient's 100 s must not cut it short.
        _http = http ?? new HttpClient { Timeout = Timeout.InfiniteTimeSpan };
        Transport = new RemoteTransport(_http, options);
        Family = options.Family;
        LatentChannels = Family.LatentChannels();
        ScalingFactor = Family.PublishedScalingFactor();
        ShiftFactor = Family.PublishedShiftFactor();
    }

    /// <summary>The HTTP side (retries, deadline, bodies); internal so that tests can replace its waits.</summary>
    internal RemoteTransport Transport { get; }

    /// <summary>The endpoint this client calls.</summary>
    public Uri Endpoint => _options.Endpoint;

    /// <summary>The family the endpoint serves (<see cref="RemoteVaeOptions.Family"/>).</summary>
    public ModelFamily Family { get; }

    /// <summary>Channels of the family's latent (4 for SD and SDXL, 16 for FLUX.1).</summary>
    public int LatentChannels { get; }

    /// <summary>Pixels per latent element along each axis: 8.</summary>
    public int DownsampleFactor => Downsample;

    /// <summary>Pixels per latent element along each axis: the family's.</summary>
    private int Downsample => Family.DownsampleFactor();

    /// <summary>The family's published scaling factor (pass it in the options to have the endpoint apply it).</summary>
    public float? ScalingFactor { get; }

    /// <summary>The family's published shift factor (FLUX.1: 0.1159), or null.</summary>
    public float? ShiftFactor { get; }

    // ---- encode -------------------------------------------------------------------------------------------------

    /// <summary>
    /// Encodes images <c>[N, 3, H, W]</c> in [-1, 1] remotely: their bytes in <see cref="RemoteVaeOptions.LatentDType"/>
    /// with <c>shape</c> and <c>dtype</c> in the query. Returns <c>[N, C, H/8, W/8]</c>, <c>(z - shift) * scale</c> for
    /// the factors given.
    /// </summary>
    /// <exception cref="ArgumentException">the tensor or an option is invalid; the message names it.</exception>
    /// <exception cref="RemoteVaeException">the endpoint answered with an error status.</exception>
    /// <exception cref="TimeoutException">no reply within <see cref="RemoteVaeOptions.Timeout"/>.</exception>
    /// <exception cref="InvalidDataException">the reply's <c>shape</c>/<c>dtype</c> headers or body do not fit the request.</exception>
    /// <exception cref="HttpRequestException">no connection after the retries.</exception>
    public Task<HostTensor<float>> EncodeAsync(HostTensor<float> images, EncodeOptions? options = null, CancellationToken cancellation = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(images);
        options ??= new();
        var s = images.Shape;
        InputChecks.RequireImages(s, _options.MaxImagePixels, "RemoteVaeOptions.MaxImagePixels");
        CheckEncodeOptions(options);
        InputChecks.RequireFinite(images, "images");
        var uri = RequestUri(EncodeQuery(s, options));
        byte[] body = WireTensor.FromFloat(images, _options.LatentDType);
        return Transport.RunAsync(call => EncodeAsync(uri, body, WireTensor.BinaryContentType, s.N, s.H, s.W, call), cancellation);
    }

    /// <summary>
    /// Encodes one image file (PNG, JPEG, WebP or BMP, checked and held to the pixel limit as the local encode does)
    /// to a latent <c>[1, C, H/8, W/8]</c>. It is sent as PNG bytes with no Content-Type, as diffusers sends an image:
    /// a PNG file as it is, any other format re-encoded as PNG (lossless).
    /// </summary>
    /// <exception cref="FileNotFoundException">no file at <paramref name="imagePath"/>.</exception>
    /// <exception cref="InvalidDataException">the file is not an accepted image, is corrupt, or is over the pixel limit; or the reply does not fit.</exception>
    /// <exception cref="RemoteVaeException">the endpoint answered with an error status.</exception>
    /// <exception cref="TimeoutException">no reply within <see cref="RemoteVaeOptions.Timeout"/>.</exception>
    public async Task<HostTensor<float>> EncodeAsync(string imagePath, EncodeOptions? options = null, CancellationToken cancellation = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(imagePath);
        options ??= new();
        CheckEncodeOptions(options);
        var uri = RequestUri(EncodeQuery(shape: null, options));
        var (png, width, height) = await Task.Run(() => LoadAsPng(imagePath), cancellation).ConfigureAwait(false);
        return await Transport.RunAsync(call => EncodeAsync(uri, png, contentType: null, 1, height, width, call), cancellation).ConfigureAwait(false);
    }

    private async Task<HostTensor<float>> EncodeAsync(Uri uri, byte[] body, string? contentType, int count, int height, int width,
        RemoteTransport.Call call)
    {
        using var response = await Transport.SendAsync(() => Post(uri, body, contentType, AnyContentType), call).ConfigureAwait(false);
        // The endpoint may resize an image down to a multiple of 8 first, so a side may be a latent smaller.
        int maxH = (height + Downsample - 1) / Downsample, maxW = (width + Downsample - 1) / Downsample;
        var reply = await ReadTensorAsync(response, uint8: false, $"[{count}, {LatentChannels}, h, w] with h <= {maxH} and w <= {maxW}",
            r => r.Rank == 4 && r.N == count && r.C == LatentChannels && r.H <= maxH && r.W <= maxW, call).ConfigureAwait(false);
        return WireTensor.ToFloat(reply.Body, reply.Shape, reply.DType);
    }

    /// <summary>The file as PNG bytes (itself when it is one), checked and decoded as the local encode does.</summary>
    private (byte[] Png, int Width, int Height) LoadAsPng(string path)
    {
        using var image = ImageInput.Load(path, _options.MaxImagePixels);
        byte[] png = IsPngFile(path) ? File.ReadAllBytes(path) : ImageOutput.Encode(image, ImageFormat.Png);
        return (png, image.Width, image.Height);
    }

    private static bool IsPngFile(string path)
    {
        Span<byte> head = stackalloc byte[sizeof(ulong)];
        using var stream = File.OpenRead(path);
        return ImageInput.IsPng(head[..stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false)]);
    }

    // ---- decode -------------------------------------------------------------------------------------------------

    /// <summary>
    /// Decodes latents <c>[N, C, h, w]</c>, or packed FLUX latents <c>[N, seq, 64]</c> with
    /// <see cref="DecodeOptions.Height"/> and <see cref="DecodeOptions.Width"/>, remotely. The endpoint computes
    /// <c>latents / scaling_factor + shift_factor</c> for the factors given. <see cref="DecodeOutput.FloatTensor"/> asks for
    /// <c>output_type=pt</c>; <see cref="DecodeOutput.UInt8Tensor"/> and <see cref="DecodeOutput.Images"/> for
    /// <c>pt</c> with <c>partial_postprocess=True</c> (the images are built here); <see cref="DecodeOutput.EncodedImages"/>
    /// for <c>pil</c> in <see cref="DecodeOptions.ImageFormat"/>, one request per image.
    /// </summary>
    /// <exception cref="ArgumentException">the latents' shape does not fit the family, packed latents lack height/width, or an option is invalid.</exception>
    /// <exception cref="RemoteVaeException">the endpoint answered with an error status.</exception>
    /// <exception cref="TimeoutException">no reply within <see cref="RemoteVaeOptions.Timeout"/>.</exception>
    /// <exception cref="InvalidDataException">the reply's <c>shape</c>/<c>dtype</c> headers or body do not fit the request.</exception>
    /// <exception cref="HttpRequestException">no connection after the retries.</exception>
    public Task<DecodeResult> DecodeAsync(HostTensor<float> latents, DecodeOptions? options = null, CancellationToken cancellation = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(latents);
        options ??= new();
        var image = CheckDecode(latents, options);
        return options.Output == DecodeOutput.EncodedImages
            ? Transport.RunAsync(call => DecodeFilesAsync(latents, options, image, call), cancellation)
            : Transport.RunAsync(call => DecodeTensorAsync(latents, options, image, call), cancellation);
    }

    /// <param name="image">The decoded images' shape <c>[N, 3, H, W]</c>.</param>
    private async Task<DecodeResult> DecodeTensorAsync(HostTensor<float> latents, DecodeOptions options, TensorShape image,
        RemoteTransport.Call call)
    {
        bool pixels = options.Output != DecodeOutput.FloatTensor;
        var uri = RequestUri(DecodeQuery(latents.Shape, options, outputType: "pt", partialPostprocess: pixels));
        byte[] body = WireTensor.FromFloat(latents, _options.LatentDType);
        using var response = await Transport.SendAsync(() => Post(uri, body, WireTensor.BinaryContentType, WireTensor.BinaryContentType), call)
            .ConfigureAwait(false);
        var expected = pixels ? new TensorShape(image.N, image.H, image.W, OpShapes.RgbChannels) : image;
        var reply = await ReadTensorAsync(response, uint8: pixels, expected.ToString(), r => r.Equals(expected), call).ConfigureAwait(false);
        if (!pixels) return DecodeResult.OfFloatTensor(WireTensor.ToFloat(reply.Body, reply.Shape, reply.DType));
        var rgb = WireTensor.ToBytes(reply.Body, reply.Shape);
        return options.Output == DecodeOutput.UInt8Tensor
            ? DecodeResult.OfUInt8Tensor(rgb)
            : DecodeResult.OfImages(ImageOutput.FromBatch(rgb.Data, image.N, image.H, image.W));
    }

    /// <summary>output_type=pil: a reply holds the first image only, so each image is its own request.</summary>
    private async Task<DecodeResult> DecodeFilesAsync(HostTensor<float> latents, DecodeOptions options, TensorShape image,
        RemoteTransport.Call call)
    {
        bool png = options.ImageFormat == ImageFormat.Png;
        string accept = png ? "image/png" : "image/jpeg";
        long maxBytes = (long)image.H * image.W * MaxEncodedBytesPerPixel + EncodedImageOverheadBytes;
        var files = new List<byte[]>(image.N);
        for (int n = 0; n < image.N; n++)
        {
            var item = BatchItem(latents, n);
            var uri = RequestUri(DecodeQuery(item.Shape, options, outputType: "pil", partialPostprocess: false));
            byte[] body = WireTensor.FromFloat(item, _options.LatentDType);
            using var response = await Transport.SendAsync(() => Post(uri, body, WireTensor.BinaryContentType, accept), call).ConfigureAwait(false);
            byte[] file = await Transport.ReadBodyAsync(response, maxBytes, $"a {image.W}x{image.H} image", call).ConfigureAwait(false);
            if (!(png ? ImageInput.IsPng(file) : ImageInput.IsJpeg(file)))
                throw new InvalidDataException($"{Endpoint}: the reply to image_format={ImageFormatName(options.ImageFormat)} is not a {(png ? "PNG" : "JPEG")} file");
            files.Add(file);
        }
        return DecodeResult.OfEncodedImages(files);
    }

    // ---- video --------------------------------------------------------------------------------------------------

    /// <summary>
    /// Decodes a video latent <c>[N, C, T', h, w]</c> of a video family (wan, wan22) remotely with <c>output_type=pt</c>: the
    /// float video <c>[N, 3, 1 + 4(T' - 1), 8h, 8w]</c> in [-1, 1].
    /// </summary>
    /// <exception cref="ArgumentException">not a video family, or the latents do not fit it.</exception>
    /// <exception cref="RemoteVaeException">the endpoint answered with an error status.</exception>
    /// <exception cref="InvalidDataException">the reply does not fit the request.</exception>
    public Task<HostTensor<float>> DecodeVideoAsync(HostTensor<float> latents, DecodeOptions? options = null, CancellationToken cancellation = default)
    {
        options ??= new();
        var video = CheckVideoDecode(latents, options);
        var uri = RequestUri(DecodeQuery(latents.Shape, options, outputType: "pt", partialPostprocess: false));
        byte[] body = WireTensor.FromFloat(latents, _options.LatentDType);
        return Transport.RunAsync(async call =>
        {
            using var response = await Transport.SendAsync(() => Post(uri, body, WireTensor.BinaryContentType, WireTensor.BinaryContentType), call)
                .ConfigureAwait(false);
            var reply = await ReadTensorAsync(response, uint8: false, video.ToString(), r => r.Equals(video), call).ConfigureAwait(false);
            return WireTensor.ToFloat(reply.Body, reply.Shape, reply.DType);
        }, cancellation);
    }

    /// <summary>
    /// Decodes one video latent <c>[1, C, T', h, w]</c> remotely with <c>output_type=mp4</c>, as diffusers asks the
    /// HunyuanVideo endpoint: the MP4 bytes, at <paramref name="fps"/> frames per second.
    /// </summary>
    /// <exception cref="ArgumentException">not a video family, a batch of more than one, or the latents do not fit.</exception>
    /// <exception cref="RemoteVaeException">the endpoint answered with an error status.</exception>
    /// <exception cref="InvalidDataException">the reply is not an MP4 file.</exception>
    public Task<byte[]> DecodeVideoMp4Async(HostTensor<float> latents, double fps = VideoFiles.DefaultFps, DecodeOptions? options = null,
        CancellationToken cancellation = default)
    {
        options ??= new();
        var video = CheckVideoDecode(latents, options);
        if (video[0] != 1) throw new ArgumentException($"latents {latents.Shape}: an MP4 holds one video; decode one item at a time");
        if (!(fps > 0) || double.IsInfinity(fps)) throw new ArgumentException($"fps {fps} must be a positive number");
        var uri = RequestUri(new PythonQuery().Add("fps", fps.ToString("R", System.Globalization.CultureInfo.InvariantCulture)) + "&" + DecodeQuery(latents.Shape, options, outputType: "mp4", partialPostprocess: false));
        byte[] body = WireTensor.FromFloat(latents, _options.LatentDType);
        // Raw 8-bit frames bound an H.264 file of them from above, with room for the container.
        long maxBytes = video.ElementCount + EncodedImageOverheadBytes;
        return Transport.RunAsync(async call =>
        {
            using var response = await Transport.SendAsync(() => Post(uri, body, WireTensor.BinaryContentType, "text/plain"), call).ConfigureAwait(false);
            byte[] file = await Transport.ReadBodyAsync(response, maxBytes, $"an MP4 of {video}", call).ConfigureAwait(false);
            if (!IsMp4(file)) throw new InvalidDataException($"{Endpoint}: the reply to output_type=mp4 is not an MP4 file");
            return file;
        }, cancellation);
    }

    /// <summary>
    /// Encodes a video <c>[N, 3, T, H, W]</c> in [-1, 1] remotely (a video family): the 5-D latent
    /// <c>[N, C, 1 + (T - 1) / 4, H/8, W/8]</c>. T must be 1 + 4k unless <see cref="EncodeOptions.DropTrailingFrames"/>.
    /// </summary>
    /// <exception cref="ArgumentException">not a video family, another shape, or frames that would be dropped.</exception>
    /// <exception cref="RemoteVaeException">the endpoint answered with an error status.</exception>
    /// <exception cref="InvalidDataException">the reply does not fit the request.</exception>
    public Task<HostTensor<float>> EncodeVideoAsync(HostTensor<float> video, EncodeOptions? options = null, CancellationToken cancellation = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(video);
        options ??= new();
        RequireVideoFamily("video");
        var s = video.Shape;
        if (s.Rank != VideoFrames.Rank || s[1] != OpShapes.RgbChannels)
            throw new ArgumentException($"video must be [N, 3, T, H, W], got {s}");
        InputChecks.RequireNonEmpty(s, "video");
        if (s[3] % Downsample != 0 || s[4] % Downsample != 0)
            throw new ArgumentException($"video {s}: height and width must be multiples of {Downsample}");
        int frames = s[VideoFrames.FrameAxis], used = QwenImageConfig.UsableFrames(frames);
        if (used != frames && !options.DropTrailingFrames)
            throw new ArgumentException($"video {s} has {frames} frames; {Family.Name()} encodes 1 + {QwenImageConfig.ChunkFrames}k, so the last {frames - used} would be dropped: set EncodeOptions.DropTrailingFrames");
        CheckEncodeOptions(options);
        InputChecks.RequireFinite(video, "video");
        string query = EncodeQuery(s, options);
        if (options.DropTrailingFrames) query = new PythonQuery().Add("drop_trailing_frames", true) + "&" + query;
        var uri = RequestUri(query);
        byte[] body = WireTensor.FromFloat(video, _options.LatentDType);
        var expected = new TensorShape(s[0], LatentChannels, WanVideo.LatentFrames(frames), s[3] / Downsample, s[4] / Downsample);
        return Transport.RunAsync(async call =>
        {
            using var response = await Transport.SendAsync(() => Post(uri, body, WireTensor.BinaryContentType, AnyContentType), call).ConfigureAwait(false);
            var reply = await ReadTensorAsync(response, uint8: false, expected.ToString(), r => r.Equals(expected), call).ConfigureAwait(false);
            return WireTensor.ToFloat(reply.Body, reply.Shape, reply.DType);
        }, cancellation);
    }

    /// <summary>The published Wan 2.1 config: its frame counts are the endpoint's.</summary>
    private static QwenImageConfig WanVideo => QwenImageConfig.QwenImage;

    /// <summary>The offset of an MP4 file's first box type, <c>ftyp</c>.</summary>
    private static bool IsMp4(ReadOnlySpan<byte> file) => file.Length >= 8 && file[4..8].SequenceEqual("ftyp"u8);

    private void RequireVideoFamily(string what)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!Family.IsVideo()) throw new ArgumentException($"{what}: {Family.Name()} is an image VAE; video needs a video family (wan, wan22)");
    }

    /// <summary>Checks a video decode before anything is sent; returns the decoded video's shape.</summary>
    private TensorShape CheckVideoDecode(HostTensor<float> latents, DecodeOptions options)
    {
        ArgumentNullException.ThrowIfNull(latents);
        RequireVideoFamily("video latents");
        var s = latents.Shape;
        if (s.Rank != VideoFrames.Rank || s[1] != LatentChannels)
            throw new ArgumentException($"video latents must be [N, {LatentChannels}, T', h, w], got {s}");
        InputChecks.RequireNonEmpty(s, "video latents");
        CheckTiling(options.Tiling, options.TileSize, nameof(DecodeOptions));
        LatentScaling.DecodeAffine(options.ScalingFactor, options.ShiftFactor);
        long height = (long)s[3] * Downsample, width = (long)s[4] * Downsample;
        if (height * width > _options.MaxImagePixels)
            throw new ArgumentException($"video latents {s} decode to frames of {width}x{height}, over the limit of {_options.MaxImagePixels} pixels");
        InputChecks.RequireFinite(latents, "latents");
        return new TensorShape(s[0], OpShapes.RgbChannels, WanVideo.DecodedFrames(s[VideoFrames.FrameAxis]), (int)height, (int)width);
    }

    /// <summary>Item <paramref name="n"/> of a batch, as a batch of one (any rank: packed latents too).</summary>
    private static HostTensor<float> BatchItem(HostTensor<float> batch, int n)
    {
        var dims = batch.Shape.Dims.ToArray();
        if (dims[0] == 1) return batch;
        long itemElements = batch.Data.LongLength / dims[0];
        dims[0] = 1;
        return new HostTensor<float>(new TensorShape(dims), batch.Data.AsSpan(checked((int)(n * itemElements)), checked((int)itemElements)).ToArray());
    }

    /// <summary>Checks a decode before anything is sent; returns the decoded images' shape <c>[N, 3, H, W]</c>.</summary>
    private TensorShape CheckDecode(HostTensor<float> latents, DecodeOptions options)
    {
        if (!Enum.IsDefined(options.Output)) throw new ArgumentException($"DecodeOptions.Output {options.Output} is not a DecodeOutput");
        if (!Enum.IsDefined(options.ImageFormat)) throw new ArgumentException($"DecodeOptions.ImageFormat {options.ImageFormat} is not an ImageFormat");
        if (options.JpegQuality is < MinJpegQuality or > MaxJpegQuality)
            throw new ArgumentException($"DecodeOptions.JpegQuality {options.JpegQuality} must be {MinJpegQuality} to {MaxJpegQuality}");
        if (options.Height <= 0 || options.Width <= 0)
            throw new ArgumentException($"DecodeOptions.Height {options.Height} and Width {options.Width} must be positive");
        CheckTiling(options.Tiling, options.TileSize, nameof(DecodeOptions));
        LatentScaling.DecodeAffine(options.ScalingFactor, options.ShiftFactor);
        // diffusers refuses packed latents without height and width before sending; so does this client. Every form the
        // family has (FLUX.2's, Qwen-Image's frame axis) is sent as it is: the server knows its statistics.
        var (forms, frameAxis) = LatentForms.ShapesOf(Family);
        var z = LatentForms.RawShape(latents.Shape, options, LatentChannels, Downsample, forms, Family.Name(), frameAxis);
        InputChecks.RequireLatents(z, latents.Shape, LatentChannels);
        InputChecks.RequireDecodedSize(z, Downsample, _options.MaxImagePixels);
        InputChecks.RequireFinite(latents, "latents");
        return TensorShape.Nchw(z.N, OpShapes.RgbChannels, z.H * Downsample, z.W * Downsample);
    }

    private static void CheckEncodeOptions(EncodeOptions options)
    {
        if (options.Form != LatentForm.Raw)
            throw new ArgumentException($"EncodeOptions.Form {options.Form}: the hybrid-inference protocol's encode returns raw latents; convert them locally");
        CheckTiling(options.Tiling, options.TileSize, nameof(EncodeOptions));
        LatentScaling.EncodeAffine(options.ScalingFactor, options.ShiftFactor);
    }

    private static void CheckTiling(TilingMode tiling, int? tileSize, string owner)
    {
        if (!Enum.IsDefined(tiling)) throw new ArgumentException($"{owner}.Tiling {tiling} is not a TilingMode");
        if (tileSize <= 0) throw new ArgumentException($"{owner}.TileSize {tileSize} must be positive");
    }

    // ---- the wire -----------------------------------------------------------------------------------------------

    /// <summary>diffusers' <c>prepare</c> of remote_decode, key for key, then NativeVae's extensions when not default.</summary>
    private string DecodeQuery(TensorShape shape, DecodeOptions options, string outputType, bool partialPostprocess)
    {
        var query = new PythonQuery()
            .Add("image_format", ImageFormatName(options.ImageFormat))
            .Add("output_type", outputType)
            .Add("partial_postprocess", partialPostprocess)
            .AddShape(shape)
            .Add("dtype", _options.LatentDType.Name())
            .AddIfGiven("scaling_factor", options.ScalingFactor)
            .AddIfGiven("shift_factor", options.ShiftFactor);
        if (options.Height is { } height && options.Width is { } width) query.Add("height", height).Add("width", width);
        AddTiling(query, options.Tiling, options.TileSize);
        // The quality only shapes a JPEG the endpoint encodes, so it is sent only then.
        if (outputType == "pil" && options.ImageFormat == ImageFormat.Jpeg && options.JpegQuality != ImageFiles.DefaultJpegQuality)
            query.Add("jpeg_quality", options.JpegQuality);
        return query.ToString();
    }

    /// <summary>diffusers' <c>prepare_encode</c>: the factors, then shape and dtype for a tensor; then the extensions.</summary>
    private string EncodeQuery(TensorShape? shape, EncodeOptions options)
    {
        var query = new PythonQuery()
            .AddIfGiven("scaling_factor", options.ScalingFactor)
            .AddIfGiven("shift_factor", options.ShiftFactor);
        if (shape is { } s) query.AddShape(s).Add("dtype", _options.LatentDType.Name());
        AddTiling(query, options.Tiling, options.TileSize);
        query.AddIfGiven("sample_seed", options.SampleSeed);
        return query.ToString();
    }

    private static void AddTiling(PythonQuery query, TilingMode tiling, int? tileSize)
    {
        if (tiling != TilingMode.Auto) query.Add("tiling", tiling.ToString().ToLowerInvariant());
        query.AddIfGiven("tile_size", tileSize);
    }

    private static string ImageFormatName(ImageFormat format) => format == ImageFormat.Png ? "png" : "jpg";

    private Uri RequestUri(string query) => new(query.Length == 0 ? Endpoint.AbsoluteUri : $"{Endpoint.AbsoluteUri}?{query}");

    /// <summary>A POST of <paramref name="body"/>; built anew for each try, since a request cannot be sent twice.</summary>
    private static HttpRequestMessage Post(Uri uri, byte[] body, string? contentType, string accept)
    {
        var content = new ByteArrayContent(body);
        if (contentType is not null) content.Headers.ContentType = new MediaTypeHeaderValue(contentType);
        var request = new HttpRequestMessage(HttpMethod.Post, uri) { Content = content };
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(accept));
        return request;
    }

    /// <summary>
    /// A tensor reply as diffusers reads one (<c>frombuffer(body, dtype).reshape(shape)</c>), but checked: both headers
    /// present and well formed, the dtype of the kind asked for, the shape the one expected, and the body exactly
    /// shape x dtype bytes (read no further than that).
    /// </summary>
    private async Task<(TensorShape Shape, WireDType DType, byte[] Body)> ReadTensorAsync(HttpResponseMessage response, bool uint8,
        string expected, Func<TensorShape, bool> fits, RemoteTransport.Call call)
    {
        string shapeText = RemoteTransport.Header(response, ShapeHeader) ?? throw BadReply($"has no `{ShapeHeader}` header");
        string dtypeText = RemoteTransport.Header(response, DTypeHeader) ?? throw BadReply($"has no `{DTypeHeader}` header");
        TensorShape shape;
        WireDType dtype;
        try
        {
            shape = WireTensor.ParseShapeHeader(shapeText);
        }
        catch (FormatException e)
        {
            throw BadReply($"`{ShapeHeader}` header is malformed: {e.Message}");
        }
        try
        {
            dtype = WireTensor.ParseDType(dtypeText.Trim());
        }
        catch (ArgumentException e)
        {
            throw BadReply($"`{DTypeHeader}` header is malformed: {e.Message}");
        }
        if ((dtype == WireDType.UInt8) != uint8)
            throw BadReply($"`{DTypeHeader}` header is {dtype.Name()}; this request asked for {(uint8 ? "uint8 pixels" : "a float tensor")}");
        if (!fits(shape)) throw BadReply($"`{ShapeHeader}` header is {shape}; the request gives {expected}");
        long bytes = WireTensor.ByteCount(shape, dtype);
        string what = $"its `{ShapeHeader}` {shape} and `{DTypeHeader}` {dtype.Name()} headers";
        byte[] body = await Transport.ReadBodyAsync(response, bytes, what, call).ConfigureAwait(false);
        if (body.Length != bytes) throw BadReply($"body has {body.Length} bytes; {what} need {bytes}");
        return (shape, dtype, body);
    }

    private InvalidDataException BadReply(string detail) => new($"{Endpoint}: the reply's {detail}");

    // ---- options ------------------------------------------------------------------------------------------------

    private static void Validate(RemoteVaeOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var endpoint = options.Endpoint ?? throw new ArgumentException("RemoteVaeOptions.Endpoint is required", nameof(options));
        if (!endpoint.IsAbsoluteUri || (endpoint.Scheme != Uri.UriSchemeHttp && endpoint.Scheme != Uri.UriSchemeHttps))
            throw new ArgumentException($"RemoteVaeOptions.Endpoint '{endpoint}' must be an absolute http or https URL", nameof(options));
        if (endpoint.Query.Length > 0 || endpoint.Fragment.Length > 0)
            throw new ArgumentException($"RemoteVaeOptions.Endpoint '{endpoint}' must have no query or fragment: each call writes its own query", nameof(options));
        if (!Enum.IsDefined(options.Family))
            throw new ArgumentException($"RemoteVaeOptions.Family {options.Family} is not a model family", nameof(options));
        if (options.BearerToken is { } token && (token.Length == 0 || token.Any(c => c is <= ' ' or > '~')))
            throw new ArgumentException("RemoteVaeOptions.BearerToken must be non-empty printable ASCII without spaces", nameof(options));
        if (options.Timeout != Timeout.InfiniteTimeSpan && (options.Timeout <= TimeSpan.Zero || options.Timeout.TotalMilliseconds > int.MaxValue))
            throw new ArgumentException($"RemoteVaeOptions.Timeout {options.Timeout} must be positive and at most {TimeSpan.FromMilliseconds(int.MaxValue)}, or Timeout.InfiniteTimeSpan", nameof(options));
        if (options.MaxRetries < 0)
            throw new ArgumentException($"RemoteVaeOptions.MaxRetries {options.MaxRetries} must be 0 or more", nameof(options));
        if (options.RetryDelay < TimeSpan.Zero)
            throw new ArgumentException($"RemoteVaeOptions.RetryDelay {options.RetryDelay} must not be negative", nameof(options));
        if (options.LatentDType is not (WireDType.Float32 or WireDType.Float16 or WireDType.BFloat16))
            throw new ArgumentException($"RemoteVaeOptions.LatentDType {options.LatentDType} must be Float32, Float16 or BFloat16", nameof(options));
        if (options.MaxImagePixels <= 0)
            throw new ArgumentException($"RemoteVaeOptions.MaxImagePixels {options.MaxImagePixels} must be positive", nameof(options));
    }

    /// <summary>Disposes the <see cref="HttpClient"/> when this client created it; a caller's client is left open.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_ownsHttp) _http.Dispose();
    }
}
