using System.Text.Json.Nodes;
using NativeVae.Formats.SafeTensors;
using NativeVae.Models.QwenImage;
using NativeVae.Tests.Support;
using NativeVae.Weights;
using static NativeVae.Tests.Support.SyntheticVae;
using static NativeVae.Tests.Cli.CliRun;

namespace NativeVae.Tests.Cli;

/// <summary>
/// FLUX.2 and Qwen-Image from the command line: <c>info</c> names the family, the factor and the latent forms;
/// <c>convert</c> keeps them; <c>encode --latent-form packed</c> writes the pipeline's tokens and <c>decode</c> takes
/// them back with <c>--height</c>/<c>--width</c>.
/// </summary>
public class CliModernFamilyTests
{
    private static string QwenFolder()
    {
        var config = QwenImageConfig.Small;
        var parameters = QwenImageParameters.Enumerate(config);
        var values = SeededWeights.Generate(SeededWeights.DefaultSeed, parameters);
        string folder = TempFolder();
        File.WriteAllText(Path.Combine(folder, "config.json"), QwenImageConfigJson.Serialize(config));
        WriteSafeTensors(Path.Combine(folder, "diffusion_pytorch_model.safetensors"), parameters.Select(p => (p.Name, p.Shape, values[p.Name])));
        return folder;
    }

    private static string Flux2Folder()
    {
        var config = SmallSd with { LatentChannels = 8, LatentBatchNorm = true };
        string folder = TempFolder();
        File.WriteAllText(Path.Combine(folder, "config.json"), NativeVae.Models.AutoencoderKl.AutoencoderKlConfigJson.Serialize(config));
        WriteSafeTensors(Path.Combine(folder, "diffusion_pytorch_model.safetensors"), InLayout(config, Layout.Diffusers));
        return folder;
    }

    [Test]
    public void InfoNamesTheFamilyAndItsLatentForms()
    {
        var (code, stdout, stderr) = Run("info", QwenFolder());
        Assert.That(code, Is.Zero, stderr);
        var json = JsonNode.Parse(stdout)!.AsObject();
        Assert.That((string)json["family"]!, Is.EqualTo("qwenimage"));
        Assert.That((string)json["_class_name"]!, Is.EqualTo("AutoencoderKLQwenImage"));
        Assert.That((int)json["downsample_factor"]!, Is.EqualTo(2));
        Assert.That(json["latent_forms"]!.AsArray().Select(n => (string)n!), Is.EqualTo(new[] { "raw", "packed" }));

        (code, stdout, stderr) = Run("info", Flux2Folder());
        Assert.That(code, Is.Zero, stderr);
        json = JsonNode.Parse(stdout)!.AsObject();
        Assert.That((string)json["family"]!, Is.EqualTo("flux2"));
        Assert.That(json["latent_forms"]!.AsArray().Select(n => (string)n!), Is.EqualTo(new[] { "raw", "patchified", "packed" }));
        Assert.That((double)json["batch_norm_eps"]!, Is.EqualTo(1e-4).Within(1e-12));
        Assert.That(json.ContainsKey("scaling_factor"), Is.False, "AutoencoderKLFlux2's config has no scaling factor");
    }

    [Test]
    public void ConvertKeepsQwenImageAndPackedLatentsRoundTripThroughFiles()
    {
        string dir = TempFolder();
        string converted = Path.Combine(dir, "qwen.safetensors");
        var (code, _, stderr) = Run("convert", QwenFolder(), converted, "--dtype", "bf16");
        Assert.That(code, Is.Zero, stderr);
        string image = Path.Combine(dir, "in.png");
        using (var png = new SixLabors.ImageSharp.Image<SixLabors.ImageSharp.PixelFormats.Rgb24>(16, 12))
            SixLabors.ImageSharp.ImageExtensions.SaveAsPng(png, image);
        string latent = Path.Combine(dir, "in.latent.safetensors");
        (code, var stdout, stderr) = Run("encode", image, "--model", converted, "--device", "cpu", "--latent-form", "packed", "-o", latent);
        Assert.That(code, Is.Zero, stderr);
        using (var file = SafeTensorsFile.Open(latent))
            Assert.That(file.Get("latent").Shape, Is.EqualTo(new TensorShape(1, 3 * 4, 16)), "[1, (H/4)(W/4), 4z] tokens for this 2-level VAE");
        string output = Path.Combine(dir, "out.png");
        (code, _, stderr) = Run("decode", latent, "--model", converted, "--device", "cpu", "-o", output);
        Assert.That(code, Is.Not.Zero, "packed tokens without --height/--width are refused");
        Assert.That(stderr, Does.Contain("`height` and `width` required for packed latents."));
        Assert.That(File.Exists(output), Is.False, "no half-written output");
        (code, _, stderr) = Run("decode", latent, "--model", converted, "--device", "cpu", "--height", "12", "--width", "16", "-o", output);
        Assert.That(code, Is.Zero, stderr);
        Assert.That(File.Exists(output));
    }
}
