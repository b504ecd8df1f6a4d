using System.Text.Json.Nodes;

namespace NativeVae.Models.QwenImage;

/// <summary>
/// <see cref="QwenImageConfig"/> to and from diffusers' <c>config.json</c> for <c>AutoencoderKLQwenImage</c> (keys
/// base_dim, z_dim, dim_mult, num_res_blocks, attn_scales, temperal_downsample, input_channels, latents_mean,
/// latents_std; dropout is ignored) and <c>AutoencoderKLWan</c> (the same with in_channels / out_channels, and Wan
/// 2.2's decoder_base_dim, is_residual and patch_size; scale_factor_* follow from the rest). Absent keys take
/// diffusers' defaults.
/// </summary>
internal static class QwenImageConfigJson
{
    public const string ClassName = "AutoencoderKLQwenImage";

    /// <summary>diffusers' Wan VAE class: the same network and keys, plus Wan 2.2's (is_residual, patch_size, decoder_base_dim).</summary>
    public const string WanClassName = "AutoencoderKLWan";

    /// <exception cref="InvalidDataException">not a JSON object, a key of the wrong type, or a config the network cannot have.</exception>
    public static QwenImageConfig Parse(string json, string origin)
    {
        var r = new ConfigJsonReader(ConfigJsonReader.ParseObject(json, origin), origin);
        var defaults = QwenImageConfig.QwenImage;
        if (r.FloatList("attn_scales", []).Count > 0)
            throw new InvalidDataException($"{origin}: config key 'attn_scales' is not empty; the published VAEs have no attention in their down and up blocks, and NativeVae runs none");
        int inputChannels = r.Int("in_channels", r.Int("input_channels", defaults.InputChannels));
        if (r.Int("out_channels", inputChannels) != inputChannels)
            throw new InvalidDataException($"{origin}: config key 'out_channels' {r.Int("out_channels", inputChannels)} differs from in_channels {inputChannels}; the published VAEs decode the channels they encode");
        int? patch = r.IntOrNull("patch_size");
        var config = new QwenImageConfig
        {
            BaseDim = r.Int("base_dim", defaults.BaseDim),
            DecoderBaseDim = r.IntOrNull("decoder_base_dim"),
            ZDim = r.Int("z_dim", defaults.ZDim),
            DimMult = r.IntList("dim_mult", defaults.DimMult),
            NumResBlocks = r.Int("num_res_blocks", defaults.NumResBlocks),
            TemporalDownsample = r.BoolList("temperal_downsample", defaults.TemporalDownsample),
            InputChannels = inputChannels,
            IsResidual = r.Bool("is_residual", false),
            PatchSize = patch ?? 1,
            LatentsMean = r.FloatList("latents_mean", defaults.LatentsMean),
            LatentsStd = r.FloatList("latents_std", defaults.LatentsStd),
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

    public static string Serialize(QwenImageConfig config) => ToJsonObject(config).ToJsonString();

    /// <param name="className">AutoencoderKLQwenImage, or AutoencoderKLWan for the video family.</param>
    public static JsonObject ToJsonObject(QwenImageConfig config, string className = ClassName)
    {
        var json = Common(config, className);
        if (config.DecoderBaseDim is { } decoder) json["decoder_base_dim"] = decoder;
        if (config.IsResidual) json["is_residual"] = true;
        if (config.PatchSize > 1) json["patch_size"] = config.PatchSize;
        return json;
    }

    private static JsonObject Common(QwenImageConfig config, string className) => new()
    {
        ["_class_name"] = className,
        ["base_dim"] = config.BaseDim,
        ["z_dim"] = config.ZDim,
        ["dim_mult"] = new JsonArray(config.DimMult.Select(m => (JsonNode?)m).ToArray()),
        ["num_res_blocks"] = config.NumResBlocks,
        ["attn_scales"] = new JsonArray(),
        ["temperal_downsample"] = new JsonArray(config.TemporalDownsample.Select(t => (JsonNode?)t).ToArray()),
        ["input_channels"] = config.InputChannels,
        ["latents_mean"] = new JsonArray(config.LatentsMean.Select(v => (JsonNode?)ConfigJsonReader.Exact(v)).ToArray()),
        ["latents_std"] = new JsonArray(config.LatentsStd.Select(v => (JsonNode?)ConfigJsonReader.Exact(v)).ToArray()),
    };
}
