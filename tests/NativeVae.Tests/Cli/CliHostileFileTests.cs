using System.Buffers.Binary;
using System.Text;
using NativeVae.Tests.Support;
using static NativeVae.Tests.Support.SyntheticVae;
using static NativeVae.Tests.Cli.CliRun;

namespace NativeVae.Tests.Cli;

/// <summary>
/// Files from a seeded format fuzz that reached the user as a library's raw error or ran work for nothing: each is now
/// refused up front, with a message that names the file or tensor, and writes no output. Plus the help's promise on
/// batch output names, which the code now keeps.
/// </summary>
public class CliHostileFileTests
{

    [Test]
    public void ALatentWithAnEmptyDimensionIsRefusedBeforeAnyWork()
    {
        string folder = TempFolder();
        string model = Path.Combine(folder, "sd.safetensors");
        WriteSafeTensors(model, InLayout(SmallSd, Layout.Ldm, "first_stage_model."), NativeVae.DType.F32);
        string latent = Path.Combine(folder, "empty.safetensors");
        LatentFile.Write(latent, new HostTensor<float>(TensorShape.Nchw(1, 4, 0, 8)));
        string output = Path.Combine(folder, "out.png");

        var (code, _, stderr) = Run("decode", latent, "--model", model, "-o", output);

        Assert.That(code, Is.Not.Zero);
        Assert.That(stderr, Does.Contain("latents [1, 4, 0, 8]: dimension 2 is 0"));
        Assert.That(stderr, Does.Not.Contain("Parameter"), "not ImageSharp's raw message");
        Assert.That(File.Exists(output), Is.False);
    }

    [Test]
    public void ASafetensorsHeaderWithALoneSurrogateNamesTheFile()
    {
        string path = Path.Combine(TempFolder(), "surrogate.safetensors");
        byte[] header = Encoding.ASCII.GetBytes("{\"\\ud800\":1}");
        var file = new byte[sizeof(ulong) + header.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)header.Length);
        header.CopyTo(file, sizeof(ulong));
        File.WriteAllBytes(path, file);

        var (code, _, stderr) = Run("info", path);

        Assert.That(code, Is.Not.Zero);
        Assert.That(stderr, Does.Contain(path).And.Contain("not valid Unicode"));
        Assert.That(stderr, Does.Not.Contain("UTF-16 JSON text"), "not System.Text.Json's raw message");
    }

    [Test]
    public void DecodeHelpNamesTheFilesABatchWrites()
    {
        var (code, stdout, _) = Run("decode", "--help");
        Assert.That(code, Is.Zero);
        Assert.That(stdout, Does.Contain("out-0.png, ..., out-<N-1>.png"));

        string folder = TempFolder();
        string model = Path.Combine(folder, "sd.safetensors");
        WriteSafeTensors(model, InLayout(SmallSd, Layout.Ldm, "first_stage_model."), NativeVae.DType.F32);
        string latent = Path.Combine(folder, "batch.safetensors");
        LatentFile.Write(latent, new HostTensor<float>(TensorShape.Nchw(2, 4, 3, 3)));
        var (decoded, _, stderr) = Run("decode", latent, "--model", model, "-o", Path.Combine(folder, "out.png"));
        Assert.That(decoded, Is.Zero, stderr);
        Assert.That(Directory.GetFiles(folder, "out*.png").Select(Path.GetFileName), Is.EquivalentTo(new[] { "out-0.png", "out-1.png" }));
    }
}
