using NativeVae.Loading;
using NativeVae.Models.AutoencoderKl;
using NativeVae.Models.Taesd;
using static NativeVae.Tests.Support.SyntheticVae;

namespace NativeVae.Tests.Loading;

/// <summary>
/// Config values are range-checked against the architecture before anything is sized from them: a converted file
/// whose config metadata claims 2^31 - 1 layers per block allocated 5 GB in the loader before it failed.
/// </summary>
public class ConfigLimitsTests
{
    /// <summary>Refusing a config costs the JSON and the header, nothing sized from the claimed values.</summary>
    private const long MaxRefusalAllocationBytes = 64L << 20;

    private static string ConvertedFile(string configJson)
    {
        string path = Path.Combine(TempFolder(), "converted.safetensors");
        WriteSafeTensors(path, InLayout(SmallSd, Layout.Diffusers),
            metadata: new Dictionary<string, string> { [VaeLoader.ConfigKey] = configJson });
        return path;
    }

    private static string SmallSdJson(string key, string value)
    {
        var json = AutoencoderKlConfigJson.ToJsonObject(SmallSd);
        json[key] = System.Text.Json.Nodes.JsonNode.Parse(value);
        return json.ToJsonString();
    }

    [TestCase("layers_per_block", "2147483647", "layers_per_block 2147483647 must be 1 to 16")]
    [TestCase("layers_per_block", "0", "layers_per_block 0 must be 1 to 16")]
    [TestCase("latent_channels", "0", "latent_channels 0 must be 1 to 256")]
    [TestCase("latent_channels", "-4", "latent_channels -4 must be 1 to 256")]
    [TestCase("block_out_channels", "[32, 1048576]", "block_out_channels entry 1048576 must be 1 to 4096")]
    [TestCase("block_out_channels", "[32, 64, 64, 64, 64, 64, 64, 64, 64]", "block_out_channels has 9 entries; it must have 1 to 8")]
    [TestCase("block_out_channels", "[32, 48]", "block_out_channels entry 48 is not a multiple of norm_num_groups 32")]
    [TestCase("norm_num_groups", "0", "norm_num_groups 0 must be 1 to 4096")]
    [TestCase("in_channels", "100000", "in_channels 100000 must be 1 to 16")]
    [TestCase("sample_size", "-1", "sample_size -1 must be 1 to 16384")]
    [TestCase("scaling_factor", "0", "scaling_factor 0 must be a finite, non-zero number")]
    public void AConvertedFileWhoseConfigBreaksARuleIsRefusedNamingFileKeyAndRule(string key, string value, string rule)
    {
        string path = ConvertedFile(SmallSdJson(key, value));
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<InvalidDataException>(() => VaeLoader.Open(path).Dispose());
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.That(e!.Message, Does.StartWith(path).And.Contain(rule));
        Assert.That(allocated, Is.LessThan(MaxRefusalAllocationBytes));
    }

    [Test]
    public void AMillionEntryBlockListIsRefusedBeforeItIsRead()
    {
        string list = "[" + string.Join(",", Enumerable.Repeat("64", 1_000_000)) + "]";
        string path = ConvertedFile(SmallSdJson("block_out_channels", list));
        var e = Assert.Throws<InvalidDataException>(() => VaeLoader.Open(path).Dispose());
        Assert.That(e!.Message, Does.StartWith(path).And.Contain("'block_out_channels' must be a list of at most 64 integers, not 1000000"));
    }

    [Test]
    public void MalformedConfigMetadataIsOurMessageNotTheParsers()
    {
        string path = ConvertedFile("{\"layers_per_block\": 2,");
        var e = Assert.Throws<InvalidDataException>(() => VaeLoader.Open(path).Dispose());
        Assert.That(e!.Message, Does.StartWith(path).And.Contain("config metadata is not valid JSON (line 1, byte "));
        // System.Text.Json's own wording ("Expected depth to be zero", "LineNumber: 0 | BytePositionInLine") stays out
        Assert.That(e.Message, Does.Not.Contain("LineNumber").And.Not.Contain("depth"));
    }

    [TestCase("{\"latent_channels\": 0}", "latent_channels 0 must be 1 to 256")]
    [TestCase("{\"latent_channels\": 100000}", "latent_channels 100000 must be 1 to 256")]
    [TestCase("{\"num_encoder_blocks\": [1, 3, 3, 2147483647], \"num_decoder_blocks\": [3, 3, 3, 1]}", "num_encoder_blocks entry 2147483647 must be 0 to 16")]
    [TestCase("{\"num_encoder_blocks\": [1, 1, 1, 1, 1, 1, 1, 1, 1], \"num_decoder_blocks\": [1, 1, 1, 1, 1, 1, 1, 1, 1]}", "must be lists of one length, 1 to 8")]
    [TestCase("{\"encoder_block_out_channels\": [100000, 100000, 100000, 100000]}", "block_out_channels entry 100000 must be 1 to 4096")]
    [TestCase("{\"scaling_factor\": 0}", "scaling_factor 0 must be a finite, non-zero number")]
    public void ATinyConfigThatBreaksARuleIsRefusedNamingTheKey(string json, string rule)
    {
        var e = Assert.Throws<InvalidDataException>(() => TaesdConfigJson.Parse(json, "taesd/config.json"));
        Assert.That(e!.Message, Does.StartWith("taesd/config.json:").And.Contain(rule));
    }

    [Test]
    public void PublishedConfigsStayValid()
    {
        foreach (var config in new[] { AutoencoderKlConfig.Sd, AutoencoderKlConfig.Sdxl, AutoencoderKlConfig.Flux1, AutoencoderKlConfig.Sd3, AutoencoderKlConfig.Small })
            Assert.DoesNotThrow(config.Validate);
        foreach (var config in new[] { TaesdConfig.Taesd, TaesdConfig.Taesdxl, TaesdConfig.Taef1, TaesdConfig.Taef2 })
            Assert.DoesNotThrow(config.Validate);
    }
}
