using NativeVae.Backends.Ilgpu;
using NativeVae.Core;
using NativeVae.Models.AutoencoderKl;
using NativeVae.Tests.Support;
using NativeVae.Tiling;
using NativeVae.Weights;

namespace NativeVae.Tests.Backends;

/// <summary>
/// A call is device-resident (issue 27): on the ILGPU backend a warm decode to pixels is one upload (the latents),
/// one download (the pixels, with the count of non-finite values in the same copy) and one host wait, and a warm
/// encode one upload, one download and one wait; every kernel and copy is queued on the backend's own stream, not
/// the legacy NULL stream. An exact-tiled call keeps its activations in the backend's page-locked memory: strips are
/// copied straight between it and the device, and the host waits only for the statistics a GroupNorm folds. Counted on ILGPU's CPU
/// accelerator, which runs the same backend code as CUDA.
/// </summary>
[NonParallelizable]
public sealed class IlgpuTransfersTests
{
    private static readonly DeviceTransfers OneEachWay = new(HostToDevice: 1, DeviceToHost: 1, Synchronizations: 1);

    private static (IlgpuBackend Backend, Vae Vae) Create(DType storage)
    {
        var backend = storage == DType.F32 ? (IlgpuBackend)TestBackends.Get("ilgpu-cpu") : TestBackends.Ilgpu(DevicePreference.IlgpuCpu, storage);
        var config = AutoencoderKlConfig.Small;
        var model = new AutoencoderKlModel(backend, config,
            InMemoryWeights.Seeded(SeededWeights.DefaultSeed, AutoencoderKlParameters.Enumerate(config)));
        return (backend, new Vae(model, new VaeOptions(), config.ScalingFactor, config.ShiftFactor, ownsBackend: false) { SmallestExactTile = ExactTile });
    }

    private static HostTensor<float> Latents() =>
        new(TensorShape.Nchw(1, 4, 4, 4), SeededWeights.Uniform(SeededWeights.DefaultSeed, "transfers.latent", 64));

    private static HostTensor<float> Images() =>
        new(TensorShape.Nchw(1, 3, 8, 8), SeededWeights.Uniform(SeededWeights.DefaultSeed, "transfers.image", 192));

    [TestCase(DType.F32)]
    [TestCase(DType.BF16)]
    public void AWarmDecodeToPixelsIsOneUploadOneDownloadAndOneWait(DType storage)
    {
        var (backend, vae) = Create(storage);
        using (vae)
        {
            var options = new DecodeOptions { Output = DecodeOutput.UInt8Tensor, Tiling = TilingMode.None };
            using (vae.Decode(Latents(), options)) { }   // the first call uploads the weights
            var before = backend.Transfers;
            using var second = vae.Decode(Latents(), options);
            Assert.That(backend.Transfers - before, Is.EqualTo(OneEachWay), $"{storage.ShortName()} decode to pixels");
            Assert.That(second.UInt8Tensor.Data.Any(b => b != 0), "the pixels came back");
        }
    }

    [TestCase(DType.F32)]
    public void AWarmEncodeIsOneUploadOneDownloadAndOneWait(DType storage)
    {
        var (backend, vae) = Create(storage);
        using (vae)
        {
            var options = new EncodeOptions { Tiling = TilingMode.None };
            var first = vae.Encode(Images(), options);
            var before = backend.Transfers;
            var second = vae.Encode(Images(), options);
            Assert.That(backend.Transfers - before, Is.EqualTo(OneEachWay), $"{storage.ShortName()} encode");
            Assert.That(second.Data, Is.EqualTo(first.Data), "the same latents");
        }
    }

    /// <summary>Exact tiles of 8 elements over the decode's 12 x 10 latents: every layer has 2 or more strips.</summary>
    private const int ExactTile = 8;

    [Test]
    public void AWarmExactTiledDecodeCopiesStripsThroughThePinnedSpaceAndWaitsOnlyForGroupNormStatistics()
    {
        var (backend, vae) = Create(DType.F32);
        using (vae)
        {
            var latents = new HostTensor<float>(TensorShape.Nchw(1, 4, 12, 10),
                SeededWeights.Uniform(SeededWeights.DefaultSeed, "transfers.exact.latent", 4 * 12 * 10));
            var options = new DecodeOptions { Output = DecodeOutput.FloatTensor, Tiling = TilingMode.Exact, TileSize = ExactTile };
            using var whole = vae.Decode(latents, options with { Tiling = TilingMode.None });
            using (vae.Decode(latents, options)) { }   // the first call reads the GroupNorms' gammas and betas once
            var before = backend.Transfers;
            using var tiled = vae.Decode(latents, options);
            var call = backend.Transfers - before;
            NumericAssert.Close(tiled.FloatTensor!.Data, whole.FloatTensor!.Data, whole.FloatTensor.Shape, 1e-4, 0, "exact-tiled decode");

            var convolutions = vae.Figures(latents.Shape, encode: false).Convolutions;
            int tileCalls = convolutions.Sum(c => TilePlanner.Strips(c.OutputHeight, c.OutputWidth, ExactTile).Count);
            TestContext.Out.WriteLine($"{convolutions.Count} conv layers, {tileCalls} conv tiles: {call}");
            Assert.That(tileCalls, Is.GreaterThanOrEqualTo(2 * convolutions.Count), "every layer has two strips or more");
            // Each GroupNorm stages its folded scale and shift: two uploads.
            int groupNorms = (int)call.HostToDevice / 2;
            Assert.That(call.Synchronizations, Is.EqualTo(groupNorms + 1),
                $"host waits: one per GroupNorm ({groupNorms}), for the tile statistics it folds, and one for the output; none per strip");
            Assert.That(call.DeviceToHost, Is.Zero, "nothing downloaded through staging: outputs go straight to the pinned space");
            Assert.That(call.HostToDevice, Is.LessThanOrEqualTo(2 * convolutions.Count), "through staging only the folded norms' scale and shift");
            Assert.That(call.FromPinnedBytes, Is.GreaterThan(latents.Data.Length * sizeof(float)), "strips went to the device straight from the pinned space");
            Assert.That(call.ToPinnedBytes, Is.GreaterThanOrEqualTo(whole.FloatTensor.Data.Length * sizeof(float)), "and came back into it");
        }
    }

    [Test]
    public void KernelsAndCopiesQueueOnTheBackendsOwnStream()
    {
        var (backend, vae) = Create(DType.F32);
        vae.Dispose();
        Assert.That(backend.Stream, Is.Not.SameAs(backend.Accelerator.DefaultStream));
    }
}
