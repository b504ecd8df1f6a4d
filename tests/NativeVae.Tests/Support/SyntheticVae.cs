using System.Text.RegularExpressions;
using NativeVae.Models.AutoencoderKl;
using NativeVae.Models.Taesd;
using NativeVae.Weights;
using NativeVae.Loading;
using NativeVae.Formats.SafeTensors;

namespace NativeVae.Tests.Support;

/// <summary>
/// Seeded AutoencoderKL / TAESD weights under canonical names, and writers for every published layout, so that
/// each reader is tested against files the tests write themselves (small configs: files of a few hundred KB).
/// </summary>
internal static partial class SyntheticVae
{
    /// <summary>SD's structure at test size: two levels of 32 and 64 channels, one layer per block.</summary>
    public static AutoencoderKlConfig SmallSd { get; } = AutoencoderKlConfig.Small with { NormNumGroups = 32 };

    /// <summary>FLUX.1's structure at test size: 16 latent channels, no quant convs.</summary>
    public static AutoencoderKlConfig SmallFlux { get; } = SmallSd with { LatentChannels = 16, UseQuantConv = false, UsePostQuantConv = false };

    public enum Layout { Diffusers, Ldm, LegacyAttention }

    /// <summary>
    /// The small config's seeded weights with a NaN in channel 1 of the decoder's output bias: every decode then makes
    /// channel 1 of the image NaN, after the whole model has run (for the non-finite-output refusals).
    /// </summary>
    public static InMemoryWeights SmallWithNaNOutputBias()
    {
        var weights = InMemoryWeights.Seeded(SeededWeights.DefaultSeed, AutoencoderKlParameters.Enumerate(AutoencoderKlConfig.Small));
        const string Bias = "decoder.conv_out.bias";
        if (!weights.TryGetShape(Bias, out var biasShape)) throw new InvalidOperationException($"the small config has no {Bias}");
        weights.Add(Bias, biasShape, [0f, float.NaN, 0f]);
        return weights;
    }

    public static Dictionary<string, float[]> Canonical(AutoencoderKlConfig config) =>
        SeededWeights.Generate(SeededWeights.DefaultSeed, AutoencoderKlParameters.Enumerate(config));

    public static Dictionary<string, float[]> Canonical(TaesdConfig config) =>
        SeededWeights.Generate(SeededWeights.DefaultSeed, TaesdParameters.Enumerate(config));

    /// <summary>The canonical tensors renamed (and reshaped) into a layout, with a name prefix.</summary>
    public static List<(string Name, TensorShape Shape, float[] Values)> InLayout(AutoencoderKlConfig config, Layout layout, string prefix = "")
    {
        var values = Canonical(config);
        var list = new List<(string, TensorShape, float[])>();
        foreach (var (name, shape) in AutoencoderKlParameters.Enumerate(config))
        {
            var (storedName, storedShape) = layout switch
            {
                Layout.Ldm => ToLdm(name, shape, config.BlockOutChannels.Count),
                Layout.LegacyAttention => (ToLegacyAttention(name), shape),
                _ => (name, shape),
            };
            list.Add((prefix + storedName, storedShape, values[name]));
        }
        return list;
    }

    /// <summary>Test-side inverse of the loader's LDM mapping (checked against the reference tsv).</summary>
    public static (string Name, TensorShape Shape) ToLdm(string name, TensorShape shape, int blockCount)
    {
        string n = name;
        n = EncoderResnet().Replace(n, m => $"encoder.down.{m.Groups[1].Value}.block.{m.Groups[2].Value}.");
        n = DecoderResnet().Replace(n, m => $"decoder.up.{blockCount - 1 - int.Parse(m.Groups[1].Value)}.block.{m.Groups[2].Value}.");
        n = Downsampler().Replace(n, m => $"encoder.down.{m.Groups[1].Value}.downsample.conv.");
        n = Upsampler().Replace(n, m => $"decoder.up.{blockCount - 1 - int.Parse(m.Groups[1].Value)}.upsample.conv.");
        n = MidResnet().Replace(n, m => $"mid.block_{int.Parse(m.Groups[1].Value) + 1}.");
        n = n.Replace("conv_shortcut.", "nin_shortcut.").Replace("conv_norm_out.", "norm_out.");
        bool projection = AttentionProjection().IsMatch(n);
        n = n.Replace("mid_block.attentions.0.group_norm.", "mid.attn_1.norm.")
             .Replace("mid_block.attentions.0.to_q.", "mid.attn_1.q.")
             .Replace("mid_block.attentions.0.to_k.", "mid.attn_1.k.")
             .Replace("mid_block.attentions.0.to_v.", "mid.attn_1.v.")
             .Replace("mid_block.attentions.0.to_out.0.", "mid.attn_1.proj_out.");
        if (projection && shape.Rank == 2) shape = new TensorShape(shape[0], shape[1], 1, 1);
        return (n, shape);
    }

    public static string ToLegacyAttention(string name) => name
        .Replace("attentions.0.to_q.", "attentions.0.query.")
        .Replace("attentions.0.to_k.", "attentions.0.key.")
        .Replace("attentions.0.to_v.", "attentions.0.value.")
        .Replace("attentions.0.to_out.0.", "attentions.0.proj_attn.");

    public static void WriteSafeTensors(string path, IEnumerable<(string Name, TensorShape Shape, float[] Values)> tensors,
        DType dtype = DType.F32, IReadOnlyDictionary<string, string>? metadata = null) =>
        SafeTensorsWriter.Write(path, tensors.Select(t => SafeTensorToWrite.FromFloat32(t.Name, t.Shape, t.Values, dtype)), metadata);

    /// <summary>taesd.py's bare Sequential names for one half (decoder indices shifted by the Clamp).</summary>
    public static List<(string Name, TensorShape Shape, float[] Values)> TaesdHalf(TaesdConfig config, bool encoder)
    {
        var values = Canonical(config);
        string prefix = encoder ? TaesdParameters.EncoderPrefix : TaesdParameters.DecoderPrefix;
        var list = new List<(string, TensorShape, float[])>();
        foreach (var (name, shape) in TaesdParameters.Enumerate(config))
        {
            if (!name.StartsWith(prefix, StringComparison.Ordinal)) continue;
            string rest = name[prefix.Length..];
            int dot = rest.IndexOf('.');
            int index = int.Parse(rest[..dot]) + (encoder ? 0 : 1);
            list.Add(($"{index}{rest[dot..]}", shape, values[name]));
        }
        return list;
    }

    /// <summary>A fresh empty folder under the test's work directory.</summary>
    public static string TempFolder()
    {
        string dir = Path.Combine(Path.GetTempPath(), "nativevae-tests", TestContext.CurrentContext.Test.ID + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        return dir;
    }

    [GeneratedRegex(@"^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.")]
    private static partial Regex EncoderResnet();

    [GeneratedRegex(@"^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.")]
    private static partial Regex DecoderResnet();

    [GeneratedRegex(@"^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.")]
    private static partial Regex Downsampler();

    [GeneratedRegex(@"^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.")]
    private static partial Regex Upsampler();

    [GeneratedRegex(@"mid_block\.resnets\.(\d+)\.")]
    private static partial Regex MidResnet();

    [GeneratedRegex(@"attentions\.0\.(to_q|to_k|to_v|to_out\.0)\.weight$")]
    private static partial Regex AttentionProjection();
}
