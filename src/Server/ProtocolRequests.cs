using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace NativeVae.Server;

/// <summary>Encode or decode: the published endpoints had one URL for each; a NativeVae model answers both at one URL.</summary>
internal enum Operation { Encode, Decode }

/// <summary>A parsed request: the job to run and how to send its reply.</summary>
internal sealed record ParsedRequest(VaeJob Job, bool Base64Reply, long BodyBytes);

/// <summary>
/// Reads a hybrid-inference request into a job, as remote-protocol.md describes the real clients' requests. Every
/// claim a request makes (shape, dtype, sizes) is checked against the model and the server's limits before its
/// body is read, and the body is read into a buffer of exactly the claimed size.
/// </summary>
internal static class ProtocolRequests
{
    /// <summary>Latent elements per packed token side: a token is a 2x2 patch, so 2f pixels (16 for f = 8).</summary>
    private const int PackedPatch = 2;

    private const int ImageChannels = 3;
    private const int LatentRank = 4;
    private const int PackedLatentRank = 3;
    private const int VideoLatentRank = 5;
    private const int MaxJpegQuality = 100;

    /// <param name="operation">From the route, or <see cref="OperationOf"/>.</param>
    public static async Task<ParsedRequest> ReadAsync(HttpRequest request, Vae vae, Operation operation, VaeServerOptions limits,
        CancellationToken cancellation)
    {
        var query = new ProtocolQuery(request.Query);
        bool base64 = IsBase64(request);
        try
        {
            return operation == Operation.Decode
                ? await ReadDecodeAsync(request, query, vae, limits, base64, cancellation)
                : await ReadEncodeAsync(request, query, vae, limits, base64, cancellation);
        }
        catch (IOException error) when (error is not BadHttpRequestException && !ProtocolError.ClientWentAway(request.HttpContext, error))
        {
            // Kestrel reports some framing errors of a body as a plain IOException ("Bad chunk size data" for a chunk
            // size that overflows); the connection is still there, so it is the request that is malformed.
            throw ProtocolException.BadRequest($"the body's framing is malformed: {error.Message}");
        }
    }

    /// <summary>
    /// Which operation a request at a model's URL asks for: every real decode client sends <c>output_type</c>;
    /// an encode sends image bytes (no <c>shape</c>) or an image tensor <c>[B, 3, H, W]</c>.
    /// </summary>
    public static Operation OperationOf(HttpRequest request, Operation? route)
    {
        if (route is { } given) return given;
        var query = new ProtocolQuery(request.Query);
        if (query.Has("output_type")) return Operation.Decode;
        var shape = query.All("shape");
        if (shape.Count == 0) return Operation.Encode;
        return shape.Count is LatentRank or VideoLatentRank && shape[1] == "3" ? Operation.Encode : Operation.Decode;
    }

