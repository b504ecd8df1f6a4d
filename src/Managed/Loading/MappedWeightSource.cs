using NativeVae.Loading;
using NativeVae.Formats;
using NativeVae.Core;

namespace NativeVae.Loading;

/// <summary>
/// Canonical parameter names over the tensors of one or more open checkpoint files (a TAESD encoder and decoder
/// are two). Each canonical parameter names its file, its name there and its canonical shape (which may differ
/// from the stored one only by a reshape, e.g. LDM's [C, C, 1, 1] attention weights read as [C, C]).
/// Owns the files: disposing closes them.
/// </summary>
internal sealed class MappedWeightSource : IWeightSource, IDisposable
{
    private readonly IReadOnlyList<ITensorArchive> _archives;
    private readonly Dictionary<string, (ITensorArchive Archive, string StoredName, TensorShape Shape)> _map;

    public MappedWeightSource(string origin, IReadOnlyList<ITensorArchive> archives,
        Dictionary<string, (ITensorArchive Archive, string StoredName, TensorShape Shape)> map)
    {
        Origin = origin;
        _archives = archives;
        _map = map;
    }

    public string Origin { get; }

    public IReadOnlyCollection<string> Names => _map.Keys;

    public bool TryGetShape(string name, out TensorShape shape)
    {
        bool found = _map.TryGetValue(name, out var entry);
        shape = entry.Shape;
        return found;
    }

    /// <summary>The dtype the parameter is stored in.</summary>
    public DType StoredDType(string name) => Entry(name).Archive.Entries[Entry(name).StoredName].DType;

    /// <summary>Where a parameter is read from, for error messages: "file: 'stored name'".</summary>
    public string Describe(string name) => $"{Entry(name).Archive.Path}: tensor '{Entry(name).StoredName}'";

    /// <exception cref="InvalidDataException">the stored values hold a NaN or an infinity.</exception>
    public float[] ReadFloat32(string name)
    {
        var (archive, stored, _) = Entry(name);
        var values = archive.ReadFloat32(stored);
        NonFiniteValues.Refuse(Describe(name), values);
        return values;
    }

    private (ITensorArchive Archive, string StoredName, TensorShape Shape) Entry(string name) =>
        _map.TryGetValue(name, out var entry) ? entry : throw new KeyNotFoundException($"{Origin}: no parameter named '{name}'");

    public void Dispose()
    {
        foreach (var archive in _archives) archive.Dispose();
    }
}
