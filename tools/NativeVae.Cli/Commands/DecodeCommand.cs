using System.CommandLine;

namespace NativeVae.Cli.Commands;

/// <summary>
/// <c>nativevae decode &lt;latent.safetensors&gt; --model M | --endpoint URL [-o out.png] ...</c>: decodes the file's
/// <c>latent</c> tensor ([1, C, h, w]; [1, 16, 1, h, w] for qwenimage; FLUX.2's patchified [1, 128, h/2, w/2]; or packed
/// latents [1, seq, 4C] with --height and --width) to a PNG or JPEG,
/// with a local model or on a remote endpoint through the one <see cref="IVae"/> contract.
/// </summary>
internal sealed class DecodeCommand : ICommand
{
    /// <summary>Rank of packed latents [N, seq, 4C] (FLUX.1, FLUX.2, Qwen-Image), the only ones whose image size must be given.</summary>
    private const int PackedLatentRank = 3;

    /// <summary>Rank of video latents [N, C, T', h, w]; more than one frame decodes to a frame folder.</summary>
    private const int VideoLatentRank = 5;

    private const int VideoFrameAxis = 2;

    public Command Build(TextWriter stdout, TextWriter stderr)
    {
        var latentPath = new Argument<string>("latent.safetensors") { Description = "a safetensors file with a tensor named 'latent'" };
        var model = new ModelOptions(remote: true);
        var output = new Option<string>("--output", "-o")
        {
            HelpName = "out.png",
            Description = "the image to write, .png or .jpg; a batch of N writes out-0.png, ..., out-<N-1>.png instead; a " +
                "5-D video latent (family wan) writes an .mp4 or a folder of frames [default: the latent's name with .png, or _frames]",
        };
        var height = OptionParsers.PositiveInt("--height", "H", "image height in pixels, for packed latents [1, seq, 4C] only (FLUX.1, FLUX.2, Qwen-Image)");
        var width = OptionParsers.PositiveInt("--width", "W", "image width in pixels, for packed latents [1, seq, 4C] only (FLUX.1, FLUX.2, Qwen-Image)");
        var fps = VideoCli.FpsOption($"{VideoFiles.DefaultFps}");
        var command = new Command("decode", "decode a latent safetensors file to an image (or a video), with a local --model or on an --endpoint")
        {
            latentPath, output, height, width, fps,
        };
        model.AddTo(command);
        command.SetAction(parse =>
        {
            var openVae = model.Resolve(parse);
            string input = parse.GetValue(latentPath)!;
            // The output is checked before the latent is read: a video's is a folder or an .mp4, an image's an image file.
            if (parse.GetValue(output) is { } given)
            {
                if (ImageFiles.IsOutputImagePath(given)) OutputPath.RequireWritable(given);
                else VideoCli.RequireWritable(given);
            }
            var latentTensor = LatentFile.Read(input, LatentFile.MaxElementsFor(parse.GetValue(model.MaxPixels) ?? ImageFiles.DefaultMaxPixels));
            if (latentTensor.Shape.Rank == VideoLatentRank && latentTensor.Shape[VideoFrameAxis] > 1)
            {
                string folder = parse.GetValue(output) ?? Path.ChangeExtension(input, null) + "_frames";
                VideoCli.RequireWritable(folder);
                using var videoVae = openVae();
                var video = VideoCli.RequireVideo(videoVae, input).DecodeVideo(latentTensor, new DecodeOptions
                {
                    ScalingFactor = parse.GetValue(model.ScalingFactor),
                    ShiftFactor = parse.GetValue(model.ShiftFactor),
                    Tiling = parse.GetValue(model.Tiling) ?? TilingMode.Auto,
                    TileSize = parse.GetValue(model.Tile),
                    Progress = new ProgressBar(stderr, "decode"),
                });
                VideoCli.WriteFrames(video, folder, parse.GetValue(fps) ?? VideoFiles.DefaultFps, stdout);
                return ExitCodes.Success;
            }
            string outputPath = parse.GetValue(output) ?? Path.ChangeExtension(input, ".png");
            if (!ImageFiles.IsOutputImagePath(outputPath))
                throw new UsageException($"-o/--output '{outputPath}': images are written as .png, .jpg or .jpeg");
            OutputPath.RequireWritable(outputPath);
            var latent = latentTensor;
            int? h = parse.GetValue(height), w = parse.GetValue(width);
            if (latent.Shape.Rank != PackedLatentRank && (h is not null || w is not null))
                throw new UsageException($"--height/--width apply to packed latents [N, seq, 4C] only; {input} holds a " +
                    $"{latent.Shape.Rank}-D latent {latent.Shape}, whose image size follows from it");
            var options = new DecodeOptions
            {
                ScalingFactor = parse.GetValue(model.ScalingFactor),
                ShiftFactor = parse.GetValue(model.ShiftFactor),
                Height = h,
                Width = w,
                Output = DecodeOutput.Images,
                Tiling = parse.GetValue(model.Tiling) ?? TilingMode.Auto,
                TileSize = parse.GetValue(model.Tile),
                Progress = new ProgressBar(stderr, "decode"),
            };
            using var vae = openVae();
            using var result = vae.DecodeAsync(latent, options).GetAwaiter().GetResult();
            var images = result.Images!;
            for (int i = 0; i < images.Count; i++)
            {
                string path = images.Count == 1 ? outputPath : IndexedPath(outputPath, i);
                OutputPath.Write(path, () => ImageFiles.Save(images[i], path));
                stdout.WriteLine($"{path}: {images[i].Width}x{images[i].Height}");
            }
            return ExitCodes.Success;
        });
        return command;
    }

    /// <summary>out.png -> out-0.png for the first image of a batch, out-1.png for the second.</summary>
    private static string IndexedPath(string path, int index) =>
        Path.Combine(Path.GetDirectoryName(path) ?? "", $"{Path.GetFileNameWithoutExtension(path)}-{index}{Path.GetExtension(path)}");
}
