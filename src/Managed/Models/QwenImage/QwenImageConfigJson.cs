using System.Text.Json.Nodes;

namespace NativeVae.Models.QwenImage;

/// <summary>
/// <see cref="QwenImageConfig"/> to and from diffusers' <c>config.json</c> for <c>AutoencoderKLQwenImage</c> (keys
/// base_dim, z_dim, dim_mult, num_res_blocks, attn_scales, temperal_downsample, input_channels, latents_mean,
/// latents_std; dropout is ignored). Absent keys take diffusers' defaults.
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
        if (r.Bool("is_residual", false) || r.Int("patch_size", 1) > 1 || r.Int("decoder_base_dim", r.Int("base_dim", defaults.BaseDim)) != r.Int("base_dim", defaults.BaseDim))
            throw new InvalidDataException($"{origin}: a Wan 2.2 VAE (is_residual, patch_size 2: the TI2V-5B's, family wan22) is not supported yet; Wan 2.1's is (family wan)");
        var config = new QwenImageConfig
        {
            BaseDim = r.Int("base_dim", defaults.BaseDim),
            ZDim = r.Int("z_dim", defaults.ZDim),
            DimMult = r.IntList("dim_mult", defaults.DimMult),
            NumResBlocks = r.Int("num_res_blocks", defaults.NumResBlocks),
            TemporalDownsample = r.BoolList("temperal_downsample", defaults.TemporalDownsample),
            InputChannels = r.Int("input_channels", defaults.InputChannels),
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
    public static JsonObject ToJsonObject(QwenImageConfig config, string className = ClassName) => new()
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
