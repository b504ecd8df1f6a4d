using NativeVae.Api;
using NativeVae.Tests.Support;
using static NativeVae.Tests.Support.SyntheticVae;

namespace NativeVae.Tests.Api;

/// <summary>
/// Video files through the system's ffmpeg: frames to MP4 to frames keeps the frame count, size and frame rate (and
/// the pixels, to H.264's loss), a file ffmpeg cannot read is refused by name, and without ffmpeg the refusal says
/// how to install it. Skipped, with a message, where ffmpeg is not installed (CI installs it).
/// </summary>
public class VideoFilesTests
{
    /// <summary>H.264 at its default quality on smooth synthetic frames keeps well above this PSNR.</summary>
    private const double MinPsnrDb = 30;

    internal static void RequireFfmpeg()
    {
        if (!VideoFiles.FfmpegAvailable) Assert.Ignore("ffmpeg is not installed here (apt-get install ffmpeg); CI installs it");
    }

    /// <summary>A smooth moving gradient [1, 3, T, H, W] in [-1, 1]: content H.264 keeps well.</summary>
    internal static HostTensor<float> MovingGradient(int frames, int height, int width)
    {
        var video = new HostTensor<float>(new TensorShape(1, 3, frames, height, width));
        var frame = new float[3 * height * width];
        for (int t = 0; t < frames; t++)
        {
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < height; y++)
                    for (int x = 0; x < width; x++)
                        frame[(c * height + y) * width + x] = MathF.Sin(0.15f * (x + 2 * t) + 0.1f * y + c) * 0.8f;
            VideoFrames.Write(video, t, frame);
        }
        return video;
    }

    [Test]
    public void FramesToMp4ToFramesKeepTheCountSizeAndFrameRate()
    {
        RequireFfmpeg();
        var video = MovingGradient(9, 32, 48);
        string path = Path.Combine(TempFolder(), "clip.mp4");
        VideoFiles.WriteMp4(video, path, fps: 12);

        var (frames, width, height, fps) = VideoFiles.Probe(path);
        Assert.That((frames, width, height), Is.EqualTo((9, 48, 32)), "ffprobe");
        Assert.That(fps, Is.EqualTo(12).Within(1e-6));

        var (read, readFps) = VideoFiles.Read(path);
        Assert.That(read.Shape, Is.EqualTo(video.Shape));
        Assert.That(readFps, Is.EqualTo(12).Within(1e-6));
        Assert.That(ImageFiles.Psnr(video, read), Is.GreaterThan(MinPsnrDb), "H.264 keeps the frames");

        var (first, _) = VideoFiles.Read(path, maxFrames: 5);
        Assert.That(first.Shape[2], Is.EqualTo(5), "--frames takes the first 5");
    }

    [Test]
    public void AFileFfmpegCannotReadIsRefusedByName()
    {
        RequireFfmpeg();
        string path = Path.Combine(TempFolder(), "broken.mp4");
        File.WriteAllBytes(path, "this is not a video at all"u8.ToArray());
        var e = Assert.Throws<InvalidDataException>(() => VideoFiles.Read(path))!;
        Assert.That(e.Message, Does.Contain(path).And.Contain("ffmpeg cannot"));
    }

    [Test]
    public void WithoutFfmpegTheRefusalSaysHowToInstallIt()
    {
        string? message = VideoFiles.MissingTool(Path.Combine(TempFolder(), "empty-path"));
        Assert.That(message, Does.Contain("ffmpeg is not installed").And.Contain("apt-get install ffmpeg").And.Contain("folder of frames"));
    }
}
