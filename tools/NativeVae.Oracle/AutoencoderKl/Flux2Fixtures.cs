using System.Globalization;
using System.Text.Json;
using NativeVae.Models.AutoencoderKl;
using NativeVae.Weights;
using static TorchSharp.torch;

namespace NativeVae.Oracle.AutoencoderKl;

/// <summary>
/// <c>models/flux2*.safetensors</c>: diffusers' <c>AutoencoderKLFlux2</c> (the AutoencoderKL oracle with the decoder's
/// own levels) and the FLUX.2 pipeline's latent forms, computed here as <c>pipeline_flux2.py</c> computes them:
/// <c>_patchify_latents</c> (view, permute (0, 1, 3, 5, 2, 4), reshape), the <c>bn</c> normalisation
/// <c>(p - running_mean) / sqrt(running_var + batch_norm_eps)</c>, <c>_pack_latents</c> (reshape, permute (0, 2, 1)),
/// and for decode the inverse, <c>p * std + mean</c> then <c>_unpatchify_latents</c>.
/// </summary>
internal static class Flux2Fixtures
{
    /// <param name="AllStages">store every named stage (the small config); else the inputs, outputs and forms only.</param>
    private sealed record Case(string Name, AutoencoderKlConfig Config, int Batch, int ImageHeight, int ImageWidth, bool AllStages);

    private const float LatentAmplitude = 2f;
    private const int Patch = AutoencoderKlConfig.LatentPatch;

    /// <summary>The small FLUX.2-shaped config: two levels, a decoder narrower than the encoder, 4 latent channels.</summary>
    public static AutoencoderKlConfig Small { get; } = AutoencoderKlConfig.Small with
    {
        LatentBatchNorm = true,
        DecoderBlockOutChannels = [24, 48],
    };

    private static readonly Case[] Cases =
    [
        // Batch 2; a 20x12 image gives a 10x6 latent, 5x3 patches (the small config downsamples 2x).
        new("flux2_small", Small, 2, 20, 12, AllStages: true),
        // The real configs at 64x64 (and 64x48: sides that are multiples of 16, not of 32).
        new("flux2", AutoencoderKlConfig.Flux2, 1, 64, 64, AllStages: false),
        new("flux2_small_decoder", AutoencoderKlConfig.Flux2SmallDecoder, 1, 48, 64, AllStages: false),
    ];

    private static readonly HashSet<string> EndStages = ["moments", "decoder.conv_out"];

    public static IEnumerable<FixtureFile> Build(ulong seed)
    {
        foreach (var c in Cases) yield return Build(c, seed);
    }

    private static FixtureFile Build(Case c, ulong seed)
    {
        var config = c.Config;
        var parameters = AutoencoderKlParameters.Enumerate(config);
        var file = FixtureFile.Model(c.Name, seed, DiffusersConfigJson(config), parameters);

        using var weights = new CheckedWeights(InMemoryWeights.Seeded(seed, parameters));
        using (var scope = NewDisposeScope())
        {
            var model = new AutoencoderKlOracle(config, weights, (name, t) =>
            {
                if (c.AllStages || EndStages.Contains(name)) file.Add(name, t);
            });
            int f = config.DownsampleFactor, latent = config.LatentChannels;
            var image = Torch.Uniform(seed, "input.image", [c.Batch, config.InChannels, c.ImageHeight, c.ImageWidth]);
            file.Add("input.image", image);
            var moments = model.EncodeMoments(image);
            var mode = moments.narrow(1, 0, latent);   // DiagonalGaussianDistribution.mode(): the mean half
            var (mean, std) = Statistics(config, weights);
            var patchified = (Patchify(mode) - mean) / std;
            file.Add("pipeline.patchified", patchified);
            file.Add("pipeline.packed", Pack(patchified));

            int h = c.ImageHeight / f, w = c.ImageWidth / f;
            var z = Torch.Uniform(seed, "input.latent", [c.Batch, latent, h, w], LatentAmplitude);
            file.Add("input.latent", z);
            model.Decode(z);

            var p = Torch.Uniform(seed, "input.patchified", [c.Batch, config.PatchedLatentChannels, h / Patch, w / Patch], LatentAmplitude);
            file.Add("input.patchified", p);
            var sample = new AutoencoderKlOracle(config, weights, (_, _) => { }).Decode(Unpatchify(p * std + mean));
            file.Add("patchified.sample", sample);
        }
        weights.AssertAllUsed();
        if (weights.Count != parameters.Count)
            throw new InvalidOperationException($"oracle {c.Name}: read {weights.Count} parameters, the config declares {parameters.Count}");
        return file;
    }

