using System.CommandLine;

namespace NativeVae.Cli.Commands;

/// <summary>
/// <c>nativevae encode &lt;image&gt; --model M | --endpoint URL [-o latent.safetensors] ...</c>: writes the latent as a
/// safetensors file holding one tensor named <c>latent</c> [1, C, H/8, W/8], or a pipeline form with
/// <c>--latent-form</c> (<see cref="LatentFile"/>), encoded by a
/// local model or a remote endpoint through the one <see cref="IVae"/> contract.
/// </summary>
internal sealed class EncodeCommand : ICommand
{
    public Command Build(TextWriter stdout, TextWriter stderr)
    {
        var image = new Argument<string>("image") { Description = "a PNG, JPEG, WebP or BMP file; or a video (family wan): a folder of frames or a video file (.mp4, .mkv, .mov, .webm, .avi; needs ffmpeg)" };
        var frames = VideoCli.FramesOption();
        var model = new ModelOptions(remote: true);
        var output = new Option<string>("--output", "-o")
        {
            HelpName = "latent.safetensors",
            Description = "the latent file to write [default: the image's name with .latent.safetensors]",
        };
        var seed = OptionParsers.UnsignedLong("--sample-seed", "S",
            "draw a sample of the latent distribution with this seed [default: its mode (mean), as diffusers' endpoints]");
        var form = OptionParsers.Choice("--latent-form",
            "the latent's form: raw [N, C, H/8, W/8] ([N, 16, 1, H/8, W/8] for qwenimage), or a pipeline's, normalised with " +
            "the model's statistics: FLUX.2's patchified [N, 128, H/16, W/16], packed tokens [N, (H/16)(W/16), 4C] (FLUX.2, " +
            "Qwen-Image) [default: raw]", OptionParsers.LatentForms());
        var command = new Command("encode",
            "encode an image (PNG, JPEG, WebP, BMP) to a latent safetensors file, with a local --model or on an --endpoint") { image, output, seed, form, frames };
        model.AddTo(command);
        command.SetAction(parse =>
        {
            var openVae = model.Resolve(parse);
            string imagePath = parse.GetValue(image)!;
            string outputPath = parse.GetValue(output) ?? Path.ChangeExtension(Path.TrimEndingDirectorySeparator(imagePath), ".latent" + LatentFile.Extension);
            if (!outputPath.EndsWith(LatentFile.Extension, StringComparison.OrdinalIgnoreCase))
                throw new UsageException($"-o/--output '{outputPath}': latents are written as {LatentFile.Extension} files; give a name ending in {LatentFile.Extension}");
            OutputPath.RequireWritable(outputPath);
            var options = new EncodeOptions
            {
                ScalingFactor = parse.GetValue(model.ScalingFactor),
                ShiftFactor = parse.GetValue(model.ShiftFactor),
                SampleSeed = parse.GetValue(seed),
                Form = parse.GetValue(form) ?? LatentForm.Raw,
                Tiling = parse.GetValue(model.Tiling) ?? TilingMode.Auto,
                TileSize = parse.GetValue(model.Tile),
                Progress = new ProgressBar(stderr, "encode"),
            };
            using var vae = openVae();
            HostTensor<float> latent;
            if (VideoCli.IsVideo(imagePath))
            {
                var video = VideoCli.RequireVideo(vae, imagePath);
                latent = video.EncodeVideo(VideoCli.ReadFrames(video, imagePath, parse.GetValue(frames), video.MaxImagePixels).Video, options);
            }
            else latent = vae.EncodeAsync(imagePath, options).GetAwaiter().GetResult();
            OutputPath.Write(outputPath, () => LatentFile.Write(outputPath, latent));
            stdout.WriteLine($"{outputPath}: latent {latent.Shape}");
            return ExitCodes.Success;
        });
        return command;
    }
}
