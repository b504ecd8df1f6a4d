using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;

namespace NativeVae.Kernels.Gpu;

// Conv2d as an implicit GEMM on tensor cores, 16-bit storage (bf16 or fp16) and fp32 accumulation.
// Layouts: input NHWC [N, H, W, Cin], weight packed K-major [Cout, K * K, Cin], output and residual NHWC
// [N, Ho, Wo, Cout], bias fp32 [Cout]. Channel counts are storage counts, padded to ChannelAlignment with zeros
// (weights and bias included), so that every padded output channel is an exact zero the next conv can read.
// GEMM: M = N * Ho * Wo output pixels, columns = Cout, depth = K * K * Cin ordered (ky, kx, ci), so a run of 16
// depth entries is 16 consecutive channels of one input pixel. A nearest 2x upsample of the input is fused as in
// Conv2dGpu; padding is PadTop/PadLeft, the rest implied by the output size.

internal static class Conv2dTensorCoreGpu
{
    /// <summary>Channel counts (in and out) are multiples of this: one MMA depth step of one pixel.</summary>
    public const int ChannelAlignment = 16;

    public const int BlockM = 128;
    public const int BlockN = 128;
    public const int BlockK = 32;
    public const int GroupSize = 256;

    private const int WarpSize = 32;
    private const int WarpsAlongN = 4;
    private const int WarpRows = 64;
    private const int WarpColumns = 32;
    private const int MmaRows = 16;
    private const int MmaColumns = 8;
    private const int LanesPerGroup = 4;
    /// <summary>A fragment's second row is 8 rows below its first (g and g + 8).</summary>
    private const int LowerRows = MmaRows / 2;

    /// <summary>Two 16-bit elements per word.</summary>
    private const int ElementsPerWord = 2;
    private const int WordsPerStep = BlockK / ElementsPerWord;
    /// <summary>Words between a tile row and the next: 4 words of padding put the 8 rows a fragment load touches on distinct banks.</summary>
    private const int Pitch = WordsPerStep + 4;
    private const int StageWords = BlockM * Pitch;
    /// <summary>Each thread loads half a row of each tile per step: 8 words, 16 consecutive depth entries.</summary>
    private const int LoadWords = WordsPerStep / 2;
    private const int LoadDepth = LoadWords * ElementsPerWord;
    /// <summary>Word offset of the second 16-deep half of a fragment (columns 2t + 8, 2t + 9).</summary>
    private const int HighHalfWords = 4;

    /// <summary>bf16 storage. Launch: grid (ceil(M / 128), ceil(Cout / 128)), group 256.</summary>
    [GpuKernel(ExplicitlyGrouped = true, TensorCores = true)]
    internal static void Bf16(Conv2dParams p, ArrayView<uint> input, ArrayView<uint> weight, ArrayView<float> bias,
        ArrayView<uint> residual, ArrayView<uint> output) =>
        Run(default(Bf16Format), p, input, weight, bias, residual, output);

    /// <summary>fp16 storage. Launch as <see cref="Bf16"/>.</summary>
    [GpuKernel(ExplicitlyGrouped = true, TensorCores = true)]
    internal static void F16(Conv2dParams p, ArrayView<uint> input, ArrayView<uint> weight, ArrayView<float> bias,
        ArrayView<uint> residual, ArrayView<uint> output) =>
        Run(default(F16Format), p, input, weight, bias, residual, output);

