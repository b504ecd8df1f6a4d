using NativeVae.Kernels.Cpu;

namespace NativeVae.Backends.Cpu;

/// <summary>The CPU's fp32 FMA peak as the CPU backend would run: every core, the widest accelerated vector width.</summary>
internal static class CpuPeakMeasurement
{
    /// <summary>GFLOP/s of independent FMA chains, best of three (about a second), with the threads and width used.</summary>
    public static (double Gflops, int Threads, string Width) Measure()
    {
        using var workers = new CpuWorkers();
        var width = SimdWidths.Best;
        return (FmaPeakCpu.MeasureGflops(workers, width), workers.Count, width.ToString());
    }
}
