using System.Text.Json.Nodes;
using NativeVae.Models.AutoencoderKl;
using NativeVae.Tests.Support;
using NativeVae.Formats;
using NativeVae.Loading;
using static NativeVae.Tests.Support.SyntheticVae;

namespace NativeVae.Tests.Formats;

internal class ShardedCheckpointTests
{
    private const int ShardCount = 3;

    /// <summary>A diffusers folder of <see cref="SyntheticVae.SmallSd"/> sharded three ways; returns the index.</summary>
    private static string WriteShardedFolder(string dir, string stem = "diffusion_pytorch_model")
    {
        File.WriteAllText(Path.Combine(dir, "config.json"), AutoencoderKlConfigJson.Serialize(SmallSd));
        return ShardedCheckpointWriter.Write(dir, stem, InLayout(SmallSd, Layout.Diffusers), ShardCount);
    }

    [TestCase("diffusion_pytorch_model")]
    [TestCase("diffusion_pytorch_model.fp16")]
    public void ShardedDiffusersFolderEqualsTheSingleFileFolder(string stem)
    {
        string single = TempFolder();
        File.WriteAllText(Path.Combine(single, "config.json"), AutoencoderKlConfigJson.Serialize(SmallSd));
        WriteSafeTensors(Path.Combine(single, "diffusion_pytorch_model.safetensors"), InLayout(SmallSd, Layout.Diffusers));
        string dir = TempFolder();
        WriteShardedFolder(dir, stem);
        Assert.That(Directory.GetFiles(dir, "*.safetensors"), Has.Length.EqualTo(ShardCount));

        using var expected = VaeLoader.Open(single);
        using var sharded = VaeLoader.Open(dir);
        LoadedVaeAssert.Same(sharded, expected);
        Assert.That(sharded.KlConfig!.ScalingFactor, Is.EqualTo(SmallSd.ScalingFactor), "the folder's config.json, not a family's factors");
    }

    [Test]
    public void IndexFileGivenAsAFileLoadsWithAnInferredConfig()
    {
        string single = Path.Combine(TempFolder(), "vae.safetensors");
        WriteSafeTensors(single, InLayout(SmallSd, Layout.Diffusers));
        string index = WriteShardedFolder(TempFolder());
        using var expected = VaeLoader.Open(single);
        using var sharded = VaeLoader.Open(index);
        LoadedVaeAssert.Same(sharded, expected);
    }

    /// <summary>Each case spoils a good sharded folder one way; the error names the index, the tensor and the rule.</summary>
    private static IEnumerable<TestCaseData> BadIndexes()
    {
        const string Tensor = "decoder.conv_in.weight";
        const string Shard1 = "diffusion_pytorch_model-00001-of-00003.safetensors";
        yield return new TestCaseData(new Action<string, JsonObject>((_, map) => map[Tensor] = "diffusion_pytorch_model-00009-of-00003.safetensors"),
            Tensor, "does not exist beside the index").SetName("MissingShard");
        yield return new TestCaseData(new Action<string, JsonObject>((_, map) => map[Tensor] = "../elsewhere.safetensors"),
            Tensor, "not a plain file name").SetName("PathTraversal");
        yield return new TestCaseData(new Action<string, JsonObject>((_, map) => map[Tensor] = "/etc/passwd.safetensors"),
            Tensor, "not a plain file name").SetName("AbsoluteShardPath");
        yield return new TestCaseData(new Action<string, JsonObject>((_, map) => map[Tensor] = "notes.txt"),
            Tensor, "is not a .safetensors or .bin file").SetName("UnknownShardKind");
        yield return new TestCaseData(new Action<string, JsonObject>((_, map) => map["decoder.ghost.weight"] = Shard1),
            "decoder.ghost.weight", $"listed in shard '{Shard1}', which does not hold it").SetName("TensorAbsentFromItsShard");
        yield return new TestCaseData(new Action<string, JsonObject>((_, map) => map.Remove(Tensor)),
            Tensor, "but not in the weight map").SetName("TensorNotListed");
        yield return new TestCaseData(new Action<string, JsonObject>((dir, map) =>
            {
                // the tensor written a second time into another shard than the one the map names
                string other = (string)map[Tensor]! == Shard1 ? "diffusion_pytorch_model-00002-of-00003.safetensors" : Shard1;
                var tensors = InLayout(SmallSd, Layout.Diffusers);
                var extra = tensors.Where(t => (string?)map[t.Name] == other).Append(tensors.Single(t => t.Name == Tensor));
                WriteSafeTensors(Path.Combine(dir, other), extra);
            }), Tensor, "held by two shards").SetName("DuplicateAcrossShards");
        yield return new TestCaseData(new Action<string, JsonObject>((_, map) => map[Tensor] = 7),
            Tensor, "must be a file name").SetName("ShardNotAString");
    }

