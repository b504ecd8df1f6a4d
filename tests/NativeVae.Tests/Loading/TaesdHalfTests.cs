using NativeVae;
using NativeVae.Backends;
using NativeVae.Models;
using NativeVae.Models.Taesd;
using NativeVae.Tests.Support;
using NativeVae.Weights;
using NativeVae.Loading;
using static NativeVae.Tests.Support.SyntheticVae;

namespace NativeVae.Tests.Loading;

/// <summary>A TAESD encoder or decoder alone loads that half; the other direction is refused naming the file.</summary>
internal class TaesdHalfTests
{
    private const int LatentSide = 4;

    [Test]
    public void DecoderOnlyTaef2DecodesAndRefusesToEncode()
    {
        string shared = TestPaths.RequireShared("models/taef2/taef2_decoder.pth");
        string dir = TempFolder();
        string decoder = Path.Combine(dir, "taef2_decoder.pth");
        File.Copy(shared, decoder);

        foreach (string input in new[] { dir, decoder })
        {
            using var loaded = VaeLoader.Open(input);
            Assert.That(loaded.Family, Is.EqualTo(ModelFamily.Taef2), input);
            Assert.That(loaded.Parameters.All(p => p.Name.StartsWith(TaesdParameters.DecoderPrefix, StringComparison.Ordinal)), Is.True);
            Assert.That(loaded.ScalingFactor, Is.EqualTo(1f), "AutoencoderTiny's published scaling factor");
            Assert.That(loaded.ShiftFactor, Is.EqualTo(0f));
        }

        using var vae = Vae.Load(decoder, new VaeOptions { Device = DevicePreference.Cpu });
        Assert.That(vae.ScalingFactor, Is.EqualTo(1f));
        Assert.That(vae.ShiftFactor, Is.EqualTo(0f));
        int channels = TaesdConfig.Taef2.LatentChannels;
        var latents = new HostTensor<float>(TensorShape.Nchw(1, channels, LatentSide, LatentSide),
            SeededWeights.Uniform(SeededWeights.DefaultSeed, "taef2.latent", channels * LatentSide * LatentSide));
        using var decoded = vae.Decode(latents, new DecodeOptions { Output = DecodeOutput.FloatTensor });
        var image = decoded.FloatTensor!;
        Assert.That(image.Shape, Is.EqualTo(TensorShape.Nchw(1, 3, LatentSide * TaesdModel.Factor, LatentSide * TaesdModel.Factor)));
        Assert.That(image.Data.All(float.IsFinite) && image.Data.Distinct().Count() > 1, Is.True);

        var images = new HostTensor<float>(TensorShape.Nchw(1, 3, 16, 16), new float[3 * 16 * 16]);
        var e = Assert.Throws<InvalidOperationException>(() => vae.Encode(images));
        Assert.That(e!.Message, Does.StartWith(decoder).And.Contain("holds only a TAESD decoder; encoding needs the encoder"));
    }

    [Test]
    public void EncoderOnlyFileEncodesAndRefusesToDecode()
    {
        var config = TaesdConfig.Taef1;
        string encoder = Path.Combine(TempFolder(), "taef1_encoder.pth");
        TorchZipWriter.WriteFloat32(encoder, TaesdHalf(config, encoder: true));

        using var loaded = VaeLoader.Open(encoder);
        Assert.That(loaded.Family, Is.EqualTo(ModelFamily.Taef1), "latent channels read off the encoder's conv_out");
        Assert.That(loaded.Parameters, Is.EqualTo(TaesdParameters.Enumerate(config).Where(p => p.Name.StartsWith(TaesdParameters.EncoderPrefix, StringComparison.Ordinal))));
        var expected = Canonical(config);
        foreach (var (name, _) in loaded.Parameters) Assert.That(loaded.Weights.ReadFloat32(name), Is.EqualTo(expected[name]), name);

        using var backend = new ReferenceBackend();
        using var model = new TaesdModel(backend, loaded.TinyConfig!, loaded.Weights);
        using var image = backend.Upload(new float[3 * 16 * 8], TensorShape.Nchw(1, 3, 16, 8));
        using var latent = model.Encode(image);
        Assert.That(latent.Shape, Is.EqualTo(TensorShape.Nchw(1, config.LatentChannels, 2, 1)));
        var e = Assert.Throws<InvalidOperationException>(() => model.Decode(latent));
        Assert.That(e!.Message, Does.StartWith(encoder).And.Contain("holds only a TAESD encoder; decoding needs the decoder"));
    }

    [Test]
    public void HalfWithAWrongTensorIsStillRefusedByName()
    {
        string decoder = Path.Combine(TempFolder(), "taesd_decoder.pth");
        var half = TaesdHalf(TaesdConfig.Taesd, encoder: false).Where(t => t.Name != "3.conv.0.bias").ToList();
        TorchZipWriter.WriteFloat32(decoder, half);
        var e = Assert.Throws<InvalidDataException>(() => VaeLoader.Open(decoder).Dispose());
        Assert.That(e!.Message, Does.StartWith(decoder).And.Contain("'decoder.layers.2.conv.0.bias'"));
    }
}
