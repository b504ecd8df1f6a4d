using System.Text.Json.Nodes;

namespace NativeVae.Models.Taesd;

/// <summary>
/// <see cref="TaesdConfig"/> to and from diffusers' <c>AutoencoderTiny</c> config.json (keys latent_channels,
/// encoder_block_out_channels, decoder_block_out_channels, num_encoder_blocks, num_decoder_blocks,
/// scaling_factor, shift_factor) plus <c>use_midblock_gn</c> for TAEF2 (taesd.py's name for it).
/// </summary>
internal static class TaesdConfigJson
{
    /// <summary>diffusers' <c>_class_name</c> for this model.</summary>
    public const string ClassName = "AutoencoderTiny";

    /// <exception cref="InvalidDataException">not a JSON object, a key of the wrong type, or channel lists that differ.</exception>
    public static TaesdConfig Parse(string json, string origin)
    {
        var r = new ConfigJsonReader(ConfigJsonReader.ParseObject(json, origin), origin);
        var defaults = new TaesdConfig();
        var encoderChannels = r.IntList("encoder_block_out_channels", Enumerable.Repeat(defaults.Channels, defaults.EncoderBlocks.Count).ToList());
        var decoderChannels = r.IntList("decoder_block_out_channels", encoderChannels);
        if (encoderChannels.Concat(decoderChannels).Distinct().Count() != 1)
            throw new InvalidDataException($"{origin}: block_out_channels that differ between stages are not supported");
        var config = new TaesdConfig
        {
            LatentChannels = r.Int("latent_channels", defaults.LatentChannels),
            Channels = encoderChannels[0],
            EncoderBlocks = r.IntList("num_encoder_blocks", defaults.EncoderBlocks),
            DecoderBlocks = r.IntList("num_decoder_blocks", defaults.DecoderBlocks),
            UseMidBlockGroupNorm = r.Bool("use_midblock_gn", defaults.UseMidBlockGroupNorm),
            ScalingFactor = r.Float("scaling_factor", defaults.ScalingFactor),
            ShiftFactor = r.NullableFloat("shift_factor", defaults.ShiftFactor) ?? 0f,
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

    public static string Serialize(TaesdConfig config) => ToJsonObject(config).ToJsonString();

    public static JsonObject ToJsonObject(TaesdConfig config)
    {
        JsonArray Channels() => new(Enumerable.Repeat(config.Channels, config.EncoderBlocks.Count).Select(c => (JsonNode?)c).ToArray());
        return new JsonObject
        {
            ["_class_name"] = ClassName,
            ["in_channels"] = TaesdConfig.ImageChannels,
            ["out_channels"] = TaesdConfig.ImageChannels,
            ["latent_channels"] = config.LatentChannels,
            ["encoder_block_out_channels"] = Channels(),
            ["decoder_block_out_channels"] = Channels(),
            ["num_encoder_blocks"] = new JsonArray(config.EncoderBlocks.Select(b => (JsonNode?)b).ToArray()),
            ["num_decoder_blocks"] = new JsonArray(config.DecoderBlocks.Select(b => (JsonNode?)b).ToArray()),
            ["use_midblock_gn"] = config.UseMidBlockGroupNorm,
            ["scaling_factor"] = ConfigJsonReader.Exact(config.ScalingFactor),
            ["shift_factor"] = ConfigJsonReader.Exact(config.ShiftFactor),
        };
    }
}
