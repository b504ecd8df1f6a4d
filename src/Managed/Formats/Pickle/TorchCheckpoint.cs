using System.IO.Compression;

namespace NativeVae.Formats.Pickle;

/// <summary>
/// A PyTorch zip checkpoint (<c>torch.save</c> since 1.6: <c>.pth</c>, <c>.pt</c>, <c>.ckpt</c>, <c>.bin</c>):
/// <c>&lt;archive&gt;/data.pkl</c> is the pickled state dict, read by <see cref="RestrictedUnpickler"/>;
/// <c>&lt;archive&gt;/data/&lt;key&gt;</c> holds each storage's raw little-endian bytes. A state dict may be
/// the top-level dict or sit under its <c>state_dict</c> key (Lightning <c>.ckpt</c>); non-tensor entries are
/// skipped. Storages are streamed from the zip one tensor at a time; the file is never read whole.
/// </summary>
internal sealed class TorchCheckpoint : ITensorArchive
{
    private const string PickleName = "data.pkl";
    private const string StateDictKey = "state_dict";

    private readonly FileStream _file;
    private readonly ZipArchive _zip;
    private readonly string _archiveRoot;
    private readonly Dictionary<string, TorchTensorRef> _tensors;

    private TorchCheckpoint(string path, FileStream file, ZipArchive zip, string archiveRoot, Dictionary<string, TorchTensorRef> tensors)
    {
        Path = path;
        _file = file;
        _zip = zip;
        _archiveRoot = archiveRoot;
        _tensors = tensors;
        Entries = tensors.ToDictionary(t => t.Key, t => new StoredTensor(t.Key, t.Value.Storage.DType, t.Value.Shape), StringComparer.Ordinal);
    }

    public string Path { get; }

    public IReadOnlyDictionary<string, StoredTensor> Entries { get; }

    public IReadOnlyDictionary<string, string> Metadata { get; } = new Dictionary<string, string>();

