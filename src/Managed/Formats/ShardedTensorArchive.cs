using NativeVae.Core;
using System.Text.Json;

namespace NativeVae.Formats;

/// <summary>
/// The shards of a sharded checkpoint presented as one archive: a diffusers / transformers index file
/// (<c>diffusion_pytorch_model.safetensors.index.json</c>) whose <c>weight_map</c> names, for every tensor, the
/// shard file beside the index that holds it. The whole index is checked before anything is read: every shard
/// name is a plain file name of a checkpoint kind, every shard exists, every listed tensor is in its shard, and
/// every tensor of a shard is listed for that shard (none twice, none unlisted). Errors name the index file and
/// the tensor. Owns the shards: disposing closes them.
/// </summary>
internal sealed class ShardedTensorArchive : ITensorArchive
{
    /// <summary>Suffix of an index file; what precedes it is the shards' common name.</summary>
    public const string IndexSuffix = ".index.json";

    /// <summary>An index lists names only (a few hundred bytes per tensor); anything near this is not one.</summary>
    public const long MaxIndexBytes = 64L * 1024 * 1024;

    private const string WeightMapKey = "weight_map";
    private static readonly string[] ShardExtensions = [".safetensors", ".bin"];

    private readonly IReadOnlyList<ITensorArchive> _shards;
    private readonly Dictionary<string, ITensorArchive> _owner;

    private ShardedTensorArchive(string path, IReadOnlyList<ITensorArchive> shards, Dictionary<string, ITensorArchive> owner)
    {
        Path = path;
        _shards = shards;
        _owner = owner;
        Entries = owner.ToDictionary(kv => kv.Key, kv => kv.Value.Entries[kv.Key], StringComparer.Ordinal);
    }

    /// <summary>The index file.</summary>
    public string Path { get; }

    public IReadOnlyDictionary<string, StoredTensor> Entries { get; }

    /// <summary>Empty: an index's own <c>metadata</c> holds only sizes, and shards' metadata is per file.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; } = new Dictionary<string, string>();

    public static bool IsIndexFile(string path) => path.EndsWith(IndexSuffix, StringComparison.OrdinalIgnoreCase);

    /// <summary>The shard file a tensor is read from, for error messages.</summary>
    public string ShardOf(string name) => _owner.TryGetValue(name, out var shard)
        ? shard.Path
        : throw new KeyNotFoundException($"{Path}: no tensor named '{name}'");

    public float[] ReadFloat32(string name) => _owner.TryGetValue(name, out var shard)
        ? shard.ReadFloat32(name)
        : throw new KeyNotFoundException($"{Path}: no tensor named '{name}'");

    /// <summary>Reads and checks the index, then opens its shards with <paramref name="openShard"/>.</summary>
    /// <exception cref="InvalidDataException">the index is malformed or disagrees with its shards; the message names the index and the tensor.</exception>
    public static ShardedTensorArchive Open(string indexPath, Func<string, ITensorArchive> openShard)
    {
        var shardOf = ReadWeightMap(indexPath);
        string folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(indexPath))!;
        var byShard = shardOf.GroupBy(kv => kv.Value, kv => kv.Key, StringComparer.Ordinal)
            .OrderBy(g => g.Key, StringComparer.Ordinal).ToList();

        var opened = new List<ITensorArchive>();
        try
        {
            var owner = new Dictionary<string, ITensorArchive>(StringComparer.Ordinal);
            foreach (var group in byShard)
            {
                string shardPath = System.IO.Path.Combine(folder, group.Key);
                if (!File.Exists(shardPath))
                    throw Bad(indexPath, group.First(), $"its shard '{group.Key}' does not exist beside the index");
                var shard = openShard(shardPath);
                opened.Add(shard);
                foreach (string name in group)
                {
                    if (!shard.Entries.ContainsKey(name))
                        throw Bad(indexPath, name, $"listed in shard '{group.Key}', which does not hold it");
                    owner[name] = shard;
                }
            }
            foreach (var shard in opened)
            {
                string shardName = System.IO.Path.GetFileName(shard.Path);
                foreach (string name in shard.Entries.Keys.Order(StringComparer.Ordinal))
                {
                    if (!shardOf.TryGetValue(name, out string? listed))
                        throw Bad(indexPath, name, $"held by shard '{shardName}' but not in the weight map");
                    if (!string.Equals(listed, shardName, StringComparison.Ordinal))
                        throw Bad(indexPath, name, $"held by two shards, '{listed}' (as the weight map says) and '{shardName}'");
                }
            }
            return new ShardedTensorArchive(indexPath, opened, owner);
        }
        catch
        {
            foreach (var shard in opened) shard.Dispose();
            throw;
        }
    }

    /// <summary>tensor name -> shard file name, every name and shard checked.</summary>
    private static Dictionary<string, string> ReadWeightMap(string indexPath)
    {
        long length = new FileInfo(indexPath).Length;
        if (length > MaxIndexBytes)
            throw new InvalidDataException($"{indexPath}: {length} bytes exceeds the {MaxIndexBytes}-byte cap of an index file");
        JsonDocument document;
        try
        {
            // Duplicate keys are allowed by the parser so that the check below can name the tensor.
            document = JsonDocument.Parse(File.ReadAllBytes(indexPath), new JsonDocumentOptions { AllowDuplicateProperties = true });
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{indexPath}: not valid JSON ({JsonErrorPosition.Of(e)})");
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{indexPath}: not a JSON object");
            if (!root.TryGetProperty(WeightMapKey, out var map) || map.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{indexPath}: '{WeightMapKey}' must be an object of tensor name -> shard file name");
            var shardOf = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var entry in map.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.String)
                    throw Bad(indexPath, entry.Name, "its shard must be a file name (a JSON string)");
                string shard = entry.Value.GetString()!;
                CheckShardName(indexPath, entry.Name, shard);
                if (!shardOf.TryAdd(entry.Name, shard))
                    throw Bad(indexPath, entry.Name, $"listed twice in '{WeightMapKey}' ('{shardOf[entry.Name]}' and '{shard}')");
            }
            if (shardOf.Count == 0) throw new InvalidDataException($"{indexPath}: '{WeightMapKey}' is empty");
            return shardOf;
        }
    }

    /// <summary>A shard is a file beside the index: no folders, no way out of the folder, a checkpoint kind.</summary>
    private static void CheckShardName(string indexPath, string tensor, string shard)
    {
        bool plain = shard.Length > 0 && shard != "." && shard != ".."
            && shard.IndexOfAny(['/', '\\', ':', '\0']) < 0
            && System.IO.Path.GetFileName(shard) == shard;
        if (!plain)
            throw Bad(indexPath, tensor, $"shard '{shard}' is not a plain file name beside the index (no folders or '..')");
        if (!ShardExtensions.Any(e => shard.EndsWith(e, StringComparison.OrdinalIgnoreCase)))
            throw Bad(indexPath, tensor, $"shard '{shard}' is not a {string.Join(" or ", ShardExtensions)} file");
    }

    private static InvalidDataException Bad(string indexPath, string tensor, string rule) =>
        new($"{indexPath}: tensor '{tensor}': {rule}");

    public void Dispose()
    {
        foreach (var shard in _shards) shard.Dispose();
    }
}
