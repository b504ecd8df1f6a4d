using NativeVae.Models.AutoencoderKl;
using NativeVae.Models.Taesd;
using NativeVae.Tests.Support;
using NativeVae.Formats;
using NativeVae.Loading;
using NativeVae.Loading.Layouts;
using static NativeVae.Tests.Support.SyntheticVae;

namespace NativeVae.Tests.Loading;

internal class VaeLoaderTests
{
    /// <summary>Every canonical parameter equals the seeded value it was written from.</summary>
    private static void AssertCanonical(LoadedVae vae, Dictionary<string, float[]> expected)
    {
        Assert.That(vae.Parameters.Select(p => p.Name), Is.EquivalentTo(expected.Keys));
        foreach (var (name, shape) in vae.Parameters)
        {
            Assert.That(vae.Weights.TryGetShape(name, out var actual), Is.True, name);
            Assert.That(actual, Is.EqualTo(shape), name);
            Assert.That(vae.Weights.ReadFloat32(name), Is.EqualTo(expected[name]), name);
        }
    }

    private static void AssertStructure(AutoencoderKlConfig actual, AutoencoderKlConfig expected)
    {
        Assert.That(actual.BlockOutChannels, Is.EqualTo(expected.BlockOutChannels));
        Assert.That(actual.LayersPerBlock, Is.EqualTo(expected.LayersPerBlock));
        Assert.That(actual.LatentChannels, Is.EqualTo(expected.LatentChannels));
        Assert.That(actual.UseQuantConv, Is.EqualTo(expected.UseQuantConv));
        Assert.That(actual.UsePostQuantConv, Is.EqualTo(expected.UsePostQuantConv));
        Assert.That(actual.MidBlockAddAttention, Is.EqualTo(expected.MidBlockAddAttention));
        Assert.That(actual.InChannels, Is.EqualTo(expected.InChannels));
        Assert.That(actual.OutChannels, Is.EqualTo(expected.OutChannels));
    }

    [Test]
    public void LdmNamesOfTheReferenceListMapToDiffusersNames()
    {
        string tsv = TestPaths.RequireShared("reference/autoencoder_kl_keys.tsv");
        var rows = File.ReadAllLines(tsv).Skip(1).Where(l => l.Length > 0).Select(l => l.Split('\t')).ToList();
        Assert.That(rows, Has.Count.EqualTo(248));
        int blocks = AutoencoderKlNaming.LdmBlockCount(rows.Select(r => r[1]));
        Assert.That(blocks, Is.EqualTo(4));
        foreach (var r in rows)
        {
            Assert.That(AutoencoderKlNaming.ToDiffusers(r[1], blocks), Is.EqualTo(r[0]), $"ldm {r[1]}");
            Assert.That(AutoencoderKlNaming.ToDiffusers(r[0], blocks), Is.EqualTo(r[0]), $"diffusers {r[0]}");
            var shape = new TensorShape(r[2].Trim('[', ']').Split(", ").Select(int.Parse).ToArray());
            Assert.That(ToLdm(r[0], shape, blocks).Name, Is.EqualTo(r[1]), "the tests' inverse mapping");
            Assert.That(ToLdm(r[0], shape, blocks).Shape.ToString(), Is.EqualTo(r[3]), $"ldm shape of {r[0]}");
        }
    }

