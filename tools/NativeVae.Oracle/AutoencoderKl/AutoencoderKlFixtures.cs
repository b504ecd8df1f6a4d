using System.Text.Json;
using NativeVae.Core;
using NativeVae.Models.AutoencoderKl;
using NativeVae.Weights;
using NativeVae.Formats;
using NativeVae.Loading;
using static TorchSharp.torch;

namespace NativeVae.Oracle.AutoencoderKl;

/// <summary>
/// <c>models/{small,sd,flux1}.safetensors</c>: seeded weights (not stored: tests regenerate them from
/// <c>seed</c>), seeded inputs, and every named stage of an encode and a decode.
/// </summary>
internal static class AutoencoderKlFixtures
{
    /// <summary>One model fixture: the config and the image and latent sizes it is run at.</summary>
    private sealed record Case(string Name, AutoencoderKlConfig Config, int ImageHeight, int ImageWidth, int LatentHeight, int LatentWidth);

    /// <summary>Latent inputs are drawn in [-2, 2]: wider than N(0,1) samples usually reach, narrower than outliers.</summary>
    private const float LatentAmplitude = 2f;

    private static readonly Case[] Cases =
    [
        // Odd image (15x11) so the asymmetric-pad downsampler drops a row and a column: latent 7x5.
        new("small", AutoencoderKlConfig.Small, 15, 11, 5, 4),
        new("sd", AutoencoderKlConfig.Sd, 16, 24, 2, 3),
        new("flux1", AutoencoderKlConfig.Flux1, 16, 24, 2, 3),
    ];

    public static IEnumerable<FixtureFile> Build(ulong seed)
    {
        foreach (var c in Cases) yield return Build(c, seed);
    }

    private static FixtureFile Build(Case c, ulong seed)
    {
        var parameters = AutoencoderKlParameters.Enumerate(c.Config);
        long parameterCount = parameters.Sum(p => p.Shape.ElementCount);
        var file = new FixtureFile($"models/{c.Name}.safetensors")
            .Meta("config_name", c.Name)
            .Meta("seed", seed.ToString(System.Globalization.CultureInfo.InvariantCulture))
            .Meta("config", DiffusersConfigJson(c.Config))
            .Meta("parameters", parameterCount.ToString(System.Globalization.CultureInfo.InvariantCulture));

        using var weights = new CheckedWeights(InMemoryWeights.Seeded(seed, parameters));
        using (var scope = NewDisposeScope())
        {
            var model = new AutoencoderKlOracle(c.Config, weights, (name, t) => file.Add(name, t));
            var image = Torch.Uniform(seed, "input.image", [1, c.Config.InChannels, c.ImageHeight, c.ImageWidth]);
            file.Add("input.image", image);
            var moments = model.EncodeMoments(image);
            long expectedH = c.ImageHeight, expectedW = c.ImageWidth;
            for (int i = 1; i < c.Config.BlockOutChannels.Count; i++)
            {
                // Each Downsample2D maps a size s to floor(s / 2) (pad 1 on the far side, 3x3, stride 2).
                expectedH /= 2;
                expectedW /= 2;
            }
            RequireShape(c.Name, "moments", moments, 1, 2 * c.Config.LatentChannels, expectedH, expectedW);

            var latent = Torch.Uniform(seed, "input.latent", [1, c.Config.LatentChannels, c.LatentHeight, c.LatentWidth], LatentAmplitude);
            file.Add("input.latent", latent);
            var sample = model.Decode(latent);
            int f = c.Config.DownsampleFactor;
            RequireShape(c.Name, "decoder.conv_out", sample, 1, c.Config.OutChannels, c.LatentHeight * f, c.LatentWidth * f);
        }
        weights.AssertAllUsed();
        if (weights.Count != parameters.Count)
            throw new InvalidOperationException($"oracle {c.Name}: read {weights.Count} parameters, the config declares {parameters.Count}");
        return file;
    }

    private static void RequireShape(string fixture, string name, Tensor t, params long[] expected)
    {
        if (!t.shape.SequenceEqual(expected))
            throw new InvalidOperationException(
                $"oracle {fixture}: '{name}' is [{string.Join(", ", t.shape)}], expected [{string.Join(", ", expected)}]");
    }

    /// <summary>The config as diffusers' config.json spells it (the fields that shape the network, and scaling).</summary>
    public static string DiffusersConfigJson(AutoencoderKlConfig config)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("_class_name", "AutoencoderKL");
            json.WriteNumber("in_channels", config.InChannels);
            json.WriteNumber("out_channels", config.OutChannels);
            WriteRepeated(json, "down_block_types", "DownEncoderBlock2D", config.BlockOutChannels.Count);
            WriteRepeated(json, "up_block_types", "UpDecoderBlock2D", config.BlockOutChannels.Count);
            json.WriteStartArray("block_out_channels");
            foreach (int c in config.BlockOutChannels) json.WriteNumberValue(c);
            json.WriteEndArray();
            json.WriteNumber("layers_per_block", config.LayersPerBlock);
            json.WriteString("act_fn", "silu");
            json.WriteNumber("latent_channels", config.LatentChannels);
            json.WriteNumber("norm_num_groups", config.NormNumGroups);
            json.WriteNumber("sample_size", config.SampleSize);
            json.WriteNumber("scaling_factor", config.ScalingFactor);
            if (config.ShiftFactor is float shift) json.WriteNumber("shift_factor", shift);
            else json.WriteNull("shift_factor");
            json.WriteBoolean("use_quant_conv", config.UseQuantConv);
            json.WriteBoolean("use_post_quant_conv", config.UsePostQuantConv);
            json.WriteBoolean("mid_block_add_attention", config.MidBlockAddAttention);
            json.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static void WriteRepeated(Utf8JsonWriter json, string name, string value, int count)
    {
        json.WriteStartArray(name);
        for (int i = 0; i < count; i++) json.WriteStringValue(value);
        json.WriteEndArray();
    }
}
