using NativeVae.Models;
using NativeVae.Models.AutoencoderKl;
using NativeVae.Weights;
using NativeVae.Formats;
using NativeVae.Loading;
using static NativeVae.Tests.Support.SyntheticVae;

namespace NativeVae.Tests.Loading;

internal class KlFamilyRecognitionTests
{
    private const float Sd3Scaling = 1.5305f;
    private const float Sd3Shift = 0.0609f;

    /// <summary>A diffusers folder of <paramref name="config"/>, its config.json written by diffusers' key names.</summary>
    private static string WriteFolder(AutoencoderKlConfig config)
    {
        string dir = TempFolder();
        File.WriteAllText(Path.Combine(dir, "config.json"), AutoencoderKlConfigJson.Serialize(config));
        WriteSafeTensors(Path.Combine(dir, "diffusion_pytorch_model.safetensors"), InLayout(config, Layout.Diffusers));
        return dir;
    }

    [Test]
    public void Sd3ConfigIsRecognisedWithItsFactors()
    {
        using var vae = VaeLoader.Open(WriteFolder(SmallFlux with { ScalingFactor = Sd3Scaling, ShiftFactor = Sd3Shift }));
        Assert.That(vae.Family, Is.EqualTo(ModelFamily.Sd3));
        Assert.That(vae.ScalingFactor, Is.EqualTo(Sd3Scaling));
        Assert.That(vae.ShiftFactor, Is.EqualTo(Sd3Shift));
    }

    [TestCase(1.5305f, 0.0609f, ModelFamily.Sd3)]
    [TestCase(1.53052f, 0.06088f, ModelFamily.Sd3)]
    [TestCase(0.3611f, 0.1159f, ModelFamily.Flux)]
    [TestCase(1.5305f, 0.1159f, ModelFamily.Flux)]
    [TestCase(1.6f, 0.0609f, ModelFamily.Flux)]
    public void FluxStructureConfigsAreToldApartByTheirFactors(float scaling, float shift, ModelFamily expected) =>
        Assert.That(KlFamilyRecognition.FromConfig(SmallFlux with { ScalingFactor = scaling, ShiftFactor = shift }), Is.EqualTo(expected));

    [TestCase(0.13025f, ModelFamily.Sdxl)]
    [TestCase(0.130251f, ModelFamily.Sdxl)]
    [TestCase(0.18215f, ModelFamily.Sd)]
    [TestCase(0.1305f, ModelFamily.Sd)]
    public void SdStructureConfigsAreToldApartWithinTheTolerance(float scaling, ModelFamily expected) =>
        Assert.That(KlFamilyRecognition.FromConfig(SmallSd with { ScalingFactor = scaling }), Is.EqualTo(expected));

    [Test]
    public void FullSd3CheckpointIsRecognisedByItsTransformer()
    {
        string path = Path.Combine(TempFolder(), "sd3_medium.safetensors");
        var tensors = InLayout(SmallFlux, Layout.Ldm, "first_stage_model.");
        tensors.Add((KlFamilyRecognition.Sd3TransformerMarker + "0.x_block.attn.qkv.bias", new TensorShape(3), [1f, 2f, 3f]));
        WriteSafeTensors(path, tensors);
        using var vae = VaeLoader.Open(path);
        Assert.That(vae.Family, Is.EqualTo(ModelFamily.Sd3));
        Assert.That(vae.KlConfig!.ScalingFactor, Is.EqualTo(Sd3Scaling));
        Assert.That(vae.KlConfig.ShiftFactor, Is.EqualTo(Sd3Shift));
        Assert.That(vae.KlConfig.LatentChannels, Is.EqualTo(16));
        Assert.That(vae.KlConfig.UseQuantConv, Is.False);
    }

    [Test]
    public void FullFluxCheckpointStaysFlux()
    {
        string path = Path.Combine(TempFolder(), "flux1-dev-full.safetensors");
        var tensors = InLayout(SmallFlux, Layout.Ldm, "first_stage_model.");
        tensors.Add(("model.diffusion_model.double_blocks.0.img_attn.qkv.bias", new TensorShape(3), [1f, 2f, 3f]));
        WriteSafeTensors(path, tensors);
        using var vae = VaeLoader.Open(path);
        Assert.That(vae.Family, Is.EqualTo(ModelFamily.Flux));
    }

    [Test]
    public void BareSixteenChannelFileDefaultsToFluxAndTheFamilyOptionChoosesSd3()
    {
        string path = Path.Combine(TempFolder(), "vae.safetensors");
        WriteSafeTensors(path, InLayout(SmallFlux, Layout.Diffusers));
        using (var flux = VaeLoader.Open(path)) Assert.That(flux.Family, Is.EqualTo(ModelFamily.Flux), "the tensors cannot tell");
        using var sd3 = VaeLoader.Open(path, new VaeLoadOptions(ModelFamilies.Parse("sd3")));
        Assert.That(sd3.Family, Is.EqualTo(ModelFamily.Sd3));
        Assert.That(sd3.ScalingFactor, Is.EqualTo(Sd3Scaling));
        Assert.That(sd3.ShiftFactor, Is.EqualTo(Sd3Shift));
        Assert.That(sd3.KlConfig!.SampleSize, Is.EqualTo(1024));
    }

    [Test]
    public void Sd3IsAnAutoencoderKlFamilyByName()
    {
        Assert.That(ModelFamily.Sd3.Name(), Is.EqualTo("sd3"));
        Assert.That(ModelFamily.Sd3.IsTiny(), Is.False);
        Assert.That(ModelFamily.Taesd.IsTiny(), Is.True);
    }

    [Test]
    public void ConvertedSd3FileKeepsItsFamily()
    {
        string source = Path.Combine(TempFolder(), "vae.safetensors");
        WriteSafeTensors(source, InLayout(SmallFlux, Layout.Ldm));
        string output = Path.Combine(TempFolder(), "converted.safetensors");
        using (var vae = VaeLoader.Open(source, new VaeLoadOptions(ModelFamily.Sd3))) VaeConverter.Convert(vae, output, DType.F32);
        using var converted = VaeLoader.Open(output);
        Assert.That(converted.Family, Is.EqualTo(ModelFamily.Sd3));
        Assert.That(converted.ScalingFactor, Is.EqualTo(Sd3Scaling));
    }
}
