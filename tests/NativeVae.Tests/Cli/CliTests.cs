using System.Text.Json.Nodes;
using NativeVae.Tests.Support;
using static NativeVae.Tests.Support.SyntheticVae;
using static NativeVae.Tests.Cli.CliRun;

namespace NativeVae.Tests.Cli;

/// <summary>The CLI's entry point run in-process: exit codes, stdout JSON, one-line errors on stderr.</summary>
public class CliTests
{

    private static string SmallLdmFile()
    {
        string path = Path.Combine(TempFolder(), "sd.safetensors");
        WriteSafeTensors(path, InLayout(SmallSd, Layout.Ldm, "first_stage_model."), NativeVae.DType.F16);
        return path;
    }

    [Test]
    public void InfoPrintsOneJsonObjectWithDiffusersKeys()
    {
        var (code, stdout, stderr) = Run("info", SmallLdmFile());
        Assert.That(code, Is.Zero, stderr);
        Assert.That(stderr, Is.Empty);
        var json = JsonNode.Parse(stdout)!.AsObject();
        Assert.That((int)json["latent_channels"]!, Is.EqualTo(4));
        Assert.That(json["block_out_channels"]!.AsArray().Select(n => (int)n!), Is.EqualTo(new[] { 32, 64 }));
        Assert.That((int)json["layers_per_block"]!, Is.EqualTo(1));
        Assert.That((bool)json["use_quant_conv"]!, Is.True);
        Assert.That((bool)json["use_post_quant_conv"]!, Is.True);
        Assert.That((double)json["scaling_factor"]!, Is.EqualTo(0.18215).Within(1e-9));
        Assert.That(json["shift_factor"], Is.Null);
        Assert.That((string)json["family"]!, Is.EqualTo("sd"));
        Assert.That((string)json["dtype"]!, Is.EqualTo("fp16"));
        long expected = NativeVae.Models.AutoencoderKl.AutoencoderKlParameters.Enumerate(SmallSd).Sum(p => p.Shape.ElementCount);
        Assert.That((long)json["parameters"]!, Is.EqualTo(expected));
    }

    [Test]
    public void ConvertWritesTheFileAndInfoReadsIt()
    {
        string output = Path.Combine(TempFolder(), "out.safetensors");
        var (code, _, stderr) = Run("convert", SmallLdmFile(), output, "--dtype", "bf16", "--family", "sdxl");
        Assert.That(code, Is.Zero, stderr);
        var (infoCode, stdout, _) = Run("info", output);
        Assert.That(infoCode, Is.Zero);
        var json = JsonNode.Parse(stdout)!.AsObject();
        Assert.That((string)json["family"]!, Is.EqualTo("sdxl"));
        Assert.That((string)json["dtype"]!, Is.EqualTo("bf16"));
        Assert.That((double)json["scaling_factor"]!, Is.EqualTo(0.13025).Within(1e-9));
    }

    [Test]
    public void BadInputGivesOneLineErrorAndNoOutput()
    {
        string dir = TempFolder();
        string bad = Path.Combine(dir, "evil.pth");
        var writer = new TorchZipWriter();
        writer.EvilCalls.Add(("os", "system", "echo pwned"));
        writer.Save(bad, [new("a", NativeVae.DType.F32, new NativeVae.TensorShape(1), [1f])]);
        string output = Path.Combine(dir, "out.safetensors");
        var (code, stdout, stderr) = Run("convert", bad, output);
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stdout, Is.Empty);
        Assert.That(stderr.TrimEnd().Split('\n'), Has.Length.EqualTo(1), stderr);
        Assert.That(stderr, Does.Contain("evil.pth").And.Contain("os.system"));
        Assert.That(stderr, Does.Not.Contain("   at "));
        Assert.That(Directory.GetFiles(dir).Select(Path.GetFileName), Is.EqualTo(new[] { "evil.pth" }));
    }

    [TestCase(new[] { "info" }, 2)]
    [TestCase(new[] { "info", "a", "b" }, 2)]
    [TestCase(new[] { "convert", "a", "b", "--dtype", "fp8" }, 2)]
    [TestCase(new[] { "convert", "a", "b", "--family", "sd4" }, 2)]
    [TestCase(new[] { "convert", "a", "b", "--bogus", "1" }, 2)]
    [TestCase(new[] { "frobnicate" }, 2)]
    [TestCase(new[] { "info", "/no/such/file.safetensors" }, 1)]
    public void ErrorsAreOneLineWithNonZeroExit(string[] args, int expectedCode)
    {
        var (code, _, stderr) = Run(args);
        Assert.That(code, Is.EqualTo(expectedCode));
        string firstLine = stderr.Split('\n')[0];
        Assert.That(firstLine, Does.StartWith("nativevae"));
        Assert.That(firstLine, Does.Contain("error:"));
        Assert.That(stderr, Does.Not.Contain("   at "));
    }
}
