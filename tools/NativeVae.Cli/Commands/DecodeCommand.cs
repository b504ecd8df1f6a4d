using NativeVae.Imaging;

namespace NativeVae.Cli.Commands;

/// <summary>
/// <c>nativevae decode &lt;latent.safetensors&gt; --model M [-o out.png] ...</c>: decodes the file's <c>latent</c>
/// tensor ([1, C, h, w], or packed FLUX latents [1, seq, 64] with --height and --width) to a PNG or JPEG.
/// </summary>
internal sealed class DecodeCommand : ICommand
{
    public string Name => "decode";

    public string Usage => $"decode <latent.safetensors> {ModelArguments.Usage} [-o out.png] [--height H --width W]";

    public string Summary => "decode a latent safetensors file to an image";

    public int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var line = new CommandLine(args, 1, [.. ModelArguments.Names, "output", "height", "width"]);
        string input = line.Positional[0];
        string output = line.Option("output") ?? Path.ChangeExtension(input, ".png");
        var options = new DecodeOptions
        {
            ScalingFactor = ModelArguments.Float(line, "scaling-factor"),
            ShiftFactor = ModelArguments.Float(line, "shift-factor"),
            Height = line.Option("height") is { } h ? (int)ModelArguments.ParseLong(h, "height") : null,
            Width = line.Option("width") is { } w ? (int)ModelArguments.ParseLong(w, "width") : null,
            Output = DecodeOutput.Images,
            Tiling = ModelArguments.Tiling(line),
            TileSize = ModelArguments.Tile(line),
            Progress = new ProgressBar(stderr, "decode"),
        };
        var latent = EncodeCommand.ReadLatent(input);
        using var vae = ModelArguments.Load(line);
        using var result = vae.Decode(latent, options);
        var images = result.Images!;
        for (int i = 0; i < images.Count; i++)
        {
            string path = images.Count == 1 ? output : IndexedPath(output, i);
            ImageOutput.Save(images[i], path);
            stdout.WriteLine($"{path}: {images[i].Width}x{images[i].Height}");
        }
        return ExitCodes.Success;
    }

    /// <summary>out.png -> out-1.png for the second image of a batch.</summary>
    private static string IndexedPath(string path, int index) =>
        Path.Combine(Path.GetDirectoryName(path) ?? "", $"{Path.GetFileNameWithoutExtension(path)}-{index}{Path.GetExtension(path)}");
}
