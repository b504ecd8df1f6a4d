namespace NativeVae;

/// <summary>
/// Where and how a <see cref="RemoteVae"/> calls a hybrid-inference endpoint. Checked when the client is built; each
/// refusal names the option.
/// </summary>
public sealed record RemoteVaeOptions
{
    /// <summary>The default <see cref="Timeout"/>, 300 s: SD.Next's for a remote VAE call, which big decodes on a busy endpoint need.</summary>
    public static TimeSpan DefaultTimeout { get; } = TimeSpan.FromSeconds(300);

    /// <summary>The first wait before a retry; short, since a 503 usually means a cold start or a full queue.</summary>
    private static readonly TimeSpan DefaultRetryDelay = TimeSpan.FromSeconds(0.5);

    private const int DefaultMaxRetries = 3;

    /// <summary>The endpoint URL (absolute http or https, no query), e.g. <see cref="RemoteEndpoints.SdV1Decode"/>.</summary>
    public required Uri Endpoint { get; init; }

    /// <summary>
    /// The family the endpoint serves; it gives <see cref="RemoteVae.LatentChannels"/> and the published factors
    /// (<see cref="RemoteEndpoints.FamilyOf"/> knows the published endpoints').
    /// </summary>
    public required ModelFamily Family { get; init; }

    /// <summary>Sent as <c>Authorization: Bearer &lt;token&gt;</c> when given (a private endpoint or a NativeVae server).</summary>
    public string? BearerToken { get; init; }

    /// <summary>
    /// Longest one call (encode or decode) may take, retries and their waits included (default 300 s);
    /// <see cref="System.Threading.Timeout.InfiniteTimeSpan"/> waits forever.
    /// </summary>
    public TimeSpan Timeout { get; init; } = DefaultTimeout;

    /// <summary>Retries after a 503 or a failure to connect (default 3); 4xx and other errors are never retried.</summary>
    public int MaxRetries { get; init; } = DefaultMaxRetries;

    /// <summary>
    /// Wait before the first retry, doubled for each later one (default 0.5 s). A 503's <c>Retry-After</c> replaces it;
    /// every wait is cut to the time left of <see cref="Timeout"/>.
    /// </summary>
    public TimeSpan RetryDelay { get; init; } = DefaultRetryDelay;

    /// <summary>
    /// Dtype of the tensors sent: latents to decode and image tensors to encode (default float32, exact; float16 or
    /// bfloat16 halve the upload, as diffusers' callers send their pipeline's dtype). uint8 is refused.
    /// </summary>
    public WireDType LatentDType { get; init; } = WireDType.Float32;

    /// <summary>
    /// Largest image, in pixels per image, as <see cref="VaeOptions.MaxImagePixels"/>: input images and tensors over it
    /// are refused before sending, and so are latents whose images would be larger. Also bounds what a reply may hold.
    /// </summary>
    public long MaxImagePixels { get; init; } = ImageFiles.DefaultMaxPixels;
}
