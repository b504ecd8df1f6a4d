using NativeVae.Backends;
using NativeVae.Models.Taesd;
using NativeVae.Weights;

namespace NativeVae.Tests.Models;

/// <summary>
/// The TAESD family's untiled live set, on the dry run (which allocates nothing): a block frees each intermediate as
/// soon as the next is made, so at full resolution at most three 64-channel tensors are live (the block's input for
/// its skip, the current activation and the one being made).
/// </summary>
public class TaesdLiveSetTests
{
    /// <summary>Full-resolution 64-channel tensors live at once at the peak: the skip input, the activation, the next one.</summary>
    private const int FullResolutionTensorsAtPeak = 3;

    /// <summary>Room for everything smaller (weights, the input, lower-resolution tensors), in full-resolution tensors.</summary>
    private const double Headroom = 0.5;

    [TestCase(true)]
    [TestCase(false)]
    public void Taef2KeepsAtMostThreeFullResolutionActivationsLive(bool encode)
    {
        const int imageSide = 256;
        var config = TaesdConfig.Taef2;
        using var dry = new DryRunBackend();
        using var model = new TaesdModel(dry, config, InMemoryWeights.Seeded(SeededWeights.DefaultSeed, TaesdParameters.Enumerate(config)));
        var input = encode
            ? TensorShape.Nchw(1, 3, imageSide, imageSide)
            : TensorShape.Nchw(1, config.LatentChannels, imageSide / model.DownsampleFactor, imageSide / model.DownsampleFactor);
        dry.ResetCounters();
        long weights = dry.PeakBytes;
        using (var x = dry.Allocate(input))
        using (encode ? model.Encode(dry, x) : model.Decode(dry, x)) { }
        long fullResolution = (long)config.Channels * imageSide * imageSide * sizeof(float);
        Assert.That(dry.PeakBytes, Is.LessThanOrEqualTo((long)((FullResolutionTensorsAtPeak + Headroom) * fullResolution) + weights),
            $"peak {dry.PeakBytes >> 20} MiB against {fullResolution >> 20} MiB per full-resolution activation");
    }
}
