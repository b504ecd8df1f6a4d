using NativeVae.Core;
using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace NativeVae.Formats.SafeTensors;

/// <summary>
/// A memory-mapped safetensors file (https://github.com/huggingface/safetensors format): an 8-byte little-endian
/// header length, a UTF-8 JSON header, then the tensor bytes. The whole header is validated before any tensor is
/// read: known dtypes, shape x dtype size equal to the byte span, spans in bounds and tiling the data section
/// exactly. Every error names the file, the tensor and the rule. Tensors are read on demand, never the whole file.
/// </summary>
internal sealed class SafeTensorsFile : ITensorArchive
{
    /// <summary>safetensors' own cap on the header (100 MB): more is not a real header.</summary>
    public const long MaxHeaderBytes = 100_000_000;

    /// <summary>Most tensors in one file: a full SDXL checkpoint has about 2,500; a million is far past any real one.</summary>
    public const int MaxTensors = 1_000_000;

    /// <summary>Highest tensor rank read: weights are at most 4-d (5-d for video VAEs).</summary>
    public const int MaxRank = 8;

    private const int HeaderLengthBytes = 8;
    private const string MetadataKey = "__metadata__";

    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly long _dataStart;
    private readonly unsafe byte* _basePointer;
    private bool _disposed;

    private SafeTensorsFile(string path, MemoryMappedFile? map, MemoryMappedViewAccessor? view, long dataStart,
        Dictionary<string, SafeTensorInfo> tensors, Dictionary<string, string> metadata)
    {
        Path = path;
        _map = map;
        _view = view;
        _dataStart = dataStart;
        Tensors = tensors;
        Metadata = metadata;
        if (view is not null)
        {
            unsafe
            {
                byte* pointer = null;
                view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
                _basePointer = pointer;
            }
        }
        Entries = tensors.ToDictionary(t => t.Key, t => new StoredTensor(t.Key, t.Value.DType, t.Value.Shape), StringComparer.Ordinal);
    }

    public string Path { get; }

    /// <summary>Tensors by name.</summary>
    public IReadOnlyDictionary<string, SafeTensorInfo> Tensors { get; }

    public IReadOnlyDictionary<string, StoredTensor> Entries { get; }

    /// <summary>The header's <c>__metadata__</c> string map (empty when absent).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    public static SafeTensorsFile Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such file", path);
        byte[] header;
        ulong headerLength;
        long fileLength;
        using (var stream = File.OpenRead(path))
        {
            // The open file's length, not FileInfo's: a hub-cache snapshot file is a symlink into blobs/, and
            // FileInfo.Length is the link's own length.
            fileLength = stream.Length;
            if (fileLength < HeaderLengthBytes)
                throw Bad(path, $"file is {fileLength} bytes, shorter than the 8-byte header length");
            Span<byte> lengthBytes = stackalloc byte[HeaderLengthBytes];
            stream.ReadExactly(lengthBytes);
            headerLength = System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
            if (headerLength > MaxHeaderBytes)
                throw Bad(path, $"header length {headerLength} exceeds the {MaxHeaderBytes}-byte cap (not a safetensors file?)");
            if (headerLength == 0)
                throw Bad(path, "header length is 0; a header is at least '{}'");
            if ((long)headerLength > fileLength - HeaderLengthBytes)
                throw Bad(path, $"header length {headerLength} runs past the end of the {fileLength}-byte file");
            header = new byte[headerLength];
            stream.ReadExactly(header);
        }

        long dataStart = HeaderLengthBytes + (long)headerLength;
        long dataLength = fileLength - dataStart;
        var (tensors, metadata) = ParseHeader(path, header, dataLength);

