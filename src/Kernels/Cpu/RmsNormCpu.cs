using System.Runtime.CompilerServices;

namespace NativeVae.Kernels.Cpu;

// The channel RMS norm (+ SiLU) on NCHW: y = x / max(||x[n, :, p]||, eps) * scale * gamma[c]. The norm runs across
// channels, a plane apart, so an item is a run of pixels of one image: a pass over its channels sums squares into
// per-pixel lanes, one scalar sqrt per pixel turns them into factors, and a second pass scales each channel's row by
// factor * gamma[c]. Both passes read rows of consecutive pixels, so every load is a full vector.

internal static unsafe class RmsNormCpu
{
    /// <summary>Pixels per item: a few rows of a 512-wide image, small enough for the sums to stay in L1.</summary>
    private const int ChunkPixels = 2048;

    /// <summary>Per worker: the sums, a widened input row and an output row (16-bit tensors only).</summary>
    private const int ScratchSlot = 0;
    private const int ScratchRows = 3;

    /// <summary>y may not alias x (the second pass reads x again).</summary>
    public static void Run(CpuWorkers workers, SimdWidth width, in RmsNormParams p, StoredElements x, float* gamma, StoredElements y)
    {
        int chunks = (p.Spatial + ChunkPixels - 1) / ChunkPixels;
        var job = new RmsNormJob
        {
            P = p, X = x, Gamma = gamma, Y = y, Width = width, ChunksPerImage = chunks,
            Scratch = workers.ScratchTable(ScratchSlot, ScratchRows * ChunkPixels),
        };
        workers.Run(checked(p.Batch * chunks), ref job);
    }

    /// <summary>Convenience for fp32 arrays.</summary>
    public static void Run(CpuWorkers workers, SimdWidth width, in RmsNormParams p, float* x, float* gamma, float* y) =>
        Run(workers, width, p, new StoredElements(x, StorageType.F32), gamma, new StoredElements(y, StorageType.F32));

    private struct RmsNormJob : IWorkItem
    {
        public RmsNormParams P;
        public StoredElements X;
        public float* Gamma;
        public StoredElements Y;
        public SimdWidth Width;
        public int ChunksPerImage;
        public float** Scratch;

        public void Execute(int item, int worker)
        {
            int n = item / ChunksPerImage;
            int start = (item - n * ChunksPerImage) * ChunkPixels;
            int count = Math.Min(ChunkPixels, P.Spatial - start);
            float* sums = Scratch[worker];
            float* row = sums + ChunkPixels;
            float* output = row + ChunkPixels;
            new Span<float>(sums, count).Clear();
            long image = (long)n * P.Channels * P.Spatial + start;
            for (int c = 0; c < P.Channels; c++)
                SumSquares(Width, X.ReadOrPoint(image + (long)c * P.Spatial, row, count), sums, count);
            for (int i = 0; i < count; i++) sums[i] = P.Scale / MathF.Max(MathF.Sqrt(sums[i]), P.Eps);
            for (int c = 0; c < P.Channels; c++)
            {
                long at = image + (long)c * P.Spatial;
                float* dst = Y.IsF32 ? Y.F32 + at : output;
                ScaleRow(Width, X.ReadOrPoint(at, row, count), sums, Gamma[c], P.FuseSilu != 0, dst, count);
                if (!Y.IsF32) Y.Write(at, dst, count);
            }
        }
    }

    /// <summary>sums[i] += x[i]^2.</summary>
    private static void SumSquares(SimdWidth width, float* x, float* sums, int count)
    {
        var body = new RowBody { X = x, Factors = sums, Count = count, Accumulate = true };
        SimdDispatch.Run(width, ref body);
    }

    /// <summary>y[i] = x[i] * factors[i] * gamma (+ SiLU).</summary>
    private static void ScaleRow(SimdWidth width, float* x, float* factors, float gamma, bool silu, float* y, int count)
    {
        var body = new RowBody { X = x, Factors = factors, Gamma = gamma, Silu = silu, Y = y, Count = count };
        SimdDispatch.Run(width, ref body);
    }

    /// <summary>One row of either pass, vectors then a scalar tail (rows are short enough that the tail is noise).</summary>
    private struct RowBody : ISimdBody
    {
        public float* X;
        public float* Factors;
        public float* Y;
        public float Gamma;
        public int Count;
        public bool Accumulate;
        public bool Silu;

        public void Invoke<TVec, TOps>() where TVec : unmanaged where TOps : IVectorOps<TVec>
        {
            int lanes = TOps.Lanes, i = 0;
            if (Accumulate)
            {
                for (; i + lanes <= Count; i += lanes)
                {
                    var v = TOps.Load(X + i);
                    TOps.Store(Factors + i, TOps.MulAdd(v, v, TOps.Load(Factors + i)));
                }
                for (; i < Count; i++) Factors[i] += X[i] * X[i];
                return;
            }
            var g = TOps.Broadcast(Gamma);
            for (; i + lanes <= Count; i += lanes)
                TOps.Store(Y + i, Activate<TVec, TOps>(TOps.Multiply(TOps.Multiply(TOps.Load(X + i), TOps.Load(Factors + i)), g)));
            for (; i < Count; i++) Y[i] = Activate<float, ScalarOps>(X[i] * Factors[i] * Gamma);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private readonly TV Activate<TV, TO>(TV v) where TV : unmanaged where TO : IVectorOps<TV> =>
            Silu ? default(SiluFunction).Invoke<TV, TO>(v) : v;
    }
}