    [TestCase(Layout.Diffusers, "", ".safetensors")]
    [TestCase(Layout.Ldm, "", ".safetensors")]
    [TestCase(Layout.Ldm, "first_stage_model.", ".safetensors")]
    [TestCase(Layout.Ldm, "vae.", ".safetensors")]
    [TestCase(Layout.LegacyAttention, "", ".safetensors")]
    [TestCase(Layout.Diffusers, "", ".pth")]
    [TestCase(Layout.Ldm, "first_stage_model.", ".ckpt")]
    public void SingleFileInEveryLayoutLoadsCanonicalWeightsAndInfersTheConfig(Layout layout, string prefix, string extension)
    {
        string path = Path.Combine(TempFolder(), "vae" + extension);
        var tensors = InLayout(SmallSd, layout, prefix);
        if (prefix.Length > 0) tensors.Add(("model.diffusion_model.out.0.weight", new TensorShape(2), [1f, 2f])); // other models of a full checkpoint
        if (extension == ".safetensors") WriteSafeTensors(path, tensors);
        else TorchZipWriter.WriteFloat32(path, tensors);

        using var vae = VaeLoader.Open(path);
        Assert.That(vae.Family, Is.EqualTo(ModelFamily.Sd));
        AssertStructure(vae.KlConfig!, SmallSd);
        Assert.That(vae.KlConfig!.ScalingFactor, Is.EqualTo(AutoencoderKlConfig.Sd.ScalingFactor), "published SD factor");
        Assert.That(vae.KlConfig.ShiftFactor, Is.Null);
        Assert.That(vae.StorageDTypeName, Is.EqualTo("fp32"));
        AssertCanonical(vae, Canonical(SmallSd));
    }

    [Test]
    public void FluxStyleFileIsRecognisedWithItsFactors()
    {
        string path = Path.Combine(TempFolder(), "ae.safetensors");
        WriteSafeTensors(path, InLayout(SmallFlux, Layout.Ldm));
        using var vae = VaeLoader.Open(path);
        Assert.That(vae.Family, Is.EqualTo(ModelFamily.Flux));
        AssertStructure(vae.KlConfig!, SmallFlux);
        Assert.That(vae.KlConfig!.ScalingFactor, Is.EqualTo(0.3611f));
        Assert.That(vae.KlConfig.ShiftFactor, Is.EqualTo(0.1159f));
        AssertCanonical(vae, Canonical(SmallFlux));
    }

    [Test]
    public void FamilyOverrideTakesThatFamilysFactors()
    {
        string path = Path.Combine(TempFolder(), "vae.safetensors");
        WriteSafeTensors(path, InLayout(SmallSd, Layout.Diffusers));
        using var vae = VaeLoader.Open(path, new VaeLoadOptions(ModelFamily.Sdxl));
        Assert.That(vae.Family, Is.EqualTo(ModelFamily.Sdxl));
        Assert.That(vae.KlConfig!.ScalingFactor, Is.EqualTo(0.13025f));
        Assert.That(vae.KlConfig.SampleSize, Is.EqualTo(512));
    }

    [TestCase("diffusion_pytorch_model.safetensors", DType.F32)]
    [TestCase("diffusion_pytorch_model.fp16.safetensors", DType.F16)]
    [TestCase("diffusion_pytorch_model.bin", DType.BF16)]
    public void DiffusersFolderUsesItsConfig(string weightsFile, DType dtype)
    {
        string dir = TempFolder();
        var config = AutoencoderKlConfig.Small with { ScalingFactor = 0.13025f };
        File.WriteAllText(Path.Combine(dir, "config.json"),
            AutoencoderKlConfigJson.Serialize(config).Replace("{", "{\"act_fn\":\"silu\",\"force_upcast\":false,", StringComparison.Ordinal));
        string weights = Path.Combine(dir, weightsFile);
        if (weightsFile.EndsWith(".bin")) TorchZipWriter.WriteFloat32(weights, InLayout(config, Layout.Diffusers), dtype);
        else WriteSafeTensors(weights, InLayout(config, Layout.Diffusers), dtype);

        using var vae = VaeLoader.Open(dir);
        Assert.That(vae.KlConfig, Is.EqualTo(config).Using<AutoencoderKlConfig>((a, b) => AutoencoderKlConfigJson.Serialize(a) == AutoencoderKlConfigJson.Serialize(b)));
        Assert.That(vae.Family, Is.EqualTo(ModelFamily.Sdxl), "0.13025 is SDXL's factor");
        Assert.That(vae.StorageDTypeName, Is.EqualTo(DTypeNames.Name(dtype)));
        var expected = Canonical(config).ToDictionary(kv => kv.Key, kv =>
        {
            var rounded = new float[kv.Value.Length];
            DTypeConversion.ToFloat32(dtype, DTypeConversion.FromFloat32(dtype, kv.Value), rounded);
            return rounded;
        });
        AssertCanonical(vae, expected);
    }

