namespace NativeVae.Api;

/// <summary>
/// FLUX's packed latents <c>[B, seq, C*4]</c> (2x2 patches flattened into the channel axis) to and from
/// <c>[B, C, h, w]</c>, as diffusers' Flux pipeline packs them:
/// <c>unpacked[b, c, 2i+di, 2j+dj] = packed[b, i*(w/2)+j, c*4 + di*2 + dj]</c>, with
/// <c>h = 2*(height//16)</c> and <c>w = 2*(width//16)</c> for an image of <c>height x width</c> pixels (16 = 2 x the
/// VAE's downsampling factor 8).
/// </summary>
internal static class FluxLatentPacking
{
    private const int Patch = 2;
    /// <summary>The VAE downsampling factor diffusers' FLUX pipelines use (vae_scale_factor).</summary>
    public const int PublishedDownsampleFactor = 8;

    public static HostTensor<float> Unpack(HostTensor<float> packed, int? height, int? width, int downsampleFactor = PublishedDownsampleFactor) =>
        Unpack(packed, UnpackedShape(packed.Shape, height, width, downsampleFactor));

    /// <summary>Packed latents to <paramref name="unpacked"/> <c>[B, C, h, w]</c>, a shape checked to fit them.</summary>
    public static HostTensor<float> Unpack(HostTensor<float> packed, TensorShape unpacked)
    {
        var s = packed.Shape;
        int batch = s[0], seq = s[1], packedChannels = s[2];
        int channels = unpacked.C, h = unpacked.H, w = unpacked.W;
        var result = new HostTensor<float>(unpacked);
        for (int b = 0; b < batch; b++)
        for (int c = 0; c < channels; c++)
        for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
        {
            int token = (y / Patch) * (w / Patch) + x / Patch;
            int feature = c * Patch * Patch + (y % Patch) * Patch + x % Patch;
            result.Data[(((long)b * channels + c) * h + y) * w + x] = packed.Data[((long)b * seq + token) * packedChannels + feature];
        }
        return result;
    }

    /// <summary>
    /// The <c>[B, C, h, w]</c> shape that packed latents of <paramref name="packed"/> shape unpack to for an image of
    /// <paramref name="height"/> x <paramref name="width"/> pixels; checked without touching the data, so a remote client
    /// can refuse what the server would.
    /// </summary>
    /// <exception cref="ArgumentException">no height or width (diffusers' message), or a shape they do not fit.</exception>
    /// <param name="downsampleFactor">the VAE's (diffusers' vae_scale_factor): a token covers 2f x 2f pixels.</param>
    public static TensorShape UnpackedShape(TensorShape packed, int? height, int? width, int downsampleFactor = PublishedDownsampleFactor)
    {
        int pixelsPerToken = Patch * downsampleFactor;
        if (height is null || width is null)
            throw new ArgumentException("`height` and `width` required for packed latents.");
        var s = packed;
        if (s.Rank != 3) throw new ArgumentException($"packed latents must be [B, seq, C*4], got {s}");
        if (height <= 0 || width <= 0) throw new ArgumentException($"height {height} and width {width} must be positive");
        int h = Patch * (height.Value / pixelsPerToken);
        int w = Patch * (width.Value / pixelsPerToken);
        int batch = s[0], seq = s[1], packedChannels = s[2];
        if (packedChannels % (Patch * Patch) != 0)
            throw new ArgumentException($"packed latents {s}: last dimension {packedChannels} is not a multiple of 4");
        if ((long)(h / Patch) * (w / Patch) != seq)
            throw new ArgumentException(
                $"packed latents {s} hold {seq} patches, but height {height} and width {width} give {h / Patch}x{w / Patch} = {(h / Patch) * (w / Patch)}");
        return TensorShape.Nchw(batch, packedChannels / (Patch * Patch), h, w);
    }

    /// <summary>The inverse of <see cref="Unpack(HostTensor{float}, TensorShape)"/>: [B, C, h, w] (h, w even) to [B, (h/2)*(w/2), C*4].</summary>
    public static HostTensor<float> Pack(HostTensor<float> latents)
    {
        var s = latents.Shape;
        if (s.Rank != 4 || s.H % Patch != 0 || s.W % Patch != 0)
            throw new ArgumentException($"latents to pack must be [B, C, h, w] with even h and w, got {s}");
        int seq = (s.H / Patch) * (s.W / Patch), features = s.C * Patch * Patch;
        var result = new HostTensor<float>(new TensorShape(s.N, seq, features));
        for (int b = 0; b < s.N; b++)
        for (int c = 0; c < s.C; c++)
        for (int y = 0; y < s.H; y++)
        for (int x = 0; x < s.W; x++)
        {
            int token = (y / Patch) * (s.W / Patch) + x / Patch;
            int feature = c * Patch * Patch + (y % Patch) * Patch + x % Patch;
            result.Data[((long)b * seq + token) * features + feature] = latents.Data[(((long)b * s.C + c) * s.H + y) * s.W + x];
        }
        return result;
    }
}
