using NativeVae.Formats.SafeTensors;

namespace NativeVae.Cli.Commands;

/// <summary>
/// <c>nativevae encode &lt;image&gt; --model M [-o latent.safetensors] ...</c>: writes the latent as a safetensors
/// file holding one tensor named <c>latent</c> [1, C, H/8, W/8].
/// </summary>
internal sealed class EncodeCommand : ICommand
{
    public const string LatentTensorName = "latent";

    public string Name => "encode";

    public string Usage => $"encode <image> {ModelArguments.Usage} [-o latent.safetensors] [--sample-seed S]";

    public string Summary => "encode an image (PNG, JPEG, WebP, BMP) to a latent safetensors file";

    public int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var line = new CommandLine(args, 1, [.. ModelArguments.Names, "output", "sample-seed"]);
        string image = line.Positional[0];
        string output = line.Option("output") ?? Path.ChangeExtension(image, ".latent.safetensors");
        var options = new EncodeOptions
        {
            ScalingFactor = ModelArguments.Float(line, "scaling-factor"),
            ShiftFactor = ModelArguments.Float(line, "shift-factor"),
            SampleSeed = line.Option("sample-seed") is { } s ? (ulong)ModelArguments.ParseLong(s, "sample-seed") : null,
            Tiling = ModelArguments.Tiling(line),
            TileSize = ModelArguments.Tile(line),
            Progress = new ProgressBar(stderr, "encode"),
        };
        using var vae = ModelArguments.Load(line);
        var latent = vae.Encode(image, options);
        SafeTensorsWriter.Write(output, [SafeTensorToWrite.FromFloat32(LatentTensorName, latent.Shape, latent.Data)]);
        stdout.WriteLine($"{output}: latent {latent.Shape}");
        return ExitCodes.Success;
    }

    /// <summary>Reads the <c>latent</c> tensor of a latent file.</summary>
    public static HostTensor<float> ReadLatent(string path)
    {
        using var file = SafeTensorsFile.Open(path);
        if (!file.Tensors.TryGetValue(LatentTensorName, out var info))
            throw new InvalidDataException($"{path}: no tensor named '{LatentTensorName}' (tensors: {string.Join(", ", file.Tensors.Keys)})");
        return new HostTensor<float>(info.Shape, file.ReadFloat32(LatentTensorName));
    }
}
