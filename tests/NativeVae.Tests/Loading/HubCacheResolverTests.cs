using NativeVae.Models.AutoencoderKl;
using NativeVae.Tests.Support;
using NativeVae.Formats;
using NativeVae.Loading;
using static NativeVae.Tests.Support.SyntheticVae;

namespace NativeVae.Tests.Loading;

internal class HubCacheResolverTests
{
    private const string Revision = "4f2c1b9e0d8a7c6b5a4f3e2d1c0b9a8f7e6d5c4b";
    private const string OtherRevision = "0123456789abcdef0123456789abcdef01234567";

    /// <summary>A small SD VAE as a diffusers folder (config.json + weights) in <paramref name="dir"/>.</summary>
    private static void WriteDiffusersVae(string dir)
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), AutoencoderKlConfigJson.Serialize(SmallSd));
        WriteSafeTensors(Path.Combine(dir, "diffusion_pytorch_model.safetensors"), InLayout(SmallSd, Layout.Diffusers));
    }

    /// <summary>A pipeline repo as the hub lays it out: model_index.json at the top, the VAE in vae/.</summary>
    private static string StagePipeline()
    {
        string staged = TempFolder();
        File.WriteAllText(Path.Combine(staged, "model_index.json"), "{\"_class_name\":\"StableDiffusionPipeline\"}");
        WriteDiffusersVae(Path.Combine(staged, "vae"));
        return staged;
    }

    /// <summary>The same VAE as a plain diffusers folder outside any cache: what a cached copy must equal.</summary>
    private static LoadedVae OpenSingleFile()
    {
        string dir = TempFolder();
        WriteDiffusersVae(dir);
        return VaeLoader.Open(dir);
    }

    [Test]
    public void VaeRepoIdResolvesFromTheCacheThroughBlobSymlinks()
    {
        string cache = TempFolder();
        string staged = TempFolder();
        WriteDiffusersVae(staged);
        string snapshot = HubCacheWriter.AddSnapshot(cache, "stabilityai/sd-vae-ft-mse", Revision, staged);
        Assert.That(new FileInfo(Path.Combine(snapshot, "config.json")).LinkTarget, Does.Contain("blobs"), "the test lays out real hub symlinks");

        using var expected = OpenSingleFile();
        using var cached = VaeLoader.Open("stabilityai/sd-vae-ft-mse", new VaeLoadOptions(HubCacheRoot: cache));
        LoadedVaeAssert.Same(cached, expected);
        Assert.That(cached.Origin, Does.StartWith(snapshot));
    }

    [Test]
    public void PipelineRepoIdResolvesToItsVaeFolder()
    {
        string cache = TempFolder();
        HubCacheWriter.AddSnapshot(cache, "someorg/some-pipeline", Revision, StagePipeline());
        using var expected = OpenSingleFile();
        using var cached = VaeLoader.Open("someorg/some-pipeline", new VaeLoadOptions(HubCacheRoot: cache));
        LoadedVaeAssert.Same(cached, expected);
        Assert.That(cached.Origin, Does.Contain(Path.Combine("snapshots", Revision, "vae")));
    }

    [Test]
    public void SnapshotFolderPathItselfLoads()
    {
        string snapshot = HubCacheWriter.AddSnapshot(TempFolder(), "someorg/some-pipeline", Revision, StagePipeline());
        using var expected = OpenSingleFile();
        using var loaded = VaeLoader.Open(snapshot);
        LoadedVaeAssert.Same(loaded, expected);
    }

    [Test]
    public void ShardedVaeInACachedPipelineLoads()
    {
        string staged = TempFolder();
        string vae = Path.Combine(staged, "vae");
        Directory.CreateDirectory(vae);
        File.WriteAllText(Path.Combine(vae, "config.json"), AutoencoderKlConfigJson.Serialize(SmallSd));
        ShardedCheckpointWriter.Write(vae, "diffusion_pytorch_model", InLayout(SmallSd, Layout.Diffusers), shardCount: 2);
        string cache = TempFolder();
        HubCacheWriter.AddSnapshot(cache, "someorg/sharded", Revision, staged);

        using var expected = OpenSingleFile();
        using var cached = VaeLoader.Open("someorg/sharded", new VaeLoadOptions(HubCacheRoot: cache));
        LoadedVaeAssert.Same(cached, expected);
    }

    [Test]
    public void SingleFileRepoWithOneCheckpointInTwoFormsLoadsTheSafetensors()
    {
        // as stabilityai/sd-vae-ft-mse-original: vae-ft-mse-840000-ema-pruned.{ckpt,safetensors}, no config.json
        string staged = TempFolder();
        var tensors = InLayout(SmallSd, Layout.Ldm);
        WriteSafeTensors(Path.Combine(staged, "vae-ft.safetensors"), tensors);
        TorchZipWriter.WriteFloat32(Path.Combine(staged, "vae-ft.ckpt"), tensors.Select(t => (t.Name, t.Shape, t.Values.Select(v => -v).ToArray())).ToList());
        string cache = TempFolder();
        HubCacheWriter.AddSnapshot(cache, "org/vae-original", Revision, staged);

        using var cached = VaeLoader.Open("org/vae-original", new VaeLoadOptions(HubCacheRoot: cache));
        Assert.That(cached.Origin, Does.EndWith("vae-ft.safetensors"));
        Assert.That(cached.Weights.ReadFloat32("decoder.conv_in.weight"), Is.EqualTo(Canonical(SmallSd)["decoder.conv_in.weight"]));
    }

    [Test]
    public void RepoNotCachedSaysWhereItLookedAndHowToFillIt()
    {
        string cache = TempFolder();
        var e = Assert.Throws<FileNotFoundException>(() => VaeLoader.Open("stabilityai/sd-vae-ft-mse", new VaeLoadOptions(HubCacheRoot: cache)).Dispose());
        Assert.That(e!.Message, Does.StartWith("stabilityai/sd-vae-ft-mse:")
            .And.Contain(Path.Combine(cache, "models--stabilityai--sd-vae-ft-mse"))
            .And.Contain("huggingface-cli download stabilityai/sd-vae-ft-mse"));
    }

    [Test]
    public void MainRefChoosesAmongSnapshots()
    {
        string cache = TempFolder();
        string old = TempFolder();
        File.WriteAllText(Path.Combine(old, "config.json"), "not what main names");
        HubCacheWriter.AddSnapshot(cache, "org/vae", OtherRevision, old, writeMainRef: false);
        string current = TempFolder();
        WriteDiffusersVae(current);
        string snapshot = HubCacheWriter.AddSnapshot(cache, "org/vae", Revision, current);
        Assert.That(HubCacheResolver.ResolveSnapshot("org/vae", cache), Is.EqualTo(snapshot));
    }

    [Test]
    public void WithoutMainRefTheOnlySnapshotIsUsedAndSeveralAreRefusedByName()
    {
        string cache = TempFolder();
        string first = TempFolder();
        WriteDiffusersVae(first);
        string snapshot = HubCacheWriter.AddSnapshot(cache, "org/vae", Revision, first, writeMainRef: false);
        Assert.That(HubCacheResolver.ResolveSnapshot("org/vae", cache), Is.EqualTo(snapshot));

        string second = TempFolder();
        WriteDiffusersVae(second);
        HubCacheWriter.AddSnapshot(cache, "org/vae", OtherRevision, second, writeMainRef: false);
        var e = Assert.Throws<InvalidDataException>(() => HubCacheResolver.ResolveSnapshot("org/vae", cache));
        Assert.That(e!.Message, Does.Contain("refs/main is missing").And.Contain(Revision).And.Contain(OtherRevision));
    }

    [Test]
    public void MainRefNamingAnAbsentSnapshotIsNamed()
    {
        string cache = TempFolder();
        string staged = TempFolder();
        WriteDiffusersVae(staged);
        HubCacheWriter.AddSnapshot(cache, "org/vae", Revision, staged);
        string refMain = Path.Combine(cache, "models--org--vae", "refs", "main");
        File.WriteAllText(refMain, OtherRevision);
        var e = Assert.Throws<InvalidDataException>(() => HubCacheResolver.ResolveSnapshot("org/vae", cache));
        Assert.That(e!.Message, Does.StartWith(refMain).And.Contain(OtherRevision));
    }

    [TestCase("stabilityai/sd-vae-ft-mse", true)]
    [TestCase("black-forest-labs/FLUX.1-dev", true)]
    [TestCase("madebyollin/taesd", true)]
    [TestCase("vae.safetensors", false)]
    [TestCase("a/b/c", false)]
    [TestCase("/abs/path", false)]
    [TestCase("../x", false)]
    [TestCase("a/..", false)]
    [TestCase("a/b..c", false)]
    [TestCase("org\\name", false)]
    [TestCase("org/", false)]
    public void RepoIdShape(string path, bool expected) =>
        Assert.That(HubCacheResolver.LooksLikeRepoId(path), Is.EqualTo(expected));

    [Test]
    public void CacheRootFollowsHuggingFaceHubsOrder()
    {
        string Root(params (string Key, string Value)[] vars) =>
            HubCacheResolver.DefaultCacheRoot(k => vars.FirstOrDefault(v => v.Key == k).Value, "/home/u");
        Assert.That(Root(("HF_HUB_CACHE", "/c"), ("HF_HOME", "/h"), ("XDG_CACHE_HOME", "/x")), Is.EqualTo("/c"));
        Assert.That(Root(("HF_HOME", "/h"), ("XDG_CACHE_HOME", "/x")), Is.EqualTo(Path.Combine("/h", "hub")));
        Assert.That(Root(("HF_HUB_CACHE", ""), ("XDG_CACHE_HOME", "/x")), Is.EqualTo(Path.Combine("/x", "huggingface", "hub")), "empty is unset");
        Assert.That(Root(), Is.EqualTo(Path.Combine("/home/u", ".cache", "huggingface", "hub")));
    }

    /// <summary>The only test that sets the environment: the default root reaches VaeLoader.Open.</summary>
    [Test]
    [NonParallelizable]
    public void RepoIdResolvesThroughHfHubCacheWhenNoRootIsGiven()
    {
        string cache = TempFolder();
        string staged = TempFolder();
        WriteDiffusersVae(staged);
        HubCacheWriter.AddSnapshot(cache, "org/env-vae", Revision, staged);
        string? saved = Environment.GetEnvironmentVariable("HF_HUB_CACHE");
        try
        {
            Environment.SetEnvironmentVariable("HF_HUB_CACHE", cache);
            using var loaded = VaeLoader.Open("org/env-vae");
            Assert.That(loaded.Origin, Does.StartWith(cache));
        }
        finally
        {
            Environment.SetEnvironmentVariable("HF_HUB_CACHE", saved);
        }
    }
}
