namespace NativeVae;

/// <summary>Element type of a tensor's storage. Arithmetic is always fp32; F16/BF16 are storage formats.</summary>
public enum DType
{
    /// <summary>32-bit IEEE float.</summary>
    F32,

    /// <summary>16-bit IEEE half.</summary>
    F16,

    /// <summary>bfloat16: fp32's exponent range with an 8-bit mantissa.</summary>
    BF16,
}

/// <summary>Sizes and file names of <see cref="DType"/> values.</summary>
public static class DTypeExtensions
{
    /// <summary>Bytes per element.</summary>
    public static int ByteSize(this DType dtype) => dtype switch
    {
        DType.F32 => 4,
        DType.F16 => 2,
        DType.BF16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
    };

    /// <summary>The dtype's name on the command line and in messages ("fp32", "fp16", "bf16").</summary>
    public static string ShortName(this DType dtype) => dtype switch
    {
        DType.F32 => "fp32",
        DType.F16 => "fp16",
        DType.BF16 => "bf16",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
    };

    /// <summary>The dtype's name in the safetensors header ("F32", "F16", "BF16").</summary>
    public static string SafeTensorsName(this DType dtype) => dtype switch
    {
        DType.F32 => "F32",
        DType.F16 => "F16",
        DType.BF16 => "BF16",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
    };
}
