using System.Text.RegularExpressions;

namespace NativeVae.Loading.Layouts;

/// <summary>
/// Maps the original Wan / Qwen-Image VAE names (Wan2.1_VAE.pth, ComfyUI's <c>qwen_image_vae.safetensors</c> and
/// <c>wan_2.1_vae.safetensors</c>) to diffusers' AutoencoderKLQwenImage names, as diffusers'
/// <c>convert_wan_to_diffusers.py</c> does: <c>conv1</c> / <c>conv2</c> at the top are the quant convs;
/// <c>{encoder,decoder}.conv1</c> conv_in; <c>middle.{0,1,2}</c> resnet, attention, resnet; <c>head.0</c> / <c>head.2</c>
/// the norm and conv out; a residual's <c>residual.{0,2,3,6}</c> norm1, conv1, norm2, conv2 and <c>shortcut</c> its
/// conv_shortcut. The encoder's <c>downsamples.{k}</c> is diffusers' flat <c>down_blocks.{k}</c>; the decoder's flat
/// <c>upsamples.{k}</c> is split into levels of <c>num_res_blocks + 1</c> resnets and an upsampler. Wan 2.2's
/// (<c>Wan2.2_VAE.pth</c>, ComfyUI's <c>wan2.2_vae.safetensors</c>) nest a level's blocks,
/// <c>downsamples.{i}.downsamples.{k}</c> and <c>upsamples.{i}.upsamples.{k}</c>, as diffusers' residual down block's
/// <c>resnets.{k}</c> then <c>downsampler</c>, and up block's <c>resnets.{k}</c> then <c>upsampler</c>.
/// </summary>
internal static partial class WanNaming
{
    private const int ResampleSlot = 1;

    /// <summary>True when the names are Wan's originals (a residual block under <c>encoder.downsamples</c>).</summary>
    public static bool IsOriginal(IEnumerable<string> names) =>
        names.Any(n => n.StartsWith("encoder.downsamples.", StringComparison.Ordinal));

    /// <summary>True for an AutoencoderKLQwenImage state dict in either layout (its RMS norms have gammas).</summary>
    public static bool IsWanVae(IEnumerable<string> names) =>
        names.Any(n => n is "encoder.down_blocks.0.norm1.gamma" or "encoder.downsamples.0.residual.0.gamma"
            or "encoder.down_blocks.0.resnets.0.norm1.gamma" or "encoder.downsamples.0.downsamples.0.residual.0.gamma");

    /// <summary>
    /// num_res_blocks of an original state dict: the encoder's first resample follows that many residual blocks
    /// (0 when the names hold no resample).
    /// </summary>
    public static int ResBlocks(IEnumerable<string> names)
    {
        int first = int.MaxValue;
        foreach (string name in names)
        {
            var m = EncoderResample().Match(name);
            if (!m.Success) m = NestedEncoderResample().Match(name);
            if (m.Success) first = Math.Min(first, int.Parse(m.Groups["k"].Value));
        }
        return first == int.MaxValue ? 0 : first;
    }

