using System.Globalization;
using NativeVae.Backends;

namespace NativeVae.Cli.Commands;

/// <summary>The options that encode, decode and roundtrip share: model, device, tiling, scaling.</summary>
internal static class ModelArguments
{
    /// <summary>Option names to accept, besides each command's own.</summary>
    public static readonly string[] Names = ["model", "device", "tiling", "tile", "scaling-factor", "shift-factor", "family", "max-pixels"];

    public const string Usage = "--model <file-or-folder> [--device auto|cpu|cuda|ilgpu-cpu] [--tiling none|blend|exact|auto] [--tile N] [--scaling-factor f] [--shift-factor f]";

    public static Vae Load(CommandLine line)
    {
        string model = line.Option("model") ?? throw new UsageException("--model is required");
        var options = new VaeOptions
        {
            Device = ParseDevice(line.Option("device") ?? "auto"),
            Family = line.Option("family") is { } f ? InfoCommand.ParseFamily(f) : null,
            MaxImagePixels = line.Option("max-pixels") is { } p ? ParseLong(p, "max-pixels") : Imaging.ImageInput.DefaultMaxPixels,
        };
        return Vae.Load(model, options);
    }

    public static TilingMode Tiling(CommandLine line) => (line.Option("tiling") ?? "auto") switch
    {
        "none" => TilingMode.None,
        "blend" => TilingMode.Blend,
        "exact" => TilingMode.Exact,
        "auto" => TilingMode.Auto,
        var other => throw new UsageException($"--tiling '{other}' must be none, blend, exact or auto"),
    };

    public static int? Tile(CommandLine line) => line.Option("tile") is { } t ? (int)ParseLong(t, "tile") : null;

    public static float? Float(CommandLine line, string name)
    {
        if (line.Option(name) is not { } text) return null;
        if (!float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out float value) || !float.IsFinite(value))
            throw new UsageException($"--{name} '{text}' is not a number");
        return value;
    }

    public static DevicePreference ParseDevice(string name) => name switch
    {
        "auto" => DevicePreference.Auto,
        "cuda" => DevicePreference.Cuda,
        "cpu" => DevicePreference.Cpu,
        "ilgpu-cpu" => DevicePreference.IlgpuCpu,
        _ => throw new UsageException($"--device '{name}' must be auto, cpu, cuda or ilgpu-cpu"),
    };

    public static long ParseLong(string text, string name) =>
        long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out long value) && value > 0
            ? value
            : throw new UsageException($"--{name} '{text}' must be a positive integer");
}
