using NativeVae.Models.AutoencoderKl;
using NativeVae.Models.Taesd;
using NativeVae.Tests.Support;
using NativeVae.Weights;
using NativeVae.Loading;

namespace NativeVae.Tests.Tiling;

/// <summary>
/// Exact tiling equals the untiled run (max abs 1e-4) for the real SD config (seeded weights) and TAEF2 (real
/// weights), on sizes that are not multiples of the tile, on the fast backends; and for FLUX.2 and Qwen-Image (real
/// configs, seeded weights), where auto tiling under a forced budget must choose exact tiles.
/// </summary>
public class ExactTilingParityTests
{
    private const double MaxAbsError = 1e-4;

    /// <summary>A tile that divides none of the sizes below, so every layer has ragged edge tiles.</summary>
    private const int Tile = 11;

    public static IEnumerable<string> Backends() => TestBackends.FastNames;

    [TestCaseSource(nameof(Backends))]
    public void SdEncodeAndDecode(string backend)
    {
        var config = AutoencoderKlConfig.Sd;
        var model = new AutoencoderKlModel(TestBackends.Get(backend), config,
            InMemoryWeights.Seeded(SeededWeights.DefaultSeed, AutoencoderKlParameters.Enumerate(config)));
        using var vae = new Vae(model, new VaeOptions(), null, null, ownsBackend: false) { SmallestExactTile = Tile };
        var images = new HostTensor<float>(TensorShape.Nchw(1, 3, 40, 24), SeededWeights.Uniform(1, "exact.sd.image", 3 * 40 * 24));
        CompareEncode(vae, images);
        // 16 x 12 latent pixels: the mid-block's attention runs as 2 strips of queries against 2 of keys (121 / 12 = 10 rows).
        var latents = new HostTensor<float>(TensorShape.Nchw(1, 4, 16, 12), SeededWeights.Uniform(1, "exact.sd.latent", 4 * 16 * 12));
        CompareDecode(vae, latents);
    }

    [TestCaseSource(nameof(Backends))]
    public void Taef2EncodeAndDecode(string backend)
    {
        using var loaded = VaeLoader.Open(TestPaths.RequireShared("models/taef2"));
        var model = new TaesdModel(TestBackends.Get(backend), loaded.TinyConfig!, loaded.Weights);
        using var vae = new Vae(model, new VaeOptions(), null, null, ownsBackend: false) { SmallestExactTile = Tile };
        var images = new HostTensor<float>(TensorShape.Nchw(1, 3, 72, 56), SeededWeights.Uniform(2, "exact.taef2.image", 3 * 72 * 56));
        var latent = CompareEncode(vae, images);
        CompareDecode(vae, latent);
    }

    /// <summary>A budget far below what the untiled calls below need (tens of MiB): auto tiling must spill to exact tiles.</summary>
    private const long ForcedBudgetBytes = 6 << 20;

    [TestCaseSource(nameof(Backends))]
    public void Flux2UnderAForcedBudgetEqualsUntiled(string backend)
    {
        var config = AutoencoderKlConfig.Flux2;
        CompareUnderBudget(options => new Vae(new AutoencoderKlModel(TestBackends.Get(backend), config,
                SeededWeights.Source(SeededWeights.DefaultSeed, AutoencoderKlParameters.Enumerate(config))), options, null, null, ownsBackend: false)
            { SmallestExactTile = Tile, Family = ModelFamily.Flux2 },
            TensorShape.Nchw(1, 3, 128, 96), TensorShape.Nchw(1, 32, 16, 12), "flux2");
    }

    [TestCaseSource(nameof(Backends))]
    public void QwenImageUnderAForcedBudgetEqualsUntiled(string backend)
    {
        var config = NativeVae.Models.QwenImage.QwenImageConfig.QwenImage;
        CompareUnderBudget(options => new Vae(new NativeVae.Models.QwenImage.QwenImageModel(TestBackends.Get(backend), config,
                SeededWeights.Source(SeededWeights.DefaultSeed, NativeVae.Models.QwenImage.QwenImageParameters.Enumerate(config))), options, null, null, ownsBackend: false)
            { SmallestExactTile = Tile, Family = ModelFamily.QwenImage },
            TensorShape.Nchw(1, 3, 128, 96), TensorShape.Nchw(1, 16, 16, 12), "qwenimage");
    }

    /// <summary>
    /// bf16 exact tiles read the values the untiled run stores, but a GroupNorm's statistics come from the rounded
    /// tiles rather than the untiled conv's fp32 epilogue: within bf16's bound on outputs of order 1, not bit-equal.
    /// </summary>
    private const double Bf16MaxAbsError = 2e-2;

