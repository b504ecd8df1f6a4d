namespace NativeVae;

/// <summary>The CPU's measured fp32 FMA peak: the ceiling the benchmark's "% peak" column divides by.</summary>
/// <param name="Gflops">GFLOP/s (2 per fused multiply-add), best of three trials.</param>
/// <param name="Threads">Threads that ran independent FMA chains (one per core).</param>
/// <param name="SimdWidth">The vector width used, e.g. <c>"Vector512"</c>.</param>
public readonly record struct CpuFmaPeak(double Gflops, int Threads, string SimdWidth);
