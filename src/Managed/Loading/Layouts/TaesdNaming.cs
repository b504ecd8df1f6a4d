using System.Text.RegularExpressions;

namespace NativeVae.Loading.Layouts;

/// <summary>
/// taesd.py checkpoints (<c>taesd_encoder.pth</c>, <c>taef2_decoder.pth</c>, their .safetensors twins) are
/// bare <c>nn.Sequential</c> state dicts: <c>{i}.conv.0.weight</c>. Canonical names are diffusers'
/// <c>AutoencoderTiny</c> ones: <c>encoder.layers.{i}</c>, and <c>decoder.layers.{i - 1}</c> because
/// taesd.py's decoder Sequential starts with its parameter-free Clamp, which diffusers applies outside.
/// </summary>
internal static partial class TaesdNaming
{
    /// <summary>True when every name is a bare Sequential index (a taesd.py encoder or decoder file).</summary>
    public static bool IsBareSequential(IEnumerable<string> names) => names.All(n => BareName().IsMatch(n));

    /// <summary>True when the names are diffusers' AutoencoderTiny ones.</summary>
    public static bool IsDiffusersTiny(IEnumerable<string> names) =>
        names.Any(n => n.StartsWith("encoder.layers.", StringComparison.Ordinal) || n.StartsWith("decoder.layers.", StringComparison.Ordinal));

    public static string EncoderName(string bare) => "encoder.layers." + bare;

    /// <exception cref="InvalidDataException">index 0 (the Clamp) cannot carry parameters.</exception>
    public static string DecoderName(string bare, string origin)
    {
        var m = BareName().Match(bare);
        int index = int.Parse(m.Groups["index"].Value);
        if (index == 0) throw new InvalidDataException($"{origin}: tensor '{bare}' sits at the decoder's Clamp (layer 0), which has no parameters");
        return $"decoder.layers.{index - 1}{m.Groups["rest"].Value}";
    }

    // At most 9 digits so that int.Parse cannot overflow: a longer index is no taesd.py name.
    [GeneratedRegex(@"^(?<index>\d{1,9})(?<rest>\..+)$")]
    private static partial Regex BareName();
}