    /// <summary>The pipeline's mean and std as [1, 4C, 1, 1], the eps as the decimal diffusers writes (1e-4).</summary>
    private static (Tensor Mean, Tensor Std) Statistics(AutoencoderKlConfig config, CheckedWeights weights)
    {
        int k = config.PatchedLatentChannels;
        double eps = double.Parse(FixtureFile.Format(config.BatchNormEps), CultureInfo.InvariantCulture);
        var mean = weights.Get(AutoencoderKlParameters.BatchNormMean, k).view(1, -1, 1, 1);
        var std = sqrt(weights.Get(AutoencoderKlParameters.BatchNormVariance, k).view(1, -1, 1, 1) + eps);
        return (mean, std);
    }

    // pipeline_flux2.py: Flux2Pipeline._patchify_latents
    private static Tensor Patchify(Tensor latents)
    {
        long b = latents.shape[0], c = latents.shape[1], h = latents.shape[2], w = latents.shape[3];
        return latents.reshape(b, c, h / Patch, Patch, w / Patch, Patch).permute(0, 1, 3, 5, 2, 4).reshape(b, c * Patch * Patch, h / Patch, w / Patch);
    }

    // pipeline_flux2.py: Flux2Pipeline._unpatchify_latents
    private static Tensor Unpatchify(Tensor latents)
    {
        long b = latents.shape[0], c = latents.shape[1], h = latents.shape[2], w = latents.shape[3];
        return latents.reshape(b, c / (Patch * Patch), Patch, Patch, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c / (Patch * Patch), h * Patch, w * Patch);
    }

    // pipeline_flux2.py: Flux2Pipeline._pack_latents
    private static Tensor Pack(Tensor latents)
    {
        long b = latents.shape[0], c = latents.shape[1], h = latents.shape[2], w = latents.shape[3];
        return latents.reshape(b, c, h * w).permute(0, 2, 1).contiguous();
    }

    /// <summary>The config as diffusers' AutoencoderKLFlux2 config.json spells it (no scaling or shift factor).</summary>
    private static string DiffusersConfigJson(AutoencoderKlConfig config)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("_class_name", "AutoencoderKLFlux2");
            json.WriteNumber("in_channels", config.InChannels);
            json.WriteNumber("out_channels", config.OutChannels);
            WriteList(json, "block_out_channels", config.BlockOutChannels);
            if (config.DecoderBlockOutChannels is { } decoder) WriteList(json, "decoder_block_out_channels", decoder);
            else json.WriteNull("decoder_block_out_channels");
            json.WriteNumber("layers_per_block", config.LayersPerBlock);
            json.WriteString("act_fn", "silu");
            json.WriteNumber("latent_channels", config.LatentChannels);
            json.WriteNumber("norm_num_groups", config.NormNumGroups);
            json.WriteNumber("sample_size", config.SampleSize);
            json.WriteBoolean("force_upcast", true);
            json.WriteBoolean("use_quant_conv", config.UseQuantConv);
            json.WriteBoolean("use_post_quant_conv", config.UsePostQuantConv);
            json.WriteBoolean("mid_block_add_attention", config.MidBlockAddAttention);
            json.WriteNumber("batch_norm_eps", double.Parse(FixtureFile.Format(config.BatchNormEps), CultureInfo.InvariantCulture));
            json.WriteNumber("batch_norm_momentum", 0.1);
            WriteList(json, "patch_size", [Patch, Patch]);
            json.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static void WriteList(Utf8JsonWriter json, string name, IReadOnlyList<int> values)
    {
        json.WriteStartArray(name);
        foreach (int v in values) json.WriteNumberValue(v);
        json.WriteEndArray();
    }
}
