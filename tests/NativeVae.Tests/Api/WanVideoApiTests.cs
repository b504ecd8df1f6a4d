using NativeVae.Api;
using NativeVae.Backends;
using NativeVae.Backends.Cpu;
using NativeVae.Core;
using NativeVae.Formats.SafeTensors;
using NativeVae.Models.QwenImage;
using NativeVae.Tests.Support;
using NativeVae.Weights;

namespace NativeVae.Tests.Api;

/// <summary>
/// The Wan 2.1 and 2.2 video VAEs through the public API: loaded from a diffusers folder (AutoencoderKLWan) and Wan
/// 2.2's original single file, video encode and decode against the oracle (models/wan_small_t5 and wan22_small_t5,
/// diffusers' control flow), 16-bit storage, and the refusals that name what is wrong before any work.
/// </summary>
public class WanVideoApiTests
{
    private const double MaxAbsError = 1e-4;

    /// <summary>bf16 activations over a dozen layers of the small config: the bound the 16-bit tests use.</summary>
    private const double Bf16MaxAbsError = 5e-2;

    private static (Vae Vae, SafeTensorsFile Fixture) Load(string fixtureName, DType dtype = DType.F32,
        DevicePreference device = DevicePreference.Cpu, ExactTilingStore store = ExactTilingStore.Auto)
    {
        var fixture = SafeTensorsFile.Open(TestPaths.Fixture($"models/{fixtureName}.safetensors"));
        string json = fixture.Metadata["config"];
        var config = QwenImageConfigJson.Parse(json, "fixture config");
        string folder = QwenImageApiTests.DiffusersFolder(config, json);
        return (Vae.Load(folder, new VaeOptions { Device = device, DType = dtype, ExactStore = store }), fixture);
    }

    /// <summary>The smallest exact tile: the fixtures' frames are 20 to 48 elements wide, so every layer is cut into several strips.</summary>
    private const int SmallTile = 16;

    /// <summary>
    /// Exact tiling of video: every layer of every frame in strips over an activation space that also holds the
    /// causal histories (a file beside the CPU backend, host memory beside ILGPU's device), equal to the untiled
    /// pass; the RMS norm needs nothing beyond a strip and its halo.
    /// </summary>
    [TestCase("wan_small_t5", DevicePreference.Cpu, ExactTilingStore.Auto)]
    [TestCase("wan22_small_t5", DevicePreference.Cpu, ExactTilingStore.Auto)]
    [TestCase("wan22_small_t5", DevicePreference.Cpu, ExactTilingStore.Memory)]
    [TestCase("wan22_small_t5", DevicePreference.IlgpuCpu, ExactTilingStore.Auto)]
    public void ExactTiledVideoEqualsUntiled(string fixtureName, DevicePreference device, ExactTilingStore store)
    {
        var (vae, fixture) = Load(fixtureName, device: device, store: store);
        using (vae)
        using (fixture)
        {
            var video = Tensor(fixture, "input.video");
            var latent = Tensor(fixture, "input.latent");
            var tiledLatent = vae.EncodeVideo(video, new EncodeOptions { Tiling = TilingMode.Exact, TileSize = SmallTile });
            Assert.That(vae.LastExactSpaceBytes, Is.GreaterThan(0), "the encode ran through exact tiling's activation space");
            NumericAssert.Close(tiledLatent.Data, vae.EncodeVideo(video).Data, tiledLatent.Shape, MaxAbsError, 0, $"{fixtureName} exact-tiled encode");
            var tiledVideo = vae.DecodeVideo(latent, new DecodeOptions { Tiling = TilingMode.Exact, TileSize = SmallTile });
            NumericAssert.Close(tiledVideo.Data, vae.DecodeVideo(latent).Data, tiledVideo.Shape, MaxAbsError, 0, $"{fixtureName} exact-tiled decode");
        }
    }