    /// <summary>
    /// A 128 x 128 output tile per group of 8 warps, each warp 64 x 32 (4 x 4 MMA tiles). Per depth step the next
    /// step's tiles are loaded into registers while the tensor cores work on this one from shared memory, then
    /// stored into the other half of a double buffer: one barrier per step.
    /// </summary>
    private static void Run<TFormat>(TFormat format, Conv2dParams p, ArrayView<uint> input, ArrayView<uint> weight,
        ArrayView<float> bias, ArrayView<uint> residual, ArrayView<uint> output)
        where TFormat : struct, IHalfFormat
    {
        var aTiles = SharedMemory.Allocate<uint>(2 * StageWords);
        var bTiles = SharedMemory.Allocate<uint>(2 * StageWords);

        int thread = Group.IdxX;
        int warp = thread / WarpSize;
        int lane = thread % WarpSize;
        int m0 = Grid.IdxX * BlockM;
        int n0 = Grid.IdxY * BlockN;
        int pixels = p.OutHeight * p.OutWidth;
        int rows = p.Batch * pixels;
        int taps = p.Kernel * p.Kernel;
        int depth = taps * p.InChannels;
        int steps = DeviceMath.CeilDiv(depth, BlockK);

        // The row (output pixel) and column (output channel) this thread loads are the same every step.
        int loadRow = thread / 2;
        int loadOffset = thread % 2 * LoadDepth;
        var pixel = new PixelWindow(p, m0 + loadRow, rows, pixels);
        int column = n0 + loadRow;
        bool columnValid = column < p.OutChannels;

        var nextA = LoadInput(p, input, pixel, loadOffset, depth);
        var nextB = LoadWeight(weight, column, columnValid, loadOffset, depth);
        nextA.Store(aTiles, loadRow * Pitch + loadOffset / ElementsPerWord);
        nextB.Store(bTiles, loadRow * Pitch + loadOffset / ElementsPerWord);
        Group.Barrier();

        var acc = default(WarpTile);
        int warpRow = warp / WarpsAlongN * WarpRows;
        int warpColumn = warp % WarpsAlongN * WarpColumns;
        int fragmentRow = lane / LanesPerGroup;
        int fragmentWord = lane % LanesPerGroup;
        for (int step = 0; step < steps; step++)
        {
            int stage = step % 2 * StageWords;
            bool more = step + 1 < steps;
            if (more)
            {
                int k = (step + 1) * BlockK + loadOffset;
                nextA = LoadInput(p, input, pixel, k, depth);
                nextB = LoadWeight(weight, column, columnValid, k, depth);
            }

            int aBase = stage + (warpRow + fragmentRow) * Pitch + fragmentWord;
            int bBase = stage + (warpColumn + fragmentRow) * Pitch + fragmentWord;
            acc.Accumulate(format, aTiles, bTiles, aBase, bBase);
            acc.Accumulate(format, aTiles, bTiles, aBase + WordsPerStep / 2, bBase + WordsPerStep / 2);

            if (more)
            {
                int next = (step + 1) % 2 * StageWords + loadRow * Pitch + loadOffset / ElementsPerWord;
                nextA.Store(aTiles, next);
                nextB.Store(bTiles, next);
            }
            Group.Barrier();
        }

        int rowBase = m0 + warpRow + fragmentRow;
        int columnBase = n0 + warpColumn + fragmentWord * 2;
        var epilogue = new Epilogue(p, rows, bias, residual, output);
        epilogue.Store(format, acc.M0, rowBase, columnBase);
        epilogue.Store(format, acc.M1, rowBase + MmaRows, columnBase);
        epilogue.Store(format, acc.M2, rowBase + 2 * MmaRows, columnBase);
        epilogue.Store(format, acc.M3, rowBase + 3 * MmaRows, columnBase);
    }

    /// <summary>16 depth entries of this thread's im2col row from depth <paramref name="k"/>: 16 channels of one input pixel, or zeros.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Words8 LoadInput(Conv2dParams p, ArrayView<uint> input, PixelWindow pixel, int k, int depth)
    {
        var words = default(Words8);
        if (!pixel.Valid || k >= depth) return words;
        int tap = k / p.InChannels;
        int channel = k - tap * p.InChannels;
        int ky = tap / p.Kernel;
        int iy = pixel.Y0 + ky;
        int ix = pixel.X0 + tap - ky * p.Kernel;
        int up = p.Upsample2x;
        if ((uint)iy >= (uint)(p.InHeight << up) || (uint)ix >= (uint)(p.InWidth << up)) return words;
        int element = ((pixel.Batch * p.InHeight + (iy >> up)) * p.InWidth + (ix >> up)) * p.InChannels + channel;
        words.Load(input, element / ElementsPerWord);
        return words;
    }

    /// <summary>16 depth entries of output channel <paramref name="column"/>'s packed weights from depth <paramref name="k"/>, or zeros.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Words8 LoadWeight(ArrayView<uint> weight, int column, bool valid, int k, int depth)
    {
        var words = default(Words8);
        if (valid && k < depth) words.Load(weight, (column * depth + k) / ElementsPerWord);
        return words;
    }

