using System.Reflection;
using System.Runtime.CompilerServices;
using NativeVae.Core;
using static NativeVae.Tests.Support.SyntheticVae;
using static NativeVae.Tests.Cli.CliRun;

namespace NativeVae.Tests.Cli;

/// <summary>
/// What a new user of the CLI meets first: help on the tool and on every command, and the command lines that
/// used to be accepted and then ignored or misread, each refused as a usage error in one clean line.
/// </summary>
public class CliUsageTests
{
    private static readonly string[] CommandNames = ["convert", "info", "encode", "decode", "roundtrip", "bench"];

    /// <summary>A usage error: exit 2, its first line names the command, says "error:" and holds no .NET wording.</summary>
    private static string AssertUsageError((int Code, string Out, string Err) result, string command)
    {
        Assert.That(result.Code, Is.EqualTo(NativeVae.Cli.ExitCodes.Usage), result.Err);
        Assert.That(result.Out, Is.Empty);
        string first = result.Err.Split('\n')[0];
        Assert.That(first, Does.StartWith(command == "" ? "nativevae: error: " : $"nativevae {command}: error: "));
        Assert.That(result.Err, Does.Not.Contain("System.").And.Not.Contain("(Parameter").And.Not.Contain("   at "));
        return first;
    }

    private static string LatentFile(TensorShape shape)
    {
        string path = Path.Combine(TempFolder(), "latent.safetensors");
        NativeVae.LatentFile.Write(path, new HostTensor<float>(shape));
        return path;
    }

    [Test]
    public void ToolHelpListsEveryCommand()
    {
        var (code, stdout, stderr) = Run("--help");
        Assert.That(code, Is.Zero, stderr);
        Assert.That(stderr, Is.Empty);
        Assert.That(stdout, Does.Contain("Usage:"));
        foreach (string name in CommandNames) Assert.That(stdout, Does.Contain($"  {name}"), name);
    }

    [Test]
    public void NoCommandPrintsTheHelpOnStderrAsAUsageError()
    {
        var (code, stdout, stderr) = Run();
        Assert.That(code, Is.EqualTo(NativeVae.Cli.ExitCodes.Usage));
        Assert.That(stdout, Is.Empty);
        Assert.That(stderr, Does.Contain("Commands:"));
    }

    [TestCaseSource(nameof(CommandNames))]
    public void EveryCommandHasHelp(string command)
    {
        var (code, stdout, stderr) = Run(command, "--help");
        Assert.That(code, Is.Zero, stderr);
        Assert.That(stderr, Is.Empty);
        // The usage line starts with the executable's name: "nativevae" when installed, the test host's here.
        var usage = stdout.Split('\n').SkipWhile(l => l != "Usage:").Skip(1).First();
        Assert.That(usage, Does.Contain($" {command} "));
        Assert.That(stdout, Does.Contain("Options:").And.Contain("--help"));
    }

    /// <summary>The options that were undocumented, and the defaults that were not stated.</summary>
    [TestCase("encode")]
    [TestCase("decode")]
    [TestCase("roundtrip")]
    public void ModelCommandHelpDocumentsMaxPixelsFamilyAndTheTilingDefaults(string command)
    {
        var (_, stdout, _) = Run(command, "--help");
        Assert.That(stdout, Does.Contain("--max-pixels").And.Contain($"{NativeVae.ImageFiles.DefaultMaxPixels}"));
        Assert.That(stdout, Does.Contain("--family").And.Contain("sd|sdxl|flux|sd3|flux2|qwenimage|wan|wan22|taesd|taesdxl|taef1|taef2"));
        Assert.That(stdout, Does.Contain("[default: auto]"), "tiling and device defaults");
        Assert.That(stdout, Does.Contain("the model's sample size").And.Contain("exact: 256"), "tile defaults");
        Assert.That(stdout, Does.Contain("multiples of 32").And.Contain("of 64"), "the blend tile rule");
    }

    [Test]
    public void UnknownCommandIsNamed()
    {
        string first = AssertUsageError(Run("frobnicate"), "");
        Assert.That(first, Is.EqualTo("nativevae: error: unknown command 'frobnicate'"));
    }

