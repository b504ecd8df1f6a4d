using NativeVae.Backends.Ilgpu;
using NativeVae.Core;
using NativeVae.Weights;
using NativeVae.Loading;

namespace NativeVae.KernelBench;

/// <summary>
/// The SD 1.x / SDXL VAE's heavy layers for a 512 x 512 image (latent 64 x 64), spatial sizes multiplied by a scale.
/// Channel counts may be scaled too (only for the CPU emulator, where barrier-heavy kernels cost seconds per
/// layer at the real channel counts); the labels always show the sizes actually run.
/// </summary>
internal static class SdShapes
{
    private const ulong Seed = 1;
    private const int GroupNormGroups = 32;
    private const float GroupNormEps = 1e-6f;
    private const int BytesPerFloat = sizeof(float);

    public static IReadOnlyList<BenchCase> All(double spatialScale, double channelScale)
    {
        int S(int size) => Math.Max(1, (int)Math.Round(size * spatialScale));
        // Channels stay multiples of the 32 GroupNorm groups.
        int C(int channels) => Math.Max(GroupNormGroups, (int)Math.Round(channels * channelScale));
        return
        [
            Conv("conv 3x3", C(128), C(128), S(512), 3, Conv2dSpec.Same),
            Conv("conv 3x3", C(256), C(256), S(256), 3, Conv2dSpec.Same),
            Conv("conv 3x3", C(512), C(512), S(128), 3, Conv2dSpec.Same),
            Conv("conv 3x3", C(512), C(512), S(64), 3, Conv2dSpec.Same),
            Conv("downsample 3x3 s2", C(128), C(128), S(512), 3, Conv2dSpec.DownsampleAsymmetric),
            Conv("downsample 3x3 s2", C(256), C(256), S(256), 3, Conv2dSpec.DownsampleAsymmetric),
            Conv("downsample 3x3 s2", C(512), C(512), S(128), 3, Conv2dSpec.DownsampleAsymmetric),
            Conv("upsample2x + 3x3", C(512), C(512), S(64), 3, Conv2dSpec.UpsampleSame),
            Conv("upsample2x + 3x3", C(512), C(512), S(128), 3, Conv2dSpec.UpsampleSame),
            Conv("upsample2x + 3x3", C(256), C(256), S(256), 3, Conv2dSpec.UpsampleSame),
            Conv("conv 1x1", C(256), C(128), S(512), 1, Conv2dSpec.Pointwise),
            Conv("conv 1x1", C(512), C(512), S(64), 1, Conv2dSpec.Pointwise),
            GroupNorm(C(128), S(512)),
            GroupNorm(C(256), S(256)),
            GroupNorm(C(512), S(128)),
            GroupNorm(C(512), S(64)),
            Attention(C(512), S(64)),
        ];
    }

    private static BenchCase Conv(string name, int cin, int cout, int size, int kernel, Conv2dSpec spec)
    {
        int outH = spec.OutputHeight(size, kernel);
        int outW = spec.OutputWidth(size, kernel);
        double flops = 2.0 * cout * outH * outW * cin * kernel * kernel;
        var xShape = TensorShape.Nchw(1, cin, size, size);
        var wShape = TensorShape.Nchw(cout, cin, kernel, kernel);
        return new BenchCase("conv2d", $"{name} {cin}->{cout} {size}x{size}->{outH}x{outW}", flops, WorkUnit.Flops, backend =>
        {
            var x = Upload(backend, "x", xShape);
            var w = Upload(backend, "w", wShape);
            var b = Upload(backend, "b", new TensorShape(cout));
            return new PreparedOp(() => backend.Conv2d(x, w, b, spec), x, w, b);
        });
    }

    private static BenchCase GroupNorm(int channels, int size)
    {
        var shape = TensorShape.Nchw(1, channels, size, size);
        // One read of x and one write of y: the floor any GroupNorm must pay (the kernels read x more often).
        double bytes = 2.0 * shape.ElementCount * BytesPerFloat;
        return new BenchCase("group_norm", $"group_norm 32 groups + silu C={channels} {size}x{size}", bytes, WorkUnit.Bytes, backend =>
        {
            var x = Upload(backend, "x", shape);
            var gamma = Upload(backend, "gamma", new TensorShape(channels));
            var beta = Upload(backend, "beta", new TensorShape(channels));
            return new PreparedOp(() => backend.GroupNorm(x, gamma, beta, GroupNormGroups, GroupNormEps, fuseSilu: true), x, gamma, beta);
        });
    }

    private static BenchCase Attention(int channels, int size)
    {
        var shape = TensorShape.Nchw(1, channels, size, size);
        double tokens = (double)size * size;
        // Q^T K and P V: two N x N x C multiply-adds.
        double flops = 4.0 * tokens * tokens * channels;
        return new BenchCase("attention", $"attention C={channels} N={size}x{size}", flops, WorkUnit.Flops, backend =>
        {
            var q = Upload(backend, "q", shape);
            var k = Upload(backend, "k", shape);
            var v = Upload(backend, "v", shape);
            return new PreparedOp(() => backend.Attention(q, k, v, 1f / MathF.Sqrt(channels)), q, k, v);
        });
    }

    private static Tensor Upload(IlgpuBackend backend, string stream, TensorShape shape) =>
        backend.Upload(SeededWeights.Uniform(Seed, stream, shape.ElementCount), shape);
}
