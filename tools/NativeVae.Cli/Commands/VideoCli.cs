using System.Diagnostics;
using System.Globalization;

namespace NativeVae.Cli.Commands;

/// <summary>
/// The video side of encode, decode and roundtrip (family wan): a frame folder in, a 5-D latent file or a frame folder
/// out. Frame counts are checked before the model runs.
/// </summary>
internal static class VideoCli
{
    /// <summary>The --frames option: how many of the folder's frames to use.</summary>
    public static System.CommandLine.Option<int?> FramesOption() =>
        OptionParsers.PositiveInt("--frames", "N", "video: use the first N frames of the frame folder (Wan encodes 1 + 4k) [default: all]");

    /// <summary>True when <paramref name="input"/> names a frame folder rather than an image file.</summary>
    public static bool IsFrameFolder(string input) => Directory.Exists(input);

    /// <summary>The local video model, or a usage error naming why not.</summary>
    public static Vae RequireVideo(IVae vae, string input)
    {
        if (vae is Vae local && local.IsVideo) return local;
        string what = vae is Vae image ? $"{image.Family.Name()} is an image VAE" : "a remote endpoint takes no video yet";
        throw new UsageException($"{input}: a video (frame folder or 5-D latent) needs a local video model (--family wan); {what}");
    }

    /// <summary>The folder's frames, the first <paramref name="frames"/> when given, refused unless the model uses them all.</summary>
    public static HostTensor<float> ReadFrames(Vae vae, string folder, int? frames, long maxPixels)
    {
        int available = VideoFrameFolder.Files(folder).Count;
        if (frames > available) throw new UsageException($"--frames {frames}: {folder} holds {available} frames");
        int count = frames ?? available, used = vae.UsableFrames(count);
        if (used != count)
            throw new UsageException($"{folder}: {count} frames; {vae.Family.Name()} encodes 1 + 4k, so the last {count - used} would be " +
                $"dropped: pass --frames {used} to encode the first {used}");
        return VideoFrameFolder.Read(folder, maxPixels, count);
    }

    /// <summary>Writes the frames and reports the folder.</summary>
    public static void WriteFrames(HostTensor<float> video, string folder, TextWriter stdout)
    {
        var paths = VideoFrameFolder.Write(video, folder);
        stdout.WriteLine($"{folder}: {paths.Count} frames of {video.Shape[4]}x{video.Shape[3]}");
    }

    /// <summary>roundtrip of a frame folder: encode, decode, write the frames, print PSNR over all frames and the times.</summary>
    public static void Roundtrip(Vae vae, string folder, string output, int? frames, long maxPixels, TextWriter stdout, TextWriter stderr)
    {
        var video = ReadFrames(vae, folder, frames, maxPixels);
        var clock = Stopwatch.StartNew();
        var latent = vae.EncodeVideo(video, new EncodeOptions { Progress = new ProgressBar(stderr, "encode") });
        double encodeSeconds = clock.Elapsed.TotalSeconds;
        clock.Restart();
        var decoded = vae.DecodeVideo(latent, new DecodeOptions { Progress = new ProgressBar(stderr, "decode") });
        double decodeSeconds = clock.Elapsed.TotalSeconds;
        WriteFrames(decoded, output, stdout);
        var invariant = CultureInfo.InvariantCulture;
        stdout.WriteLine(string.Create(invariant, $"psnr_db={Psnr(video.Data, decoded.Data):F2}"));
        stdout.WriteLine(string.Create(invariant,
            $"video={video.Shape} latent={latent.Shape} device=\"{vae.DeviceName}\" encode_s={encodeSeconds:F3} decode_s={decodeSeconds:F3} peak_device_bytes={vae.PeakDeviceBytes}"));
    }

    /// <summary>PSNR in dB of values in [-1, 1] (a peak-to-peak of 2).</summary>
    private static double Psnr(float[] expected, float[] actual)
    {
        const double PeakToPeak = 2.0;
        double sum = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = Math.Clamp(expected[i], -1f, 1f) - Math.Clamp(actual[i], -1f, 1f);
            sum += d * d;
        }
        double mse = sum / expected.Length;
        return mse == 0 ? double.PositiveInfinity : 10 * Math.Log10(PeakToPeak * PeakToPeak / mse);
    }
}
