using System.Text;
using System.Text.Json;
using NativeVae.Tensors;

namespace NativeVae.Weights.SafeTensors;

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

/// <summary>
/// Writes a standard safetensors file. The file is written to a temporary name beside the target and renamed
/// when complete, so a failure never leaves a half-written file.
/// </summary>
internal static class SafeTensorsWriter
{
    /// <summary>safetensors pads the header with spaces to a multiple of 8 so the data section is aligned.</summary>
    private const int HeaderAlignment = 8;

    public static void Write(string path, IEnumerable<SafeTensorToWrite> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in list)
        {
            if (!names.Add(t.Name)) throw new ArgumentException($"tensor '{t.Name}' is given twice");
            long expected = checked(t.Shape.ElementCount * t.DType.ByteSize());
            if (t.Data.Length != expected)
                throw new ArgumentException($"tensor '{t.Name}': {t.Data.Length} bytes for {t.DType}{t.Shape} (expected {expected})");
        }

        byte[] header = BuildHeader(list, metadata);
        string directory = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
        string temp = System.IO.Path.Combine(directory, $".{System.IO.Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write))
            {
                stream.Write(BitConverter.GetBytes((ulong)header.Length));
                stream.Write(header);
                foreach (var t in list) stream.Write(t.Data.Span);
            }
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    private static byte[] BuildHeader(List<SafeTensorToWrite> tensors, IReadOnlyDictionary<string, string>? metadata)
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
                json.WriteNumberValue(offset + t.Data.Length);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += t.Data.Length;
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
