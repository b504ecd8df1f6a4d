using NativeVae.Imaging;
using NativeVae.Models.Taesd;
using NativeVae.Core;
using NativeVae.Tests.Support;
using NativeVae.Weights;
using NativeVae.Loading;
using NativeVae.Formats.SafeTensors;

namespace NativeVae.Tests.Models;

/// <summary>
/// TAEF2 with its real weights against the libtorch fixture (tests/fixtures/models/taef2.safetensors: input.image
/// [1,3,32,24], encoder.output [1,32,4,3], decoder.output = decoder(encoder.output)), on the reference backend
/// (checks the graph) and on the ILGPU backend (checks graph + kernels; needs the kernels branch).
/// </summary>
public class TaesdModelTests
{
    private const double FixtureTolerance = 1e-4;

    private static IEnumerable<TestCaseData> Backends()
    {
        yield return new TestCaseData("reference").SetName("{m}(reference)");
        yield return new TestCaseData("ilgpu").SetName("{m}(ilgpu)");
        yield return new TestCaseData(TestBackends.CpuName).SetName("{m}(cpu)");
    }

    /// <summary>The reference backend is created per test (it holds nothing); ILGPU is the run's shared one, not disposed.</summary>
    private static IBackend Get(string backend) => backend switch
    {
        "reference" => new ReferenceBackend(),
        "ilgpu" => TestBackends.IlgpuAuto(),
        _ => TestBackends.Get(backend),
    };

    private static float[] Download(IBackend backend, Tensor t)
    {
        var values = new float[t.ElementCount];
        backend.Download(t, values);
        return values;
    }

    [TestCaseSource(nameof(Backends))]
    public void Taef2MatchesTheLibtorchFixture(string backendName)
    {
        string weights = TestPaths.RequireShared("models/taef2");
        using var fixture = SafeTensorsFile.Open(TestPaths.Fixture("models/taef2.safetensors"));
        using var vae = VaeLoader.Open(weights);
        var backend = Get(backendName);
        using var model = new TaesdModel(backend, vae.TinyConfig!, vae.Weights);

        var imageShape = fixture.Entries["input.image"].Shape;
        using var image = backend.Upload(fixture.ReadFloat32("input.image"), imageShape);
        using var latent = model.Encode(image);
        Assert.That(latent.Shape, Is.EqualTo(fixture.Entries["encoder.output"].Shape));
        NumericAssert.Close(Download(backend, latent), fixture.ReadFloat32("encoder.output"), latent.Shape, FixtureTolerance, 0, "encoder.output");

        using var reference = backend.Upload(fixture.ReadFloat32("encoder.output"), fixture.Entries["encoder.output"].Shape);
        using var decoded = model.Decode(reference);
        Assert.That(decoded.Shape, Is.EqualTo(imageShape));
        NumericAssert.Close(Download(backend, decoded), fixture.ReadFloat32("decoder.output"), decoded.Shape, FixtureTolerance, 0, "decoder.output");
    }

    /// <summary>
    /// Threshold 20 dB: TAEF2 reconstructs this crop at 29.0 dB (measured with the reference backend); the
    /// margin absorbs fp16/kernel rounding, while a graph error (a missing GroupNorm branch, a wrong layer order,
    /// an unfused upsample, shifted decoder indices) destroys the reconstruction rather than shaving a few dB.
    /// </summary>
    private const double MinimumPsnr = 20.0;

    /// <summary>
    /// The reference and CPU backends: the photograph checks the graph, which <see cref="Taef2MatchesTheLibtorchFixture"/>
    /// already checks on ILGPU's emulator, where this crop would take half a minute more.
    /// </summary>
    private static IEnumerable<TestCaseData> PhotographBackends() => Backends().Where(c => (string)c.Arguments[0]! != "ilgpu");

    [TestCaseSource(nameof(PhotographBackends))]
    [Category("Slow")] // ~6 s on the reference backend (2.5 GMAC in plain C#)
    public void Taef2ReconstructsAPhotograph(string backendName)
    {
        const int CropSize = 64;
        const int CropX = 224, CropY = 96; // the astronaut's face and helmet: edges and texture
        var crop = RgbImage.Load(TestPaths.RequireShared("images/astronaut.png")).Crop(CropX, CropY, CropSize, CropSize);
        using var vae = VaeLoader.Open(TestPaths.RequireShared("models/taef2"));
        var backend = Get(backendName);
        using var model = new TaesdModel(backend, vae.TinyConfig!, vae.Weights);

        using var image = backend.ImageToTensor(crop.Pixels, 1, CropSize, CropSize, scale: 1f, shift: 0f); // [0, 1]
        using var latent = model.Encode(image);
        Assert.That(latent.Shape, Is.EqualTo(TensorShape.Nchw(1, 32, CropSize / 8, CropSize / 8)));
        using var decoded = model.Decode(latent);
        var rgb = new byte[crop.Pixels.Length];
        backend.TensorToImage(decoded, rgb, scale: 1f, shift: 0f);

        double psnr = ImageMetrics.Psnr(crop.Pixels, rgb);
        TestContext.Out.WriteLine($"TAEF2 64x64 crop PSNR on {backend.Name}: {psnr:F2} dB");
        Assert.That(psnr, Is.GreaterThan(MinimumPsnr));
    }

    [Test]
    public void ParameterListMatchesTheGraphWalk()
    {
        // every declared parameter is consumed by the model: a model built over seeded weights uploads all of them
        var config = TaesdConfig.Taef2;
        var declared = TaesdParameters.Enumerate(config);
        var weights = InMemoryWeights.Seeded(SeededWeights.DefaultSeed, declared);
        using var backend = new ReferenceBackend();
        using var model = new TaesdModel(backend, config, weights);
        using var image = backend.Upload(new float[3 * 16 * 8], TensorShape.Nchw(1, 3, 16, 8));
        using var latent = model.Encode(image);
        Assert.That(latent.Shape, Is.EqualTo(TensorShape.Nchw(1, 32, 2, 1)));
        using var decoded = model.Decode(latent);
        Assert.That(decoded.Shape, Is.EqualTo(TensorShape.Nchw(1, 3, 16, 8)));
        Assert.That(declared.Count(p => p.Name.Contains(".pool.")), Is.EqualTo(6 * 4));
    }
}
