using NativeVae.Backends;

namespace NativeVae;

/// <summary>How a <see cref="Vae"/> is loaded.</summary>
public sealed record VaeOptions
{
    /// <summary>Which device runs the model (default: CUDA when present, else the CPU).</summary>
    public DevicePreference Device { get; init; } = DevicePreference.Auto;

    /// <summary>
    /// Storage dtype of weights and activations. <see cref="DType.F16"/> and <see cref="DType.BF16"/> halve the
    /// memory of both; the CPU backend converts as it reads and writes and computes in fp32, and CUDA (ILGPU) runs
    /// the convolutions on tensor cores with fp32 accumulation, activations NHWC. Images stay fp32 on every device.
    /// Exact tiling's file store keeps the same 16 bits.
    /// </summary>
    public DType DType { get; init; } = DType.F32;

    /// <summary>
    /// Largest image, in pixels per image: encode refuses larger input images (checked from the header, before
    /// decoding) and tensors, decode refuses latents whose images would be larger. Inputs are untrusted. Default
    /// 4096 x 4096.
    /// </summary>
    public long MaxImagePixels { get; init; } = Imaging.ImageInput.DefaultMaxPixels;

    /// <summary>
    /// Device memory one call's activations may use, in bytes (the weights are not counted), for
    /// <see cref="TilingMode.Auto"/>; null uses 80% of the device's memory less what is already held.
    /// </summary>
    public long? MemoryLimitBytes { get; init; }

    /// <summary>Where <see cref="TilingMode.Exact"/> keeps its full-size activations; Auto decides by the memory budget.</summary>
    public ExactTilingStore ExactStore { get; init; } = ExactTilingStore.Auto;

    /// <summary>The family, when the file alone cannot tell (SD and SDXL share one architecture); null infers it.</summary>
    public ModelFamily? Family { get; init; }

    /// <summary>Overrides the family's scaling factor reported by <see cref="Vae.ScalingFactor"/> (not applied implicitly).</summary>
    public float? ScalingFactor { get; init; }

    /// <summary>Overrides the family's shift factor reported by <see cref="Vae.ShiftFactor"/>.</summary>
    public float? ShiftFactor { get; init; }
}

/// <summary>Parameters of an encode, as diffusers' <c>remote_encode</c> takes them, plus local choices.</summary>
public sealed record EncodeOptions
{
    /// <summary>When given, the latent is multiplied by it (after the shift): <c>(z - shift) * scale</c>.</summary>
    public float? ScalingFactor { get; init; }

    /// <summary>When given, subtracted from the latent before scaling.</summary>
    public float? ShiftFactor { get; init; }

    /// <summary>Null returns the distribution's mode (its mean, as the endpoints do); a seed draws a sample.</summary>
    public ulong? SampleSeed { get; init; }

    /// <summary>
    /// The form of the returned latent (default <see cref="LatentForm.Raw"/>); the pipeline forms are the model's
    /// (<see cref="Vae.SupportedLatentForms"/>: FLUX.2 has all three) and take no scaling or shift factor.
    /// </summary>
    public LatentForm Form { get; init; } = LatentForm.Raw;

    /// <summary>How the encode splits its work (default <see cref="TilingMode.Auto"/>: untiled when it fits the memory budget).</summary>
    public TilingMode Tiling { get; init; } = TilingMode.Auto;

    /// <summary>
    /// Tile edge in pixels: blend tiling's tile (default: the config's sample_size, 512 for the TAESD family), exact
    /// tiling's tile. A blend tile must be a multiple of 4 x the downsampling factor (32) for AutoencoderKL and of
    /// 8 x (64, at least 128 to encode) for the TAESD family; the call throws <see cref="ArgumentException"/> for any
    /// other, since such a tile would assemble an output of the wrong size. An exact tile is at least 16 (smaller
    /// ones cost many times the untiled time).
    /// </summary>
    public int? TileSize { get; init; }

    /// <summary>Receives progress (blocks untiled, tiles under blend tiling, frames of a video); null reports nothing.</summary>
    public IProgress<VaeProgress>? Progress { get; init; }

    /// <summary>
    /// Video: encode the frames up to the last whole chunk and drop the rest, as diffusers does silently (a Wan video
    /// has 1 + 4k frames). False (the default) refuses such a video, saying how many frames would be dropped.
    /// </summary>
    public bool DropTrailingFrames { get; init; }
}

/// <summary>What a decode returns.</summary>
public enum DecodeOutput
{
    /// <summary>ImageSharp RGB images (diffusers: output_type "pil", return_type "pil").</summary>
    Images,

