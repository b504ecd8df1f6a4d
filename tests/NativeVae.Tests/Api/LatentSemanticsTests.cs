using NativeVae.Api;
using NativeVae.Weights;
using NativeVae.Loading;

namespace NativeVae.Tests.Api;

/// <summary>The remote protocol's latent rules (../shared/reference/README.md), parameter by parameter.</summary>
public class LatentSemanticsTests
{
    [TestCase(null, null, 2.0f)]
    [TestCase(0.5f, null, 1.0f)]
    [TestCase(null, 0.25f, 1.75f)]
    [TestCase(0.3611f, 0.1159f, (2.0f - 0.1159f) * 0.3611f)]
    public void EncodeAppliesShiftThenScaleOnlyWhenGiven(float? scale, float? shift, float expected)
    {
        var z = new[] { 2.0f };
        LatentScaling.AfterEncode(z, scale, shift);
        Assert.That(z[0], Is.EqualTo(expected).Within(1e-6f), "on host values (sampled latents)");
        Assert.That(Apply(LatentScaling.EncodeAffine(scale, shift), 2.0f), Is.EqualTo(expected).Within(1e-6f), "as the backend's affine");
        Assert.That(LatentScaling.EncodeAffine(scale, shift).HasValue, Is.EqualTo(scale is not null || shift is not null), "no op without factors");
    }

    private static float Apply((float Scale, float Shift)? affine, float x) => affine is { } a ? x * a.Scale + a.Shift : x;

    [TestCase(null, null, 2.0f)]
    [TestCase(0.5f, null, 4.0f)]
    [TestCase(null, 0.25f, 2.25f)]
    [TestCase(0.3611f, 0.1159f, 2.0f / 0.3611f + 0.1159f)]
    public void DecodeDividesThenShiftsOnlyWhenGiven(float? scale, float? shift, float expected)
    {
        Assert.That(Apply(LatentScaling.DecodeAffine(scale, shift), 2.0f), Is.EqualTo(expected).Within(1e-5f));
        Assert.That(LatentScaling.DecodeAffine(scale, shift).HasValue, Is.EqualTo(scale is not null || shift is not null), "no op without factors");
    }

    [Test]
    public void DecodeRefusesZeroAndNonFiniteFactors()
    {
        Assert.That(() => LatentScaling.DecodeAffine(0f, null),
            Throws.ArgumentException.With.Message.Contains("scaling_factor"));
        Assert.That(() => LatentScaling.AfterEncode(new float[1], float.NaN, null),
            Throws.ArgumentException.With.Message.Contains("scaling_factor"));
        Assert.That(() => LatentScaling.EncodeAffine(float.NaN, null),
            Throws.ArgumentException.With.Message.Contains("scaling_factor"));
        Assert.That(() => LatentScaling.DecodeAffine(1f, float.PositiveInfinity),
            Throws.ArgumentException.With.Message.Contains("shift_factor"));
    }

    [Test]
    public void UnpackFollowsThePublishedIndexRule()
    {
        // height 48, width 32 pixels -> h = 2*(48//16) = 6, w = 2*(32//16) = 4; 16 channels, seq = 3*2.
        const int batch = 2, channels = 16, height = 48, width = 32, h = 6, w = 4;
        var packed = new HostTensor<float>(new TensorShape(batch, (h / 2) * (w / 2), channels * 4),
            SeededWeights.Uniform(1, "packed", batch * 6 * 64));
        var unpacked = FluxLatentPacking.Unpack(packed, height, width);
        Assert.That(unpacked.Shape, Is.EqualTo(TensorShape.Nchw(batch, channels, h, w)));
        for (int b = 0; b < batch; b++)
        for (int c = 0; c < channels; c++)
        for (int i = 0; i < h / 2; i++)
        for (int j = 0; j < w / 2; j++)
        for (int di = 0; di < 2; di++)
        for (int dj = 0; dj < 2; dj++)
        {
            float expected = packed.Data[(b * 6 + i * (w / 2) + j) * 64 + c * 4 + di * 2 + dj];
            float actual = unpacked.Data[((b * channels + c) * h + 2 * i + di) * w + 2 * j + dj];
            Assert.That(actual, Is.EqualTo(expected), $"b={b} c={c} i={i} j={j} di={di} dj={dj}");
        }
        Assert.That(FluxLatentPacking.Pack(unpacked).Data, Is.EqualTo(packed.Data));
    }

    [Test]
    public void UnpackNeedsHeightAndWidthAndAConsistentSequence()
    {
        var packed = new HostTensor<float>(new TensorShape(1, 4, 64));
        Assert.That(() => FluxLatentPacking.Unpack(packed, null, null),
            Throws.ArgumentException.With.Message.EqualTo("`height` and `width` required for packed latents."));
        Assert.That(() => FluxLatentPacking.Unpack(packed, 64, 64),
            Throws.ArgumentException.With.Message.Contains("hold 4 patches"));
        Assert.That(FluxLatentPacking.Unpack(packed, 32, 47).Shape, Is.EqualTo(TensorShape.Nchw(1, 16, 4, 4)));
    }

    [Test]
    public void ModeIsTheMeanAndSamplesFollowTheVariance()
    {
        const int plane = 64 * 64;
        var moments = new HostTensor<float>(TensorShape.Nchw(1, 2, 64, 64));
        Array.Fill(moments.Data, 0.5f, 0, plane);                 // mean 0.5
        Array.Fill(moments.Data, MathF.Log(4f), plane, plane);    // variance 4, std 2
        var mode = LatentDistribution.Mode(moments);
        Assert.That(mode.Shape, Is.EqualTo(TensorShape.Nchw(1, 1, 64, 64)));
        Assert.That(mode.Data, Is.All.EqualTo(0.5f));

        var sample = LatentDistribution.Sample(moments, seed: 7);
        double mean = sample.Data.Average();
        double std = Math.Sqrt(sample.Data.Average(v => (v - mean) * (v - mean)));
        Assert.That(mean, Is.EqualTo(0.5).Within(0.1), "sample mean");
        Assert.That(std, Is.EqualTo(2.0).Within(0.1), "sample std");
        Assert.That(LatentDistribution.Sample(moments, seed: 7).Data, Is.EqualTo(sample.Data), "same seed, same sample");
        Assert.That(LatentDistribution.Sample(moments, seed: 8).Data, Is.Not.EqualTo(sample.Data), "another seed");
    }
}
