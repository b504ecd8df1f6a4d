using System.Diagnostics;
using System.Globalization;

namespace NativeVae.Cli.Commands;

/// <summary>
/// The video side of encode, decode and roundtrip (families wan and wan22): a frame folder in, a 5-D latent file or a
/// frame folder out. Frame counts are checked before the model runs.
/// </summary>
internal static class VideoCli
{
    /// <summary>The --frames option: how many of the folder's frames to use.</summary>
    public static System.CommandLine.Option<int?> FramesOption() =>
        OptionParsers.PositiveInt("--frames", "N", "video: use the first N frames of the frame folder (Wan encodes 1 + 4k) [default: all]");

    /// <summary>The --fps option: the frame rate of an MP4 written.</summary>
    public static System.CommandLine.Option<double?> FpsOption(string defaultText) =>
        OptionParsers.PositiveDouble("--fps", "F", $"video: frames per second of the .mp4 written [default: {defaultText}]");

    /// <summary>True when <paramref name="input"/> names a video (a frame folder or a video file) rather than an image file.</summary>
    public static bool IsVideo(string input) => Directory.Exists(input) || VideoFiles.IsVideoFile(input);

    /// <summary>Checks, before any work, that <paramref name="output"/> can be written: an .mp4 file or a frame folder.</summary>
    public static void RequireWritable(string output)
    {
        if (IsMp4(output)) OutputPath.RequireWritable(output);
        else OutputPath.RequireFrameFolder(output);
    }

    /// <summary>True when <paramref name="output"/> names an MP4 to write rather than a frame folder.</summary>
    public static bool IsMp4(string output) => Path.GetExtension(output).Equals(".mp4", StringComparison.OrdinalIgnoreCase);

    /// <summary>The local video model, or a usage error naming why not.</summary>
    public static Vae RequireVideo(IVae vae, string input)
    {
        if (vae is Vae local && local.IsVideo) return local;
        string what = vae is Vae image ? $"{image.Family.Name()} is an image VAE" : "a remote endpoint takes no video yet";
        throw new UsageException($"{input}: a video (frame folder or 5-D latent) needs a local video model (--family wan or wan22); {what}");
    }

    /// <summary>
    /// The frames of a folder or video file (the first <paramref name="frames"/> when given) and the file's frame rate
    /// (null for a folder), refused unless the model uses them all.
    /// </summary>
    public static (HostTensor<float> Video, double? Fps) ReadFrames(Vae vae, string input, int? frames, long maxPixels)
    {
        HostTensor<float> video;
        double? fps = null;
        if (Directory.Exists(input))
        {
            int available = VideoFrameFolder.Files(input).Count;
            if (frames > available) throw new UsageException($"--frames {frames}: {input} holds {available} frames");
            RequireUsable(vae, input, frames ?? available);
            video = VideoFrameFolder.Read(input, maxPixels, frames ?? available);
        }
        else
        {
            (video, var fileFps) = VideoFiles.Read(input, maxPixels, frames);
            fps = fileFps;
            if (frames > video.Shape[2]) throw new UsageException($"--frames {frames}: {input} holds {video.Shape[2]} frames");
            RequireUsable(vae, input, video.Shape[2]);
        }
        return (video, fps);
    }

    private static void RequireUsable(Vae vae, string input, int count)
    {
        int used = vae.UsableFrames(count);
        if (used != count)
            throw new UsageException($"{input}: {count} frames; {vae.Family.Name()} encodes 1 + 4k, so the last {count - used} would be " +
                $"dropped: pass --frames {used} to encode the first {used}");
    }

    /// <summary>Writes the frames as an MP4 at <paramref name="fps"/> (an .mp4 output) or a frame folder, and reports it.</summary>
    public static void WriteFrames(HostTensor<float> video, string output, double fps, TextWriter stdout)
    {
        if (IsMp4(output))
        {
            OutputPath.Write(output, () => VideoFiles.WriteMp4(video, output, fps));
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{output}: {video.Shape[2]} frames of {video.Shape[4]}x{video.Shape[3]} at {fps:G} fps"));
            return;
        }
        var paths = VideoFrameFolder.Write(video, output);
        stdout.WriteLine($"{output}: {paths.Count} frames of {video.Shape[4]}x{video.Shape[3]}");
    }

    /// <summary>
    /// roundtrip of a video: encode, decode (untiled, or with exact tiles of <paramref name="tile"/>), write the frames
    /// or MP4 (at the input's rate unless --fps), print PSNR over all frames and the times.
    /// </summary>
    public static void Roundtrip(Vae vae, string input, string output, int? frames, double? fps, long maxPixels, TilingMode tiling, int? tile,
        TextWriter stdout, TextWriter stderr)
    {
        var (video, inputFps) = ReadFrames(vae, input, frames, maxPixels);
        var clock = Stopwatch.StartNew();
        var latent = vae.EncodeVideo(video, new EncodeOptions { Tiling = tiling, TileSize = tile, Progress = new ProgressBar(stderr, "encode") });
        double encodeSeconds = clock.Elapsed.TotalSeconds;
        clock.Restart();
        var decoded = vae.DecodeVideo(latent, new DecodeOptions { Tiling = tiling, TileSize = tile, Progress = new ProgressBar(stderr, "decode") });
        double decodeSeconds = clock.Elapsed.TotalSeconds;
        WriteFrames(decoded, output, fps ?? inputFps ?? VideoFiles.DefaultFps, stdout);
        var invariant = CultureInfo.InvariantCulture;
        stdout.WriteLine(string.Create(invariant, $"psnr_db={ImageFiles.Psnr(video, decoded):F2}"));
        stdout.WriteLine(string.Create(invariant,
            $"video={video.Shape} latent={latent.Shape} device=\"{vae.DeviceName}\" encode_s={encodeSeconds:F3} decode_s={decodeSeconds:F3} peak_device_bytes={vae.PeakDeviceBytes}"));
    }
}