    [Test]
    public void HeightAndWidthAreRefusedForAFourDimensionalLatent()
    {
        string latent = LatentFile(TensorShape.Nchw(1, 4, 2, 2));
        // Refused before the model is opened: the model path need not exist.
        string first = AssertUsageError(Run("decode", latent, "--model", "/no/such/model", "--height", "16", "--width", "16"), "decode");
        Assert.That(first, Does.Contain("--height/--width").And.Contain("[1, 4, 2, 2]"));
        first = AssertUsageError(Run("decode", latent, "--model", "/no/such/model", "--width", "16"), "decode");
        Assert.That(first, Does.Contain("--height/--width"));
    }

    [TestCase("x.png")]
    [TestCase("x.latent")]
    public void EncodeRefusesAnOutputThatIsNotSafetensors(string output)
    {
        string first = AssertUsageError(Run("encode", "in.png", "--model", "/no/such/model", "-o", Path.Combine(TempFolder(), output)), "encode");
        Assert.That(first, Does.Contain("-o/--output").And.Contain(".safetensors"));
    }

    [TestCase("decode")]
    [TestCase("roundtrip")]
    public void ImageOutputMustBePngOrJpeg(string command)
    {
        string input = command == "decode" ? LatentFile(TensorShape.Nchw(1, 4, 2, 2)) : "in.png";
        string first = AssertUsageError(Run(command, input, "--model", "/no/such/model", "-o", Path.Combine(TempFolder(), "x.safetensors")), command);
        Assert.That(first, Does.Contain("-o/--output").And.Contain(".png"));
    }

    /// <summary>Numbers are range-checked, never wrapped: 2^33 used to become a tile of 0 through an int cast.</summary>
    [TestCase("--tile", "8589934592")]
    [TestCase("--tile", "0")]
    [TestCase("--tile", "abc")]
    [TestCase("--max-pixels", "-1")]
    [TestCase("--scaling-factor", "NaN")]
    [TestCase("--tiling", "sometimes")]
    [TestCase("--device", "tpu")]
    [TestCase("--family", "sd4")]
    public void BadOptionValuesNameTheOption(string option, string value)
    {
        string first = AssertUsageError(Run("encode", "in.png", "--model", "m", option, value), "encode");
        Assert.That(first, Does.Contain($"{option} '{value}'"));
    }

    [Test]
    public void AMissingRequiredOptionIsNamed()
    {
        string first = AssertUsageError(Run("encode", "in.png"), "encode");
        Assert.That(first, Does.Contain("--model"));
    }

    /// <summary>A library ArgumentException ends in " (Parameter 'latents')"; the CLI prints the rule alone.</summary>
    [Test]
    public void LibraryErrorsCarryNoDotNetWording()
    {
        string model = Path.Combine(TempFolder(), "sd.safetensors");
        WriteSafeTensors(model, InLayout(SmallSd, Layout.Ldm, "first_stage_model."), DType.F32);
        string latent = LatentFile(TensorShape.Nchw(1, 3, 2, 2));
        var (code, stdout, stderr) = Run("decode", latent, "--model", model, "--device", "cpu", "-o", Path.Combine(TempFolder(), "x.png"));
        Assert.That(code, Is.EqualTo(NativeVae.Cli.ExitCodes.Failure), stderr);
        Assert.That(stdout, Is.Empty);
        Assert.That(stderr.TrimEnd().Split('\n'), Has.Length.EqualTo(1), stderr);
        Assert.That(stderr, Does.StartWith("nativevae decode: error: latents must be"));
        Assert.That(stderr, Does.Not.Contain("(Parameter").And.Not.Contain("System."));
    }

    /// <summary>The CLI uses the public API only: neither library assembly names it a friend.</summary>
    [Test]
    public void LibraryAssembliesDoNotGrantTheCliTheirInternals()
    {
        var cli = typeof(NativeVae.Cli.Program).Assembly.GetName().Name;
        Assert.That(cli, Is.EqualTo("nativevae"));
        foreach (var assembly in new[] { typeof(NativeVae.Vae).Assembly, typeof(NativeVae.Kernels.Cpu.SimdWidths).Assembly })
        {
            var friends = assembly.GetCustomAttributes<InternalsVisibleToAttribute>().Select(a => a.AssemblyName).ToList();
            Assert.That(friends, Does.Contain("NativeVae.Tests"), $"{assembly.GetName().Name}: the attributes are read");
            Assert.That(friends, Has.None.EqualTo(cli).IgnoreCase, $"{assembly.GetName().Name} grants the CLI its internals");
        }
    }
}