    /// <summary>
    /// A video's plan: its FLOPs, extrapolated from a dry run of four latent frames, are those of a dry run of the
    /// whole pass (six latent frames, 21 video frames); untiled without a budget, exact under one it does not fit.
    /// </summary>
    [TestCase("wan_small_t5")]
    [TestCase("wan22_small_t5")]
    public void AVideoPlanCountsEveryFramesWork(string fixtureName)
    {
        const int LatentFrames = 6;
        var (vae, fixture) = Load(fixtureName);
        using (vae)
        using (fixture)
        {
            var config = QwenImageConfigJson.Parse(fixture.Metadata["config"], "fixture config");
            using var model = new QwenImageModel(new CpuBackend(), config, InMemoryWeights.Seeded(SeededWeights.DefaultSeed, QwenImageParameters.Enumerate(config)), frames: true);
            var l = fixture.Get("input.latent").Shape;
            var latents = new TensorShape(1, config.ZDim, LatentFrames, l[3], l[4]);
            var video = new TensorShape(1, 3, config.DecodedFrames(LatentFrames), l[3] * config.DownsampleFactor, l[4] * config.DownsampleFactor);

            var decode = vae.PlanDecodeVideo(latents);
            Assert.That(decode.Tiling, Is.EqualTo(TilingMode.None));
            Assert.That(decode.Flops, Is.EqualTo(DryRunFlops(model, latents, encode: false)), "decode FLOPs of 6 latent frames");
            var encode = vae.PlanEncodeVideo(video);
            Assert.That(encode.Flops, Is.EqualTo(DryRunFlops(model, video, encode: true)), "encode FLOPs of 21 frames");
            Assert.That(encode.ActivationPeakBytes, Is.GreaterThan(0));
            using var tight = Vae.Load(QwenImageApiTests.DiffusersFolder(config, fixture.Metadata["config"]),
                new VaeOptions { Device = DevicePreference.Cpu, MemoryLimitBytes = TightBudget });
            Assert.That(tight.PlanDecodeVideo(latents).Tiling, Is.EqualTo(TilingMode.Exact), "over the budget, exact tiles");
        }
    }

    /// <summary>The FLOPs of a whole video pass counted by the dry-run backend.</summary>
    private static long DryRunFlops(QwenImageModel model, TensorShape input, bool encode)
    {
        using var dry = new DryRunBackend { FusesNormIntoConv = model.Backend.Capabilities.FusesNormIntoConv };
        var frame = VideoFrames.FrameShape(input);
        Tensor? current = null;
        Tensor Next(int t)
        {
            current?.Dispose();
            return current = dry.Allocate(frame);
        }
        if (encode) model.EncodeVideo(dry, input[VideoFrames.FrameAxis], Next, y => y.Dispose());
        else model.DecodeVideo(dry, input[VideoFrames.FrameAxis], Next, y => y.Dispose());
        current?.Dispose();
        return dry.Flops;
    }

    /// <summary>
    /// Auto tiling under a budget the untiled pass (by its dry run, histories included) does not fit: exact tiles and
    /// the same latent; without a budget: untiled.
    /// </summary>
    [Test]
    public void AutoTilesAVideoThatDoesNotFitTheBudget()
    {
        var fixture = SafeTensorsFile.Open(TestPaths.Fixture("models/wan22_small_t5.safetensors"));
        using (fixture)
        {
            var config = QwenImageConfigJson.Parse(fixture.Metadata["config"], "fixture config");
            string folder = QwenImageApiTests.DiffusersFolder(config, fixture.Metadata["config"]);
            var video = Tensor(fixture, "input.video");
            HostTensor<float> untiled;
            using (var free = Vae.Load(folder, new VaeOptions { Device = DevicePreference.Cpu }))
            {
                untiled = free.EncodeVideo(video);
                Assert.That(free.LastExactSpaceBytes, Is.Zero, "without a budget the small video runs untiled");
            }
            using var tight = Vae.Load(folder, new VaeOptions { Device = DevicePreference.Cpu, MemoryLimitBytes = TightBudget });
            var tiled = tight.EncodeVideo(video, new EncodeOptions { TileSize = SmallTile });
            Assert.That(tight.LastExactSpaceBytes, Is.GreaterThan(0), "auto chose exact tiles under the budget");
            NumericAssert.Close(tiled.Data, untiled.Data, tiled.Shape, MaxAbsError, 0, "auto-tiled encode");
        }
    }

    /// <summary>Under the small config's untiled video pass (a few hundred KB), over its exact tiles.</summary>
    private const long TightBudget = 64 << 10;

    private static HostTensor<float> Tensor(SafeTensorsFile fixture, string name) => new(fixture.Get(name).Shape, fixture.ReadFloat32(name));

    [TestCase("wan_small_t5", ModelFamily.Wan, 4)]
    [TestCase("wan22_small_t5", ModelFamily.Wan22, 16)]
    public void AWanFolderLoadsAsItsVideoFamily(string fixtureName, ModelFamily family, int factor)
    {
        var (vae, fixture) = Load(fixtureName);
        using (vae)
        using (fixture)
        {
            Assert.That(vae.Family, Is.EqualTo(family));
            Assert.That(vae.IsVideo, Is.True);
            Assert.That(vae.DownsampleFactor, Is.EqualTo(factor));
            Assert.That(vae.SupportedLatentForms, Is.EqualTo(new[] { LatentForm.Raw }));
        }
    }