    [Test]
    public void ConfigJsonRoundTripsEveryKey()
    {
        var config = AutoencoderKlConfig.Flux1 with { BlockOutChannels = [64, 128], LayersPerBlock = 3, InChannels = 4, OutChannels = 5, MidBlockAddAttention = false, NormNumGroups = 16 };
        var parsed = AutoencoderKlConfigJson.Parse(AutoencoderKlConfigJson.Serialize(config), "test");
        Assert.That(AutoencoderKlConfigJson.Serialize(parsed), Is.EqualTo(AutoencoderKlConfigJson.Serialize(config)));
        Assert.That(parsed.BlockOutChannels, Is.EqualTo(config.BlockOutChannels));
        Assert.That(parsed.ShiftFactor, Is.EqualTo(0.1159f));
        Assert.That(AutoencoderKlConfigJson.Serialize(config), Does.Contain("\"scaling_factor\":0.3611"));
    }

    [TestCase("{\"latent_channels\":\"four\"}", "'latent_channels' must be an integer")]
    [TestCase("{\"block_out_channels\":[]}", "'block_out_channels' must be a non-empty list")]
    [TestCase("{\"block_out_channels\":[30]}", "is not a multiple of norm_num_groups")]
    [TestCase("{\"use_quant_conv\":1}", "'use_quant_conv' must be true or false")]
    [TestCase("[]", "not a JSON object")]
    [TestCase("{", "not valid JSON")]
    public void BadConfigJsonIsRefusedNamingTheKey(string json, string fragment)
    {
        var e = Assert.Throws<InvalidDataException>(() => AutoencoderKlConfigJson.Parse(json, "cfg.json"));
        Assert.That(e!.Message, Does.StartWith("cfg.json:").And.Contain(fragment));
    }

    [Test]
    public void MissingTensorIsNamed()
    {
        string path = Path.Combine(TempFolder(), "vae.safetensors");
        WriteSafeTensors(path, InLayout(SmallSd, Layout.Diffusers).Where(t => t.Name != "decoder.conv_norm_out.bias"));
        var e = Assert.Throws<InvalidDataException>(() => VaeLoader.Open(path).Dispose());
        Assert.That(e!.Message, Does.StartWith(path).And.Contain("'decoder.conv_norm_out.bias'"));
    }

    [Test]
    public void WrongShapeIsNamed()
    {
        string path = Path.Combine(TempFolder(), "vae.safetensors");
        var tensors = InLayout(SmallSd, Layout.Ldm).Select(t => t.Name == "decoder.norm_out.weight" ? (t.Name, new TensorShape(2, 16), t.Values) : t);
        WriteSafeTensors(path, tensors);
        var e = Assert.Throws<InvalidDataException>(() => VaeLoader.Open(path).Dispose());
        Assert.That(e!.Message, Does.Contain("tensor 'decoder.norm_out.weight' has shape [2, 16]"));
    }

    [Test]
    public void UnknownVaeTensorIsNamed()
    {
        string path = Path.Combine(TempFolder(), "vae.safetensors");
        var tensors = InLayout(SmallSd, Layout.Diffusers);
        tensors.Add(("encoder.mystery.weight", new TensorShape(1), [0f]));
        WriteSafeTensors(path, tensors);
        var e = Assert.Throws<InvalidDataException>(() => VaeLoader.Open(path).Dispose());
        Assert.That(e!.Message, Does.Contain("'encoder.mystery.weight'"));
    }

