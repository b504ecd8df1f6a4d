namespace NativeVae.Loading.Layouts;

/// <summary>
/// Full SD/SDXL checkpoints hold the VAE under <c>first_stage_model.</c> (some under <c>vae.</c>) beside the
/// UNet and text encoders; standalone VAE files have no prefix.
/// </summary>
internal static class VaePrefix
{
    public static readonly string[] Known = ["first_stage_model.", "vae."];

    /// <summary>The prefix the VAE's tensors carry in these names ("" when none).</summary>
    public static string Detect(IEnumerable<string> names)
    {
        var list = names as ICollection<string> ?? names.ToList();
        foreach (string prefix in Known)
        {
            if (list.Any(n => n.StartsWith(prefix + "encoder.", StringComparison.Ordinal)
                              || n.StartsWith(prefix + "decoder.", StringComparison.Ordinal)))
                return prefix;
        }
        return "";
    }
}
