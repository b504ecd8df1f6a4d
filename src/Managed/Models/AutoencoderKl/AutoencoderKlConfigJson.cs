using System.Text.Json;
using System.Text.Json.Nodes;

namespace NativeVae.Models.AutoencoderKl;

/// <summary>
/// <see cref="AutoencoderKlConfig"/> to and from diffusers' <c>config.json</c> for <c>AutoencoderKL</c> and
/// <c>AutoencoderKLFlux2</c> (whose defaults differ, and which adds decoder_block_out_channels, batch_norm_eps and
/// patch_size)
/// (keys latent_channels, block_out_channels, layers_per_block, use_quant_conv, use_post_quant_conv,
/// norm_num_groups, mid_block_add_attention, sample_size, scaling_factor, shift_factor, in_channels,
/// out_channels). Keys diffusers writes that do not shape the network (act_fn, block types, force_upcast,
/// _diffusers_version, ...) are ignored on read; absent keys take diffusers' defaults.
/// </summary>
internal static class AutoencoderKlConfigJson
{
    /// <summary>diffusers' <c>_class_name</c> for this model.</summary>
    public const string ClassName = "AutoencoderKL";

    /// <summary>diffusers' <c>_class_name</c> for FLUX.2's VAE.</summary>
    public const string Flux2ClassName = "AutoencoderKLFlux2";

    /// <summary>True for the class names this reader takes.</summary>
    public static bool Reads(string? className) => className is ClassName or Flux2ClassName;

    /// <summary>Parses a diffusers config; <paramref name="origin"/> names the file in errors.</summary>
    /// <exception cref="InvalidDataException">not a JSON object, or a key of the wrong type or value.</exception>
    public static AutoencoderKlConfig Parse(string json, string origin)
    {
        var root = ConfigJsonReader.ParseObject(json, origin);
        var r = new ConfigJsonReader(root, origin);
        bool flux2 = r.String("_class_name") == Flux2ClassName;
        var defaults = flux2 ? AutoencoderKlConfig.Flux2 : new AutoencoderKlConfig();
        if (flux2)
        {
            var patch = r.IntList("patch_size", [AutoencoderKlConfig.LatentPatch, AutoencoderKlConfig.LatentPatch]);
            if (patch.Count != 2 || patch[0] != AutoencoderKlConfig.LatentPatch || patch[1] != AutoencoderKlConfig.LatentPatch)
                throw new InvalidDataException($"{origin}: config key 'patch_size' is [{string.Join(", ", patch)}]; FLUX.2's pipeline patchifies [2, 2] only");
        }
        var config = new AutoencoderKlConfig
        {
            InChannels = r.Int("in_channels", defaults.InChannels),
            OutChannels = r.Int("out_channels", defaults.OutChannels),
            BlockOutChannels = r.IntList("block_out_channels", defaults.BlockOutChannels),
            LayersPerBlock = r.Int("layers_per_block", defaults.LayersPerBlock),
            LatentChannels = r.Int("latent_channels", defaults.LatentChannels),
            NormNumGroups = r.Int("norm_num_groups", defaults.NormNumGroups),
            UseQuantConv = r.Bool("use_quant_conv", defaults.UseQuantConv),
            UsePostQuantConv = r.Bool("use_post_quant_conv", defaults.UsePostQuantConv),
            MidBlockAddAttention = r.Bool("mid_block_add_attention", defaults.MidBlockAddAttention),
            SampleSize = r.SampleSize("sample_size", defaults.SampleSize),
            ScalingFactor = r.Float("scaling_factor", defaults.ScalingFactor),
            ShiftFactor = r.NullableFloat("shift_factor", defaults.ShiftFactor),
            DecoderBlockOutChannels = flux2 ? r.NullableIntList("decoder_block_out_channels") : null,
            LatentBatchNorm = flux2,
            BatchNormEps = flux2 ? r.Float("batch_norm_eps", defaults.BatchNormEps) : defaults.BatchNormEps,
        };
        try
        {
            config.Validate();
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"{origin}: {e.Message}");
        }
        return config;
    }

    /// <summary>The config as a diffusers-style JSON object (one line).</summary>
    public static string Serialize(AutoencoderKlConfig config) => ToJsonObject(config).ToJsonString();

    /// <summary>The config as a JSON object with diffusers' key names, for embedding in other JSON.</summary>
    public static JsonObject ToJsonObject(AutoencoderKlConfig config)
    {
        var json = new JsonObject
        {
            ["_class_name"] = config.LatentBatchNorm ? Flux2ClassName : ClassName,
            ["in_channels"] = config.InChannels,
            ["out_channels"] = config.OutChannels,
            ["latent_channels"] = config.LatentChannels,
            ["block_out_channels"] = new JsonArray(config.BlockOutChannels.Select(c => (JsonNode?)c).ToArray()),
            ["layers_per_block"] = config.LayersPerBlock,
            ["norm_num_groups"] = config.NormNumGroups,
            ["use_quant_conv"] = config.UseQuantConv,
            ["use_post_quant_conv"] = config.UsePostQuantConv,
            ["mid_block_add_attention"] = config.MidBlockAddAttention,
            ["sample_size"] = config.SampleSize,
            ["scaling_factor"] = ConfigJsonReader.Exact(config.ScalingFactor),
            ["shift_factor"] = config.ShiftFactor is float shift ? ConfigJsonReader.Exact(shift) : null,
        };
        if (config.LatentBatchNorm)
        {
            // AutoencoderKLFlux2's config has no factors: its pipeline normalises with the bn statistics.
            json.Remove("scaling_factor");
            json.Remove("shift_factor");
            if (config.DecoderBlockOutChannels is { } decoder)
                json["decoder_block_out_channels"] = new JsonArray(decoder.Select(c => (JsonNode?)c).ToArray());
            json["batch_norm_eps"] = ConfigJsonReader.Exact(config.BatchNormEps);
            json["patch_size"] = new JsonArray(AutoencoderKlConfig.LatentPatch, AutoencoderKlConfig.LatentPatch);
        }
        return json;
    }
}
