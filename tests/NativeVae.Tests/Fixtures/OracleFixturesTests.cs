using System.Globalization;
using NativeVae.Models.AutoencoderKl;
using NativeVae.Tests.Support;
using NativeVae.Weights;
using NativeVae.Loading;
using NativeVae.Formats.SafeTensors;

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
        Models.Select(m => new TestCaseData(m.Name).SetArgDisplayNames(m.Name));

    [TestCaseSource(nameof(ModelCases))]
    public void ModelFixtureMatchesLibrary(string name)
    {
        var config = Models.Single(m => m.Name == name).Config;
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

    /// <summary>
    /// A blend fixture: the family's size arithmetic and the inputs the generator was asked for. TAEF2's stride-2
    /// convs pad every side (s -> ceil(s/2)); AutoencoderKL's Downsample2D pads the far side (s -> floor(s/2)).
    /// </summary>
    public sealed record BlendCase(string File, string ConfigName, int SampleSize, int Factor, int LatentChannels,
        bool CeilDownsample, int ImageHeight, int ImageWidth, int LatentHeight, int LatentWidth)
    {
        public bool Seeded => ConfigName != "taef2";

        public string EncodedName => Seeded ? "moments" : "latent";

        /// <summary>Channels of the encoded tensor: mean and logvar for AutoencoderKL, the latent for TAEF2.</summary>
        public int EncodedChannels => Seeded ? 2 * LatentChannels : LatentChannels;

        public int Encoded(int pixels) => CeilDownsample ? (pixels + Factor - 1) / Factor : pixels / Factor;

        public override string ToString() => File;
    }

    private static readonly BlendCase[] BlendCases =
    [
        new("small_blend", "small", 8, AutoencoderKlConfig.Small.DownsampleFactor, AutoencoderKlConfig.Small.LatentChannels, false, 15, 21, 9, 7),
        new("sd_blend", "sd", 16, AutoencoderKlConfig.Sd.DownsampleFactor, AutoencoderKlConfig.Sd.LatentChannels, false, 24, 20, 3, 3),
        new("taef2_blend", "taef2", 32, 8, 32, true, 56, 40, 7, 5),
    ];

    private static IEnumerable<TestCaseData> BlendFixtureCases() =>
        BlendCases.Select(c => new TestCaseData(c).SetArgDisplayNames(c.File));

    /// <summary>diffusers' tile_overlap_factor.</summary>
    private const double BlendOverlap = 0.25;

    /// <summary>
    /// Length of a blend-tiled output along one axis, by diffusers' arithmetic: tiles start every
    /// int(inputTile * 0.75), are cropped at the far edge, and keep at most outputTile - int(outputTile * 0.25).
    /// </summary>
    private static int BlendTiledLength(int length, int inputTile, int outputTile, Func<int, int> outputLength)
    {
        int stride = (int)(inputTile * (1 - BlendOverlap));
        int keep = outputTile - (int)(outputTile * BlendOverlap);
        int total = 0;
        for (int start = 0; start < length; start += stride)
            total += Math.Min(keep, outputLength(Math.Min(inputTile, length - start)));
        return total;
    }

    [TestCaseSource(nameof(BlendFixtureCases))]
    public void BlendFixtureHasAgreedLayout(BlendCase c)
    {
        using var file = SafeTensorsFile.Open(TestPaths.Fixture($"models/{c.File}.safetensors"));
        int latentTile = c.SampleSize / c.Factor;
        string encoded = c.EncodedName;
        Assert.Multiple(() =>
        {
            Assert.That(file.Metadata["config_name"], Is.EqualTo(c.ConfigName));
            Assert.That(file.Metadata["sample_size"], Is.EqualTo(c.SampleSize.ToString(CultureInfo.InvariantCulture)));
            Assert.That(double.Parse(file.Metadata["tile_overlap_factor"], CultureInfo.InvariantCulture), Is.EqualTo(BlendOverlap));
            if (c.Seeded)
                Assert.That(ulong.Parse(file.Metadata["seed"], CultureInfo.InvariantCulture), Is.EqualTo(SeededWeights.DefaultSeed));
            Assert.That(file.Tensors.Keys, Is.EquivalentTo(new[] { "input.image", $"blend.{encoded}", encoded, "input.latent", "blend.sample", "sample" }));
            Assert.That(file.Tensors.Values.Select(t => t.DType), Is.All.EqualTo(DType.F32));

            Assert.That(file.Get("input.image").Shape, Is.EqualTo(TensorShape.Nchw(1, 3, c.ImageHeight, c.ImageWidth)));
            Assert.That(file.Get(encoded).Shape,
                Is.EqualTo(TensorShape.Nchw(1, c.EncodedChannels, c.Encoded(c.ImageHeight), c.Encoded(c.ImageWidth))));
            Assert.That(file.Get($"blend.{encoded}").Shape, Is.EqualTo(TensorShape.Nchw(1, c.EncodedChannels,
                BlendTiledLength(c.ImageHeight, c.SampleSize, latentTile, c.Encoded),
                BlendTiledLength(c.ImageWidth, c.SampleSize, latentTile, c.Encoded))));

            Assert.That(file.Get("input.latent").Shape, Is.EqualTo(TensorShape.Nchw(1, c.LatentChannels, c.LatentHeight, c.LatentWidth)));
            Assert.That(file.Get("sample").Shape,
                Is.EqualTo(TensorShape.Nchw(1, 3, c.LatentHeight * c.Factor, c.LatentWidth * c.Factor)));
            Assert.That(file.Get("blend.sample").Shape, Is.EqualTo(TensorShape.Nchw(1, 3,
                BlendTiledLength(c.LatentHeight, latentTile, c.SampleSize, h => h * c.Factor),
                BlendTiledLength(c.LatentWidth, latentTile, c.SampleSize, w => w * c.Factor))));
        });
    }

    [TestCaseSource(nameof(BlendFixtureCases))]
    public void BlendFixtureInputsAreReproducible(BlendCase c)
    {
        using var file = SafeTensorsFile.Open(TestPaths.Fixture($"models/{c.File}.safetensors"));
        if (!c.Seeded)
        {
            // TAEF2's image is a crop of ../shared; its latent input is the untiled latent of that crop.
            Assert.That(file.ReadFloat32("input.latent"), Is.EqualTo(file.ReadFloat32("latent")));
            return;
        }
        const float latentAmplitude = 2f;
        var seed = SeededWeights.DefaultSeed;
        float[] image = SeededWeights.Uniform(seed, "input.image", file.Get("input.image").Shape.ElementCount);
        float[] latent = SeededWeights.Uniform(seed, "input.latent", file.Get("input.latent").Shape.ElementCount)
            .Select(v => v * latentAmplitude).ToArray();
        Assert.Multiple(() =>
        {
            Assert.That(file.ReadFloat32("input.image"), Is.EqualTo(image));
            Assert.That(file.ReadFloat32("input.latent"), Is.EqualTo(latent));
        });
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
