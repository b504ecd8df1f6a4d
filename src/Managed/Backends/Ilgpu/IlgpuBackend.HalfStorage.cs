using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;
using NativeVae.Core;
using NativeVae.Kernels;
using NativeVae.Kernels.Gpu;

namespace NativeVae.Backends.Ilgpu;

// The backend's 16-bit storage (bf16 or fp16): tensors NHWC with padded channels (IlgpuTensor), convolutions on
// tensor cores (Conv2dTensorCoreGpu), GroupNorm, the RMS norm and elementwise ops in 16-bit NHWC kernels, arithmetic and
// statistics in fp32. An op with any 16-bit operand runs here; its F32 operands (an image, or a tile the tiled
// executor uploaded) are converted first. Attention runs on tensor cores too (AttentionTensorCoreGpu) up to 512 stored
// channels. Wider attention, channel slices, the folded ChannelAffine and the exact-tiling statistics have no 16-bit
// kernel yet: they run the fp32 kernel between layout conversions.
internal sealed partial class IlgpuBackend
{
    private HalfKernels? _half;

    /// <summary>The 16-bit kernels, loaded on first use: an fp32 backend never compiles them.</summary>
    private HalfKernels Half => _half ??= new HalfKernels(_accelerator, _stream, _groupNorm);

    private sealed class HalfKernels(Accelerator accelerator, AcceleratorStream stream, GroupNormLauncher merge)
    {
        public readonly Conv2dTensorCoreLauncher Conv = new(accelerator, stream);
        public readonly GroupNormNhwcLauncher Norm = new(accelerator, stream, merge);
        public readonly ElementwiseHalfLauncher Elementwise = new(accelerator, stream);
        public readonly RmsNormHalfLauncher RmsNorm = new(accelerator, stream);
        public readonly AttentionTensorCoreLauncher Attention = new(accelerator, stream);
    }

    /// <summary>
    /// <see cref="IBackend.ActivationDType"/> for this layout: only 4-D feature maps are stored in 16 bits (NHWC);
    /// images and everything else an op returns (statistics [N, G, 2], say) stay F32.
    /// </summary>
    public DType ActivationDType(TensorShape shape) => StoredAs(shape, StorageDType);

    /// <summary>How an op whose 16-bit format is <paramref name="half"/> stores a result of <paramref name="shape"/>.</summary>
    private static DType StoredAs(TensorShape shape, DType half) =>
        shape.Rank == 4 && shape.C != IBackend.ImageChannels ? half : DType.F32;

    private static void RequireStorage(DType storage)
    {
        if (storage is not (DType.F32 or DType.BF16 or DType.F16))
            throw new NotSupportedException($"dtype {storage.ShortName()}: ILGPU stores fp32, bf16 or fp16");
    }

    /// <summary>The 16-bit dtype among an op's operands, or F32 when all are F32; two different 16-bit dtypes are refused.</summary>
    private static DType HalfOf(string op, params IlgpuTensor?[] operands)
    {
        var half = DType.F32;
        foreach (var t in operands)
        {
            if (t is null || !t.IsHalf) continue;
            if (half != DType.F32 && t.DType != half)
                throw new NotSupportedException($"{op}: operands mix {half.ShortName()} and {t.DType.ShortName()}");
            half = t.DType;
        }
        return half;
    }

    private static bool IsBf16(DType half) => half == DType.BF16;

    private void UploadHalf(IlgpuTensor tensor, ReadOnlySpan<float> data)
    {
        var s = tensor.Shape;
        var nhwc = IsBf16(tensor.DType)
            ? NhwcPacking.ToNhwc<Bf16Format>(data, s.N, s.C, s.H, s.W)
            : NhwcPacking.ToNhwc<F16Format>(data, s.N, s.C, s.H, s.W);
        CopyIn(tensor.Bytes, MemoryMarshal.AsBytes(nhwc.AsSpan()));
    }

    private void DownloadHalf(IlgpuTensor tensor, Span<float> destination)
    {
        var s = tensor.Shape;
        var nhwc = new ushort[tensor.Halves.Length];
        CopyOut(tensor.Bytes, nhwc.AsSpan());
        var nchw = IsBf16(tensor.DType)
            ? NhwcPacking.FromNhwc<Bf16Format>(nhwc, s.N, s.C, s.H, s.W)
            : NhwcPacking.FromNhwc<F16Format>(nhwc, s.N, s.C, s.H, s.W);
        nchw.CopyTo(destination);
    }

    /// <summary>A new 16-bit copy of an F32 tensor.</summary>
    private IlgpuTensor ToHalf(IlgpuTensor x, DType half)
    {
        var y = (IlgpuTensor)Allocate(x.Shape, half);
        Half.Elementwise.FromNchw(IsBf16(half), y.Layout, x.F32, y.Words);
        return y;
    }

