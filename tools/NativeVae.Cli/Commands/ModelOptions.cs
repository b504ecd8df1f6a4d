using System.CommandLine;

namespace NativeVae.Cli.Commands;

/// <summary>
/// The options that encode, decode and roundtrip share: model, device, family, pixel limit, tiling, scaling; for
/// encode and decode also the remote endpoint (<c>--endpoint</c>, <c>--token</c>, <c>--timeout</c>) that runs the same
/// command through <see cref="RemoteVae"/> instead of a local <c>--model</c>.
/// </summary>
internal sealed class ModelOptions
{
    /// <summary>Exact tiling's default tile edge, as <see cref="Vae"/> plans it (stated in the help).</summary>
    private const int ExactTileDefault = 256;

    /// <summary>AutoencoderKL's blend tile unit, 4 x the downsampling factor 8, as the library checks it (stated in the help).</summary>
    private const int KlBlendTileUnit = 32;

    /// <summary>The TAESD family's blend tile unit, 8 x the downsampling factor 8 (stated in the help).</summary>
    private const int TinyBlendTileUnit = 64;

    /// <summary>The TAESD family's default blend tile, diffusers' AutoencoderTiny tile_sample_min_size.</summary>
    private const int TinyDefaultTile = 512;

    /// <summary>Where <c>--token</c>'s default comes from, so that a token need not sit in the shell history.</summary>
    public const string TokenVariable = "NATIVEVAE_TOKEN";

    private readonly bool _remote;

    /// <param name="remote">Offer <c>--endpoint</c> beside <c>--model</c> (then neither is required alone).</param>
    public ModelOptions(bool remote = false)
    {
        _remote = remote;
        Model = new("--model")
        {
            HelpName = "file-or-folder",
            Required = !remote,
            Description = "the VAE: a converted NativeVae .safetensors, a diffusers folder or single file, an LDM or FLUX.1 ae " +
                "checkpoint, a PyTorch .pth/.ckpt, or a TAESD folder" + (remote ? " (give this or --endpoint)" : ""),
        };
        Family = FamilyOption(remote);
    }

    public Option<string> Model { get; }

    public Option<DevicePreference?> Device { get; } = DeviceOption();

    public Option<DType?> DType { get; } = DTypeOption();

    /// <summary><c>--dtype</c>, shared with bench and serve.</summary>
    public static Option<DType?> DTypeOption() => OptionParsers.Choice<DType>("--dtype",
        "storage of weights and activations: bf16 and fp16 halve their memory (computed in fp32; results differ from " +
        "fp32 by the 16-bit rounding); on CUDA they run the convolutions on tensor cores [default: fp32]",
        ("fp32", NativeVae.DType.F32), ("bf16", NativeVae.DType.BF16), ("fp16", NativeVae.DType.F16));

    public Option<ModelFamily?> Family { get; }

    public Option<ExactTilingStore?> ExactStore { get; } = ExactStoreOption();

    /// <summary><c>--exact-store</c>, shared with bench.</summary>
    public static Option<ExactTilingStore?> ExactStoreOption() => OptionParsers.Choice<ExactTilingStore>("--exact-store",
        "where exact tiling keeps its full-size activations: auto: in memory while they fit beside the tiles, else (CPU) " +
        "in a temporary file; file: always the file, so memory is set by the tile alone; memory: always in memory [default: auto]",
        ("auto", ExactTilingStore.Auto), ("memory", ExactTilingStore.Memory), ("file", ExactTilingStore.File));

    public Option<long?> MaxPixels { get; } = OptionParsers.PositiveLong("--max-pixels", "N",
        $"refuse input images of more than N pixels (width x height), checked from the header before decoding " +
        $"[default: {ImageFiles.DefaultMaxPixels} = 4096x4096]");

    public Option<TilingMode?> Tiling { get; } = OptionParsers.Choice<TilingMode>("--tiling",
        "auto: untiled when the estimated memory fits 80% of the device, else exact; blend: diffusers' tiled VAE (overlapping " +
        "tiles, blended seams); exact: tiles whose result equals the untiled one; none: the whole image at once [default: auto]",
        ("none", TilingMode.None), ("blend", TilingMode.Blend), ("exact", TilingMode.Exact), ("auto", TilingMode.Auto));

    public Option<int?> Tile { get; } = OptionParsers.PositiveInt("--tile", "N",
        $"tile edge in pixels; blend tiles must be multiples of {KlBlendTileUnit} for AutoencoderKL (sd, sdxl, flux, sd3) and " +
        $"of {TinyBlendTileUnit} for the TAESD family (at least {2 * TinyBlendTileUnit} to encode), other tiles are refused " +
        $"[default: blend: the model's sample size (its config's sample_size; {TinyDefaultTile} for the TAESD family); exact: {ExactTileDefault}]");

    public Option<float?> ScalingFactor { get; } = OptionParsers.Number("--scaling-factor", "f",
        "multiply the encoder's latent by f (divide before decoding), as diffusers' pipelines do with the family's " +
        "published factor (`nativevae info` prints it) [default: none, raw latents as vae.encode returns them]");

    public Option<float?> ShiftFactor { get; } = OptionParsers.Number("--shift-factor", "f",
        "subtract f from the latent before scaling (add it back before decoding); FLUX.1 publishes 0.1159 [default: none]");

    public Option<Uri> Endpoint { get; } = OptionParsers.HttpUrl("--endpoint", "URL",
        "run on a hybrid-inference endpoint instead of a local --model: diffusers' remote_encode/remote_decode protocol, as " +
        "Hugging Face's published VAE endpoints or a NativeVae server speak it");

