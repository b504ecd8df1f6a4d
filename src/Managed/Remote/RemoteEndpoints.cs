namespace NativeVae;

/// <summary>
/// The hybrid-inference VAE endpoints Hugging Face published for diffusers' <c>remote_decode</c> and
/// <c>remote_encode</c> (its docs and remote tests), each <c>https://&lt;id&gt;.us-east-1.aws.endpoints.huggingface.cloud/</c>.
/// They were open (no token) and may be withdrawn at any time; any server speaking the protocol, a NativeVae server
/// included, works the same way with its own URL.
/// </summary>
public static class RemoteEndpoints
{
    /// <summary>SD v1 decode (<c>stabilityai/sd-vae-ft-mse</c>; scaling factor 0.18215).</summary>
    public const string SdV1Decode = "https://q1bj3bpq6kzilnsu.us-east-1.aws.endpoints.huggingface.cloud/";

    /// <summary>SD v1 encode (<c>stabilityai/sd-vae-ft-mse</c>).</summary>
    public const string SdV1Encode = "https://qc6479g0aac6qwy9.us-east-1.aws.endpoints.huggingface.cloud/";

    /// <summary>SDXL decode (<c>madebyollin/sdxl-vae-fp16-fix</c>; scaling factor 0.13025).</summary>
    public const string SdxlDecode = "https://x2dmsqunjd6k9prw.us-east-1.aws.endpoints.huggingface.cloud/";

    /// <summary>SDXL encode (<c>madebyollin/sdxl-vae-fp16-fix</c>).</summary>
    public const string SdxlEncode = "https://xjqqhmyn62rog84g.us-east-1.aws.endpoints.huggingface.cloud/";

    /// <summary>FLUX.1 decode (<c>black-forest-labs/FLUX.1-schnell</c>; scaling 0.3611, shift 0.1159).</summary>
    public const string FluxDecode = "https://whhx50ex1aryqvw6.us-east-1.aws.endpoints.huggingface.cloud/";

    /// <summary>FLUX.1 encode (<c>black-forest-labs/FLUX.1-schnell</c>).</summary>
    public const string FluxEncode = "https://ptccx55jz97f9zgo.us-east-1.aws.endpoints.huggingface.cloud/";

    /// <summary>
    /// HunyuanVideo decode (video latents <c>[B, 16, F, h, w]</c> to MP4). Listed for completeness: NativeVae runs no
    /// video VAE, so <see cref="FamilyOf"/> gives no family for it and <see cref="RemoteVae"/> cannot use it.
    /// </summary>
    public const string HunyuanVideoDecode = "https://o7ywnmrahorts457.us-east-1.aws.endpoints.huggingface.cloud/";

    private static readonly (string Url, ModelFamily Family)[] Families =
    [
        (SdV1Decode, ModelFamily.Sd), (SdV1Encode, ModelFamily.Sd),
        (SdxlDecode, ModelFamily.Sdxl), (SdxlEncode, ModelFamily.Sdxl),
        (FluxDecode, ModelFamily.Flux), (FluxEncode, ModelFamily.Flux),
    ];

    /// <summary>
    /// The family a published endpoint serves, or null for any other URL (HunyuanVideo's included). Compared by
    /// scheme, host and path, ignoring case and a missing trailing slash.
    /// </summary>
    /// <param name="endpoint">An absolute endpoint URL.</param>
    /// <exception cref="ArgumentNullException"><paramref name="endpoint"/> is null.</exception>
    public static ModelFamily? FamilyOf(Uri endpoint)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        if (!endpoint.IsAbsoluteUri) return null;
        string key = Normalized(endpoint);
        foreach (var (url, family) in Families)
        {
            if (Normalized(new Uri(url)) == key) return family;
        }
        return null;
    }

    private static string Normalized(Uri uri) =>
        (uri.GetLeftPart(UriPartial.Path).TrimEnd('/') + "/").ToLowerInvariant();
}
