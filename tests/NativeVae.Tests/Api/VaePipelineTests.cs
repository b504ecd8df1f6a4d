using NativeVae.Backends;
using NativeVae.Models.AutoencoderKl;
using NativeVae.Weights;
using NativeVae.Loading;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace NativeVae.Tests.Api;

/// <summary>
/// The pipeline keeps a call on its backend: one upload of the input and one download of the result, whatever the
/// input (pixels or a tensor) and the output (latent, float tensor, uint8, images), counted on a profiling backend.
/// </summary>
public class VaePipelineTests
{
    private static readonly string[] Backends = ["cpu", "ilgpu-cpu"];

    private static (Vae Vae, ProfilingBackend Counter) Create(string backend)
    {
        var config = AutoencoderKlConfig.Small;
        var counter = new ProfilingBackend(TestBackends.Get(backend));
        var model = new AutoencoderKlModel(counter, config,
            InMemoryWeights.Seeded(SeededWeights.DefaultSeed, AutoencoderKlParameters.Enumerate(config)));
        var vae = new Vae(model, new VaeOptions(), config.ScalingFactor, config.ShiftFactor, ownsBackend: false);
        // Each half's weights are uploaded on its first use: warm both halves up before counting.
        vae.Encode(Images(), new EncodeOptions { Tiling = TilingMode.None });
        vae.Decode(vae.Encode(Images()), new DecodeOptions { Output = DecodeOutput.FloatTensor, Tiling = TilingMode.None }).Dispose();
        return (vae, counter);
    }

    private static HostTensor<float> Images() =>
        new(TensorShape.Nchw(1, 3, 16, 16), SeededWeights.Uniform(SeededWeights.DefaultSeed, "pipeline.image", 3 * 16 * 16));

    private static (int Uploads, int Downloads) Count(ProfilingBackend counter, Action call)
    {
        counter.Ops.Clear();
        call();
        int Calls(string key) => counter.Ops.TryGetValue(key, out var t) ? t.Calls : 0;
        return (Calls(ProfilingBackend.UploadKey), Calls(ProfilingBackend.DownloadKey));
    }

    [TestCaseSource(nameof(Backends))]
    public void EncodeFromAnImageUploadsOnceAndDownloadsOnce(string backend)
    {
        var (vae, counter) = Create(backend);
        using var _ = vae;
        using var image = new Image<Rgb24>(24, 16, new Rgb24(200, 100, 30));
        HostTensor<float>? latent = null;
        var transfers = Count(counter, () => latent = vae.Encode([image], new EncodeOptions { ScalingFactor = 0.5f, ShiftFactor = 0.1f }));
        Assert.That(transfers, Is.EqualTo((1, 1)), "(uploads, downloads) of an image encode with scaling and shift");
        Assert.That(latent!.Shape, Is.EqualTo(TensorShape.Nchw(1, 4, 8, 12)));
    }

    [TestCaseSource(nameof(Backends))]
    public void EncodeFromATensorUploadsOnceAndDownloadsOnce(string backend)
    {
        var (vae, counter) = Create(backend);
        using var _ = vae;
        var transfers = Count(counter, () => vae.Encode(Images(), new EncodeOptions { ScalingFactor = 0.5f }));
        Assert.That(transfers, Is.EqualTo((1, 1)), "(uploads, downloads) of a tensor encode (no identity affine round trip)");
    }

    [TestCaseSource(nameof(Backends))]
    public void DecodeToEveryOutputUploadsOnceAndDownloadsOnce(string backend)
    {
        var (vae, counter) = Create(backend);
        using var _ = vae;
        var latent = vae.Encode(Images());
        foreach (var output in Enum.GetValues<DecodeOutput>())
        {
            var transfers = Count(counter, () => vae.Decode(latent, new DecodeOptions { Output = output, ScalingFactor = 0.5f, ShiftFactor = 0.1f }).Dispose());
            Assert.That(transfers, Is.EqualTo((1, 1)), $"(uploads, downloads) of a decode to {output}");
        }
    }

    [Test]
    public void TheModeOnTheDeviceEqualsTheMeanHalfOfTheMoments()
    {
        var (vae, _) = Create("cpu");
        using var __ = vae;
        var moments = vae.EncodeMoments(Images(), new EncodeOptions { Tiling = TilingMode.None });
        var mode = vae.Encode(Images(), new EncodeOptions { Tiling = TilingMode.None });
        Assert.That(moments.Shape.C, Is.EqualTo(2 * mode.Shape.C));
        Assert.That(mode.Data, Is.EqualTo(moments.Data.AsSpan(0, mode.Data.Length).ToArray()), "channels [0, C) of [mean; logvar], N = 1");
    }

    [Test]
    public void DecodeResultRefusesAFormItDoesNotHold()
    {
        var (vae, _) = Create("cpu");
        using var __ = vae;
        using var result = vae.Decode(vae.Encode(Images()), new DecodeOptions { Output = DecodeOutput.UInt8Tensor });
        Assert.That(result.UInt8Tensor.Shape, Is.EqualTo(new TensorShape(1, 16, 16, 3)));
        Assert.That(() => result.Images, Throws.InvalidOperationException.With.Message.Contains("holds UInt8Tensor").And.Message.Contains("DecodeOutput.Images"));
        Assert.That(() => result.FloatTensor, Throws.InvalidOperationException);
    }

    [Test]
    public async Task VaeIsUsableThroughIVae()
    {
        var (vae, _) = Create("cpu");
        using IVae api = vae;
        var latent = await api.EncodeAsync(Images());
        using var result = await api.DecodeAsync(latent, new DecodeOptions { Output = DecodeOutput.FloatTensor });
        Assert.That(result.FloatTensor.Shape, Is.EqualTo(Images().Shape));
        Assert.That(api.LatentChannels, Is.EqualTo(latent.Shape.C));
    }
}
