namespace NativeVae.Kernels.Cpu;

// GroupNorm (+ SiLU) on NCHW fp32. A group's channels are one contiguous run of (C / G) * H * W values, so each
// (image, group) is one item: a statistics pass with per-lane fp32 accumulators of (x - shift) and (x - shift)^2,
// flushed to double every segment (shifting by the group's first value keeps E[x^2] - E[x]^2 from cancelling),
// then one normalise pass per channel with the affine folded into a single multiply-add (+ SiLU).

internal static unsafe class GroupNormCpu
{
    /// <summary>Values summed in fp32 lanes before the partial sums move to double; also the chunk a 16-bit tensor is widened in.</summary>
    private const int SegmentFloats = 4096;

    /// <summary>Per worker: one segment of a 16-bit tensor, widened.</summary>
    private const int SegmentSlot = 0;

    /// <summary>
    /// <paramref name="stats"/>: [N * G * 2] = (mean, rstd) per group, a side output.
    /// <paramref name="y"/> may not alias <paramref name="x"/>.
    /// </summary>
    public static void Run(CpuWorkers workers, SimdWidth width, in GroupNormParams p, float* x, float* gamma, float* beta,
        float* stats, float* y) =>
        Run(workers, width, p, new StoredElements(x, StorageType.F32), gamma, beta, stats, new StoredElements(y, StorageType.F32));

    /// <summary><see cref="Run(CpuWorkers, SimdWidth, in GroupNormParams, float*, float*, float*, float*, float*)"/> on tensors of any storage type.</summary>
    public static void Run(CpuWorkers workers, SimdWidth width, in GroupNormParams p, StoredElements x, float* gamma, float* beta,
        float* stats, StoredElements y)
    {
        var job = new GroupNormJob { P = p, X = x, Gamma = gamma, Beta = beta, Stats = stats, Y = y, Width = width };
        RunJob(workers, ref job);
    }

    private static void RunJob(CpuWorkers workers, ref GroupNormJob job)
    {
        if (!job.X.IsF32 || (!job.Y.IsNull && !job.Y.IsF32)) job.Segments = workers.ScratchTable(SegmentSlot, SegmentFloats);
        workers.Run(checked(job.P.Batch * job.P.Groups), ref job);
    }

    /// <summary>
    /// Statistics only: <paramref name="stats"/> [N * G * 2] = (mean, M2 = sum of squared deviations) per group, the
    /// form exact tiling merges across tiles.
    /// </summary>
    public static void Moments(CpuWorkers workers, SimdWidth width, in GroupNormParams p, float* x, float* stats) =>
        Moments(workers, width, p, new StoredElements(x, StorageType.F32), stats);

    /// <summary><see cref="Moments(CpuWorkers, SimdWidth, in GroupNormParams, float*, float*)"/> of a tensor of any storage type.</summary>
    public static void Moments(CpuWorkers workers, SimdWidth width, in GroupNormParams p, StoredElements x, float* stats)
    {
        var moments = p;
        moments.StatsAsMoments = 1;
        var job = new GroupNormJob { P = moments, X = x, Stats = stats, Width = width };
        RunJob(workers, ref job);
    }

    /// <summary>
    /// GroupNorm's statistics folded with its affine, without normalising: <paramref name="scale"/> and
    /// <paramref name="shift"/> [N * C] get the per-channel a, b with which <see cref="Run"/> computes
    /// y = x * a + b (bit for bit), for a consumer that applies them itself (a convolution reading its input).
    /// </summary>
    public static void Fold(CpuWorkers workers, SimdWidth width, in GroupNormParams p, float* x, float* gamma, float* beta,
        float* scale, float* shift) =>
        Fold(workers, width, p, new StoredElements(x, StorageType.F32), gamma, beta, scale, shift);

    /// <summary><see cref="Fold(CpuWorkers, SimdWidth, in GroupNormParams, float*, float*, float*, float*, float*)"/> of a tensor of any storage type.</summary>
    public static void Fold(CpuWorkers workers, SimdWidth width, in GroupNormParams p, StoredElements x, float* gamma, float* beta,
        float* scale, float* shift)
    {
        var job = new GroupNormJob { P = p, X = x, Gamma = gamma, Beta = beta, FoldScale = scale, FoldShift = shift, Width = width };
        RunJob(workers, ref job);
    }

    /// <summary>y[row] = x[row] * scale[row] + shift[row] (+ SiLU) for each of <paramref name="rows"/> rows of <paramref name="spatial"/>.</summary>
    public static void ChannelAffine(CpuWorkers workers, SimdWidth width, int rows, int spatial, bool silu, float* x,
        float* scale, float* shift, float* y) =>
        ChannelAffine(workers, width, rows, spatial, silu, new StoredElements(x, StorageType.F32), scale, shift,
            new StoredElements(y, StorageType.F32));

    /// <summary>The same on tensors of any storage type.</summary>
    public static void ChannelAffine(CpuWorkers workers, SimdWidth width, int rows, int spatial, bool silu, StoredElements x,
        float* scale, float* shift, StoredElements y)
    {
        var job = new ChannelAffineJob { Spatial = spatial, Silu = silu, X = x, Scale = scale, Shift = shift, Y = y, Width = width };
        if (!x.IsF32 || !y.IsF32) job.Segments = workers.ScratchTable(SegmentSlot, SegmentFloats);
        workers.Run(rows, ref job);
    }

