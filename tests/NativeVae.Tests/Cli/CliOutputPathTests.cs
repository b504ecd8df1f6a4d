using static NativeVae.Tests.Cli.CliRun;
namespace NativeVae.Tests.Cli;

/// <summary>
/// An output that cannot be written is refused before any work (issue 12): the check runs before the model, the
/// image or the latent is even opened, so these commands name the output although their inputs do not exist.
/// </summary>
public class CliOutputPathTests
{

    private static string MissingFolder() => Path.Combine(Path.GetTempPath(), $"nativevae-missing-{Guid.NewGuid():N}");

    [TestCase("encode", "in.png", "x.safetensors")]
    [TestCase("decode", "in.safetensors", "x.png")]
    [TestCase("roundtrip", "in.png", "x.png")]
    public void AnOutputInAMissingFolderIsRefusedBeforeTheWork(string command, string input, string outputName)
    {
        string folder = MissingFolder();
        string output = Path.Combine(folder, outputName);
        var (code, _, stderr) = Run(command, Path.Combine(folder, input), "--model", Path.Combine(folder, "model.safetensors"), "-o", output);
        Assert.That(code, Is.EqualTo(NativeVae.Cli.ExitCodes.Failure), stderr);
        Assert.That(stderr, Does.Contain($"'{output}'").And.Contain("does not exist"), "names the user's output path, not the missing model or input");
        Assert.That(stderr, Does.Not.Contain("model.safetensors"));
    }

    [Test]
    public void AnOutputInAFolderThatTakesNoFilesIsRefused()
    {
        // /proc refuses new files even to root, unlike a chmod-ed folder.
        if (!OperatingSystem.IsLinux() || !Directory.Exists("/proc/self")) Assert.Ignore("needs Linux's /proc");
        var (code, _, stderr) = Run("encode", "/nonexistent/in.png", "--model", "/nonexistent/m.safetensors", "-o", "/proc/nativevae-out.safetensors");
        Assert.That(code, Is.EqualTo(NativeVae.Cli.ExitCodes.Failure), stderr);
        Assert.That(stderr, Does.Contain("'/proc/nativevae-out.safetensors': cannot write in the folder '/proc'"));
        Assert.That(stderr, Does.Not.Contain(".tmp").And.Not.Contain(".probe"), "no internal file names");
    }

    [Test]
    public void AFolderGivenAsTheOutputIsRefused()
    {
        string parent = Directory.CreateTempSubdirectory("nativevae-out-").FullName;
        try
        {
            string folder = Directory.CreateDirectory(Path.Combine(parent, "latent.safetensors")).FullName;
            var (code, _, stderr) = Run("encode", Path.Combine(parent, "in.png"), "--model", Path.Combine(parent, "m.safetensors"), "-o", folder);
            Assert.That(code, Is.EqualTo(NativeVae.Cli.ExitCodes.Failure), stderr);
            Assert.That(stderr, Does.Contain($"'{folder}' is a folder"));
        }
        finally
        {
            Directory.Delete(parent, recursive: true);
        }
    }
}
