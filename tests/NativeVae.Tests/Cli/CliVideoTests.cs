using NativeVae.Formats.SafeTensors;
using NativeVae.Models.QwenImage;
using NativeVae.Tests.Api;
using NativeVae.Tests.Support;
using static NativeVae.Tests.Support.SyntheticVae;
using static NativeVae.Tests.Cli.CliRun;

namespace NativeVae.Tests.Cli;

/// <summary>
/// Video from the command line (family wan, the small config of models/wan_small_t9.safetensors): a frame folder
/// encodes to a 5-D latent file that decodes to a frame folder, roundtrip keeps the frame count and size, and the
/// refusals name the frame count or the odd frame.
/// </summary>
public class CliVideoTests
{
    private static (string Model, string Frames) WanModelAndFrames()
    {
        using var fixture = SafeTensorsFile.Open(TestPaths.Fixture("models/wan_small_t9.safetensors"));
        string json = fixture.Metadata["config"];
        string model = QwenImageApiTests.DiffusersFolder(QwenImageConfigJson.Parse(json, "fixture config"), json);
        string frames = Path.Combine(TempFolder(), "clip");
        VideoFrameFolder.Write(new HostTensor<float>(fixture.Get("input.video").Shape, fixture.ReadFloat32("input.video")), frames);
        return (model, frames);
    }

    [Test]
    public void AFrameFolderEncodesToAVideoLatentThatDecodesToAFrameFolder()
    {
        var (model, frames) = WanModelAndFrames();
        string latent = Path.Combine(TempFolder(), "clip.latent.safetensors");
        var (code, stdout, stderr) = Run("encode", frames, "--model", model, "--device", "cpu", "-o", latent);
        Assert.That(code, Is.Zero, stderr);
        Assert.That(LatentFile.Read(latent).Shape, Is.EqualTo(new TensorShape(1, 4, 3, 3, 5)), "9 frames of 12x20: 3 latent frames of 3x5");

        string decoded = Path.Combine(TempFolder(), "decoded");
        (code, stdout, stderr) = Run("decode", latent, "--model", model, "--device", "cpu", "-o", decoded);
        Assert.That(code, Is.Zero, stderr);
        Assert.That(stdout, Does.Contain("9 frames of 20x12"));
        var written = VideoFrameFolder.Read(decoded);
        Assert.That(written.Shape, Is.EqualTo(new TensorShape(1, 3, 9, 12, 20)));
    }

    [Test]
    public void RoundtripOfAFrameFolderKeepsTheFramesAndPrintsPsnr()
    {
        var (model, frames) = WanModelAndFrames();
        string output = Path.Combine(TempFolder(), "out");
        var (code, stdout, stderr) = Run("roundtrip", frames, "--model", model, "--device", "cpu", "--frames", "5", "-o", output);
        Assert.That(code, Is.Zero, stderr);
        Assert.That(stdout, Does.Contain("psnr_db=").And.Contain("latent=[1, 4, 2, 3, 5]"));
        Assert.That(VideoFrameFolder.Files(output), Has.Count.EqualTo(5));
    }

    [Test]
    public void AFrameCountThatWouldDropFramesIsRefusedWithTheCountToPass()
    {
        var (model, frames) = WanModelAndFrames();
        var (code, _, stderr) = Run("encode", frames, "--model", model, "--device", "cpu", "--frames", "7", "-o", Path.Combine(TempFolder(), "x.latent.safetensors"));
        Assert.That(code, Is.Not.Zero);
        Assert.That(stderr, Does.Contain("7 frames").And.Contain("last 2 would be dropped").And.Contain("--frames 5"));
    }

    [Test]
    public void AFrameOfAnotherSizeIsRefusedByName()
    {
        var (model, frames) = WanModelAndFrames();
        var odd = new HostTensor<float>(new TensorShape(1, 3, 1, 8, 8));
        string other = Path.Combine(TempFolder(), "other");
        VideoFrameFolder.Write(odd, other);
        File.Move(Path.Combine(other, VideoFrameFolder.FrameName(0)), Path.Combine(frames, "frame_00004b.png"));
        var (code, _, stderr) = Run("encode", frames, "--model", model, "--device", "cpu", "--frames", "9", "-o", Path.Combine(TempFolder(), "x.latent.safetensors"));
        Assert.That(code, Is.Not.Zero);
        Assert.That(stderr, Does.Contain("frame_00004b.png").And.Contain("is 8x8").And.Contain("one size"));
    }

    [Test]
    public void AVideoFolderGivenToAnImageFamilyIsRefused()
    {
        var (_, frames) = WanModelAndFrames();
        using var fixture = SafeTensorsFile.Open(TestPaths.Fixture("models/qwenimage_small.safetensors"));
        string qwen = QwenImageApiTests.DiffusersFolder(QwenImageConfigJson.Parse(fixture.Metadata["config"], "fixture config"));
        var (code, _, stderr) = Run("encode", frames, "--model", qwen, "--device", "cpu", "-o", Path.Combine(TempFolder(), "x.latent.safetensors"));
        Assert.That(code, Is.Not.Zero);
        Assert.That(stderr, Does.Contain("qwenimage is an image VAE"));
    }

    [Test]
    public void AnMp4RoundTripsToAnMp4WithItsFrameCountSizeAndRate()
    {
        VideoFilesTests.RequireFfmpeg();
        var (model, _) = WanModelAndFrames();
        string input = Path.Combine(TempFolder(), "in.mp4");
        VideoFiles.WriteMp4(VideoFilesTests.MovingGradient(5, 12, 20), input, fps: 10);
        string output = Path.Combine(TempFolder(), "out.mp4");
        var (code, stdout, stderr) = Run("roundtrip", input, "--model", model, "--device", "cpu", "-o", output);
        Assert.That(code, Is.Zero, stderr);
        Assert.That(stdout, Does.Contain("5 frames of 20x12 at 10 fps"));
        var (frames, width, height, fps) = VideoFiles.Probe(output);
        Assert.That((frames, width, height), Is.EqualTo((5, 20, 12)), "ffprobe of the MP4 written");
        Assert.That(fps, Is.EqualTo(10).Within(1e-6), "the input's rate");
    }

    [Test]
    public void AVideoLatentDecodesToAnMp4AtTheRateGiven()
    {
        VideoFilesTests.RequireFfmpeg();
        var (model, frames) = WanModelAndFrames();
        string latent = Path.Combine(TempFolder(), "clip.latent.safetensors");
        var (code, _, stderr) = Run("encode", frames, "--model", model, "--device", "cpu", "-o", latent);
        Assert.That(code, Is.Zero, stderr);
        string output = Path.Combine(TempFolder(), "clip.mp4");
        (code, _, stderr) = Run("decode", latent, "--model", model, "--device", "cpu", "--fps", "24", "-o", output);
        Assert.That(code, Is.Zero, stderr);
        Assert.That(VideoFiles.Probe(output), Is.EqualTo((9, 20, 12, 24.0)));
    }

    [Test]
    public void AnMp4FfmpegCannotReadIsRefusedByName()
    {
        VideoFilesTests.RequireFfmpeg();
        var (model, _) = WanModelAndFrames();
        string input = Path.Combine(TempFolder(), "broken.mp4");
        File.WriteAllBytes(input, new byte[1000]);
        var (code, _, stderr) = Run("encode", input, "--model", model, "--device", "cpu", "-o", Path.Combine(TempFolder(), "x.latent.safetensors"));
        Assert.That(code, Is.Not.Zero);
        Assert.That(stderr, Does.Contain("broken.mp4").And.Contain("ffmpeg cannot"));
    }
}