    /// <summary>
    /// Wan 2.2's original single file (Wan2.2_VAE.pth's names, as ComfyUI's <c>wan2.2_vae.safetensors</c> holds them)
    /// without a config: recognised as wan22 from its nested blocks, its config read off the tensors (decoder base,
    /// patch size, levels), the same video out as the diffusers folder; asked for as wan, refused naming wan22.
    /// </summary>
    [Test]
    public void Wan22sOriginalSingleFileLoadsAsWan22()
    {
        var (folder, fixture) = Load("wan22_small_t5");
        using (folder)
        using (fixture)
        {
            var config = QwenImageConfigJson.Parse(fixture.Metadata["config"], "fixture config");
            string single = Path.Combine(SyntheticVae.TempFolder(), "wan2.2_vae.safetensors");
            SyntheticVae.WriteSafeTensors(single, QwenImageApiTests.Diffusers(config).Select(t => (QwenImageApiTests.ToWan(t.Name, config), t.Shape, t.Values)));
            using var original = Vae.Load(single, new VaeOptions { Device = DevicePreference.Cpu });
            Assert.That(original.Family, Is.EqualTo(ModelFamily.Wan22));
            Assert.That(original.DownsampleFactor, Is.EqualTo(16));
            var video = Tensor(fixture, "input.video");
            Assert.That(original.EncodeVideo(video).Data, Is.EqualTo(folder.EncodeVideo(video).Data), "the same weights under either layout");
            var e = Assert.Throws<InvalidDataException>(() => Vae.Load(single, new VaeOptions { Device = DevicePreference.Cpu, Family = ModelFamily.Wan }))!;
            Assert.That(e.Message, Does.Contain("Wan 2.2").And.Contain("wan22").And.Contain("not a wan one"));
        }
    }

    [TestCase("wan_small_t5", DType.F32, MaxAbsError)]
    [TestCase("wan_small_t5", DType.BF16, Bf16MaxAbsError)]
    [TestCase("wan22_small_t5", DType.F32, MaxAbsError)]
    [TestCase("wan22_small_t5", DType.BF16, Bf16MaxAbsError)]
    public void EncodeVideoIsTheOraclesMode(string fixtureName, DType dtype, double bound)
    {
        var (vae, fixture) = Load(fixtureName, dtype);
        using (vae)
        using (fixture)
        {
            var moments = Tensor(fixture, "moments");
            var latent = vae.EncodeVideo(Tensor(fixture, "input.video"));
            var s = moments.Shape;
            Assert.That(latent.Shape, Is.EqualTo(new TensorShape(s[0], s[1] / 2, s[2], s[3], s[4])));
            // The mode: the first half of the moments' channels, per batch item.
            long half = latent.Data.Length / s[0];
            var expected = Enumerable.Range(0, s[0]).SelectMany(n => moments.Data.Skip((int)(n * 2 * half)).Take((int)half)).ToArray();
            NumericAssert.Close(latent.Data, expected, latent.Shape, bound, 0, $"{fixtureName} EncodeVideo {dtype}");
        }
    }

    [TestCase("wan_small_t5", DType.F32, MaxAbsError, DevicePreference.Cpu)]
    [TestCase("wan_small_t5", DType.BF16, Bf16MaxAbsError, DevicePreference.Cpu)]
    [TestCase("wan22_small_t5", DType.F32, MaxAbsError, DevicePreference.Cpu)]
    [TestCase("wan22_small_t5", DType.BF16, Bf16MaxAbsError, DevicePreference.Cpu)]
    // ILGPU's 16-bit path: tensor-core convs through the mma.sync fallbacks, the shuffles through fp32, the patchified
    // pixels (12 channels) kept in fp32. One frame: the emulated tensor cores take seconds per frame, and the later
    // frames' temporal taps are the same convs (with a residual) that the CPU cases above check in bf16.
    [TestCase("wan22_small_t1", DType.BF16, Bf16MaxAbsError, DevicePreference.IlgpuCpu)]
    public void DecodeVideoIsTheOraclesSample(string fixtureName, DType dtype, double bound, DevicePreference device)
    {
        var (vae, fixture) = Load(fixtureName, dtype, device);
        using (vae)
        using (fixture)
        {
            var sample = Tensor(fixture, "sample");
            var progress = new List<VaeProgress>();
            var video = vae.DecodeVideo(Tensor(fixture, "input.latent"), new DecodeOptions { Progress = new SynchronousProgress<VaeProgress>(progress.Add) });
            Assert.That(video.Shape, Is.EqualTo(sample.Shape));
            NumericAssert.Close(video.Data, sample.Data, video.Shape, bound, 0, $"{fixtureName} DecodeVideo {dtype} {device}");
            Assert.That(progress.Select(p => p.Done), Is.EqualTo(Enumerable.Range(1, sample.Shape[2])), "one report per decoded frame");
        }
    }

