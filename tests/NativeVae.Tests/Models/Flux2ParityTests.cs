using NativeVae.Models.AutoencoderKl;
using NativeVae.Tests.Support;
using NativeVae.Weights;
using NativeVae.Formats.SafeTensors;

namespace NativeVae.Tests.Models;

/// <summary>
/// FLUX.2's VAE (AutoencoderKLFlux2) through the public API against the libtorch oracle (models/flux2*.safetensors):
/// encode (mode) in each latent form and decode from each, for a small config with a narrower decoder and batch 2,
/// the real config and the real small decoder at 64x64 (64x48: sides multiples of 16, not of 32). The config comes
/// from the fixture's diffusers config.json, so its FLUX.2 keys are read as the loader reads them.
/// </summary>
public class Flux2ParityTests
{
    /// <summary>The bar for fp32: max abs error 1e-4.</summary>
    private const double MaxAbsError = 1e-4;

    /// <summary>
    /// The latent forms are host code (LatentForms), so the fast backends suffice: the same small model on ILGPU's
    /// emulator is compared stage by stage in <see cref="AutoencoderKlParityTests"/> (flux2_small).
    /// </summary>
    public static IEnumerable<TestCaseData> Cases() =>
        (from backend in TestBackends.FastNames
         from fixture in new[] { "flux2_small", "flux2", "flux2_small_decoder" }
         select new TestCaseData(backend, fixture))
        .Select(c => c.SetName($"{{m}}({c.Arguments[0]},{c.Arguments[1]})"));

    [TestCaseSource(nameof(Cases))]
    public void EncodeGivesEachLatentForm(string backend, string fixtureName)
    {
        using var fixture = SafeTensorsFile.Open(TestPaths.Fixture($"models/{fixtureName}.safetensors"));
        using var vae = Create(fixture, backend);
        var images = Read(fixture, "input.image");
        var moments = Read(fixture, "moments");
        int latent = vae.LatentChannels;
        var mode = Slice(moments, latent);

        var raw = vae.Encode(images);
        Compare(raw, mode, $"{fixtureName} raw");
        Compare(vae.Encode(images, new EncodeOptions { Form = LatentForm.Patchified }), Read(fixture, "pipeline.patchified"), $"{fixtureName} patchified");
        Compare(vae.Encode(images, new EncodeOptions { Form = LatentForm.Packed }), Read(fixture, "pipeline.packed"), $"{fixtureName} packed");
    }

    [TestCaseSource(nameof(Cases))]
    public void DecodeTakesEachLatentForm(string backend, string fixtureName)
    {
        using var fixture = SafeTensorsFile.Open(TestPaths.Fixture($"models/{fixtureName}.safetensors"));
        using var vae = Create(fixture, backend);
        var asTensor = new DecodeOptions { Output = DecodeOutput.FloatTensor };

        using (var raw = vae.Decode(Read(fixture, "input.latent"), asTensor))
            Compare(raw.FloatTensor, Read(fixture, "decoder.conv_out"), $"{fixtureName} from raw");

        var patchified = Read(fixture, "input.patchified");
        var expected = Read(fixture, "patchified.sample");
        using (var fromPatchified = vae.Decode(patchified, asTensor))
            Compare(fromPatchified.FloatTensor, expected, $"{fixtureName} from patchified");

        var s = patchified.Shape;
        var tokens = new HostTensor<float>(new TensorShape(s.N, s.H * s.W, s.C), new float[s.ElementCount]);
        for (int n = 0; n < s.N; n++)
        for (int k = 0; k < s.C; k++)
        for (int t = 0; t < s.H * s.W; t++)
            tokens.Data[((long)n * s.H * s.W + t) * s.C + k] = patchified.Data[((long)n * s.C + k) * s.H * s.W + t];
        var size = new DecodeOptions { Output = DecodeOutput.FloatTensor, Height = expected.Shape.H, Width = expected.Shape.W };
        using var fromPacked = vae.Decode(tokens, size);
        Compare(fromPacked.FloatTensor, expected, $"{fixtureName} from packed");
    }

    private static Vae Create(SafeTensorsFile fixture, string backend)
    {
        var config = AutoencoderKlConfigJson.Parse(fixture.Metadata["config"], "fixture config");
        Assert.That(config.LatentBatchNorm, "the fixture's config is an AutoencoderKLFlux2's");
        ulong seed = ulong.Parse(fixture.Metadata["seed"]);
        var model = new AutoencoderKlModel(TestBackends.Get(backend), config, InMemoryWeights.Seeded(seed, AutoencoderKlParameters.Enumerate(config)));
        return new Vae(model, new VaeOptions(), null, null, ownsBackend: false) { Family = ModelFamily.Flux2 };
    }

    private static HostTensor<float> Read(SafeTensorsFile fixture, string name) => new(fixture.Get(name).Shape, fixture.ReadFloat32(name));

    /// <summary>Channels [0, count) of [N, C, h, w].</summary>
    private static HostTensor<float> Slice(HostTensor<float> t, int count)
    {
        var s = t.Shape;
        var result = new HostTensor<float>(TensorShape.Nchw(s.N, count, s.H, s.W));
        long plane = (long)s.H * s.W;
        for (int n = 0; n < s.N; n++)
            Array.Copy(t.Data, n * s.C * plane, result.Data, n * count * plane, count * plane);
        return result;
    }

    private static void Compare(HostTensor<float> actual, HostTensor<float> expected, string what)
    {
        Assert.That(actual.Shape, Is.EqualTo(expected.Shape), $"{what}: shape");
        NumericAssert.Close(actual.Data, expected.Data, actual.Shape, MaxAbsError, 0, what);
    }
}