    /// <summary>PNG or JPEG bytes per image (what the endpoint sends for output_type "pil").</summary>
    EncodedImages,

    /// <summary>A float tensor [N, 3, H, W] in [-1, 1] (output_type "pt", partial_postprocess False).</summary>
    FloatTensor,

    /// <summary>uint8 [N, H, W, 3] = round(clamp(x*0.5+0.5, 0, 1) * 255) (output_type "pt", partial_postprocess True).</summary>
    UInt8Tensor,
}

/// <summary>Parameters of a decode, as diffusers' <c>remote_decode</c> takes them, plus local choices.</summary>
public sealed record DecodeOptions
{
    /// <summary>When given, latents are divided by it before decoding.</summary>
    public float? ScalingFactor { get; init; }

    /// <summary>When given, added to the latents after the division.</summary>
    public float? ShiftFactor { get; init; }

    /// <summary>The form of the result (default images; see <see cref="DecodeResult"/>).</summary>
    public DecodeOutput Output { get; init; } = DecodeOutput.Images;

    /// <summary>Format of <see cref="DecodeOutput.EncodedImages"/> (diffusers' image_format, default "jpg").</summary>
    public ImageFormat ImageFormat { get; init; } = ImageFormat.Jpeg;

    /// <summary>JPEG quality, 1-100, of <see cref="DecodeOutput.EncodedImages"/> in JPEG (default 75, PIL's).</summary>
    public int JpegQuality { get; init; } = Imaging.ImageOutput.DefaultJpegQuality;

    /// <summary>Image height in pixels; required (with <see cref="Width"/>) for packed latents [B, seq, 4C] (FLUX.1, FLUX.2).</summary>
    public int? Height { get; init; }

    /// <summary>Image width in pixels; required (with <see cref="Height"/>) for packed FLUX latents.</summary>
    public int? Width { get; init; }

    /// <summary>How the decode splits its work (default <see cref="TilingMode.Auto"/>: untiled when it fits the memory budget).</summary>
    public TilingMode Tiling { get; init; } = TilingMode.Auto;

    /// <summary>
    /// Tile edge in pixels of the output image (default for blend: the config's sample_size, 512 for the TAESD
    /// family). A blend tile must be a multiple of 4 x the downsampling factor (32) for AutoencoderKL and of 8 x (64)
    /// for the TAESD family; the call throws <see cref="ArgumentException"/> for any other. An exact tile is at least
    /// 16 (smaller ones cost many times the untiled time).
    /// </summary>
    public int? TileSize { get; init; }

    /// <summary>Receives progress (blocks untiled, tiles under blend tiling); null reports nothing.</summary>
    public IProgress<VaeProgress>? Progress { get; init; }

    /// <summary>
    /// Maps diffusers' <c>remote_decode</c> string parameters to options, refusing the combinations it refuses.
    /// output_type "pil" returns images (return_type "pil"); output_type "pt" returns a float tensor, or uint8 with
    /// partial_postprocess (return_type "pt"), or images built from it (return_type "pil").
    /// </summary>
    public static DecodeOptions FromRemote(string outputType = "pil", string returnType = "pil", string imageFormat = "jpg",
        bool partialPostprocess = false, float? scalingFactor = null, float? shiftFactor = null, int? height = null, int? width = null)
    {
        var format = imageFormat switch
        {
            "png" => ImageFormat.Png,
            "jpg" or "jpeg" => ImageFormat.Jpeg,
            _ => throw new ArgumentException($"image_format '{imageFormat}' must be 'png' or 'jpg'", nameof(imageFormat)),
        };
        var output = (outputType, returnType) switch
        {
            ("pil", "pil") => DecodeOutput.Images,
            ("pil", "pt") => DecodeOutput.UInt8Tensor,
            ("pt", "pt") => partialPostprocess ? DecodeOutput.UInt8Tensor : DecodeOutput.FloatTensor,
            ("pt", "pil") => DecodeOutput.Images,
            ("mp4", _) or (_, "mp4") => throw new NotSupportedException("output_type 'mp4' is for video VAEs, which NativeVae does not run"),
            _ => throw new ArgumentException($"output_type '{outputType}' / return_type '{returnType}': each must be 'pil' or 'pt'"),
        };
        return new DecodeOptions
        {
            Output = output,
            ImageFormat = format,
            ScalingFactor = scalingFactor,
            ShiftFactor = shiftFactor,
            Height = height,
            Width = width,
        };
    }
}