    [Test]
    public void FramesPastTheLastChunkAreRefusedUnlessDroppingIsAskedFor()
    {
        var (vae, fixture) = Load("wan_small_t5");
        using (vae)
        using (fixture)
        {
            var five = Tensor(fixture, "input.video");
            var s = five.Shape;
            // Seven frames: the five of the fixture, then two more that a Wan encode cannot use.
            var seven = new HostTensor<float>(new TensorShape(s[0], s[1], 7, s[3], s[4]));
            var frame = new float[VideoFrames.FrameShape(s).ElementCount];
            for (int t = 0; t < 7; t++)
            {
                VideoFrames.Read(five, Math.Min(t, 4), frame);
                VideoFrames.Write(seven, t, frame);
            }
            var e = Assert.Throws<ArgumentException>(() => vae.EncodeVideo(seven))!;
            Assert.That(e.Message, Does.Contain("7 frames").And.Contain("last 2 would be dropped").And.Contain("DropTrailingFrames"));
            var dropped = vae.EncodeVideo(seven, new EncodeOptions { DropTrailingFrames = true });
            Assert.That(dropped.Data, Is.EqualTo(vae.EncodeVideo(five).Data), "7 frames with dropping encode as their first 5");
        }
    }

    [Test]
    public void BadVideoInputIsRefusedByName()
    {
        var (vae, fixture) = Load("wan_small_t5");
        using (vae)
        using (fixture)
        {
            Assert.That(Assert.Throws<ArgumentException>(() => vae.EncodeVideo(new HostTensor<float>(new TensorShape(1, 3, 8, 12))))!.Message,
                Does.Contain("video must be [N, 3, T, H, W]"));
            Assert.That(Assert.Throws<ArgumentException>(() => vae.EncodeVideo(new HostTensor<float>(new TensorShape(1, 3, 5, 10, 12))))!.Message,
                Does.Contain("multiples of 4"));
            Assert.That(Assert.Throws<ArgumentException>(() => vae.DecodeVideo(new HostTensor<float>(new TensorShape(1, 5, 2, 3, 3))))!.Message,
                Does.Contain("video latents must be [N, 4, T', h, w]"));
            var nan = new HostTensor<float>(new TensorShape(1, 4, 2, 3, 3));
            nan.Data[7] = float.NaN;
            Assert.That(Assert.Throws<ArgumentException>(() => vae.DecodeVideo(nan))!.Message, Does.Contain("NaN"));
            Assert.That(Assert.Throws<ArgumentException>(() => vae.DecodeVideo(new HostTensor<float>(new TensorShape(1, 4, 2, 3, 3)), new DecodeOptions { Tiling = TilingMode.Blend }))!.Message,
                Does.Contain("untiled or with exact tiles"));
            Assert.That(Assert.Throws<ArgumentException>(() => vae.DecodeVideo(new HostTensor<float>(new TensorShape(1, 4, 2, 3, 3)), new DecodeOptions { Tiling = TilingMode.Exact, TileSize = 4 }))!.Message,
                Does.Contain("tile size 4"));
        }
    }

    [Test]
    public void AVideoLatentSentToAnImageFamilyIsRefused()
    {
        using var fixture = SafeTensorsFile.Open(TestPaths.Fixture("models/qwenimage_small.safetensors"));
        var config = QwenImageConfigJson.Parse(fixture.Metadata["config"], "fixture config");
        using var vae = Vae.Load(QwenImageApiTests.DiffusersFolder(config), new VaeOptions { Device = DevicePreference.Cpu });
        Assert.That(vae.Family, Is.EqualTo(ModelFamily.QwenImage));
        var e = Assert.Throws<ArgumentException>(() => vae.DecodeVideo(new HostTensor<float>(new TensorShape(1, 4, 2, 3, 5))))!;
        Assert.That(e.Message, Does.Contain("qwenimage is an image VAE"));
    }
}