    /// <summary>Where an output pixel's receptive field starts in the (virtual, maybe upsampled) input.</summary>
    private readonly struct PixelWindow
    {
        public readonly bool Valid;
        public readonly int Batch;
        public readonly int Y0;
        public readonly int X0;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public PixelWindow(Conv2dParams p, int row, int rows, int pixels)
        {
            Valid = row < rows;
            int r = Valid ? row : 0;
            Batch = r / pixels;
            int pixel = r - Batch * pixels;
            int oy = pixel / p.OutWidth;
            Y0 = oy * p.Stride - p.PadTop;
            X0 = (pixel - oy * p.OutWidth) * p.Stride - p.PadLeft;
        }
    }

    /// <summary>Eight words in registers: one thread's share of a tile row per step.</summary>
    private struct Words8
    {
        public uint W0, W1, W2, W3, W4, W5, W6, W7;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Load(ArrayView<uint> source, int at)
        {
            W0 = source[at];
            W1 = source[at + 1];
            W2 = source[at + 2];
            W3 = source[at + 3];
            W4 = source[at + 4];
            W5 = source[at + 5];
            W6 = source[at + 6];
            W7 = source[at + 7];
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Store(ArrayView<uint> target, int at)
        {
            target[at] = W0;
            target[at + 1] = W1;
            target[at + 2] = W2;
            target[at + 3] = W3;
            target[at + 4] = W4;
            target[at + 5] = W5;
            target[at + 6] = W6;
            target[at + 7] = W7;
        }
    }

    /// <summary>A lane's accumulators of one 16-row strip of its warp's tile: four 16 x 8 MMA tiles side by side.</summary>
    private struct TileRow
    {
        public MmaAccumulator N0, N1, N2, N3;
    }

    /// <summary>A lane's 64 accumulators of its warp's 64 x 32 tile, named rather than indexed so that they stay in registers.</summary>
    private struct WarpTile
    {
        public TileRow M0, M1, M2, M3;

        /// <summary>One 16-deep MMA step over the warp's tile, with the fragments read from shared memory.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Accumulate<TFormat>(TFormat format, ArrayView<uint> a, ArrayView<uint> b, int aBase, int bBase)
            where TFormat : struct, IHalfFormat
        {
            const int NextTile = MmaColumns * Pitch;
            var b0 = FragmentB(b, bBase);
            var b1 = FragmentB(b, bBase + NextTile);
            var b2 = FragmentB(b, bBase + 2 * NextTile);
            var b3 = FragmentB(b, bBase + 3 * NextTile);
            Row(format, ref M0, FragmentA(a, aBase), b0, b1, b2, b3);
            Row(format, ref M1, FragmentA(a, aBase + MmaRows * Pitch), b0, b1, b2, b3);
            Row(format, ref M2, FragmentA(a, aBase + 2 * MmaRows * Pitch), b0, b1, b2, b3);
            Row(format, ref M3, FragmentA(a, aBase + 3 * MmaRows * Pitch), b0, b1, b2, b3);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Row<TFormat>(TFormat format, ref TileRow row, in MmaFragmentA a,
            in MmaFragmentB b0, in MmaFragmentB b1, in MmaFragmentB b2, in MmaFragmentB b3)
            where TFormat : struct, IHalfFormat
        {
            format.Mma(ref row.N0, a, b0);
            format.Mma(ref row.N1, a, b1);
            format.Mma(ref row.N2, a, b2);
            format.Mma(ref row.N3, a, b3);
        }

        /// <summary><paramref name="at"/> is row g's word t of the tile; row g + 8 is 8 rows down, columns 2t + 8 are 4 words on.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static MmaFragmentA FragmentA(ArrayView<uint> a, int at) => new()
        {
            A0 = a[at],
            A1 = a[at + LowerRows * Pitch],
            A2 = a[at + HighHalfWords],
            A3 = a[at + LowerRows * Pitch + HighHalfWords],
        };

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static MmaFragmentB FragmentB(ArrayView<uint> b, int at) => new()
        {
            B0 = b[at],
            B1 = b[at + HighHalfWords],
        };
    }