    /// <summary>
    /// On ILGPU's CPU accelerator, a device with memory of its own (so exact tiling uploads whole input rows and the
    /// device upsamples them), the small config under a forced budget that its untiled calls do not fit but the
    /// smallest exact tiles do: fp32 equals untiled within 1e-4 at 32x24, encode and decode; bf16 (whose emulated tensor
    /// cores are slow) within its bound at 32x24, the decode: it holds every op kind the encode has (GroupNorm, 3x3
    /// convs, attention) and the upsampling the exact tiles do on the device.
    /// </summary>
    [TestCase(DType.F32, 32, 24, 320 << 10)]
    [TestCase(DType.BF16, 32, 24, 160 << 10)]
    public void OnTheIlgpuEmulatorUnderAForcedBudgetEqualsUntiled(DType storage, int height, int width, long budget)
    {
        var backend = storage == DType.F32 ? TestBackends.Get("ilgpu-cpu") : TestBackends.Ilgpu(DevicePreference.IlgpuCpu, storage);
        var config = AutoencoderKlConfig.Small;
        const int Factor = 2;
        CompareUnderBudget(options => new Vae(new AutoencoderKlModel(backend, config,
                    SeededWeights.Source(SeededWeights.DefaultSeed, AutoencoderKlParameters.Enumerate(config))),
                new VaeOptions { MemoryLimitBytes = options.MemoryLimitBytes, DType = storage }, null, null, ownsBackend: false)
            { SmallestExactTile = Tile },
            TensorShape.Nchw(1, 3, height, width), TensorShape.Nchw(1, config.LatentChannels, height / Factor, width / Factor),
            $"small on ilgpu {storage.ShortName()}", budget, storage == DType.F32 ? MaxAbsError : Bf16MaxAbsError, encode: storage == DType.F32);
    }

    /// <summary>
    /// Under the forced budget the untiled call is refused and auto tiling picks exact tiles; their result equals the
    /// untiled one of the same model without a budget.
    /// </summary>
    private static void CompareUnderBudget(Func<VaeOptions, Vae> create, TensorShape imageShape, TensorShape latentShape, string family,
        long budget = ForcedBudgetBytes, double maxAbsError = MaxAbsError, bool encode = true)
    {
        var images = new HostTensor<float>(imageShape, SeededWeights.Uniform(3, $"exact.{family}.image", imageShape.ElementCount));
        var latents = new HostTensor<float>(latentShape, SeededWeights.Uniform(3, $"exact.{family}.latent", latentShape.ElementCount));
        HostTensor<float>? wholeMoments = null;
        HostTensor<float> wholeImage;
        using (var unbounded = create(new VaeOptions()))
        {
            if (encode) wholeMoments = unbounded.EncodeMoments(images, new EncodeOptions { Tiling = TilingMode.None });
            using var decoded = unbounded.Decode(latents, new DecodeOptions { Output = DecodeOutput.FloatTensor, Tiling = TilingMode.None });
            wholeImage = decoded.FloatTensor!;
        }
        using var vae = create(new VaeOptions { MemoryLimitBytes = budget });
        Assert.That(() => vae.Decode(latents, new DecodeOptions { Output = DecodeOutput.FloatTensor, Tiling = TilingMode.None }),
            Throws.InstanceOf<InsufficientMemoryException>(), $"{family}: untiled does not fit the budget");
        Assert.That(vae.PlanAuto(latents, encode: false).Mode, Is.EqualTo(TilingMode.Exact), $"{family}: the decode spills under the budget");
        if (wholeMoments is not null)
        {
            Assert.That(vae.PlanAuto(images, encode: true).Mode, Is.EqualTo(TilingMode.Exact), $"{family}: the encode spills under the budget");
            var auto = vae.EncodeMoments(images, new EncodeOptions());
            NumericAssert.Close(auto.Data, wholeMoments.Data, wholeMoments.Shape, maxAbsError, 0, $"{family} encode under the budget");
        }
        using var autoImage = vae.Decode(latents, new DecodeOptions { Output = DecodeOutput.FloatTensor });
        NumericAssert.Close(autoImage.FloatTensor!.Data, wholeImage.Data, wholeImage.Shape, maxAbsError, 0, $"{family} decode under the budget");
    }

    private static HostTensor<float> CompareEncode(Vae vae, HostTensor<float> images)
    {
        var whole = vae.EncodeMoments(images, new EncodeOptions { Tiling = TilingMode.None });
        var tiled = vae.EncodeMoments(images, new EncodeOptions { Tiling = TilingMode.Exact, TileSize = Tile });
        NumericAssert.Close(tiled.Data, whole.Data, whole.Shape, MaxAbsError, 0, $"exact-tiled encode {images.Shape}");
        return whole;
    }

    private static void CompareDecode(Vae vae, HostTensor<float> latents)
    {
        using var whole = vae.Decode(latents, new DecodeOptions { Output = DecodeOutput.FloatTensor, Tiling = TilingMode.None });
        using var tiled = vae.Decode(latents, new DecodeOptions { Output = DecodeOutput.FloatTensor, Tiling = TilingMode.Exact, TileSize = Tile });
        var expected = whole.FloatTensor!;
        NumericAssert.Close(tiled.FloatTensor!.Data, expected.Data, expected.Shape, MaxAbsError, 0, $"exact-tiled decode {latents.Shape}");
    }
}
