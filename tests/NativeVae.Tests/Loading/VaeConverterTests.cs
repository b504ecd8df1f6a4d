using NativeVae.Models.Taesd;
using NativeVae.Tests.Support;
using NativeVae.Formats;
using NativeVae.Loading;
using NativeVae.Formats.SafeTensors;
using static NativeVae.Tests.Support.SyntheticVae;

namespace NativeVae.Tests.Loading;

public class VaeConverterTests
{
    [TestCase(DType.F32)]
    [TestCase(DType.F16)]
    [TestCase(DType.BF16)]
    public void ConvertedLdmCheckpointLoadsWithIdenticalTensors(DType dtype)
    {
        string dir = TempFolder();
        string source = Path.Combine(dir, "sd.ckpt");
        TorchZipWriter.WriteFloat32(source, InLayout(SmallSd, Layout.Ldm, "first_stage_model."));
        string output = Path.Combine(dir, "out.safetensors");

        using (var vae = VaeLoader.Open(source)) VaeConverter.Convert(vae, output, dtype);

        using var original = VaeLoader.Open(source);
        using var converted = VaeLoader.Open(output);
        Assert.That(converted.Family, Is.EqualTo(original.Family));
        Assert.That(converted.ConfigJson().ToJsonString(), Is.EqualTo(original.ConfigJson().ToJsonString()));
        Assert.That(converted.StorageDTypeName, Is.EqualTo(DTypeNames.Name(dtype)));
        Assert.That(converted.Parameters.Select(p => p.Name), Is.EqualTo(original.Parameters.Select(p => p.Name)));
        foreach (var (name, shape) in original.Parameters)
        {
            var expected = new float[shape.ElementCount];
            DTypeConversion.ToFloat32(dtype, DTypeConversion.FromFloat32(dtype, original.Weights.ReadFloat32(name)), expected);
            Assert.That(converted.Weights.ReadFloat32(name), Is.EqualTo(expected), name);
        }

        // a standard safetensors file: canonical names, the dtype, and the config in __metadata__
        using var raw = SafeTensorsFile.Open(output);
        Assert.That(raw.Metadata["format"], Is.EqualTo("nativevae"));
        Assert.That(raw.Metadata["family"], Is.EqualTo("sd"));
        Assert.That(raw.Metadata["config"], Does.Contain("\"block_out_channels\":[32,64]"));
        Assert.That(raw.Entries.Values.Select(e => e.DType).Distinct(), Is.EqualTo(new[] { dtype }));
        Assert.That(raw.Entries["encoder.mid_block.attentions.0.to_q.weight"].Shape, Is.EqualTo(new TensorShape(64, 64)));
        Assert.That(Directory.GetFiles(dir).Select(Path.GetFileName), Is.EquivalentTo(new[] { "sd.ckpt", "out.safetensors" }), "no temporary left");
    }

    [Test]
    public void ConvertedFileKeepsItsFamilyAndExactFactors()
    {
        string dir = TempFolder();
        string source = Path.Combine(dir, "vae.safetensors");
        WriteSafeTensors(source, InLayout(SmallSd, Layout.Diffusers));
        string output = Path.Combine(dir, "xl.safetensors");
        using (var vae = VaeLoader.Open(source, new VaeLoadOptions(ModelFamily.Sdxl))) VaeConverter.Convert(vae, output, DType.F16);
        using var converted = VaeLoader.Open(output);
        Assert.That(converted.Family, Is.EqualTo(ModelFamily.Sdxl));
        Assert.That(converted.KlConfig!.ScalingFactor, Is.EqualTo(0.13025f));
    }

    [Test]
    public void TaesdPairConvertsToOneFile()
    {
        string dir = TempFolder();
        TorchZipWriter.WriteFloat32(Path.Combine(dir, "taef1_encoder.pth"), TaesdHalf(TaesdConfig.Taef1, encoder: true));
        TorchZipWriter.WriteFloat32(Path.Combine(dir, "taef1_decoder.pth"), TaesdHalf(TaesdConfig.Taef1, encoder: false));
        string output = Path.Combine(TempFolder(), "taef1.safetensors");
        using (var vae = VaeLoader.Open(dir)) VaeConverter.Convert(vae, output, DType.F32);
        using var converted = VaeLoader.Open(output);
        Assert.That(converted.Family, Is.EqualTo(ModelFamily.Taef1));
        var expected = Canonical(TaesdConfig.Taef1);
        foreach (var (name, _) in converted.Parameters)
            Assert.That(converted.Weights.ReadFloat32(name), Is.EqualTo(expected[name]), name);
    }
}