    /// <summary>y = sum + bias + residual, narrowed to 16 bits, two channels per word.</summary>
    private readonly struct Epilogue
    {
        private readonly Conv2dParams _p;
        private readonly int _rows;
        private readonly ArrayView<float> _bias;
        private readonly ArrayView<uint> _residual;
        private readonly ArrayView<uint> _output;

        public Epilogue(Conv2dParams p, int rows, ArrayView<float> bias, ArrayView<uint> residual, ArrayView<uint> output)
        {
            _p = p;
            _rows = rows;
            _bias = bias;
            _residual = residual;
            _output = output;
        }

        /// <summary>A 16-row strip: rows <paramref name="row"/> and row + 8, four pairs of columns 8 apart.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Store<TFormat>(TFormat format, in TileRow tile, int row, int column) where TFormat : struct, IHalfFormat
        {
            Pair(format, row, column, tile.N0.C0, tile.N0.C1);
            Pair(format, row + LowerRows, column, tile.N0.C2, tile.N0.C3);
            Pair(format, row, column + MmaColumns, tile.N1.C0, tile.N1.C1);
            Pair(format, row + LowerRows, column + MmaColumns, tile.N1.C2, tile.N1.C3);
            Pair(format, row, column + 2 * MmaColumns, tile.N2.C0, tile.N2.C1);
            Pair(format, row + LowerRows, column + 2 * MmaColumns, tile.N2.C2, tile.N2.C3);
            Pair(format, row, column + 3 * MmaColumns, tile.N3.C0, tile.N3.C1);
            Pair(format, row + LowerRows, column + 3 * MmaColumns, tile.N3.C2, tile.N3.C3);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private void Pair<TFormat>(TFormat format, int row, int column, float even, float odd) where TFormat : struct, IHalfFormat
        {
            if (row >= _rows || column >= _p.OutChannels) return;
            if (_p.HasBias != 0)
            {
                even += _bias[column];
                odd += _bias[column + 1];
            }
            int word = (row * _p.OutChannels + column) / ElementsPerWord;
            if (_p.HasResidual != 0)
            {
                uint r = _residual[word];
                even += format.Widen(r & 0xFFFF);
                odd += format.Widen(r >> 16);
            }
            _output[word] = WarpMma.Pack(format.Narrow(even), format.Narrow(odd));
        }
    }
}

/// <summary>Loads the tensor-core conv kernels once for one accelerator and launches the one for a storage format.</summary>
internal sealed class Conv2dTensorCoreLauncher
{
    private readonly Action<KernelConfig, Conv2dParams, ArrayView<uint>, ArrayView<uint>, ArrayView<float>,
        ArrayView<uint>, ArrayView<uint>> _bf16;
    private readonly Action<KernelConfig, Conv2dParams, ArrayView<uint>, ArrayView<uint>, ArrayView<float>,
        ArrayView<uint>, ArrayView<uint>> _f16;

    public Conv2dTensorCoreLauncher(Accelerator accelerator)
    {
        _bf16 = accelerator.LoadStreamKernel<Conv2dParams, ArrayView<uint>, ArrayView<uint>, ArrayView<float>,
            ArrayView<uint>, ArrayView<uint>>(Conv2dTensorCoreGpu.Bf16);
        _f16 = accelerator.LoadStreamKernel<Conv2dParams, ArrayView<uint>, ArrayView<uint>, ArrayView<float>,
            ArrayView<uint>, ArrayView<uint>>(Conv2dTensorCoreGpu.F16);
    }

    /// <summary>
    /// Runs the conv in bf16 (<paramref name="bf16"/>) or fp16 storage. Channel counts in <paramref name="p"/> are
    /// the padded storage counts; <paramref name="bias"/> and <paramref name="residual"/> are read only when their
    /// flags are set (pass any view otherwise).
    /// </summary>
    public void Run(bool bf16, in Conv2dParams p, ArrayView<uint> input, ArrayView<uint> weight, ArrayView<float> bias,
        ArrayView<uint> residual, ArrayView<uint> output)
    {
        if (p.InChannels % Conv2dTensorCoreGpu.ChannelAlignment != 0 || p.OutChannels % Conv2dTensorCoreGpu.ChannelAlignment != 0)
            throw new ArgumentException(
                $"tensor-core conv needs channel counts padded to {Conv2dTensorCoreGpu.ChannelAlignment}: in {p.InChannels}, out {p.OutChannels}",
                nameof(p));
        int rows = p.Batch * p.OutHeight * p.OutWidth;
        if (rows == 0) return;
        var grid = new Index2D(DeviceMath.CeilDiv(rows, Conv2dTensorCoreGpu.BlockM),
            DeviceMath.CeilDiv(p.OutChannels, Conv2dTensorCoreGpu.BlockN));
        var config = new KernelConfig(grid, new Index2D(Conv2dTensorCoreGpu.GroupSize, 1));
        (bf16 ? _bf16 : _f16)(config, p, input, weight, bias, residual, output);
    }
}
