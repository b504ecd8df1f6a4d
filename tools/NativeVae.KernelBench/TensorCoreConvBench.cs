using ILGPU;
using ILGPU.Runtime;
using NativeVae.Core;
using NativeVae.Kernels;
using NativeVae.Kernels.Gpu;

namespace NativeVae.KernelBench;

/// <summary>
/// The tensor-core conv (<see cref="Conv2dTensorCoreGpu"/>) in bf16 and fp16 on the SD VAE's conv shapes, plus
/// the two shapes the tensor-core issue holds to 300 TFLOP/s (512 channels at 128 x 128, 128 channels at
/// 1024 x 1024). Inputs are filled with one finite 16-bit pattern per element: speed, not values. Rates count
/// the direct conv's FLOPs, also for the sub-pixel phases (which do 4/9 of the multiplies), so rows compare.
/// One JSON line per case follows the table row (prefix "json ").
/// </summary>
internal static class TensorCoreConvBench
{
    /// <summary>Byte pattern of every input and weight element: 0x3C3C is 1.06 in fp16 and 0.0115 in bf16.</summary>
    private const byte FillByte = 0x3C;
    private const int BytesPerHalf = 2;

    private sealed record Shape(string Name, int InChannels, int OutChannels, int Size, int Kernel, Conv2dSpec Spec,
        bool SubPixel = false, bool Moments = false);

    private static IEnumerable<Shape> Shapes(double spatialScale, double channelScale)
    {
        int S(int size) => Math.Max(4, (int)Math.Round(size * spatialScale) / 2 * 2);
        int C(int channels) => Math.Max(Conv2dTensorCoreGpu.ChannelAlignment,
            (int)Math.Round(channels * channelScale) / Conv2dTensorCoreGpu.ChannelAlignment * Conv2dTensorCoreGpu.ChannelAlignment);
        yield return new("conv 3x3", C(512), C(512), S(128), 3, Conv2dSpec.Same);
        yield return new("conv 3x3", C(128), C(128), S(1024), 3, Conv2dSpec.Same);
        yield return new("conv 3x3 + moments", C(512), C(512), S(128), 3, Conv2dSpec.Same, Moments: true);
        yield return new("conv 3x3", C(128), C(128), S(512), 3, Conv2dSpec.Same);
        yield return new("conv 3x3", C(256), C(256), S(256), 3, Conv2dSpec.Same);
        yield return new("conv 3x3", C(512), C(512), S(64), 3, Conv2dSpec.Same);
        yield return new("downsample 3x3 s2", C(128), C(128), S(512), 3, Conv2dSpec.DownsampleAsymmetric);
        yield return new("upsample2x + 3x3 fused", C(512), C(512), S(64), 3, Conv2dSpec.UpsampleSame);
        yield return new("upsample2x + 3x3 sub-pixel", C(512), C(512), S(64), 3, Conv2dSpec.UpsampleSame, SubPixel: true);
        yield return new("upsample2x + 3x3 sub-pixel", C(256), C(256), S(256), 3, Conv2dSpec.UpsampleSame, SubPixel: true);
        yield return new("conv 1x1", C(512), C(512), S(64), 1, Conv2dSpec.Pointwise);
    }

    public static void Run(Accelerator accelerator, double spatialScale, double channelScale, int runs)
    {
        var launcher = new Conv2dTensorCoreLauncher(accelerator, accelerator.DefaultStream);
        Console.WriteLine();
        Console.WriteLine($"{"tensor-core conv",-58} {"format",-6} {"median ms",10} {"rate",16}");
        foreach (var shape in Shapes(spatialScale, channelScale))
        foreach (bool bf16 in new[] { true, false })
            Time(accelerator, launcher, shape, bf16, runs);
    }

    private static void Time(Accelerator accelerator, Conv2dTensorCoreLauncher launcher, Shape s, bool bf16, int runs)
    {
        int outSize = s.Spec.OutputHeight(s.Size, s.Kernel);
        var p = new Conv2dParams
        {
            Batch = 1,
            InChannels = s.InChannels,
            InHeight = s.Size,
            InWidth = s.Size,
            OutChannels = s.OutChannels,
            OutHeight = outSize,
            OutWidth = outSize,
            Kernel = s.Kernel,
            Stride = s.Spec.Stride,
            PadTop = s.Spec.PadTop,
            PadLeft = s.Spec.PadLeft,
            Upsample2x = s.Spec.Upsample2x ? 1 : 0,
            HasBias = 1,
            HasMoments = s.Moments ? 1 : 0,
            SubPixel = s.SubPixel ? 1 : 0,
        };
        int phases = Conv2dTensorCoreGeometry.Phases(p);
        long weightHalves = (long)phases * s.OutChannels * (s.SubPixel ? 4 : s.Kernel * s.Kernel) * s.InChannels;
        long inputHalves = (long)s.Size * s.Size * s.InChannels;
        long outputHalves = (long)outSize * outSize * s.OutChannels;
        long momentValues = (long)Conv2dTensorCoreGeometry.TilesPerImage(p) * s.OutChannels * Conv2dTensorCoreGpu.MomentsPerChannel;
        using var input = accelerator.Allocate1D<uint>(inputHalves / 2);
        using var weight = accelerator.Allocate1D<uint>(weightHalves / 2);
        using var bias = accelerator.Allocate1D<float>(s.OutChannels);
        using var output = accelerator.Allocate1D<uint>(outputHalves / 2);
        using var moments = accelerator.Allocate1D<float>(Math.Max(1, momentValues));
        input.View.MemSet(FillByte);
        weight.View.MemSet(FillByte);
        bias.View.MemSetToZero();

        void Launch() => launcher.Run(bf16, p, input.View, weight.View, bias.View, output.View, output.View, moments.View);
        double ms = KernelTiming.MedianMilliseconds(accelerator, Launch, runs);
        double flops = 2.0 * s.OutChannels * outSize * outSize * s.InChannels * s.Kernel * s.Kernel;
        KernelTiming.Report($"{s.Name} {s.InChannels}->{s.OutChannels} {s.Size}x{s.Size}->{outSize}x{outSize}", bf16 ? "bf16" : "fp16", ms, flops);
    }
}