    private static async Task<ParsedRequest> ReadDecodeAsync(HttpRequest request, ProtocolQuery query, Vae vae, VaeServerOptions limits,
        bool base64, CancellationToken cancellation)
    {
        string outputType = query.Choice("output_type", "pil", "pil", "pt", "mp4");
        if (vae.IsVideo && query.All("shape").Count == VideoLatentRank)
            return await ReadVideoDecodeAsync(request, query, vae, limits, base64, outputType, cancellation);
        if (outputType == "mp4")
            throw ProtocolException.BadRequest(vae.IsVideo
                ? $"`output_type` 'mp4' takes a video latent: `shape` [B, C, T, h, w], got {WireTensor.ParseShape(query.All("shape"))}"
                : $"`output_type` 'mp4' is for video VAEs (family wan) and their 5-D latents; this model ({vae.Family.Name()}) is an image VAE");
        var format = query.Choice("image_format", "jpg", "jpg", "png") == "png" ? ImageFormat.Png : ImageFormat.Jpeg;
        bool partial = query.Bool("partial_postprocess") ?? false;
        CheckTensorTypes(query);
        var (shape, dtype) = TensorClaim(query, "latents");
        int? height = query.PositiveInt("height"), width = query.PositiveInt("width");
        if ((height is null) != (width is null))
            throw ProtocolException.BadRequest($"`height` and `width` go together; only `{(height is null ? "width" : "height")}` was given");
        CheckLatentShape(shape, vae, height, width, limits);

        // pil with Accept: tensor/binary is diffusers with an image processor: it wants the uint8 pixels of the batch.
        bool pilAsTensor = outputType == "pil" && request.Headers.Accept.ToString().Contains(WireTensor.BinaryContentType, StringComparison.Ordinal);
        var output = outputType == "pt" || pilAsTensor
            ? partial || pilAsTensor ? DecodeOutput.UInt8Tensor : DecodeOutput.FloatTensor
            : DecodeOutput.EncodedImages;
        var (scale, shift) = Factors(query, vae);
        var options = new DecodeOptions
        {
            ScalingFactor = scale,
            ShiftFactor = shift,
            Output = output,
            ImageFormat = format,
            JpegQuality = JpegQuality(query),
            // diffusers reads height and width for packed latents only; ComfyUI sends them (8x the latent) for every latent.
            Height = shape.Rank == PackedLatentRank ? height : null,
            Width = shape.Rank == PackedLatentRank ? width : null,
            Tiling = Tiling(query),
            TileSize = query.PositiveInt("tile_size"),
        };
        var (body, bodyBytes) = await ReadTensorBodyAsync(request, shape, dtype, base64, limits, cancellation);
        var latents = WireTensor.ToFloat(body, shape, dtype);
        // An image reply holds the batch's first image only, so only that one is decoded.
        if (output == DecodeOutput.EncodedImages) latents = BatchTensors.Slice(latents, 0, 1);
        return new ParsedRequest(new DecodeJob(latents, options, dtype, cancellation), base64, bodyBytes);
    }

    /// <summary>
    /// A video family's 5-D latent <c>[B, C, T', h, w]</c>: <c>mp4</c> replies with one video's MP4 bytes (at
    /// <c>fps</c>, default 16), <c>pt</c> with the float video <c>[B, 3, T, H, W]</c> in the request's dtype, or with
    /// <c>partial_postprocess</c> its uint8 pixels <c>[B, T, H, W, 3]</c>.
    /// </summary>
    private static async Task<ParsedRequest> ReadVideoDecodeAsync(HttpRequest request, ProtocolQuery query, Vae vae, VaeServerOptions limits,
        bool base64, string outputType, CancellationToken cancellation)
    {
        CheckTensorTypes(query);
        var (shape, dtype) = TensorClaim(query, "latents");
        if (outputType == "pil")
            throw ProtocolException.BadRequest($"`output_type` 'pil' replies with one image; a video latent {shape} takes 'mp4' or 'pt'");
        if (outputType == "mp4" && shape[0] != 1)
            throw ProtocolException.BadRequest($"`shape` {shape}: an mp4 reply holds one video; send B = 1");
        if (outputType == "mp4" && !VideoFiles.FfmpegAvailable)
            throw new ProtocolException(StatusCodes.Status501NotImplemented, "`output_type` 'mp4': ffmpeg is not installed on this server; ask for 'pt'");
        CheckItems(shape, limits);
        if (shape[1] != vae.LatentChannels)
            throw ProtocolException.BadRequest($"`shape` {shape}: video latents are [B, {vae.LatentChannels}, T, h, w]");
        long f = vae.DownsampleFactor;
        CheckPixels(shape, (Int128)shape[3] * f * shape[4] * f, vae);
        double fps = query.Float("fps") is { } given ? given > 0 ? given : throw ProtocolException.BadRequest($"`fps` {given} must be positive") : VideoFiles.DefaultFps;
        var (scale, shift) = Factors(query, vae);
        var options = new DecodeOptions { ScalingFactor = scale, ShiftFactor = shift, Tiling = Tiling(query) };
        var (body, bodyBytes) = await ReadTensorBodyAsync(request, shape, dtype, base64, limits, cancellation);
        var latents = WireTensor.ToFloat(body, shape, dtype);
        // pt with partial_postprocess: every frame as the image endpoint's uint8 reply lays out an image.
        WireDType? tensorReply = outputType != "pt" ? null : query.Bool("partial_postprocess") ?? false ? WireDType.UInt8 : dtype;
        return new ParsedRequest(new VideoDecodeJob(latents, options, tensorReply, fps, cancellation), base64, bodyBytes);
    }

