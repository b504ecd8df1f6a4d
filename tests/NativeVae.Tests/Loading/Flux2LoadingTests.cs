using NativeVae.Models.AutoencoderKl;
using NativeVae.Tests.Support;
using static NativeVae.Tests.Support.SyntheticVae;

namespace NativeVae.Tests.Loading;

/// <summary>
/// FLUX.2's VAE from a diffusers folder (AutoencoderKLFlux2 config) and from BFL's single file (LDM names, the quant
/// convs inside encoder and decoder, <c>bn</c> buffers): recognised as flux2 from the config or the tensors, with a
/// narrower decoder read off the shapes, and the refusals that name what is wrong.
/// </summary>
public class Flux2LoadingTests
{
    /// <summary>FLUX.2's structure at test size: a latent batch norm, a decoder narrower than the encoder.</summary>
    private static readonly AutoencoderKlConfig SmallFlux2 = SmallSd with
    {
        LatentChannels = 8,
        LatentBatchNorm = true,
        DecoderBlockOutChannels = [32, 32],
    };

    private static HostTensor<float> Images() =>
        new(TensorShape.Nchw(1, 3, 16, 16), Weights.SeededWeights.Uniform(Weights.SeededWeights.DefaultSeed, "flux2.load", 3 * 16 * 16));

    private static string DiffusersFolder(AutoencoderKlConfig config)
    {
        string folder = TempFolder();
        File.WriteAllText(Path.Combine(folder, "config.json"), AutoencoderKlConfigJson.Serialize(config));
        WriteSafeTensors(Path.Combine(folder, "diffusion_pytorch_model.safetensors"), InLayout(config, Layout.Diffusers));
        return folder;
    }

    /// <summary>BFL's <c>ae.safetensors</c> layout: LDM names, <c>encoder.quant_conv</c>, <c>decoder.post_quant_conv</c>, a batch counter.</summary>
    private static string BflFile(AutoencoderKlConfig config)
    {
        var tensors = InLayout(config, Layout.Ldm).Select(t => t.Name switch
        {
            var n when n.StartsWith("quant_conv.", StringComparison.Ordinal) => ("encoder." + n, t.Shape, t.Values),
            var n when n.StartsWith("post_quant_conv.", StringComparison.Ordinal) => ("decoder." + n, t.Shape, t.Values),
            _ => t,
        }).ToList();
        tensors.Add(("bn.num_batches_tracked", new TensorShape(1), [0f]));
        string path = Path.Combine(TempFolder(), "flux2-vae.safetensors");
        WriteSafeTensors(path, tensors);
        return path;
    }

    [Test]
    public void ADiffusersFolderAndBflsSingleFileLoadTheSameFlux2()
    {
        using var folder = Vae.Load(DiffusersFolder(SmallFlux2));
        using var single = Vae.Load(BflFile(SmallFlux2));
        using var checkpoint = VaeCheckpoint.Open(BflFile(SmallFlux2));
        Assert.Multiple(() =>
        {
            Assert.That(folder.Family, Is.EqualTo(ModelFamily.Flux2));
            Assert.That(single.Family, Is.EqualTo(ModelFamily.Flux2), "recognised from the tensors: a bn beside the VAE");
            Assert.That(folder.ScalingFactor, Is.Null, "AutoencoderKLFlux2's config has no scaling factor");
            Assert.That(folder.SupportedLatentForms, Is.EqualTo(new[] { LatentForm.Raw, LatentForm.Patchified, LatentForm.Packed }));
            var json = checkpoint.ConfigJson();
            Assert.That(json["_class_name"]!.GetValue<string>(), Is.EqualTo("AutoencoderKLFlux2"));
            Assert.That(json["decoder_block_out_channels"]!.AsArray().Select(n => n!.GetValue<int>()), Is.EqualTo(new[] { 32, 32 }),
                "the narrower decoder, read off the shapes");
        });
        var images = Images();
        var fromFolder = folder.Encode(images, new EncodeOptions { Form = LatentForm.Packed });
        var fromSingle = single.Encode(images, new EncodeOptions { Form = LatentForm.Packed });
        Assert.That(fromFolder.Shape, Is.EqualTo(new TensorShape(1, 4 * 4, 4 * 8)), "tokens [N, (H/4)(W/4), 4C] for this 2-level VAE");
        Assert.That(fromSingle.Data, Is.EqualTo(fromFolder.Data));
    }

