using NativeVae.Backends;
using NativeVae.Models.AutoencoderKl;
using NativeVae.Core;
using NativeVae.Weights;
using NativeVae.Loading;

namespace NativeVae.Tests.Backends;

public class DryRunBackendTests
{
    [Test]
    public void CountsConvolutionAndAttentionFlopsAndPeakBytes()
    {
        using var ops = new DryRunBackend();
        using var x = ops.Allocate(TensorShape.Nchw(2, 3, 7, 5));
        using var w = ops.Allocate(new TensorShape(4, 3, 3, 3));
        using (var y = ops.Conv2d(x, w, null, Conv2dSpec.Same))
        {
            Assert.That(y.Shape, Is.EqualTo(TensorShape.Nchw(2, 4, 7, 5)));
        }
        // 2 flops x (2*4*7*5 outputs) x (3*3*3 taps)
        Assert.That(ops.Flops, Is.EqualTo(2L * (2 * 4 * 7 * 5) * 27));
        // x (2*3*7*5) + w (4*3*3*3) + y (2*4*7*5) floats were live at once.
        Assert.That(ops.PeakBytes, Is.EqualTo(4L * (210 + 108 + 280)));

        ops.ResetCounters();
        using var q = ops.Allocate(TensorShape.Nchw(1, 8, 3, 2));
        using (ops.Attention(q, q, q, 1f)) { }
        Assert.That(ops.Flops, Is.EqualTo(2L * 2 * 1 * 6 * 6 * 8));
    }

    [Test]
    public void StrideTwoAsymmetricPaddingHalvesEvenSizes()
    {
        using var ops = new DryRunBackend();
        using var x = ops.Allocate(TensorShape.Nchw(1, 2, 16, 7));
        using var w = ops.Allocate(new TensorShape(2, 2, 3, 3));
        using var y = ops.Conv2d(x, w, null, Conv2dSpec.DownsampleAsymmetric);
        // diffusers: pad (0, 1, 0, 1) then 3x3 stride 2: 16 -> 8, 7 -> 3.
        Assert.That(y.Shape, Is.EqualTo(TensorShape.Nchw(1, 2, 8, 3)));
    }

    [Test]
    public void SdModelRunsOnShapesAndReleasesEveryActivation()
    {
        using var ops = new DryRunBackend();
        var config = AutoencoderKlConfig.Sd;
        var parameters = AutoencoderKlParameters.Enumerate(config);
        var weights = new InMemoryWeights("zeros");
        foreach (var (name, shape) in parameters) weights.Add(name, shape, new float[shape.ElementCount]);
        using var model = new AutoencoderKlModel(ops, config, weights);
        Assert.That(ops.Memory.LiveBytes, Is.Zero, "each half's weights are uploaded on its first use");
        long encoderBytes = 4L * parameters.Where(p => p.Name.StartsWith("encoder.") || p.Name.StartsWith("quant_conv."))
            .Sum(p => p.Shape.ElementCount);

        using (var image = ops.Allocate(TensorShape.Nchw(1, 3, 64, 48)))
        using (var moments = model.Encode(image))
        {
            Assert.That(moments.Shape, Is.EqualTo(TensorShape.Nchw(1, 8, 8, 6)));
        }
        Assert.That(ops.Memory.LiveBytes, Is.EqualTo(encoderBytes), "the encoder's weights only, every intermediate disposed");
        using (var latent = ops.Allocate(TensorShape.Nchw(1, 4, 8, 6)))
        using (var sample = model.Decode(latent))
        {
            Assert.That(sample.Shape, Is.EqualTo(TensorShape.Nchw(1, 3, 64, 48)));
        }
        long parameterBytes = 4L * 83_653_863;
        Assert.That(ops.Memory.LiveBytes, Is.EqualTo(parameterBytes), "every intermediate was disposed");
        Assert.That(ops.Flops, Is.GreaterThan(0));
    }
}