    private static async Task<ParsedRequest> ReadEncodeAsync(HttpRequest request, ProtocolQuery query, Vae vae, VaeServerOptions limits,
        bool base64, CancellationToken cancellation)
    {
        CheckTensorTypes(query);
        var (scale, shift) = Factors(query, vae);
        var options = new EncodeOptions
        {
            ScalingFactor = scale,
            ShiftFactor = shift,
            SampleSeed = query.UInt64("sample_seed"),
            DropTrailingFrames = query.Bool("drop_trailing_frames") ?? false,
            Form = LatentFormOf(query, vae),
            Tiling = Tiling(query),
            TileSize = query.PositiveInt("tile_size"),
        };
        if (!query.Has("shape") && !query.Has("dtype"))
        {
            // Image bytes (diffusers sends PNG with no Content-Type); the image reader checks the size from the header.
            var file = await ReadBodyAsync(request, base64, limits, cancellation);
            if (file.Length == 0)
                throw ProtocolException.BadRequest("the body is empty: send PNG or JPEG bytes, or an image tensor with `shape` and `dtype`");
            return new ParsedRequest(new EncodeImageJob(file, options, cancellation), base64, file.Length);
        }
        var (shape, dtype) = TensorClaim(query, "images");
        if (vae.IsVideo && shape.Rank == VideoLatentRank && shape[1] == ImageChannels)
        {
            CheckItems(shape, limits);
            CheckPixels(shape, (Int128)shape[3] * shape[4], vae);
            var (videoBody, videoBytes) = await ReadTensorBodyAsync(request, shape, dtype, base64, limits, cancellation);
            return new ParsedRequest(new VideoEncodeJob(WireTensor.ToFloat(videoBody, shape, dtype), options, cancellation), base64, videoBytes);
        }
        if (shape.Rank != LatentRank || shape[1] != ImageChannels)
            throw ProtocolException.BadRequest($"`shape` {shape}: an image tensor is [B, 3, H, W]");
        CheckItems(shape, limits);
        CheckPixels(shape, (Int128)shape[2] * shape[3], vae);
        var (body, bodyBytes) = await ReadTensorBodyAsync(request, shape, dtype, base64, limits, cancellation);
        return new ParsedRequest(new EncodeTensorJob(WireTensor.ToFloat(body, shape, dtype), options, cancellation), base64, bodyBytes);
    }

    // ---- parameters ---------------------------------------------------------------------------------------------

    /// <summary>NativeVae's <c>latent_form</c>: raw (the protocol's reply), or a pipeline form the model has.</summary>
    private static LatentForm LatentFormOf(ProtocolQuery query, Vae vae)
    {
        var forms = vae.SupportedLatentForms.ToDictionary(f => f.Name());
        string name = query.Choice("latent_form", LatentForm.Raw.Name(), Enum.GetValues<LatentForm>().Select(f => f.Name()).ToArray());
        return forms.TryGetValue(name, out var form)
            ? form
            : throw ProtocolException.BadRequest($"`latent_form` '{name}': this model's latents come as {string.Join(", ", forms.Keys)}");
    }

