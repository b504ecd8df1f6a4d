using System.Text;
using System.Text.Json;

namespace NativeVae.Formats.SafeTensors;

/// <summary>A tensor to write: name, storage dtype, shape, and its bytes in that dtype.</summary>
internal sealed record SafeTensorToWrite(string Name, DType DType, TensorShape Shape, ReadOnlyMemory<byte> Data)
{
    public static SafeTensorToWrite FromFloat32(string name, TensorShape shape, ReadOnlySpan<float> values, DType dtype = DType.F32)
    {
        if (values.Length != shape.ElementCount)
            throw new ArgumentException($"tensor '{name}': {values.Length} values for shape {shape}");
        return new SafeTensorToWrite(name, dtype, shape, DTypeConversion.FromFloat32(dtype, values));
    }
}

/// <summary>A tensor to write whose bytes are produced only when the writer reaches it (streamed conversion).</summary>
internal sealed record SafeTensorSpec(string Name, DType DType, TensorShape Shape, Func<ReadOnlyMemory<byte>> Produce)
{
    public long ByteLength => checked(Shape.ElementCount * DType.ByteSize());
}

/// <summary>
/// Writes a standard safetensors file. The file is written to a temporary name beside the target and renamed
/// when complete, so a failure never leaves a half-written file. Tensors may be produced one at a time
/// (<see cref="SafeTensorSpec"/>), so a conversion never holds more than one converted tensor in memory.
/// </summary>
internal static class SafeTensorsWriter
{
    /// <summary>safetensors pads the header with spaces to a multiple of 8 so the data section is aligned.</summary>
    private const int HeaderAlignment = 8;

    public static void Write(string path, IEnumerable<SafeTensorToWrite> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        Write(path, tensors.Select(t => new SafeTensorSpec(t.Name, t.DType, t.Shape, () => t.Data)), metadata);

    public static void Write(string path, IEnumerable<SafeTensorSpec> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in list)
        {
            if (!names.Add(t.Name)) throw new ArgumentException($"tensor '{t.Name}' is given twice");
            _ = t.ByteLength; // checked: a shape whose byte size overflows fails here, before any file exists
        }

        byte[] header = BuildHeader(list, metadata);
        string fullPath = System.IO.Path.GetFullPath(path);
        string directory = System.IO.Path.GetDirectoryName(fullPath)!;
        string temp = System.IO.Path.Combine(directory, $".{System.IO.Path.GetFileName(fullPath)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write))
            {
                Span<byte> length = stackalloc byte[sizeof(ulong)];
                System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
                stream.Write(length);
                stream.Write(header);
                foreach (var t in list)
                {
                    var data = t.Produce();
                    if (data.Length != t.ByteLength)
                        throw new ArgumentException($"tensor '{t.Name}': {data.Length} bytes for {t.DType}{t.Shape} (expected {t.ByteLength})");
                    stream.Write(data.Span);
                }
            }
            File.Move(temp, fullPath, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    private static byte[] BuildHeader(List<SafeTensorSpec> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject("__metadata__");
                foreach (var (key, value) in metadata) json.WriteString(key, value);
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (var t in tensors)
            {
                json.WriteStartObject(t.Name);
                json.WriteString("dtype", t.DType.SafeTensorsName());
                json.WriteStartArray("shape");
                foreach (int d in t.Shape.Dims) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + t.ByteLength);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += t.ByteLength;
            }
            json.WriteEndObject();
        }
        int padded = (int)((buffer.Length + HeaderAlignment - 1) / HeaderAlignment * HeaderAlignment);
        var header = new byte[padded];
        buffer.ToArray().CopyTo(header, 0);
        header.AsSpan((int)buffer.Length).Fill((byte)' ');
        return header;
    }
}
