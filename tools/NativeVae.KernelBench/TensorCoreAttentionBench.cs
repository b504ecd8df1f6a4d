using ILGPU;
using ILGPU.Runtime;
using NativeVae.Kernels.Gpu;

namespace NativeVae.KernelBench;

/// <summary>
/// The tensor-core attention (<see cref="AttentionTensorCoreGpu"/>) in bf16 and fp16 at the token counts the CUDA
/// issue compares with PyTorch's scaled_dot_product_attention: 4k, 16k and 64k tokens (a 512, 1024 and 2048 image's
/// mid-block) at C = 512, one head. Q, K and V hold one finite 16-bit pattern: speed, not values. The rate counts
/// 4 N^2 C FLOPs (two products). One JSON line per case follows the table row (prefix "json ").
/// </summary>
internal static class TensorCoreAttentionBench
{
    /// <summary>0x3C3C is 1.06 in fp16 and 0.0115 in bf16 for every element.</summary>
    private const byte FillByte = 0x3C;
    private const int Channels = 512;
    private static readonly int[] TokenCounts = [4096, 16384, 65536];

    public static void Run(Accelerator accelerator, double spatialScale, double channelScale, int runs)
    {
        var launcher = new AttentionTensorCoreLauncher(accelerator, accelerator.DefaultStream);
        Console.WriteLine();
        Console.WriteLine($"{"tensor-core attention",-58} {"format",-6} {"median ms",10} {"rate",16}");
        int channels = Math.Max(Conv2dTensorCoreGpu.ChannelAlignment,
            (int)Math.Round(Channels * channelScale) / Conv2dTensorCoreGpu.ChannelAlignment * Conv2dTensorCoreGpu.ChannelAlignment);
        foreach (int fullTokens in TokenCounts)
        foreach (bool bf16 in new[] { true, false })
            Time(accelerator, launcher, Math.Max(1, (int)Math.Round(fullTokens * spatialScale)), channels, bf16, runs);
    }

    private static void Time(Accelerator accelerator, AttentionTensorCoreLauncher launcher, int tokens, int channels,
        bool bf16, int runs)
    {
        var layout = new HalfLayout { Batch = 1, Pixels = tokens, Channels = channels, ChannelStride = channels };
        using var q = accelerator.Allocate1D<uint>(layout.Words);
        using var k = accelerator.Allocate1D<uint>(layout.Words);
        using var v = accelerator.Allocate1D<uint>(layout.Words);
        using var output = accelerator.Allocate1D<uint>(layout.Words);
        foreach (var buffer in new[] { q, k, v }) buffer.View.MemSet(FillByte);
        float scale = 1 / MathF.Sqrt(channels);

        void Launch() => launcher.Run(bf16, layout, scale, q.View, k.View, v.View, output.View);
        double ms = KernelTiming.MedianMilliseconds(accelerator, Launch, runs);
        double flops = 4.0 * tokens * (double)tokens * channels;
        KernelTiming.Report($"attention N={tokens} C={channels}", bf16 ? "bf16" : "fp16", ms, flops);
    }
}