    /// <summary>The <c>shape</c> and <c>dtype</c> a tensor body claims; uint8 is for pixels, never an input here.</summary>
    private static (TensorShape Shape, WireDType DType) TensorClaim(ProtocolQuery query, string what)
    {
        var dtype = WireTensor.ParseDType(query.String("dtype") ?? throw ProtocolException.BadRequest("Expected `dtype` in query params."));
        var shape = WireTensor.ParseShape(query.All("shape"));
        if (dtype == WireDType.UInt8)
            throw ProtocolException.BadRequest($"`dtype` uint8: {what} are sent as float16, float32 or bfloat16 (uint8 is only a reply's pixels)");
        return (shape, dtype);
    }

    private static void CheckLatentShape(TensorShape shape, Vae vae, int? height, int? width, VaeServerOptions limits)
    {
        if (shape.Rank is not (LatentRank or PackedLatentRank or VideoLatentRank))
            throw ProtocolException.BadRequest($"`shape` {shape}: latents are [B, C, h, w] ([B, C, 1, h, w] for Qwen-Image), or packed [B, seq, 4C] with `height` and `width`");
        CheckItems(shape, limits);
        int tokenPixels = PackedPatch * vae.DownsampleFactor;
        if (shape.Rank == PackedLatentRank && height is not null && width is not null
            && (height % tokenPixels != 0 || width % tokenPixels != 0))
            throw ProtocolException.BadRequest($"`height` {height} and `width` {width} of packed latents must be multiples of {tokenPixels}");
        TensorShape raw;
        try
        {
            raw = vae.RawLatentShape(shape, new DecodeOptions { Height = height, Width = width });
        }
        catch (ArgumentException error)
        {
            throw ProtocolException.BadRequest(error.Message.StartsWith('`') ? error.Message : $"`shape` {shape}: {error.Message}");
        }
        long f = vae.DownsampleFactor;
        CheckPixels(shape, (Int128)raw[2] * f * raw[3] * f, vae);
    }

    /// <param name="pixels">Int128: a hostile shape's product must not wrap around below the cap.</param>
    private static void CheckPixels(TensorShape shape, Int128 pixels, Vae vae)
    {
        if (pixels > vae.MaxImagePixels)
            throw new ProtocolException(StatusCodes.Status413PayloadTooLarge,
                $"`shape` {shape}: an image of {pixels} pixels is over this server's limit of {vae.MaxImagePixels} pixels");
    }

    private static void CheckItems(TensorShape shape, VaeServerOptions limits)
    {
        if (shape[0] > limits.MaxItemsPerRequest)
            throw new ProtocolException(StatusCodes.Status413PayloadTooLarge,
                $"`shape` {shape} holds {shape[0]} items; this server takes at most {limits.MaxItemsPerRequest} per request");
    }

    private static void CheckTensorTypes(ProtocolQuery query)
    {
        // SD.Next names the body's encoding; base64 itself travels as Content-Type tensor/base64.
        query.Choice("input_tensor_type", "binary", "binary", "base64");
        query.Choice("output_tensor_type", "binary", "binary", "base64");
    }

    /// <summary>
    /// <c>scaling_factor</c> and <c>shift_factor</c> as given; <c>do_scaling=True</c> with neither applies the model's
    /// published ones; otherwise no scaling.
    /// </summary>
    private static (float? Scale, float? Shift) Factors(ProtocolQuery query, Vae vae)
    {
        float? scale = query.Float("scaling_factor"), shift = query.Float("shift_factor");
        bool doScaling = query.Bool("do_scaling") ?? false;
        if (scale is null && shift is null && doScaling) (scale, shift) = (vae.ScalingFactor, vae.ShiftFactor);
        if (scale == 0) throw ProtocolException.BadRequest("`scaling_factor` is 0; latents cannot be divided by it");
        return (scale, shift);
    }

    private static TilingMode Tiling(ProtocolQuery query) => query.Choice("tiling", "auto", "auto", "none", "blend", "exact") switch
    {
        "none" => TilingMode.None,
        "blend" => TilingMode.Blend,
        "exact" => TilingMode.Exact,
        _ => TilingMode.Auto,
    };

