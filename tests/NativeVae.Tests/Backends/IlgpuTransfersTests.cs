using NativeVae.Backends.Ilgpu;
using NativeVae.Core;
using NativeVae.Models.AutoencoderKl;
using NativeVae.Tests.Support;
using NativeVae.Weights;

namespace NativeVae.Tests.Backends;

/// <summary>
/// A call is device-resident (issue 27): on the ILGPU backend a warm decode to pixels is one upload (the latents),
/// one download (the pixels, with the count of non-finite values in the same copy) and one host wait, and a warm
/// encode one upload, one download and one wait; every kernel and copy is queued on the backend's own stream, not
/// the legacy NULL stream. Counted on ILGPU's CPU accelerator, which runs the same backend code as CUDA.
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
        return (backend, new Vae(model, new VaeOptions(), config.ScalingFactor, config.ShiftFactor, ownsBackend: false));
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

    [Test]
    public void KernelsAndCopiesQueueOnTheBackendsOwnStream()
    {
        var (backend, vae) = Create(DType.F32);
        vae.Dispose();
        Assert.That(backend.Stream, Is.Not.SameAs(backend.Accelerator.DefaultStream));
    }
}
