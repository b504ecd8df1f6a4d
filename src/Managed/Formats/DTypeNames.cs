namespace NativeVae.Formats;

/// <summary>The dtype names the CLI and the converted format's metadata use: fp32, fp16, bf16.</summary>
internal static class DTypeNames
{
    public static string Name(DType dtype) => dtype.ShortName();

    /// <exception cref="ArgumentException">not one of fp32, fp16, bf16 (float32, float16, bfloat16 also accepted).</exception>
    public static DType Parse(string name) => name.ToLowerInvariant() switch
    {
        "fp32" or "float32" or "f32" => DType.F32,
        "fp16" or "float16" or "f16" => DType.F16,
        "bf16" or "bfloat16" => DType.BF16,
        _ => throw new ArgumentException($"unknown dtype '{name}' (fp32, fp16 or bf16)"),
    };
}