    private static int JpegQuality(ProtocolQuery query)
    {
        int quality = query.PositiveInt("jpeg_quality") ?? new DecodeOptions().JpegQuality;
        if (quality > MaxJpegQuality) throw ProtocolException.BadRequest($"`jpeg_quality` {quality} must be 1 to {MaxJpegQuality}");
        return quality;
    }

    // ---- bodies -------------------------------------------------------------------------------------------------

    private static bool IsBase64(HttpRequest request) =>
        request.ContentType is { } type && type.StartsWith(WireTensor.Base64ContentType, StringComparison.OrdinalIgnoreCase);

    /// <summary>A tensor body of exactly shape x dtype bytes, refused before reading when its length says otherwise.</summary>
    private static async Task<(byte[] Body, long Sent)> ReadTensorBodyAsync(HttpRequest request, TensorShape shape, WireDType dtype, bool base64,
        VaeServerOptions limits, CancellationToken cancellation)
    {
        long expected = WireTensor.ByteCount(shape, dtype);
        string claim = $"`shape` {shape} of `dtype` {dtype.Name()} needs {expected} bytes";
        if (expected > limits.MaxBodyBytes)
            throw new ProtocolException(StatusCodes.Status413PayloadTooLarge, $"{claim}, over this server's body limit of {limits.MaxBodyBytes} bytes");
        if (base64)
        {
            var decoded = await ReadBodyAsync(request, base64: true, limits, cancellation);
            if (decoded.Length != expected) throw ProtocolException.BadRequest($"the decoded `inputs` has {decoded.Length} bytes; {claim}");
            return (decoded, request.ContentLength ?? decoded.Length);
        }
        if (request.ContentLength is long length && length != expected)
            throw ProtocolException.BadRequest($"the body has {length} bytes; {claim}");
        var body = new byte[expected];
        int read = await request.Body.ReadAtLeastAsync(body, body.Length, throwOnEndOfStream: false, cancellation);
        if (read < expected) throw ProtocolException.BadRequest($"the body has {read} bytes; {claim}");
        if (await request.Body.ReadAsync(new byte[1], cancellation) > 0) throw ProtocolException.BadRequest($"the body has more than {expected} bytes; {claim}");
        return (body, expected);
    }

    /// <summary>A body of unknown length (image bytes, base64 JSON), up to the server's body limit.</summary>
    private static async Task<byte[]> ReadBodyAsync(HttpRequest request, bool base64, VaeServerOptions limits, CancellationToken cancellation)
    {
        if (request.ContentLength > limits.MaxBodyBytes)
            throw new ProtocolException(StatusCodes.Status413PayloadTooLarge,
                $"the body of {request.ContentLength} bytes is over this server's body limit of {limits.MaxBodyBytes} bytes");
        using var buffer = new MemoryStream();
        // Kestrel stops a body past MaxRequestBodySize (the same limit) with a 413 of its own.
        await request.Body.CopyToAsync(buffer, cancellation);
        return base64 ? Base64Inputs(buffer.GetBuffer().AsSpan(0, (int)buffer.Length)) : buffer.ToArray();
    }

    /// <summary>The bytes of the legacy mode's <c>{"inputs": "&lt;base64&gt;"}</c>.</summary>
    private static byte[] Base64Inputs(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json);
        using var document = JsonDocument.ParseValue(ref reader);
        if (document.RootElement.ValueKind != JsonValueKind.Object
            || !document.RootElement.TryGetProperty("inputs", out var inputs) || inputs.ValueKind != JsonValueKind.String)
            throw ProtocolException.BadRequest("a tensor/base64 body must be JSON {\"inputs\": \"<base64 of the bytes>\"}");
        if (!inputs.TryGetBytesFromBase64(out var bytes))
            throw ProtocolException.BadRequest("`inputs` is not valid base64");
        return bytes;
    }
}
