using System.Text.RegularExpressions;
using NativeVae.Formats.SafeTensors;
using NativeVae.Models.QwenImage;
using NativeVae.Tests.Support;
using NativeVae.Weights;
using static NativeVae.Tests.Support.SyntheticVae;

namespace NativeVae.Tests.Api;

/// <summary>
/// Qwen-Image's VAE through the public API: loaded from a diffusers folder and from Wan's original single file,
/// its 5-D raw latents and the pipeline's packed tokens against the oracle (models/qwenimage_small.safetensors),
/// and the refusals that name the shape.
/// </summary>
public partial class QwenImageApiTests
{
    private const double MaxAbsError = 1e-4;

    private static QwenImageConfig SmallConfig(SafeTensorsFile fixture) => QwenImageConfigJson.Parse(fixture.Metadata["config"], "fixture config");

    internal static List<(string Name, TensorShape Shape, float[] Values)> Diffusers(QwenImageConfig config)
    {
        var parameters = QwenImageParameters.Enumerate(config);
        var values = SeededWeights.Generate(SeededWeights.DefaultSeed, parameters);
        return parameters.Select(p => (p.Name, p.Shape, values[p.Name])).ToList();
    }

    /// <param name="configJson">the config.json to write; null: the config's own, as AutoencoderKLQwenImage.</param>
    internal static string DiffusersFolder(QwenImageConfig config, string? configJson = null)
    {
        string folder = TempFolder();
        File.WriteAllText(Path.Combine(folder, "config.json"), configJson ?? QwenImageConfigJson.Serialize(config));
        WriteSafeTensors(Path.Combine(folder, "diffusion_pytorch_model.safetensors"), Diffusers(config));
        return folder;
    }

    /// <summary>
    /// The test's inverse of the loader's Wan mapping, written from diffusers' convert_wan_to_diffusers.py: Wan 2.1's
    /// flat lists, or (a residual config) Wan 2.2's nested <c>downsamples.{i}.downsamples.{k}</c> and
    /// <c>upsamples.{i}.upsamples.{k}</c>, the resample after the level's residual blocks.
    /// </summary>
    internal static string ToWan(string name, QwenImageConfig config)
    {
        int perLevel = config.NumResBlocks + 2;
        string n = name;
        if (config.IsResidual)
        {
            n = Regex.Replace(n, @"^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.", "encoder.downsamples.$1.downsamples.$2.");
            n = Regex.Replace(n, @"^encoder\.down_blocks\.(\d+)\.downsampler\.", $"encoder.downsamples.$1.downsamples.{config.NumResBlocks}.");
            n = Regex.Replace(n, @"^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.", "decoder.upsamples.$1.upsamples.$2.");
            n = Regex.Replace(n, @"^decoder\.up_blocks\.(\d+)\.upsampler\.", $"decoder.upsamples.$1.upsamples.{config.NumResBlocks + 1}.");
        }
        n = Regex.Replace(n, @"^quant_conv\.", "conv1.");
        n = Regex.Replace(n, @"^post_quant_conv\.", "conv2.");
        n = Regex.Replace(n, @"^(encoder|decoder)\.conv_in\.", "$1.conv1.");
        n = Regex.Replace(n, @"^(encoder|decoder)\.norm_out\.", "$1.head.0.");
        n = Regex.Replace(n, @"^(encoder|decoder)\.conv_out\.", "$1.head.2.");
        n = Regex.Replace(n, @"mid_block\.resnets\.0\.", "middle.0.");
        n = Regex.Replace(n, @"mid_block\.attentions\.0\.", "middle.1.");
        n = Regex.Replace(n, @"mid_block\.resnets\.1\.", "middle.2.");
        n = Regex.Replace(n, @"^encoder\.down_blocks\.", "encoder.downsamples.");
        n = Regex.Replace(n, @"^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.", m => $"decoder.upsamples.{int.Parse(m.Groups[1].Value) * perLevel + int.Parse(m.Groups[2].Value)}.");
        n = Regex.Replace(n, @"^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.", m => $"decoder.upsamples.{int.Parse(m.Groups[1].Value) * perLevel + config.NumResBlocks + 1}.");
        n = Regex.Replace(n, @"\.norm1\.gamma$", ".residual.0.gamma");
        n = Regex.Replace(n, @"\.conv1\.(weight|bias)$", ".residual.2.$1");
        n = Regex.Replace(n, @"\.norm2\.gamma$", ".residual.3.gamma");
        n = Regex.Replace(n, @"\.conv2\.(weight|bias)$", ".residual.6.$1");
        n = Regex.Replace(n, @"\.conv_shortcut\.", ".shortcut.");
        // conv1/conv2 of the top level and conv_in became conv1 above: undo the residual rename for those.
        n = Regex.Replace(n, @"^(encoder\.|decoder\.)?residual\.2\.", "$1conv1.");
        n = Regex.Replace(n, @"^residual\.6\.", "conv2.");
        return n;
    }

