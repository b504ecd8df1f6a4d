using NativeVae.Models;
using NativeVae.Models.AutoencoderKl;
using NativeVae.Core;
using NativeVae.Tests.Support;
using NativeVae.Weights;
using NativeVae.Loading;
using NativeVae.Formats.SafeTensors;

namespace NativeVae.Tests.Models;

/// <summary>
/// Whole-model parity of AutoencoderKL against the libtorch oracle (tests/fixtures/models/*.safetensors), with every
/// per-block intermediate checked in graph order so that a failure names the first block that diverges.
/// </summary>
public class AutoencoderKlParityTests
{
    /// <summary>The bar for fp32: max abs error 1e-4.</summary>
    private const double MaxAbsError = 1e-4;

    private static readonly Dictionary<string, AutoencoderKlConfig> Configs = new()
    {
        ["small"] = AutoencoderKlConfig.Small,
        ["sd"] = AutoencoderKlConfig.Sd,
        ["flux1"] = AutoencoderKlConfig.Flux1,
        // AutoencoderKLFlux2's decoder with its own levels, every stage compared (tools/NativeVae.Oracle's Flux2Fixtures.Small).
        ["flux2_small"] = AutoencoderKlConfig.Small with { LatentBatchNorm = true, DecoderBlockOutChannels = [24, 48] },
    };

    /// <summary>
    /// Every config on the fast backends; on ILGPU's emulator all but FLUX.1, whose graph is SD's (the same ops, 16
    /// latent channels and no quant convs) at the emulator's cost of a real 64x64 config.
    /// </summary>
    public static IEnumerable<TestCaseData> Cases() =>
        from backend in TestBackends.Names
        from config in Configs.Keys
        where backend != TestBackends.IlgpuCpuName || config != "flux1"
        select new TestCaseData(backend, config).SetName($"{{m}}({backend},{config})");

    [TestCaseSource(nameof(Cases))]
    public void Encode(string backendName, string configName) =>
        RunAndCompare(backendName, configName, "input.image", (model, input, observe) => model.Encode(input, observe), "moments");

    [TestCaseSource(nameof(Cases))]
    public void Decode(string backendName, string configName) =>
        RunAndCompare(backendName, configName, "input.latent", (model, input, observe) => model.Decode(input, observe), "decoder.conv_out");

    private static void RunAndCompare(string backendName, string configName, string inputName,
        Func<AutoencoderKlModel, Tensor, BlockObserver, Tensor> run, string outputName)
    {
        using var fixture = SafeTensorsFile.Open(TestPaths.Fixture($"models/{configName}.safetensors"));
        Assert.That(fixture.Metadata["config_name"], Is.EqualTo(configName));
        ulong seed = ulong.Parse(fixture.Metadata["seed"]);
        var config = Configs[configName];

        var backend = TestBackends.Get(backendName);
        using var model = new AutoencoderKlModel(backend, config,
            InMemoryWeights.Seeded(seed, AutoencoderKlParameters.Enumerate(config)));
        var inputInfo = fixture.Get(inputName);
        using var input = backend.Upload(fixture.ReadFloat32(inputName), inputInfo.Shape);

        var observed = new List<(string Name, TensorShape Shape, float[] Values)>();
        using var output = run(model, input, (name, t) =>
        {
            var values = new float[t.ElementCount];
            backend.Download(t, values);
            observed.Add((name, t.Shape, values));
        });

        int compared = 0;
        foreach (var (name, shape, values) in observed)
        {
            if (!fixture.Tensors.TryGetValue(name, out var expectedInfo)) continue;
            Assert.That(shape, Is.EqualTo(expectedInfo.Shape), $"{configName}: shape of {name}");
            var expected = fixture.ReadFloat32(name);
            NumericAssert.Close(values, expected, shape, MaxAbsError, 0, $"{configName} block {name} {shape}");
            compared++;
        }
        Assert.That(observed.Select(o => o.Name), Does.Contain(outputName));
        Assert.That(compared, Is.GreaterThanOrEqualTo(3), "fixture intermediates compared");
    }
}