    /// <summary>A 16-bit operand as it is, or an F32 one as a 16-bit copy that <paramref name="temps"/> frees.</summary>
    private IlgpuTensor AsHalf(IlgpuTensor t, DType half, TempTensors temps) => t.IsHalf ? t : temps.Add(ToHalf(t, half));

    /// <summary>A new F32 copy of a 16-bit tensor.</summary>
    private IlgpuTensor ToSingle(IlgpuTensor x)
    {
        var y = (IlgpuTensor)Allocate(x.Shape);
        Half.Elementwise.ToNchw(IsBf16(x.DType), x.Layout, x.Halves, y.F32);
        return y;
    }

    /// <summary>
    /// An op's result in the dtype its shape is stored in (<see cref="IBackend.ActivationDType"/>): <paramref name="y"/>
    /// itself, or a converted copy (then <paramref name="y"/> is disposed).
    /// </summary>
    private IlgpuTensor AsStored(IlgpuTensor y, DType half)
    {
        var stored = StoredAs(y.Shape, half);
        if (y.DType == stored) return y;
        using (y)
            return stored == DType.F32 ? ToSingle(y) : ToHalf(y, stored);
    }

    /// <summary>
    /// Runs an fp32 op on F32 copies of the 16-bit operands and stores its result in 16 bits: the ops with no 16-bit
    /// kernel yet.
    /// </summary>
    private IlgpuTensor ViaSingle(DType half, IlgpuTensor[] operands, Func<IlgpuTensor[], Tensor> op)
    {
        using var temps = new TempTensors();
        var singles = operands.Select(t => t.IsHalf ? temps.Add(ToSingle(t)) : t).ToArray();
        return AsStored((IlgpuTensor)op(singles), half);
    }

    /// <summary>
    /// Exact tiling's conv region. Asked for device moments, a 16-bit conv whose output is stored in 16 bits gets them
    /// from the tensor-core epilogue (each M tile's (count, mean, M2) per channel, merged per channel on the device):
    /// no statistics pass reads the tile again. Everything else runs the plain ops (<see cref="ConvRegions.Unfused"/>).
    /// </summary>
    public ConvOutput Conv2dRegion(Tensor input, FoldedNorm? norm, Tensor weight, Tensor? bias, Conv2dSpec spec, Tensor? residual,
        ConvMoments moments)
    {
        // A ReLU after the conv would leave the epilogue's moments not the output's.
        if (moments != ConvMoments.Device || spec.Relu) return ConvRegions.Unfused(this, input, norm, weight, bias, spec, residual, moments);
        return ConvRegions.AfterAffine(this, input, norm, normed =>
        {
            var (x, w, b, r, outShape, half) = ConvOperands(normed, weight, bias, spec, residual);
            if (half == DType.F32 || StoredAs(outShape, half) == DType.F32) return new ConvOutput(Conv2d(x, w, b, spec, r), null);
            var y = Conv2dHalf(half, x, w, b, spec, r, outShape, withStatistics: true, out var statistics);
            return new ConvOutput(y, null, statistics);
        });
    }

    /// <param name="statistics">with <paramref name="withStatistics"/>, the output's (mean, M2) per channel [N, C, 2] from the epilogue.</param>
    private IlgpuTensor Conv2dHalf(DType half, IlgpuTensor x, IlgpuTensor w, IlgpuTensor? b, Conv2dSpec spec, IlgpuTensor? r,
        TensorShape outShape, bool withStatistics, out IlgpuTensor? statistics)
    {
        statistics = null;
        using var temps = new TempTensors();
        var xh = AsHalf(x, half, temps);
        var wh = AsHalf(w, half, temps);
        var rh = r is null ? null : AsHalf(r, half, temps);
        // An image-shaped output is written as fp32 by the epilogue itself, unless a residual needs the 16-bit store.
        bool single = StoredAs(outShape, half) == DType.F32 && rh is null;
        var y = (IlgpuTensor)Allocate(outShape, single ? DType.F32 : half);
        var p = KernelParameters.Conv2d(x, w, spec, outShape, b is not null, rh is not null);
        p.InChannels = NhwcPacking.PaddedChannels(x.Shape.C);
        p.OutChannels = NhwcPacking.PaddedChannels(outShape.C);
        p.WeightRows = outShape.C;
        p.OutputF32 = single ? 1 : 0;
        var output = y.Bytes.Cast<uint>();
        IlgpuTensor? tileMoments = null;
        int tiles = Conv2dTensorCoreGeometry.TilesPerImage(p);
        if (withStatistics)
        {
            p.HasMoments = 1;
            tileMoments = temps.Add((IlgpuTensor)Allocate(new TensorShape(checked(outShape.N * tiles * p.OutChannels * Conv2dTensorCoreGpu.MomentsPerChannel))));
        }
        // Absent bias, residual and moments: any valid view, the flags keep the kernel from reading them.
        Half.Conv.Run(IsBf16(half), p, xh.Words, wh.Words, b?.F32 ?? y.Bytes.Cast<float>(), rh?.Words ?? output, output,
            tileMoments?.F32 ?? y.Bytes.Cast<float>());
        if (tileMoments is not null)
        {
            statistics = (IlgpuTensor)Allocate(new TensorShape(outShape.N, outShape.C, 2));
            _groupNorm.MergeTileMoments(new TileMomentsParams
            {
                Batch = outShape.N,
                Tiles = tiles,
                ChannelStride = p.OutChannels,
                Groups = outShape.C,
                ChannelsPerGroup = 1,
                StatsAsMoments = 1,
            }, tileMoments.F32, statistics.F32);
        }
        return AsStored(y, half);
    }