    public Option<string> Token { get; } = new("--token")
    {
        HelpName = "T",
        Description = $"bearer token sent to --endpoint [default: the {TokenVariable} environment variable, else none]",
    };

    public Option<int?> Timeout { get; } = OptionParsers.PositiveInt("--timeout", "SECONDS",
        $"longest one call to --endpoint may take, retries included [default: {RemoteVaeOptions.DefaultTimeout.TotalSeconds:0}]");

    /// <summary>Adds the options to <paramref name="command"/>.</summary>
    public void AddTo(Command command)
    {
        foreach (var option in new Option[] { Model, Device, DType, Family, MaxPixels, Tiling, Tile, ExactStore, ScalingFactor, ShiftFactor })
            command.Options.Add(option);
        if (!_remote) return;
        foreach (var option in new Option[] { Endpoint, Token, Timeout }) command.Options.Add(option);
    }

    /// <summary>Loads the model the options name.</summary>
    public Vae Load(ParseResult parse) => Vae.Load(parse.GetValue(Model)!, new VaeOptions
    {
        Device = parse.GetValue(Device) ?? DevicePreference.Auto,
        DType = parse.GetValue(DType) ?? NativeVae.DType.F32,
        Family = parse.GetValue(Family),
        MaxImagePixels = MaxImagePixels(parse),
        ExactStore = parse.GetValue(ExactStore) ?? ExactTilingStore.Auto,
    });

    /// <summary>
    /// Which VAE the command line names, checked before any work (nothing is opened or connected here): a local
    /// <c>--model</c> or a remote <c>--endpoint</c>, exactly one, each with only its own options. Returns how to open it.
    /// </summary>
    /// <exception cref="UsageException">both or neither, an option of the other kind, or an endpoint of unknown family without --family.</exception>
    public Func<IVae> Resolve(ParseResult parse)
    {
        string? model = parse.GetValue(Model);
        Uri? endpoint = _remote ? parse.GetValue(Endpoint) : null;
        if (model is not null && endpoint is not null)
            throw new UsageException("give exactly one of --model (a local VAE) or --endpoint (a remote one); the command line gives both");
        if (model is null && endpoint is null)
            throw new UsageException("give exactly one of --model (a local VAE) or --endpoint (a remote one); the command line gives neither");
        if (endpoint is null)
        {
            if (_remote && (parse.GetResult(Token) is not null || parse.GetResult(Timeout) is not null))
                throw new UsageException("--token and --timeout apply to --endpoint only");
            return () => Load(parse);
        }

        if (parse.GetResult(Device) is not null)
            throw new UsageException("--device applies to --model only: the endpoint runs the model on its own device");
        if (parse.GetResult(DType) is not null)
            throw new UsageException("--dtype applies to --model only: the endpoint stores its model as it was started");
        if (parse.GetResult(ExactStore) is not null)
            throw new UsageException("--exact-store applies to --model only: the endpoint keeps its activations as it was started");
        var published = RemoteEndpoints.FamilyOf(endpoint);
        var given = parse.GetValue(Family);
        if (given is not null && published is not null && given != published)
            throw new UsageException($"--family {OptionParsers.FamilyName(given.Value)} does not fit --endpoint {endpoint}, which serves " +
                $"{OptionParsers.FamilyName(published.Value)}");
        var family = given ?? published ?? throw new UsageException(
            $"--endpoint {endpoint} is not one of the published endpoints, so its model family is unknown: give --family " +
            $"({OptionParsers.Names(OptionParsers.Families().Select(f => f.Name).ToList())})");
        string? token = parse.GetValue(Token) ?? Environment.GetEnvironmentVariable(TokenVariable);
        var options = new RemoteVaeOptions
        {
            Endpoint = endpoint,
            Family = family,
            BearerToken = string.IsNullOrEmpty(token) ? null : token,
            MaxImagePixels = MaxImagePixels(parse),
        };
        if (parse.GetValue(Timeout) is { } seconds) options = options with { Timeout = TimeSpan.FromSeconds(seconds) };
        return () => new RemoteVae(options);
    }

    private long MaxImagePixels(ParseResult parse) => parse.GetValue(MaxPixels) ?? ImageFiles.DefaultMaxPixels;

    public static Option<DevicePreference?> DeviceOption() => OptionParsers.Choice<DevicePreference>("--device",
        "auto: CUDA when an NVIDIA GPU is present, else the SIMD CPU backend; cpu: the SIMD CPU backend; cuda: the GPU; " +
        "ilgpu-cpu: ILGPU's CPU emulator of the GPU kernels (slow, for checking them) [default: auto]",
        ("auto", DevicePreference.Auto), ("cpu", DevicePreference.Cpu), ("cuda", DevicePreference.Cuda), ("ilgpu-cpu", DevicePreference.IlgpuCpu));

    /// <param name="remote">Say that an endpoint's family comes from its URL when it is a published one.</param>
    public static Option<ModelFamily?> FamilyOption(bool remote = false) => OptionParsers.Choice<ModelFamily>("--family",
        "the model family, when the checkpoint alone cannot tell (SD and SDXL share one architecture)" +
        (remote ? " or the --endpoint is not one of Hugging Face's published ones" : "") +
        " [default: recognised from the config and tensors" + (remote ? ", or from a published endpoint's URL" : "") + "]",
        OptionParsers.Families());
}
