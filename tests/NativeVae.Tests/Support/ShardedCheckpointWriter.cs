using System.Text.Json.Nodes;

namespace NativeVae.Tests.Support;

/// <summary>
/// Writes tensors as a sharded safetensors checkpoint the way diffusers' <c>save_pretrained(max_shard_size=...)</c>
/// does: <c>{stem}-0000i-of-0000n.safetensors</c> shards beside <c>{stem}.safetensors.index.json</c>.
/// </summary>
internal static class ShardedCheckpointWriter
{
    /// <summary>Splits <paramref name="tensors"/> round-robin over <paramref name="shardCount"/> shards; returns the index path.</summary>
    public static string Write(string folder, string stem, IReadOnlyList<(string Name, TensorShape Shape, float[] Values)> tensors,
        int shardCount, DType dtype = DType.F32)
    {
        var weightMap = new JsonObject();
        for (int s = 0; s < shardCount; s++)
        {
            string shard = $"{stem}-{s + 1:D5}-of-{shardCount:D5}.safetensors";
            var mine = tensors.Where((_, i) => i % shardCount == s).ToList();
            SyntheticVae.WriteSafeTensors(Path.Combine(folder, shard), mine, dtype);
            foreach (var t in mine) weightMap[t.Name] = shard;
        }
        var index = new JsonObject
        {
            ["metadata"] = new JsonObject { ["total_size"] = tensors.Sum(t => t.Values.LongLength * sizeof(float)) },
            ["weight_map"] = weightMap,
        };
        string indexPath = Path.Combine(folder, stem + ".safetensors.index.json");
        File.WriteAllText(indexPath, index.ToJsonString());
        return indexPath;
    }
}
