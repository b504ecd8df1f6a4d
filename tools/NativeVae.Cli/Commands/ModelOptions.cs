using System.CommandLine;

namespace NativeVae.Cli.Commands;

/// <summary>The options that encode, decode and roundtrip share: model, device, family, pixel limit, tiling, scaling.</summary>
internal sealed class ModelOptions
{
    /// <summary>Exact tiling's default tile edge, as <see cref="Vae"/> plans it (stated in the help).</summary>
    private const int ExactTileDefault = 256;

    public Option<string> Model { get; } = new("--model")
    {
        HelpName = "file-or-folder",
        Required = true,
        Description = "the VAE: a converted NativeVae .safetensors, a diffusers folder or single file, an LDM or FLUX.1 ae " +
            "checkpoint, a PyTorch .pth/.ckpt, or a TAESD folder",
    };

    public Option<DevicePreference?> Device { get; } = DeviceOption();

    public Option<ModelFamily?> Family { get; } = FamilyOption();

    public Option<long?> MaxPixels { get; } = OptionParsers.PositiveLong("--max-pixels", "N",
        $"refuse input images of more than N pixels (width x height), checked from the header before decoding " +
        $"[default: {ImageFiles.DefaultMaxPixels} = 4096x4096]");

    public Option<TilingMode?> Tiling { get; } = OptionParsers.Choice<TilingMode>("--tiling",
        "auto: untiled when the estimated memory fits 80% of the device, else exact; blend: diffusers' tiled VAE (overlapping " +
        "tiles, blended seams); exact: tiles whose result equals the untiled one; none: the whole image at once [default: auto]",
        ("none", TilingMode.None), ("blend", TilingMode.Blend), ("exact", TilingMode.Exact), ("auto", TilingMode.Auto));

    public Option<int?> Tile { get; } = OptionParsers.PositiveInt("--tile", "N",
        $"tile edge in pixels [default: blend: the model's sample size (its config's sample_size); exact: {ExactTileDefault}]");

    public Option<float?> ScalingFactor { get; } = OptionParsers.Number("--scaling-factor", "f",
        "multiply the encoder's latent by f (divide before decoding), as diffusers' pipelines do with the family's " +
        "published factor (`nativevae info` prints it) [default: none, raw latents as vae.encode returns them]");

    public Option<float?> ShiftFactor { get; } = OptionParsers.Number("--shift-factor", "f",
        "subtract f from the latent before scaling (add it back before decoding); FLUX.1 publishes 0.1159 [default: none]");

    /// <summary>Adds the options to <paramref name="command"/>.</summary>
    public void AddTo(Command command)
    {
        foreach (var option in new Option[] { Model, Device, Family, MaxPixels, Tiling, Tile, ScalingFactor, ShiftFactor })
            command.Options.Add(option);
    }

    /// <summary>Loads the model the options name.</summary>
    public Vae Load(ParseResult parse) => Vae.Load(parse.GetValue(Model)!, new VaeOptions
    {
        Device = parse.GetValue(Device) ?? DevicePreference.Auto,
        Family = parse.GetValue(Family),
        MaxImagePixels = parse.GetValue(MaxPixels) ?? ImageFiles.DefaultMaxPixels,
    });

    public static Option<DevicePreference?> DeviceOption() => OptionParsers.Choice<DevicePreference>("--device",
        "auto: CUDA when an NVIDIA GPU is present, else the SIMD CPU backend; cpu: the SIMD CPU backend; cuda: the GPU; " +
        "ilgpu-cpu: ILGPU's CPU emulator of the GPU kernels (slow, for checking them) [default: auto]",
        ("auto", DevicePreference.Auto), ("cpu", DevicePreference.Cpu), ("cuda", DevicePreference.Cuda), ("ilgpu-cpu", DevicePreference.IlgpuCpu));

    public static Option<ModelFamily?> FamilyOption() => OptionParsers.Choice<ModelFamily>("--family",
        "the model family, when the checkpoint alone cannot tell (SD and SDXL share one architecture) " +
        "[default: recognised from the config and tensors]", OptionParsers.Families());
}
