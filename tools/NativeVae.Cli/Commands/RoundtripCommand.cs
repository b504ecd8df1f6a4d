using System.CommandLine;
using System.Diagnostics;
using System.Globalization;

namespace NativeVae.Cli.Commands;

/// <summary>
/// <c>nativevae roundtrip &lt;image&gt; --model M -o out.png</c>: encode then decode, write the result, and print
/// <c>psnr_db=</c> against the input (resized to a multiple of 8 first, as the encoder sees it), the times and
/// the peak device memory.
/// </summary>
internal sealed class RoundtripCommand : ICommand
{
    public Command Build(TextWriter stdout, TextWriter stderr)
    {
        var image = new Argument<string>("image") { Description = "a PNG, JPEG, WebP or BMP file; or a video (family wan): a folder of frames or a video file (.mp4, .mkv, .mov, .webm, .avi; needs ffmpeg)" };
        var frames = VideoCli.FramesOption();
        var fps = VideoCli.FpsOption("the input file's, else 16");
        var model = new ModelOptions();
        var output = new Option<string>("--output", "-o") { HelpName = "out.png", Required = true, Description = "the decoded image to write, .png or .jpg; for a video, an .mp4 or a folder of frames" };
        var command = new Command("roundtrip", "encode and decode an image or a video's frames, write the result and print its PSNR against the input") { image, output, frames, fps };
        model.AddTo(command);
        command.SetAction(parse =>
        {
            string outputPath = parse.GetValue(output)!;
            string inputPath = parse.GetValue(image)!;
            if (VideoCli.IsVideo(inputPath))
            {
                VideoCli.RequireWritable(outputPath);
                using var videoVae = model.Load(parse);
                VideoCli.Roundtrip(VideoCli.RequireVideo(videoVae, inputPath), inputPath, outputPath, parse.GetValue(frames), parse.GetValue(fps),
                    parse.GetValue(model.MaxPixels) ?? ImageFiles.DefaultMaxPixels, parse.GetValue(model.Tiling) ?? TilingMode.Auto,
                    parse.GetValue(model.Tile), stdout, stderr);
                return ExitCodes.Success;
            }
            if (!ImageFiles.IsOutputImagePath(outputPath))
                throw new UsageException($"-o/--output '{outputPath}': images are written as .png, .jpg or .jpeg");
            OutputPath.RequireWritable(outputPath);
            var tiling = parse.GetValue(model.Tiling) ?? TilingMode.Auto;
            int? tile = parse.GetValue(model.Tile);
            using var vae = model.Load(parse);
            using var input = ImageFiles.Load(parse.GetValue(image)!, parse.GetValue(model.MaxPixels) ?? ImageFiles.DefaultMaxPixels);
            using var sized = ImageFiles.ResizeToMultiple(input, vae.DownsampleFactor);

            var clock = Stopwatch.StartNew();
            var latent = vae.Encode([sized], new EncodeOptions { Tiling = tiling, TileSize = tile, Progress = new ProgressBar(stderr, "encode") });
            double encodeSeconds = clock.Elapsed.TotalSeconds;
            clock.Restart();
            using var result = vae.Decode(latent, new DecodeOptions { Tiling = tiling, TileSize = tile, Progress = new ProgressBar(stderr, "decode") });
            double decodeSeconds = clock.Elapsed.TotalSeconds;

            var decoded = result.Images![0];
            OutputPath.Write(outputPath, () => ImageFiles.Save(decoded, outputPath));
            double psnr = ImageFiles.Psnr(sized, decoded);
            var invariant = CultureInfo.InvariantCulture;
            stdout.WriteLine(string.Create(invariant, $"psnr_db={psnr:F2}"));
            stdout.WriteLine(string.Create(invariant,
                $"image={sized.Width}x{sized.Height} latent={latent.Shape} device=\"{vae.DeviceName}\" encode_s={encodeSeconds:F3} decode_s={decodeSeconds:F3} peak_device_bytes={vae.PeakDeviceBytes}"));
            return ExitCodes.Success;
        });
        return command;
    }
}
