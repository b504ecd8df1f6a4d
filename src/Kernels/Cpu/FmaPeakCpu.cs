namespace NativeVae.Kernels.Cpu;

// A measured fp32 ceiling for benchmarks' "% of peak": every worker runs independent FMA chains that never touch
// memory. Measured rather than computed from cores x FMA pipes x clock because neither the pipe count (Zen 4
// splits AVX-512 over 256-bit pipes, Zen 5 does not) nor the sustained clock under load is visible from /proc.

internal static unsafe class FmaPeakCpu
{
    /// <summary>Independent accumulators: covers an FMA latency of 4 cycles on 2 pipes with room to spare.</summary>
    private const int Chains = 12;

    /// <summary>FMAs per chain per work item: about 50 ms at 3 GHz, long against the workers' wake-up.</summary>
    private const long Iterations = 25_000_000;

    private const long FlopsPerFma = 2;

    /// <summary>Best GFLOP/s of <paramref name="trials"/> runs of one FMA item per worker.</summary>
    public static double MeasureGflops(CpuWorkers workers, SimdWidth width, int trials = 3)
    {
        var body = new MeasureBody { Workers = workers, Trials = trials };
        SimdDispatch.Run(width, ref body);
        return body.Gflops;
    }

    private struct MeasureBody : ISimdBody
    {
        public CpuWorkers Workers;
        public int Trials;
        public double Gflops;

        public void Invoke<TVec, TOps>() where TVec : unmanaged where TOps : IVectorOps<TVec> =>
            Gflops = Measure<TVec, TOps>(Workers, Trials);
    }

    private static double Measure<TVec, TOps>(CpuWorkers workers, int trials)
        where TVec : unmanaged where TOps : IVectorOps<TVec>
    {
        var job = new FmaJob<TVec, TOps> { Sink = workers.SharedScratch(0, workers.Count) };
        double flops = (double)workers.Count * Iterations * Chains * TOps.Lanes * FlopsPerFma;
        double best = 0;
        for (int t = 0; t < Math.Max(1, trials); t++)
        {
            long start = System.Diagnostics.Stopwatch.GetTimestamp();
            workers.Run(workers.Count, ref job);
            double seconds = System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalSeconds;
            best = Math.Max(best, flops / seconds / 1e9);
        }
        return best;
    }

    private struct FmaJob<TVec, TOps> : IWorkItem where TVec : unmanaged where TOps : IVectorOps<TVec>
    {
        public float* Sink;

        public void Execute(int item, int worker)
        {
            var m = TOps.Broadcast(0.9999999f);
            var c = TOps.Broadcast(1e-7f);
            TVec a0 = TOps.Broadcast(item), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
            TVec a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
            for (long i = 0; i < Iterations; i++)
            {
                a0 = TOps.MulAdd(a0, m, c); a1 = TOps.MulAdd(a1, m, c); a2 = TOps.MulAdd(a2, m, c);
                a3 = TOps.MulAdd(a3, m, c); a4 = TOps.MulAdd(a4, m, c); a5 = TOps.MulAdd(a5, m, c);
                a6 = TOps.MulAdd(a6, m, c); a7 = TOps.MulAdd(a7, m, c); a8 = TOps.MulAdd(a8, m, c);
                a9 = TOps.MulAdd(a9, m, c); a10 = TOps.MulAdd(a10, m, c); a11 = TOps.MulAdd(a11, m, c);
            }
            // Stored so that the JIT cannot drop the chains.
            var sum = TOps.Add(TOps.Add(TOps.Add(a0, a1), TOps.Add(a2, a3)), TOps.Add(TOps.Add(a4, a5), TOps.Add(a6, a7)));
            Sink[item] = TOps.Sum(TOps.Add(sum, TOps.Add(TOps.Add(a8, a9), TOps.Add(a10, a11))));
        }
    }
}
