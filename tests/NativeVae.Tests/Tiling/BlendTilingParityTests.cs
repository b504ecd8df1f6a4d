using NativeVae.Models.AutoencoderKl;
using NativeVae.Models.Taesd;
using NativeVae.Tests.Support;
using NativeVae.Weights;
using NativeVae.Loading;
using NativeVae.Formats.SafeTensors;

namespace NativeVae.Tests.Tiling;

/// <summary>
/// Blend tiling through the public API against the oracle's diffusers-style tiled reference
/// (tests/fixtures/models/*_blend.safetensors), on sizes that are not multiples of the tile.
/// </summary>
public class BlendTilingParityTests
{
    private const double MaxAbsError = 1e-4;

    public static IEnumerable<TestCaseData> Cases()
    {
        yield return new TestCaseData("small", "ilgpu-cpu").SetName("{m}(small,ilgpu-cpu)");
        foreach (string backend in TestBackends.FastNames)
        {
            yield return new TestCaseData("sd", backend).SetName($"{{m}}(sd,{backend})");
            yield return new TestCaseData("taef2", backend).SetName($"{{m}}(taef2,{backend})");
        }
    }

    [TestCaseSource(nameof(Cases))]
    public void EncodeMatchesDiffusersTiledEncode(string configName, string backend)
    {
        using var fixture = SafeTensorsFile.Open(TestPaths.Fixture($"models/{configName}_blend.safetensors"));
        using var vae = Create(fixture, configName, backend);
        var images = Read(fixture, "input.image");
        if (configName == Taef2) images = Affine(images, 2, -1);   // the fixture's [0, 1] image as the API's [-1, 1]
        var encoded = vae.EncodeMoments(images, new EncodeOptions { Tiling = TilingMode.Blend });
        Compare(fixture, configName == Taef2 ? "blend.latent" : "blend.moments", encoded);
    }

    [TestCaseSource(nameof(Cases))]
    public void DecodeMatchesDiffusersTiledDecode(string configName, string backend)
    {
        using var fixture = SafeTensorsFile.Open(TestPaths.Fixture($"models/{configName}_blend.safetensors"));
        using var vae = Create(fixture, configName, backend);
        using var result = vae.Decode(Read(fixture, "input.latent"), new DecodeOptions { Output = DecodeOutput.FloatTensor, Tiling = TilingMode.Blend });
        var sample = result.FloatTensor!;
        Compare(fixture, "blend.sample", configName == Taef2 ? Affine(sample, 0.5f, 0.5f) : sample);
    }

    private const string Taef2 = "taef2";

    private static HostTensor<float> Affine(HostTensor<float> x, float scale, float shift) =>
        new(x.Shape, x.Data.Select(v => v * scale + shift).ToArray());

    private static Vae Create(SafeTensorsFile fixture, string configName, string backend)
    {
        int sampleSize = int.Parse(fixture.Metadata["sample_size"]);
        if (configName == Taef2)
        {
            using var loaded = VaeLoader.Open(TestPaths.RequireShared("models/taef2"));
            var tiny = new TaesdModel(TestBackends.Get(backend), loaded.TinyConfig!, loaded.Weights, sampleSize);
            return new Vae(tiny, new VaeOptions(), null, null, ownsBackend: false);
        }
        var preset = configName == "sd" ? AutoencoderKlConfig.Sd : AutoencoderKlConfig.Small;
        var config = preset with { SampleSize = sampleSize };
        ulong seed = ulong.Parse(fixture.Metadata["seed"]);
        var model = new AutoencoderKlModel(TestBackends.Get(backend), config, InMemoryWeights.Seeded(seed, AutoencoderKlParameters.Enumerate(config)));
        return new Vae(model, new VaeOptions(), null, null, ownsBackend: false);
    }

    private static HostTensor<float> Read(SafeTensorsFile fixture, string name) => new(fixture.Get(name).Shape, fixture.ReadFloat32(name));

    private static void Compare(SafeTensorsFile fixture, string name, HostTensor<float> actual)
    {
        var expected = fixture.Get(name);
        Assert.That(actual.Shape, Is.EqualTo(expected.Shape), $"shape of {name}");
        var values = fixture.ReadFloat32(name);
        NumericAssert.Close(actual.Data, values, expected.Shape, MaxAbsError, 0, name);
    }
}