        if (dataLength == 0) return new SafeTensorsFile(path, null, null, dataStart, tensors, metadata);
        var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        var view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        return new SafeTensorsFile(path, map, view, dataStart, tensors, metadata);
    }

    private static (Dictionary<string, SafeTensorInfo>, Dictionary<string, string>) ParseHeader(
        string path, byte[] header, long dataLength)
    {
        string text;
        try
        {
            text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(header);
        }
        catch (DecoderFallbackException e)
        {
            throw Bad(path, $"header is not valid UTF-8 (byte {e.Index} of the header)");
        }
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(text);
        }
        catch (JsonException e)
        {
            throw Bad(path, $"header is not valid JSON ({JsonErrorPosition.Of(e)})");
        }

        using (doc)
        {
            try
            {
                return ParseEntries(path, doc, dataLength);
            }
            catch (InvalidOperationException)
            {
                // System.Text.Json parses escapes lazily: an unpaired surrogate fails only when the string is read.
                throw Bad(path, "header holds a string that is not valid Unicode (an escaped unpaired surrogate such as \\ud800)");
            }
        }
    }

    private static (Dictionary<string, SafeTensorInfo>, Dictionary<string, string>) ParseEntries(string path, JsonDocument doc, long dataLength)
    {
        if (doc.RootElement.ValueKind != JsonValueKind.Object)
            throw Bad(path, "header is not a JSON object");
        var tensors = new Dictionary<string, SafeTensorInfo>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var property in doc.RootElement.EnumerateObject())
        {
            if (property.Name == MetadataKey)
            {
                if (property.Value.ValueKind != JsonValueKind.Object)
                    throw Bad(path, "__metadata__ is not an object of strings");
                foreach (var m in property.Value.EnumerateObject())
                {
                    if (m.Value.ValueKind != JsonValueKind.String)
                        throw Bad(path, $"__metadata__ entry '{m.Name}' is not a string");
                    metadata[m.Name] = m.Value.GetString()!;
                }
                continue;
            }
            if (tensors.ContainsKey(property.Name))
                throw Bad(path, $"tensor '{property.Name}' appears twice");
            if (tensors.Count >= MaxTensors)
                throw Bad(path, $"header lists more than {MaxTensors} tensors");
            tensors[property.Name] = ParseTensor(path, property.Name, property.Value);
        }
        CheckSpansTileData(path, tensors.Values, dataLength);
        return (tensors, metadata);
    }

    private static SafeTensorInfo ParseTensor(string path, string name, JsonElement entry)
    {
        if (entry.ValueKind != JsonValueKind.Object)
            throw Bad(path, $"tensor '{name}': entry is not an object");
        if (!entry.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw Bad(path, $"tensor '{name}': missing dtype");
        string dtypeName = dtypeElement.GetString()!;
        DType dtype = dtypeName switch
        {
            "F32" => DType.F32,
            "F16" => DType.F16,
            "BF16" => DType.BF16,
            _ => throw Bad(path, $"tensor '{name}': unsupported dtype '{dtypeName}' (F32, F16 and BF16 are read)"),
        };
        if (!entry.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
            throw Bad(path, $"tensor '{name}': missing shape");
        if (shapeElement.GetArrayLength() > MaxRank)
            throw Bad(path, $"tensor '{name}': shape has {shapeElement.GetArrayLength()} dimensions, more than {MaxRank}");
        var dims = new List<int>(shapeElement.GetArrayLength());
        foreach (var d in shapeElement.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt32(out int dim) || dim < 0)
                throw Bad(path, $"tensor '{name}': shape entry {d} is not a non-negative 32-bit integer");
            dims.Add(dim);
        }
        if (!entry.TryGetProperty("data_offsets", out var offsets) || offsets.ValueKind != JsonValueKind.Array
            || offsets.GetArrayLength() != 2
            // TryGetInt64 throws on a non-number, so the kinds are checked first
            || offsets[0].ValueKind != JsonValueKind.Number || offsets[1].ValueKind != JsonValueKind.Number
            || !offsets[0].TryGetInt64(out long begin) || !offsets[1].TryGetInt64(out long end)
            || begin < 0 || end < begin)
            throw Bad(path, $"tensor '{name}': data_offsets must be [begin, end] with 0 <= begin <= end");
        var shape = new TensorShape(dims.ToArray());
        long expected;
        try
        {
            expected = checked(shape.ElementCount * dtype.ByteSize());
        }
        catch (OverflowException)
        {
            throw Bad(path, $"tensor '{name}': shape {shape} overflows");
        }
        if (expected != end - begin)
            throw Bad(path, $"tensor '{name}': shape {shape} x {dtypeName} is {expected} bytes but its span is {end - begin}");
        return new SafeTensorInfo(name, dtype, shape, begin, end);
    }

    private static void CheckSpansTileData(string path, IEnumerable<SafeTensorInfo> tensors, long dataLength)
    {
        long cursor = 0;
        foreach (var t in tensors.OrderBy(t => t.Begin).ThenBy(t => t.End))
        {
            if (t.Begin < cursor)
                throw Bad(path, $"tensor '{t.Name}': span [{t.Begin}, {t.End}) overlaps the previous tensor");
            if (t.Begin > cursor)
                throw Bad(path, $"tensor '{t.Name}': gap of {t.Begin - cursor} bytes before it in the data section");
            cursor = t.End;
        }
        if (cursor != dataLength)
            throw Bad(path, cursor > dataLength
                ? $"tensor data runs to byte {cursor} but the data section has {dataLength} bytes (truncated file?)"
                : $"{dataLength - cursor} trailing bytes after the last tensor");
    }

    public SafeTensorInfo Get(string name) =>
        Tensors.TryGetValue(name, out var info)
            ? info
            : throw new KeyNotFoundException($"{Path}: no tensor named '{name}'");

    /// <summary>Reads a tensor's raw bytes into <paramref name="destination"/> (exactly its byte length).</summary>
    public void ReadBytes(string name, Span<byte> destination)
    {
        var info = Get(name);
        if (destination.Length != info.ByteLength)
            throw new ArgumentException($"{Path}: tensor '{name}' is {info.ByteLength} bytes, buffer is {destination.Length}");
        MappedSpan(info).CopyTo(destination);
    }

    /// <summary>Reads a tensor as fp32, widening F16 and BF16 straight from the mapped file (no byte copy).</summary>
    public float[] ReadFloat32(string name)
    {
        var info = Get(name);
        var result = new float[info.Shape.ElementCount];
        DTypeConversion.ToFloat32(info.DType, MappedSpan(info), result);
        return result;
    }

    private unsafe ReadOnlySpan<byte> MappedSpan(SafeTensorInfo info)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (info.ByteLength == 0) return ReadOnlySpan<byte>.Empty;
        if (info.ByteLength > int.MaxValue)
            throw new NotSupportedException($"{Path}: tensor '{info.Name}' is {info.ByteLength} bytes, more than one read handles");
        // the pointer was acquired at open and stays valid until Dispose releases it
        return new ReadOnlySpan<byte>(_basePointer + _view!.PointerOffset + _dataStart + info.Begin, (int)info.ByteLength);
    }

    public unsafe void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_basePointer != null) _view!.SafeMemoryMappedViewHandle.ReleasePointer();
        _view?.Dispose();
        _map?.Dispose();
    }
    private static InvalidDataException Bad(string path, string rule) => new($"{path}: {rule}");
}