    /// <summary>diffusers' name of an original one, or null when it is no VAE parameter.</summary>
    /// <param name="resBlocks">num_res_blocks (<see cref="ResBlocks"/>): how the decoder's flat list splits into levels.</param>
    public static string? ToDiffusers(string name, int resBlocks)
    {
        Match m;
        switch (name)
        {
            case "conv1.weight": return "quant_conv.weight";
            case "conv1.bias": return "quant_conv.bias";
            case "conv2.weight": return "post_quant_conv.weight";
            case "conv2.bias": return "post_quant_conv.bias";
        }
        if ((m = Top().Match(name)).Success)
        {
            string part = m.Groups["part"].Value, leaf = m.Groups["leaf"].Value;
            string mapped = m.Groups["what"].Value switch
            {
                "conv1" => "conv_in." + leaf,
                "head.0" => "norm_out." + leaf,
                _ => "conv_out." + leaf,   // head.2
            };
            return $"{part}.{mapped}";
        }
        if ((m = Middle().Match(name)).Success)
        {
            string part = m.Groups["part"].Value, rest = m.Groups["rest"].Value;
            return m.Groups["i"].Value switch
            {
                "1" => $"{part}.mid_block.attentions.0.{rest}",
                var i => Residual($"{part}.mid_block.resnets.{(i == "0" ? 0 : 1)}", rest),
            };
        }
        if ((m = NestedDownsample().Match(name)).Success)
        {
            string block = $"encoder.down_blocks.{m.Groups["level"].Value}";
            string rest = m.Groups["rest"].Value;
            return int.Parse(m.Groups["k"].Value) < resBlocks ? Residual($"{block}.resnets.{m.Groups["k"].Value}", rest)
                : IsResample(rest) ? $"{block}.downsampler.{rest}" : null;
        }
        if ((m = NestedUpsample().Match(name)).Success)
        {
            string block = $"decoder.up_blocks.{m.Groups["level"].Value}";
            string rest = m.Groups["rest"].Value;
            return int.Parse(m.Groups["k"].Value) <= resBlocks ? Residual($"{block}.resnets.{m.Groups["k"].Value}", rest)
                : IsResample(rest) ? $"{block}.upsampler.{rest}" : null;
        }
        if ((m = Downsample().Match(name)).Success)
        {
            string block = $"encoder.down_blocks.{m.Groups["k"].Value}";
            string rest = m.Groups["rest"].Value;
            return IsResample(rest) ? $"{block}.{rest}" : Residual(block, rest);
        }
        if ((m = Upsample().Match(name)).Success && resBlocks > 0)
        {
            int k = int.Parse(m.Groups["k"].Value), perLevel = resBlocks + 2;
            int level = k / perLevel, slot = k % perLevel;
            string rest = m.Groups["rest"].Value;
            return slot == resBlocks + 1 || IsResample(rest)
                ? $"decoder.up_blocks.{level}.upsamplers.0.{rest}"
                : Residual($"decoder.up_blocks.{level}.resnets.{slot}", rest);
        }
        return null;
    }

    private static bool IsResample(string rest) =>
        rest.StartsWith($"resample.{ResampleSlot}.", StringComparison.Ordinal) || rest.StartsWith("time_conv.", StringComparison.Ordinal);

    private static string? Residual(string block, string rest)
    {
        var m = ResidualLeaf().Match(rest);
        if (!m.Success) return null;
        string layer = m.Groups["layer"].Value switch
        {
            "residual.0" => "norm1",
            "residual.2" => "conv1",
            "residual.3" => "norm2",
            "residual.6" => "conv2",
            _ => "conv_shortcut",
        };
        return $"{block}.{layer}.{m.Groups["p"].Value}";
    }

    // Indices are at most 9 digits so that int.Parse cannot overflow.
    [GeneratedRegex(@"^(?<part>encoder|decoder)\.(?<what>conv1|head\.0|head\.2)\.(?<leaf>weight|bias|gamma)$")]
    private static partial Regex Top();

    [GeneratedRegex(@"^(?<part>encoder|decoder)\.middle\.(?<i>[012])\.(?<rest>.+)$")]
    private static partial Regex Middle();

    [GeneratedRegex(@"^encoder\.downsamples\.(?<k>\d{1,9})\.(?<rest>.+)$")]
    private static partial Regex Downsample();

    [GeneratedRegex(@"^encoder\.downsamples\.(?<k>\d{1,9})\.resample\.")]
    private static partial Regex EncoderResample();

    [GeneratedRegex(@"^decoder\.upsamples\.(?<k>\d{1,9})\.(?<rest>.+)$")]
    private static partial Regex Upsample();

    // Wan 2.2 nests each level's blocks: downsamples.{level}.downsamples.{k}, upsamples.{level}.upsamples.{k}.
    [GeneratedRegex(@"^encoder\.downsamples\.(?<level>\d{1,9})\.downsamples\.(?<k>\d{1,9})\.(?<rest>.+)$")]
    private static partial Regex NestedDownsample();

    [GeneratedRegex(@"^encoder\.downsamples\.\d{1,9}\.downsamples\.(?<k>\d{1,9})\.resample\.")]
    private static partial Regex NestedEncoderResample();

    [GeneratedRegex(@"^decoder\.upsamples\.(?<level>\d{1,9})\.upsamples\.(?<k>\d{1,9})\.(?<rest>.+)$")]
    private static partial Regex NestedUpsample();

    [GeneratedRegex(@"^(?<layer>residual\.[0236]|shortcut)\.(?<p>weight|bias|gamma)$")]
    private static partial Regex ResidualLeaf();
}
