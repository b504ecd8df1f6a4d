using NativeVae.Core;
using NativeVae.Models;
using NativeVae.Models.QwenImage;
using NativeVae.Tests.Support;
using NativeVae.Weights;
using NativeVae.Formats.SafeTensors;

namespace NativeVae.Tests.Models;

/// <summary>
/// Qwen-Image's VAE on one frame against the libtorch oracle, which runs diffusers' 3D network (causal conv3d,
/// temporal resamples, per-frame attention): every stage of the small config at batch 2, the real config's moments
/// and clamped sample at 64x64 and 48x64. A wrong temporal tap, gamma or qkv split fails at the first stage it touches.
/// </summary>
public class QwenImageParityTests
{
    /// <summary>The bar for fp32: max abs error 1e-4.</summary>
    private const double MaxAbsError = 1e-4;

    public static IEnumerable<TestCaseData> Cases() =>
        (from backend in TestBackends.Names select new TestCaseData(backend, "qwenimage_small"))
        .Concat(from backend in TestBackends.FastNames
                from fixture in new[] { "qwenimage", "qwenimage_48x64" }
                select new TestCaseData(backend, fixture))
        .Select(c => c.SetName($"{{m}}({c.Arguments[0]},{c.Arguments[1]})"));

    [TestCaseSource(nameof(Cases))]
    public void Encode(string backend, string fixture) =>
        RunAndCompare(backend, fixture, "input.image", (model, ops, input, observe) => model.Encode(ops, input, observe), "moments");

    [TestCaseSource(nameof(Cases))]
    public void Decode(string backend, string fixture) =>
        RunAndCompare(backend, fixture, "input.latent", (model, ops, input, observe) => model.Decode(ops, input, observe), "sample");

    private static void RunAndCompare(string backendName, string fixtureName, string inputName,
        Func<QwenImageModel, IBackend, Tensor, BlockObserver, Tensor> run, string outputName)
    {
        using var fixture = SafeTensorsFile.Open(TestPaths.Fixture($"models/{fixtureName}.safetensors"));
        var config = QwenImageConfigJson.Parse(fixture.Metadata["config"], "fixture config");
        ulong seed = ulong.Parse(fixture.Metadata["seed"]);
        var backend = TestBackends.Get(backendName);
        using var model = new QwenImageModel(backend, config, InMemoryWeights.Seeded(seed, QwenImageParameters.Enumerate(config)));
        using var input = backend.Upload(fixture.ReadFloat32(inputName), fixture.Get(inputName).Shape);

        int compared = 0;
        using var output = run(model, backend, input, (name, t) =>
        {
            if (!fixture.Tensors.TryGetValue(name, out var expected)) return;
            Assert.That(t.Shape, Is.EqualTo(expected.Shape), $"{fixtureName}: shape of {name}");
            var values = new float[t.ElementCount];
            backend.Download(t, values);
            NumericAssert.Close(values, fixture.ReadFloat32(name), t.Shape, MaxAbsError, 0, $"{fixtureName} {backendName} stage {name}");
            compared++;
        });
        Assert.That(fixture.Tensors.ContainsKey(outputName), $"the fixture has {outputName}");
        Assert.That(compared, Is.GreaterThanOrEqualTo(1), "fixture stages compared");
    }
}
