using System.Text.RegularExpressions;

namespace NativeVae.Loading.Layouts;

/// <summary>
/// Maps the tensor names of every published AutoencoderKL layout to diffusers' canonical names:
/// the original LDM / FLUX.1 names (<c>encoder.down.{i}.block.{j}</c>, <c>mid.attn_1.q</c>, <c>nin_shortcut</c>,
/// <c>norm_out</c>, decoder <c>up.{k}</c> in reverse order; FLUX.2's <c>encoder.quant_conv</c> and
/// <c>decoder.post_quant_conv</c>), diffusers' pre-2023 attention names
/// (<c>query|key|value|proj_attn</c>), and diffusers' own names (unchanged). Prefixes of full checkpoints
/// (<c>first_stage_model.</c>, <c>vae.</c>) are stripped by the caller (<see cref="VaePrefix"/>).
/// </summary>
internal static partial class AutoencoderKlNaming
{
    /// <summary>The canonical name, or null when the name is not an AutoencoderKL parameter in any layout.</summary>
    /// <param name="blockCount">number of resolution levels; LDM numbers decoder levels in reverse.</param>
    public static string? ToDiffusers(string name, int blockCount)
    {
        Match m;
        if ((m = LdmResnet().Match(name)).Success)
        {
            bool encoder = m.Groups["part"].Value == "encoder";
            int level = int.Parse(m.Groups["level"].Value);
            string blocks = encoder ? "down_blocks" : "up_blocks";
            int index = encoder ? level : blockCount - 1 - level;
            if (index < 0) return null;
            return $"{m.Groups["part"].Value}.{blocks}.{index}.resnets.{m.Groups["j"].Value}.{ResnetLeaf(m.Groups["leaf"].Value)}";
        }
        if ((m = LdmResample().Match(name)).Success)
        {
            bool encoder = m.Groups["part"].Value == "encoder";
            int level = int.Parse(m.Groups["level"].Value);
            int index = encoder ? level : blockCount - 1 - level;
            if (index < 0) return null;
            return encoder
                ? $"encoder.down_blocks.{index}.downsamplers.0.conv.{m.Groups["p"].Value}"
                : $"decoder.up_blocks.{index}.upsamplers.0.conv.{m.Groups["p"].Value}";
        }
        if ((m = LdmMidResnet().Match(name)).Success)
        {
            int index = int.Parse(m.Groups["k"].Value) - 1;
            return $"{m.Groups["part"].Value}.mid_block.resnets.{index}.{ResnetLeaf(m.Groups["leaf"].Value)}";
        }
        if ((m = LdmMidAttention().Match(name)).Success)
        {
            string leaf = m.Groups["proj"].Value switch
            {
                "norm" => "group_norm",
                "q" => "to_q",
                "k" => "to_k",
                "v" => "to_v",
                _ => "to_out.0",
            };
            return $"{m.Groups["part"].Value}.mid_block.attentions.0.{leaf}.{m.Groups["p"].Value}";
        }
        if ((m = LdmNormOut().Match(name)).Success)
            return $"{m.Groups["part"].Value}.conv_norm_out.{m.Groups["p"].Value}";
        if ((m = LegacyAttention().Match(name)).Success)
        {
            string leaf = m.Groups["proj"].Value switch
            {
                "query" => "to_q",
                "key" => "to_k",
                "value" => "to_v",
                _ => "to_out.0",
            };
            return $"{m.Groups["part"].Value}.mid_block.attentions.0.{leaf}.{m.Groups["p"].Value}";
        }
        if ((m = Flux2QuantConv().Match(name)).Success)
            return $"{m.Groups["conv"].Value}.{m.Groups["p"].Value}";
        return DiffusersName().IsMatch(name) ? name : null;
    }

    /// <summary>True for the attention projections that LDM stores as 1x1 convs <c>[C, C, 1, 1]</c>.</summary>
    public static bool IsAttentionProjectionWeight(string canonical) => AttentionProjectionWeight().IsMatch(canonical);

    /// <summary>Number of resolution levels from LDM names (<c>encoder.down.{i}</c> or <c>decoder.up.{k}</c>).</summary>
    public static int LdmBlockCount(IEnumerable<string> names)
    {
        int count = 0;
        foreach (string name in names)
        {
            var m = LdmLevel().Match(name);
            if (m.Success) count = Math.Max(count, int.Parse(m.Groups["level"].Value) + 1);
        }
        return count;
    }

    private static string ResnetLeaf(string leaf) =>
        leaf.StartsWith("nin_shortcut.", StringComparison.Ordinal) ? "conv_shortcut." + leaf["nin_shortcut.".Length..] : leaf;

    // Indices are at most 9 digits so that int.Parse cannot overflow: a longer one is no layout's name.
    [GeneratedRegex(@"^(?<part>encoder|decoder)\.(down|up)\.(?<level>\d{1,9})\.block\.(?<j>\d{1,9})\.(?<leaf>(norm1|norm2|conv1|conv2|nin_shortcut)\.(weight|bias))$")]
    private static partial Regex LdmResnet();

    [GeneratedRegex(@"^(?<part>encoder|decoder)\.(down|up)\.(?<level>\d{1,9})\.(downsample|upsample)\.conv\.(?<p>weight|bias)$")]
    private static partial Regex LdmResample();

    [GeneratedRegex(@"^(?<part>encoder|decoder)\.mid\.block_(?<k>[12])\.(?<leaf>(norm1|norm2|conv1|conv2)\.(weight|bias))$")]
    private static partial Regex LdmMidResnet();

    [GeneratedRegex(@"^(?<part>encoder|decoder)\.mid\.attn_1\.(?<proj>norm|q|k|v|proj_out)\.(?<p>weight|bias)$")]
    private static partial Regex LdmMidAttention();

    [GeneratedRegex(@"^(?<part>encoder|decoder)\.norm_out\.(?<p>weight|bias)$")]
    private static partial Regex LdmNormOut();

    [GeneratedRegex(@"^(?<part>encoder|decoder)\.mid_block\.attentions\.0\.(?<proj>query|key|value|proj_attn)\.(?<p>weight|bias)$")]
    private static partial Regex LegacyAttention();

    /// <summary>BFL's FLUX.2 <c>ae</c> keeps the quant convs inside the encoder and decoder.</summary>
    [GeneratedRegex(@"^(encoder\.(?<conv>quant_conv)|decoder\.(?<conv>post_quant_conv))\.(?<p>weight|bias)$")]
    private static partial Regex Flux2QuantConv();

    [GeneratedRegex(@"^((encoder|decoder)\.(conv_in|conv_out|conv_norm_out|down_blocks|up_blocks|mid_block)\.|quant_conv\.|post_quant_conv\.|bn\.running_(mean|var)$)")]
    private static partial Regex DiffusersName();

    [GeneratedRegex(@"\.mid_block\.attentions\.0\.(to_q|to_k|to_v|to_out\.0)\.weight$")]
    private static partial Regex AttentionProjectionWeight();

    [GeneratedRegex(@"^(encoder\.down|decoder\.up)\.(?<level>\d{1,9})\.")]
    private static partial Regex LdmLevel();
}