    [TestCaseSource(nameof(BadIndexes))]
    public void BadIndexIsRefusedNamingIndexAndTensor(Action<string, JsonObject> spoil, string tensor, string fragment)
    {
        string dir = TempFolder();
        string index = WriteShardedFolder(dir);
        var root = JsonNode.Parse(File.ReadAllText(index))!.AsObject();
        spoil(dir, root["weight_map"]!.AsObject());
        File.WriteAllText(index, root.ToJsonString());

        var e = Assert.Throws<InvalidDataException>(() => VaeLoader.Open(dir).Dispose());
        Assert.That(e!.Message, Does.StartWith(index).And.Contain($"tensor '{tensor}'").And.Contain(fragment));
    }

    [Test]
    public void TensorListedTwiceInTheMapIsNamed()
    {
        string dir = TempFolder();
        string index = WriteShardedFolder(dir);
        string text = File.ReadAllText(index);
        const string Entry = "\"decoder.conv_in.bias\":";
        int at = text.IndexOf(Entry, StringComparison.Ordinal);
        Assert.That(at, Is.GreaterThan(0));
        File.WriteAllText(index, text.Insert(at, Entry + "\"diffusion_pytorch_model-00001-of-00003.safetensors\","));

        var e = Assert.Throws<InvalidDataException>(() => VaeLoader.Open(dir).Dispose());
        Assert.That(e!.Message, Does.StartWith(index).And.Contain("tensor 'decoder.conv_in.bias'").And.Contain("listed twice"));
    }

    [TestCase("{", "not valid JSON")]
    [TestCase("[]", "not a JSON object")]
    [TestCase("{\"metadata\":{}}", "'weight_map' must be an object")]
    [TestCase("{\"weight_map\":{}}", "'weight_map' is empty")]
    public void MalformedIndexIsRefusedNamingTheIndex(string json, string fragment)
    {
        string dir = TempFolder();
        string index = WriteShardedFolder(dir);
        File.WriteAllText(index, json);
        var e = Assert.Throws<InvalidDataException>(() => VaeLoader.Open(dir).Dispose());
        Assert.That(e!.Message, Does.StartWith(index).And.Contain(fragment));
    }

    [Test]
    public void ShardReadsGoToTheShardThatHoldsTheTensor()
    {
        string dir = TempFolder();
        string index = WriteShardedFolder(dir);
        using var archive = ShardedTensorArchive.Open(index, TensorArchive.Open);
        var tensors = InLayout(SmallSd, Layout.Diffusers);
        Assert.That(archive.Entries.Keys, Is.EquivalentTo(tensors.Select(t => t.Name)));
        var (name, shape, values) = tensors[4];
        Assert.That(archive.Entries[name].Shape, Is.EqualTo(shape));
        Assert.That(archive.ShardOf(name), Does.EndWith($"-{4 % ShardCount + 1:D5}-of-{ShardCount:D5}.safetensors"));
        Assert.That(archive.ReadFloat32(name), Is.EqualTo(values));
        Assert.That(archive.Entries[name].DType, Is.EqualTo(DType.F32));
    }
}
