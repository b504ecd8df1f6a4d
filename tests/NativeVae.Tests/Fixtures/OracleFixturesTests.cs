using System.Globalization;
using NativeVae.Models.AutoencoderKl;
using NativeVae.Tensors;
using NativeVae.Tests.Support;
using NativeVae.Weights;
using NativeVae.Weights.SafeTensors;

namespace NativeVae.Tests.Fixtures;

/// <summary>
/// The committed oracle fixtures (tools/NativeVae.Oracle) still describe this library: they open with our
/// reader, hold the agreed tensors, and were made from the seed and configs the library has now. A change to
/// SeededWeights, a preset or the parameter list without regenerating the fixtures fails here, not as a
/// puzzling parity error.
/// </summary>
public class OracleFixturesTests
{
    private static readonly (string Name, AutoencoderKlConfig Config)[] Models =
    [
        ("small", AutoencoderKlConfig.Small),
        ("sd", AutoencoderKlConfig.Sd),
        ("flux1", AutoencoderKlConfig.Flux1),
    ];

    private static IEnumerable<TestCaseData> ModelCases() =>
        Models.Select(m => new TestCaseData(m.Name, m.Config).SetArgDisplayNames(m.Name));

    [TestCaseSource(nameof(ModelCases))]
    public void ModelFixtureMatchesLibrary(string name, AutoencoderKlConfig config)
    {
        using var file = SafeTensorsFile.Open(TestPaths.Fixture($"models/{name}.safetensors"));
        var parameters = AutoencoderKlParameters.Enumerate(config);
        Assert.Multiple(() =>
        {
            Assert.That(file.Metadata["config_name"], Is.EqualTo(name));
            Assert.That(ulong.Parse(file.Metadata["seed"], CultureInfo.InvariantCulture), Is.EqualTo(SeededWeights.DefaultSeed));
            Assert.That(long.Parse(file.Metadata["parameters"], CultureInfo.InvariantCulture),
                Is.EqualTo(parameters.Sum(p => p.Shape.ElementCount)));
            Assert.That(file.Tensors.Values.Select(t => t.DType), Is.All.EqualTo(DType.F32));
        });

        int blocks = config.BlockOutChannels.Count;
        int f = config.DownsampleFactor;
        var image = file.Get("input.image").Shape;
        var latent = file.Get("input.latent").Shape;
        Assert.Multiple(() =>
        {
            // Each downsampler maps s to floor(s / 2).
            Assert.That(file.Get("moments").Shape,
                Is.EqualTo(TensorShape.Nchw(1, 2 * config.LatentChannels, image.H >> (blocks - 1), image.W >> (blocks - 1))));
            Assert.That(file.Get("decoder.conv_out").Shape,
                Is.EqualTo(TensorShape.Nchw(1, config.OutChannels, latent.H * f, latent.W * f)));
            for (int i = 0; i < blocks; i++)
            {
                Assert.That(file.Tensors.ContainsKey($"encoder.down_blocks.{i}"), $"encoder.down_blocks.{i}");
                Assert.That(file.Tensors.ContainsKey($"decoder.up_blocks.{i}"), $"decoder.up_blocks.{i}");
            }
            Assert.That(file.Tensors.ContainsKey("post_quant_conv"), Is.EqualTo(config.UsePostQuantConv));
        });
    }

    [Test]
    public void SeededInputsAreReproducible()
    {
        using var file = SafeTensorsFile.Open(TestPaths.Fixture("models/small.safetensors"));
        var image = file.Get("input.image");
        float[] expected = SeededWeights.Uniform(SeededWeights.DefaultSeed, "input.image", image.Shape.ElementCount);
        Assert.That(file.ReadFloat32("input.image"), Is.EqualTo(expected));
    }

    private static IEnumerable<TestCaseData> OpCases()
    {
        string[] ops = ["conv2d", "group_norm", "attention", "elementwise"];
        foreach (string op in ops)
        {
            foreach (string path in Directory.EnumerateFiles(Path.Combine(TestPaths.Fixtures, "ops", op), "*.safetensors").Order(StringComparer.Ordinal))
                yield return new TestCaseData(op, Path.GetFileName(path)).SetArgDisplayNames(op, Path.GetFileNameWithoutExtension(path));
        }
    }

    [TestCaseSource(nameof(OpCases))]
    public void OpFixtureHasAgreedLayout(string op, string fileName)
    {
        using var file = SafeTensorsFile.Open(TestPaths.Fixture($"ops/{op}/{fileName}"));
        (string[] tensors, string[] metadata) = op switch
        {
            "conv2d" => (new[] { "x", "weight", "y" }, new[] { "stride", "pad_top", "pad_bottom", "pad_left", "pad_right", "upsample2x" }),
            "group_norm" => (["x", "gamma", "beta", "y", "mean", "rstd"], ["groups", "eps", "silu"]),
            "attention" => (["q", "k", "v", "y"], ["scale"]),
            "elementwise" => (["x", "y"], ["op", "scale", "shift"]),
            _ => throw new ArgumentOutOfRangeException(nameof(op), op, "unknown op folder"),
        };
        Assert.Multiple(() =>
        {
            foreach (string t in tensors) Assert.That(file.Tensors.ContainsKey(t), $"tensor '{t}'");
            foreach (string m in metadata) Assert.That(file.Metadata.ContainsKey(m), $"metadata '{m}'");
            Assert.That(file.Tensors.Values.Select(t => t.DType), Is.All.EqualTo(DType.F32));
        });
    }
}
