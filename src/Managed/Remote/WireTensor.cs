using System.Globalization;
using NativeVae.Formats;

namespace NativeVae;

/// <summary>The element types a hybrid-inference tensor body may hold, and nothing else.</summary>
public enum WireDType
{
    /// <summary>IEEE half, "float16".</summary>
    Float16,

    /// <summary>IEEE single, "float32".</summary>
    Float32,

    /// <summary>bfloat16, "bfloat16".</summary>
    BFloat16,

    /// <summary>Bytes, "uint8" (post-processed pixels).</summary>
    UInt8,
}

/// <summary>
/// Tensors as the hybrid-inference protocol carries them: raw row-major little-endian element bytes with no header,
/// the shape as a repeated <c>shape</c> query key or a JSON list header (<c>[1, 3, 512, 512]</c>), and the dtype by its
/// PyTorch name. Shared by <see cref="RemoteVae"/> and the NativeVae server, so both read and write the same bytes.
/// </summary>
public static class WireTensor
{
    /// <summary>Content-Type and Accept of a raw tensor body.</summary>
    public const string BinaryContentType = "tensor/binary";

    /// <summary>Content-Type of the legacy base64 JSON mode: <c>{"inputs": "&lt;base64&gt;"}</c>.</summary>
    public const string Base64ContentType = "tensor/base64";

    /// <summary>Most dimensions a wire tensor may have (video latents [B, C, F, h, w] have five).</summary>
    public const int MaxRank = 5;

    private static readonly WireDType[] All = Enum.GetValues<WireDType>();

    /// <summary>The dtype's wire name: float16, float32, bfloat16 or uint8.</summary>
    public static string Name(this WireDType dtype) => dtype switch
    {
        WireDType.Float16 => "float16",
        WireDType.Float32 => "float32",
        WireDType.BFloat16 => "bfloat16",
        WireDType.UInt8 => "uint8",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown wire dtype"),
    };

    /// <summary>Bytes per element.</summary>
    public static int ByteSize(this WireDType dtype) => dtype switch
    {
        WireDType.Float32 => sizeof(float),
        WireDType.Float16 or WireDType.BFloat16 => sizeof(ushort),
        WireDType.UInt8 => sizeof(byte),
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown wire dtype"),
    };

    /// <summary>Parses a wire dtype name (exactly as PyTorch spells it).</summary>
    /// <exception cref="ArgumentException">any other name; the message lists the four.</exception>
    public static WireDType ParseDType(string name)
    {
        foreach (var dtype in All)
        {
            if (name == dtype.Name()) return dtype;
        }
        throw new ArgumentException($"Supported `dtype`: [{string.Join(", ", All.Select(d => $"'{d.Name()}'"))}]. Got `{name}`.");
    }

    /// <summary>Builds a shape from the repeated <c>shape</c> query values, each a positive decimal int.</summary>
    /// <exception cref="ArgumentException">no values, more than <see cref="MaxRank"/>, or one that is not a positive int.</exception>
    public static TensorShape ParseShape(IReadOnlyList<string> values)
    {
        if (values.Count == 0) throw new ArgumentException("Expected `shape` in query params.");
        if (values.Count > MaxRank)
            throw new ArgumentException($"`shape` has {values.Count} dimensions; at most {MaxRank} are accepted");
        var dims = new int[values.Count];
        for (int i = 0; i < dims.Length; i++)
        {
            if (!int.TryParse(values[i], NumberStyles.None, CultureInfo.InvariantCulture, out dims[i]) || dims[i] <= 0)
                throw new ArgumentException($"`shape` dimension {i} is '{values[i]}'; each must be a positive integer");
        }
        return new TensorShape(dims);
    }

    /// <summary>The shape as the reply's <c>shape</c> header writes it: a JSON list, <c>[1, 3, 512, 512]</c>.</summary>
    public static string FormatShape(TensorShape shape) => shape.ToString();

    /// <summary>Parses a <c>shape</c> reply header (a JSON list of positive ints).</summary>
    /// <exception cref="FormatException">not such a list.</exception>
    public static TensorShape ParseShapeHeader(string header)
    {
        string trimmed = header.Trim();
        if (trimmed.Length < 2 || trimmed[0] != '[' || trimmed[^1] != ']')
            throw new FormatException($"shape header '{header}' is not a JSON list");
        var parts = trimmed[1..^1].Split(',', StringSplitOptions.TrimEntries);
        try
        {
            return ParseShape(parts);
        }
        catch (ArgumentException e)
        {
            throw new FormatException($"shape header '{header}': {e.Message}");
        }
    }

    /// <summary>Bytes of a tensor of <paramref name="shape"/> in <paramref name="dtype"/>; long, so a hostile shape cannot overflow it.</summary>
    public static long ByteCount(TensorShape shape, WireDType dtype)
    {
        long bytes = dtype.ByteSize();
        foreach (int dim in shape.Dims)
        {
            bytes = bytes > long.MaxValue / Math.Max(dim, 1) ? long.MaxValue : bytes * dim;
        }
        return bytes;
    }

    /// <summary>Reads a body as floats; uint8 elements become their values, 0 to 255.</summary>
    /// <exception cref="ArgumentException">the body's length is not shape x dtype.</exception>
    public static HostTensor<float> ToFloat(ReadOnlySpan<byte> body, TensorShape shape, WireDType dtype)
    {
        long expected = ByteCount(shape, dtype);
        if (body.Length != expected)
            throw new ArgumentException($"the body has {body.Length} bytes; `shape` {shape} of `dtype` {dtype.Name()} needs {expected}");
        var values = new float[shape.ElementCount];
        if (dtype == WireDType.UInt8)
        {
            for (int i = 0; i < values.Length; i++) values[i] = body[i];
        }
        else
        {
            DTypeConversion.ToFloat32(StorageDType(dtype), body, values);
        }
        return new HostTensor<float>(shape, values);
    }

    /// <summary>Writes floats as body bytes of <paramref name="dtype"/> (uint8: rounded and clamped to 0-255).</summary>
    public static byte[] FromFloat(HostTensor<float> tensor, WireDType dtype)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (dtype != WireDType.UInt8) return DTypeConversion.FromFloat32(StorageDType(dtype), tensor.Data);
        var bytes = new byte[tensor.Data.Length];
        for (int i = 0; i < bytes.Length; i++) bytes[i] = (byte)Math.Clamp(MathF.Round(tensor.Data[i]), byte.MinValue, byte.MaxValue);
        return bytes;
    }

    /// <summary>Reads a uint8 body as bytes.</summary>
    /// <exception cref="ArgumentException">the body's length is not the shape's element count.</exception>
    public static HostTensor<byte> ToBytes(ReadOnlySpan<byte> body, TensorShape shape)
    {
        if (body.Length != shape.ElementCount)
            throw new ArgumentException($"the body has {body.Length} bytes; `shape` {shape} of `dtype` uint8 needs {shape.ElementCount}");
        return new HostTensor<byte>(shape, body.ToArray());
    }

    private static DType StorageDType(WireDType dtype) => dtype switch
    {
        WireDType.Float32 => DType.F32,
        WireDType.Float16 => DType.F16,
        WireDType.BFloat16 => DType.BF16,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "not a float dtype"),
    };

}