    [Test]
    public void ADiffusersFolderAndWansSingleFileLoadAsQwenImage()
    {
        using var fixture = SafeTensorsFile.Open(TestPaths.Fixture("models/qwenimage_small.safetensors"));
        var config = SmallConfig(fixture);
        string single = Path.Combine(TempFolder(), "qwen_image_vae.safetensors");
        WriteSafeTensors(single, Diffusers(config).Select(t => (ToWan(t.Name, config), t.Shape, t.Values)));
        using var folder = Vae.Load(DiffusersFolder(config));
        using var wan = Vae.Load(single);
        Assert.Multiple(() =>
        {
            Assert.That(folder.Family, Is.EqualTo(ModelFamily.QwenImage));
            Assert.That(wan.Family, Is.EqualTo(ModelFamily.QwenImage), "recognised from Wan's original names");
            Assert.That(folder.SupportedLatentForms, Is.EqualTo(new[] { LatentForm.Raw, LatentForm.Packed }));
            Assert.That(folder.ScalingFactor, Is.Null);
        });
        var images = Read(fixture, "input.image");
        Assert.That(wan.Encode(images).Data, Is.EqualTo(folder.Encode(images).Data), "the same weights under either layout");
    }

    [TestCase("cpu")]
    [TestCase("ilgpu-cpu")]
    public void RawAndPackedLatentsMatchTheOracle(string device)
    {
        using var fixture = SafeTensorsFile.Open(TestPaths.Fixture("models/qwenimage_small.safetensors"));
        using var vae = Vae.Load(DiffusersFolder(SmallConfig(fixture)), new VaeOptions { Device = device == "cpu" ? DevicePreference.Cpu : DevicePreference.IlgpuCpu });
        var images = Read(fixture, "input.image");
        var moments = Read(fixture, "moments");
        var s = moments.Shape;
        int z = s.C / 2;

        var raw = vae.Encode(images);
        Assert.That(raw.Shape, Is.EqualTo(new TensorShape(s.N, z, 1, s.H, s.W)), "[N, z, 1, h, w]: a frame axis of 1");
        var mode = new float[raw.Data.Length];
        long plane = (long)s.H * s.W;
        for (int n = 0; n < s.N; n++) Array.Copy(moments.Data, n * s.C * plane, mode, n * z * plane, z * plane);
        NumericAssert.Close(raw.Data, mode, raw.Shape, MaxAbsError, 0, "raw mode");
        var packed = vae.Encode(images, new EncodeOptions { Form = LatentForm.Packed });
        Compare(packed, Read(fixture, "pipeline.packed"), "packed");

        var asTensor = new DecodeOptions { Output = DecodeOutput.FloatTensor };
        var latent = Read(fixture, "input.latent");
        var latent5d = new HostTensor<float>(new TensorShape(latent.Shape.N, latent.Shape.C, 1, latent.Shape.H, latent.Shape.W), latent.Data);
        using (var decoded = vae.Decode(latent5d, asTensor))
            Compare(decoded.FloatTensor, Read(fixture, "sample"), "decode of [N, z, 1, h, w]");
        var expected = Read(fixture, "packed.sample");
        using var fromPacked = vae.Decode(Read(fixture, "input.packed"),
            new DecodeOptions { Output = DecodeOutput.FloatTensor, Height = expected.Shape.H, Width = expected.Shape.W });
        Compare(fromPacked.FloatTensor, expected, "decode of packed tokens");
    }

    [Test]
    public void ShapesQwenImageHasNotAreRefusedByName()
    {
        using var fixture = SafeTensorsFile.Open(TestPaths.Fixture("models/qwenimage_small.safetensors"));
        using var vae = Vae.Load(DiffusersFolder(SmallConfig(fixture)));
        Assert.Multiple(() =>
        {
            Assert.That(() => vae.Decode(new HostTensor<float>(new TensorShape(1, 4, 5, 3, 3))),
                Throws.ArgumentException.With.Message.Contains("5 frames"));
            Assert.That(() => vae.Decode(new HostTensor<float>(TensorShape.Nchw(1, 16, 3, 3))),
                Throws.ArgumentException.With.Message.Contains("a form qwenimage's pipeline has not"));
            Assert.That(() => vae.Encode(Read(fixture, "input.image"), new EncodeOptions { Form = LatentForm.Patchified }),
                Throws.ArgumentException.With.Message.StartsWith("EncodeOptions.Form Patchified"));
            Assert.That(() => vae.Decode(new HostTensor<float>(new TensorShape(1, 15, 16))),
                Throws.ArgumentException.With.Message.EqualTo("`height` and `width` required for packed latents."));
        });
    }

    private static HostTensor<float> Read(SafeTensorsFile fixture, string name) => new(fixture.Get(name).Shape, fixture.ReadFloat32(name));

    private static void Compare(HostTensor<float> actual, HostTensor<float> expected, string what)
    {
        Assert.That(actual.Shape, Is.EqualTo(expected.Shape), $"{what}: shape");
        NumericAssert.Close(actual.Data, expected.Data, actual.Shape, MaxAbsError, 0, what);
    }
}