    [Test]
    public void TaesdPairLoadsFromFolderAndFromEitherFile()
    {
        string dir = TempFolder();
        var config = TaesdConfig.Taesd;
        TorchZipWriter.WriteFloat32(Path.Combine(dir, "taesd_encoder.pth"), TaesdHalf(config, encoder: true), DType.F16);
        WriteSafeTensors(Path.Combine(dir, "taesd_decoder.safetensors"), TaesdHalf(config, encoder: false), DType.F16);
        File.Move(Path.Combine(dir, "taesd_decoder.safetensors"), Path.Combine(dir, "taesd_decoder.pth"));
        foreach (string input in new[] { dir, Path.Combine(dir, "taesd_encoder.pth"), Path.Combine(dir, "taesd_decoder.pth") })
        {
            using var vae = VaeLoader.Open(input);
            Assert.That(vae.Family, Is.EqualTo(ModelFamily.Taesd), input);
            Assert.That(vae.TinyConfig, Is.EqualTo(config), input);
            Assert.That(vae.StorageDTypeName, Is.EqualTo("fp16"));
            Assert.That(vae.Weights.ReadFloat32("decoder.layers.0.bias"),
                Is.EqualTo(Canonical(config)["decoder.layers.0.bias"]).Within(1e-3f), "decoder index shifted by the Clamp");
        }
        using var xl = VaeLoader.Open(dir, new VaeLoadOptions(ModelFamily.Taesdxl));
        Assert.That(xl.Family, Is.EqualTo(ModelFamily.Taesdxl));
    }

    [Test]
    public void DiffusersAutoencoderTinyFileIsRecognised()
    {
        string path = Path.Combine(TempFolder(), "taef1.safetensors");
        var values = Canonical(TaesdConfig.Taef1);
        WriteSafeTensors(path, TaesdParameters.Enumerate(TaesdConfig.Taef1).Select(p => (p.Name, p.Shape, values[p.Name])));
        using var vae = VaeLoader.Open(path);
        Assert.That(vae.Family, Is.EqualTo(ModelFamily.Taef1));
        AssertCanonical(vae, values);
    }

    [Test]
    public void RealTaef2CheckpointsMatchTheDeclaredParameters()
    {
        string dir = TestPaths.RequireShared("models/taef2");
        using var vae = VaeLoader.Open(dir);
        Assert.That(vae.Family, Is.EqualTo(ModelFamily.Taef2));
        Assert.That(vae.TinyConfig, Is.EqualTo(TaesdConfig.Taef2));
        Assert.That(vae.Parameters, Has.Count.EqualTo(158));
        Assert.That(vae.StorageDTypeName, Is.EqualTo("fp16"));
        // the GroupNorm branches sit in the lowest-resolution stage: encoder layers 11-13, decoder 2-4 (taesd.py 3-5)
        var pooled = vae.Parameters.Where(p => p.Name.EndsWith(".pool.1.weight")).Select(p => p.Name);
        Assert.That(pooled, Is.EqualTo(new[]
        {
            "encoder.layers.11.pool.1.weight", "encoder.layers.12.pool.1.weight", "encoder.layers.13.pool.1.weight",
            "decoder.layers.2.pool.1.weight", "decoder.layers.3.pool.1.weight", "decoder.layers.4.pool.1.weight",
        }));
        var w = vae.Weights.ReadFloat32("decoder.layers.18.weight");
        Assert.That(w, Has.Length.EqualTo(3 * 64 * 9));
        Assert.That(w.All(float.IsFinite) && w.Any(v => v != 0), Is.True);
    }

    [Test]
    public void FolderWithNothingRecognisableListsWhatItFound()
    {
        string dir = TempFolder();
        File.WriteAllText(Path.Combine(dir, "a.safetensors"), "x");
        File.WriteAllText(Path.Combine(dir, "b.ckpt"), "x");
        var e = Assert.Throws<InvalidDataException>(() => VaeLoader.Open(dir).Dispose());
        Assert.That(e!.Message, Does.Contain("a.safetensors").And.Contain("b.ckpt"));
    }
}