    private IlgpuTensor GroupNormHalf(DType half, IlgpuTensor x, IlgpuTensor gamma, IlgpuTensor beta, int groups, float eps,
        bool fuseSilu, out IlgpuTensor stats)
    {
        using var temps = new TempTensors();
        var xh = AsHalf(x, half, temps);
        var layout = xh.Layout;
        var p = new GroupNormNhwcParams
        {
            Batch = layout.Batch,
            Pixels = layout.Pixels,
            ChannelStride = layout.ChannelStride,
            Channels = layout.Channels,
            Groups = groups,
            PixelsPerTile = GroupNormNhwcGpu.DefaultPixelsPerTile,
            Eps = eps,
            FuseSilu = fuseSilu ? 1 : 0,
        };
        var moments = temps.Add((IlgpuTensor)Allocate(new TensorShape(checked((int)GroupNormNhwcLauncher.MomentsLength(p)))));
        stats = (IlgpuTensor)Allocate(new TensorShape(x.Shape.N, groups, 2));
        var y = (IlgpuTensor)Allocate(x.Shape, half);
        Half.Norm.Statistics(IsBf16(half), p, xh.Halves, moments.F32, stats.F32);
        Half.Norm.Normalize(IsBf16(half), p, xh.Words, gamma.F32, beta.F32, stats.F32, y.Words);
        return AsStored(y, half);
    }

    /// <summary>The channel RMS norm over 16-bit NHWC: one pass per pixel over its contiguous channels.</summary>
    private IlgpuTensor RmsNormHalf(DType half, IlgpuTensor x, IlgpuTensor gamma, bool fuseSilu)
    {
        var y = (IlgpuTensor)Allocate(x.Shape, half);
        Half.RmsNorm.Run(IsBf16(half), KernelParameters.RmsNorm(x, fuseSilu), x.Layout, x.Words, gamma.F32, y.Words);
        return AsStored(y, half);
    }

    /// <summary>Attention over 16-bit NHWC on tensor cores; wider than the kernel holds, the fp32 kernel between conversions.</summary>
    private IlgpuTensor AttentionHalf(DType half, IlgpuTensor q, IlgpuTensor k, IlgpuTensor v, float scale)
    {
        if (!AttentionTensorCoreLauncher.Fits(q.Layout))
            return ViaSingle(half, [q, k, v], t => Attention(t[0], t[1], t[2], scale));
        using var temps = new TempTensors();
        var qh = AsHalf(q, half, temps);
        var kh = AsHalf(k, half, temps);
        var vh = AsHalf(v, half, temps);
        var y = (IlgpuTensor)Allocate(q.Shape, half);
        Half.Attention.Run(IsBf16(half), qh.Layout, scale, qh.Words, kh.Words, vh.Words, y.Words);
        return AsStored(y, half);
    }

    /// <summary>Unary, add and scale-shift over 16-bit NHWC: <paramref name="run"/> gets the layout and the output's words.</summary>
    private IlgpuTensor ElementwiseHalf(DType half, IlgpuTensor[] operands, Action<bool, HalfLayout, IlgpuTensor[], ArrayView<uint>> run)
    {
        using var temps = new TempTensors();
        var halves = operands.Select(t => AsHalf(t, half, temps)).ToArray();
        var y = (IlgpuTensor)Allocate(operands[0].Shape, half);
        run(IsBf16(half), y.Layout, halves, y.Words);
        return AsStored(y, half);
    }

    /// <summary>Tensors an op made for itself, disposed when it returns.</summary>
    private sealed class TempTensors : IDisposable
    {
        private readonly List<IlgpuTensor> _tensors = [];

        public IlgpuTensor Add(IlgpuTensor t)
        {
            _tensors.Add(t);
            return t;
        }

        public void Dispose()
        {
            foreach (var t in _tensors) t.Dispose();
        }
    }
}