    /// <summary>Opens and validates the checkpoint: pickle, storages present with the right lengths.</summary>
    /// <exception cref="InvalidDataException">not a zip, a refused pickle, a missing or short storage.</exception>
    public static TorchCheckpoint Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such file", path);
        var file = File.OpenRead(path);
        ZipArchive? zip = null;
        try
        {
            try
            {
                zip = new ZipArchive(file, ZipArchiveMode.Read, leaveOpen: true);
            }
            catch (InvalidDataException)
            {
                throw new InvalidDataException($"{path}: not a PyTorch zip checkpoint (no readable zip directory); legacy non-zip torch.save files are not supported");
            }
            var pickles = zip.Entries.Where(e => e.FullName.EndsWith("/" + PickleName, StringComparison.Ordinal)
                                                 && e.FullName.Count(c => c == '/') == 1).ToList();
            if (pickles.Count != 1)
                throw new InvalidDataException($"{path}: expected one '<archive>/{PickleName}' in the zip, found {pickles.Count}");
            var pickleEntry = pickles[0];
            string root = pickleEntry.FullName[..^PickleName.Length];
            string origin = $"{path}:{pickleEntry.FullName}";
            if (pickleEntry.Length > RestrictedUnpickler.MaxPickleBytes)
                throw new InvalidDataException($"{origin}: pickle is {pickleEntry.Length} bytes, more than the cap");
            byte[] pickle = ReadEntry(path, pickleEntry, 0, pickleEntry.Length);
            var result = RestrictedUnpickler.Load(origin, pickle);
            var tensors = CollectTensors(path, result);
            foreach (var (name, tensor) in tensors) CheckStorage(path, zip, root, name, tensor);
            return new TorchCheckpoint(path, file, zip, root, tensors);
        }
        catch (InvalidDataException e) when (!e.Message.StartsWith(path, StringComparison.Ordinal))
        {
            // System.IO.Compression reads the central directory lazily and says what is wrong in its own words.
            zip?.Dispose();
            file.Dispose();
            throw new InvalidDataException($"{path}: {DamagedZip}", e);
        }
        catch
        {
            zip?.Dispose();
            file.Dispose();
            throw;
        }
    }

    private const string DamagedZip = "the zip's directory is damaged or truncated (entry counts, offsets or headers do not agree)";

    private static Dictionary<string, TorchTensorRef> CollectTensors(string path, object? root)
    {
        if (root is not PickleDict dict)
            throw new InvalidDataException($"{path}: the checkpoint is not a state dict (its pickle holds {root?.GetType().Name ?? "null"})");
        if (dict.Get(StateDictKey) is PickleDict nested) dict = nested;
        var tensors = new Dictionary<string, TorchTensorRef>(StringComparer.Ordinal);
        foreach (var (key, value) in dict.Items)
        {
            if (value is not TorchTensorRef tensor) continue;
            if (key is not string name)
                throw new InvalidDataException($"{path}: state dict key {key} is not a string");
            tensors[name] = tensor;
        }
        if (tensors.Count == 0) throw new InvalidDataException($"{path}: the state dict holds no tensors");
        return tensors;
    }

    private static void CheckStorage(string path, ZipArchive zip, string root, string name, TorchTensorRef tensor)
    {
        var storage = tensor.Storage;
        string entryName = root + "data/" + storage.Key;
        var entry = zip.GetEntry(entryName)
            ?? throw new InvalidDataException($"{path}: tensor '{name}': storage '{entryName}' is missing from the zip");
        long expected;
        try
        {
            expected = checked(storage.ElementCount * storage.DType.ByteSize());
        }
        catch (OverflowException)
        {
            throw new InvalidDataException($"{path}: tensor '{name}': storage '{storage.Key}' size overflows");
        }
        if (entry.Length != expected)
            throw new InvalidDataException(
                $"{path}: tensor '{name}': storage '{entryName}' is {entry.Length} bytes, but {storage.ElementCount} x {storage.DType} needs {expected}");
    }

    public float[] ReadFloat32(string name)
    {
        if (!_tensors.TryGetValue(name, out var tensor))
            throw new KeyNotFoundException($"{Path}: no tensor named '{name}'");
        int elementSize = tensor.Storage.DType.ByteSize();
        long count = tensor.Shape.ElementCount;
        if (count > Array.MaxLength / elementSize)
            throw new NotSupportedException($"{Path}: tensor '{name}' {tensor.Shape} is too large to read at once");
        var entry = _zip.GetEntry(_archiveRoot + "data/" + tensor.Storage.Key)!;
        byte[] bytes = ReadEntry(Path, entry, tensor.StorageOffset * elementSize, count * elementSize, name);
        var values = new float[count];
        DTypeConversion.ToFloat32(tensor.Storage.DType, bytes, values);
        return values;
    }

    private static byte[] ReadEntry(string path, ZipArchiveEntry entry, long offset, long length, string? tensor = null)
    {
        string what = tensor is null ? entry.FullName : $"tensor '{tensor}' (storage {entry.FullName})";
        var bytes = new byte[length];
        try
        {
            using var stream = entry.Open();
            SkipBytes(stream, offset);
            stream.ReadExactly(bytes);
        }
        catch (Exception e) when (e is EndOfStreamException or InvalidDataException or IOException)
        {
            throw new InvalidDataException($"{path}: {what}: cannot read {length} bytes at offset {offset} ({(e is EndOfStreamException ? "the entry ends first" : "its compressed data is damaged")}; truncated file?)");
        }
        return bytes;
    }

    private static void SkipBytes(Stream stream, long count)
    {
        if (count == 0) return;
        if (stream.CanSeek)
        {
            stream.Seek(count, SeekOrigin.Current);
            return;
        }
        const int ChunkBytes = 1 << 16;
        var scratch = new byte[(int)Math.Min(count, ChunkBytes)];
        while (count > 0)
        {
            int read = stream.Read(scratch, 0, (int)Math.Min(count, scratch.Length));
            if (read == 0) throw new EndOfStreamException("storage ends before the tensor's offset");
            count -= read;
        }
    }

    public void Dispose()
    {
        _zip.Dispose();
        _file.Dispose();
    }
}