    [Test]
    public void AFlux2FileReadAsAnotherFamilyIsRefusedByName()
    {
        string path = BflFile(SmallFlux2);
        Assert.That(() => Vae.Load(path, new VaeOptions { Family = ModelFamily.Flux }),
            Throws.InstanceOf<InvalidDataException>().With.Message.Contains("bn.running_mean").And.Message.Contains("flux2 VAE, not flux"));
        string plain = Path.Combine(TempFolder(), "sd.safetensors");
        WriteSafeTensors(plain, InLayout(SmallSd, Layout.Diffusers));
        Assert.That(() => Vae.Load(plain, new VaeOptions { Family = ModelFamily.Flux2 }),
            Throws.InstanceOf<InvalidDataException>().With.Message.Contains("family flux2 needs"));
    }

    [Test]
    public void ABatchNormOfTheWrongSizeIsRefusedByName()
    {
        string folder = DiffusersFolder(SmallFlux2);
        // 8 latent channels patchify into 32; a bn over 64 belongs to another VAE.
        var tensors = InLayout(SmallFlux2, Layout.Diffusers)
            .Select(t => t.Name.StartsWith("bn.", StringComparison.Ordinal) ? (t.Name, new TensorShape(64), new float[64]) : t);
        WriteSafeTensors(Path.Combine(folder, "diffusion_pytorch_model.safetensors"), tensors);
        Assert.That(() => Vae.Load(folder), Throws.InstanceOf<InvalidDataException>().With.Message.Contains("'bn.running_mean' has shape [64]"));
        File.WriteAllText(Path.Combine(folder, "config.json"),
            AutoencoderKlConfigJson.Serialize(SmallFlux2).Replace("\"patch_size\":[2,2]", "\"patch_size\":[1,1]"));
        Assert.That(() => Vae.Load(folder), Throws.InstanceOf<InvalidDataException>().With.Message.Contains("'patch_size'"));
    }

    [Test]
    public void LatentFormsAreRefusedWithTheFieldNamedBeforeAnyWork()
    {
        using var flux2 = Vae.Load(DiffusersFolder(SmallFlux2));
        using var sd = Vae.Load(DiffusersFolder(SmallSd));
        var packed = new HostTensor<float>(new TensorShape(1, 16, 32));
        Assert.Multiple(() =>
        {
            Assert.That(() => flux2.Decode(packed), Throws.ArgumentException.With.Message.EqualTo("`height` and `width` required for packed latents."));
            Assert.That(() => flux2.Decode(new HostTensor<float>(new TensorShape(1, 16, 64)), new DecodeOptions { Height = 16, Width = 16 }),
                Throws.ArgumentException.With.Message.Contains("[N, seq, 32]"));
            Assert.That(() => flux2.Decode(packed, new DecodeOptions { Height = 16, Width = 16, ScalingFactor = 2 }),
                Throws.ArgumentException.With.Message.StartsWith("DecodeOptions.ScalingFactor"));
            Assert.That(() => flux2.Encode(Images(), new EncodeOptions { Form = LatentForm.Patchified, ShiftFactor = 1 }),
                Throws.ArgumentException.With.Message.StartsWith("EncodeOptions.ShiftFactor"));
            Assert.That(() => sd.Encode(Images(), new EncodeOptions { Form = LatentForm.Packed }),
                Throws.ArgumentException.With.Message.StartsWith("EncodeOptions.Form Packed"));
            // 4 latent channels patchified are 16: the SD-shaped VAE has no statistics to take them back.
            Assert.That(() => sd.Decode(new HostTensor<float>(TensorShape.Nchw(1, 16, 4, 4))),
                Throws.ArgumentException.With.Message.Contains("2x2-patchified 4-channel latents"));
        });
    }
}