    private struct ChannelAffineJob : IWorkItem
    {
        public int Spatial;
        public bool Silu;
        public StoredElements X;
        public float* Scale;
        public float* Shift;
        public StoredElements Y;
        public SimdWidth Width;
        public float** Segments;

        public void Execute(int row, int worker) =>
            ElementwiseCpu.MapStored(Width, new AffineFunction(Scale[row], Shift[row], Silu), X, Y, (long)row * Spatial, Spatial,
                Segments == null ? null : Segments[worker], SegmentFloats);
    }

    private struct GroupNormJob : IWorkItem
    {
        public GroupNormParams P;
        public StoredElements X;
        public float* Gamma;
        public float* Beta;
        public float* Stats;
        public StoredElements Y;
        public float* FoldScale;
        public float* FoldShift;
        public SimdWidth Width;
        /// <summary>Per worker, for 16-bit tensors: one widened segment.</summary>
        public float** Segments;

        public void Execute(int item, int worker)
        {
            int channels = P.Channels / P.Groups;
            long count = (long)channels * P.Spatial;
            int g = item % P.Groups;
            long start = (long)item * count;
            float* segment = Segments == null ? null : Segments[worker];
            double sum = 0, squares = 0;
            float shift = count > 0 ? *X.ReadOrPoint(start, segment, 1) : 0f;
            for (long s = 0; s < count; s += SegmentFloats)
            {
                int length = (int)Math.Min(SegmentFloats, count - s);
                var (s1, s2) = ShiftedSums(Width, X.ReadOrPoint(start + s, segment, length), length, shift);
                sum += s1;
                squares += s2;
            }
            double n = Math.Max(count, 1);
            double meanShifted = sum / n;
            double variance = Math.Max(squares / n - meanShifted * meanShifted, 0);
            float mean = (float)(shift + meanShifted);
            if (Stats != null) Stats[2 * item] = mean;
            if (P.StatsAsMoments != 0)
            {
                Stats[2 * item + 1] = (float)(variance * count);
                return;
            }
            float rstd = (float)(1 / Math.Sqrt(variance + P.Eps));
            if (Stats != null) Stats[2 * item + 1] = rstd;

            for (int c = 0; c < channels; c++)
            {
                int channel = g * channels + c;
                var (a, b) = Fold(Gamma[channel], Beta[channel], mean, rstd);
                if (FoldScale != null)
                {
                    // item * channels = image * C + channel of this group's first: the [N * C] index.
                    FoldScale[(long)item * channels + c] = a;
                    FoldShift[(long)item * channels + c] = b;
                    continue;
                }
                ElementwiseCpu.MapStored(Width, new AffineFunction(a, b, P.FuseSilu != 0), X, Y, start + (long)c * P.Spatial, P.Spatial,
                    segment, SegmentFloats);
            }
        }
    }

    /// <summary>
    /// The channel's affine with the group's statistics folded in, y = x * a + b: one definition, so that every
    /// kernel path (normalising, folding for a convolution) rounds alike; the library's <c>ChannelMoments.Fold</c>
    /// folds statistics gathered by a convolution with the same fp32 steps.
    /// </summary>
    private static (float A, float B) Fold(float gamma, float beta, float mean, float rstd)
    {
        float a = gamma * rstd;
        return (a, beta - mean * a);
    }

    private static (float Sum, float Squares) ShiftedSums(SimdWidth width, float* x, int count, float shift)
    {
        var body = new ShiftedSumsBody { X = x, Count = count, Shift = shift };
        SimdDispatch.Run(width, ref body);
        return body.Result;
    }

    private struct ShiftedSumsBody : ISimdBody
    {
        public float* X;
        public int Count;
        public float Shift;
        public (float Sum, float Squares) Result;

        public void Invoke<TVec, TOps>() where TVec : unmanaged where TOps : IVectorOps<TVec> =>
            Result = ShiftedSums<TVec, TOps>(X, Count, Shift);
    }

    private static (float Sum, float Squares) ShiftedSums<TVec, TOps>(float* x, int count, float shift)
        where TVec : unmanaged where TOps : IVectorOps<TVec>
    {
        int lanes = TOps.Lanes;
        TVec k = TOps.Broadcast(shift);
        TVec s1 = TOps.Zero, s2 = TOps.Zero;
        int i = 0;
        for (; i + lanes <= count; i += lanes)
        {
            TVec d = TOps.Subtract(TOps.Load(x + i), k);
            s1 = TOps.Add(s1, d);
            s2 = TOps.MulAdd(d, d, s2);
        }
        float sum = TOps.Sum(s1), squares = TOps.Sum(s2);
        // A reduction cannot recompute lanes, so the few values past the last whole vector are added one by one.
        for (; i < count; i++)
        {
            float d = x[i] - shift;
            sum += d;
            squares += d * d;
        }
        return (sum, squares);
    }
}
