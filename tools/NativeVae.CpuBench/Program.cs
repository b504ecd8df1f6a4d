using NativeVae;
using System.Diagnostics;
using NativeVae.Backends.Cpu;
using NativeVae.Core;

// GFLOP/s (GB/s for memory-bound ops) of the SIMD CPU backend on the SD VAE's layer shapes.
// Usage: NativeVae.CpuBench [filter]   (runs the cases whose name contains filter)
// Each case: one warm-up call (packs weights, fills the pool and scratch), then the median of several timed runs.

const double PeakGflops = 400;
string filter = args.Length > 0 ? args[0] : "";
using var backend = new CpuBackend();
// Nominal: 2 cores x 2 FMA pipes x 16 lanes x 2 flops x ~3.1 GHz; boost clocks can exceed it.
Console.WriteLine($"{backend.Name}; % peak is of a nominal {PeakGflops} GFLOP/s fp32 (2 cores, AVX-512 FMA)");
Console.WriteLine($"{"case",-44} {"median ms",10} {"GFLOP/s",8} {"% peak",7} {"GB/s",7} {"best GF/s",8}");

var rng = new Random(42);
Tensor Random(TensorShape shape, float scale)
{
    var values = new float[shape.ElementCount];
    for (int i = 0; i < values.Length; i++) values[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
    return backend.Upload(values, shape);
}

void Measure(string name, double flops, double bytes, Func<Tensor> op)
{
    if (!name.Contains(filter, StringComparison.OrdinalIgnoreCase)) return;
    op().Dispose();
    var times = new List<double>();
    double budget = 0;
    while (times.Count < 3 || (times.Count < 9 && budget < 3))
    {
        var clock = Stopwatch.StartNew();
        using (op()) { }
        double t = clock.Elapsed.TotalSeconds;
        times.Add(t);
        budget += t;
    }
    times.Sort();
    double median = times[times.Count / 2];
    string gflops = flops > 0 ? $"{flops / median / 1e9,8:F1} {100 * flops / median / 1e9 / PeakGflops,6:F0}%" : $"{"",8} {"",7}";
    string best = flops > 0 ? $"{flops / times[0] / 1e9,9:F1}" : "";
    Console.WriteLine($"{name,-44} {median * 1e3,10:F2} {gflops} {bytes / median / 1e9,7:F1} {best}");
}

void Conv(int cin, int cout, int size, int kernel, Conv2dSpec spec, string note = "")
{
    using var x = Random(TensorShape.Nchw(1, cin, size, size), 1);
    var weightShape = TensorShape.Nchw(cout, cin, kernel, kernel);
    using var w = Random(weightShape, 0.05f);
    using var b = Random(new TensorShape(cout), 0.1f);
    int ho = spec.OutputHeight(size, kernel), wo = spec.OutputWidth(size, kernel);
    double flops = 2.0 * cout * cin * kernel * kernel * ho * wo;
    double bytes = 4.0 * ((long)cin * size * size + (long)cout * ho * wo);
    // Effective GFLOP/s: the direct FLOP count, also for Winograd (which does fewer); both paths where it applies.
    string name = $"conv{kernel}x{kernel}{note} {cin}->{cout} {size}x{size}";
    // The direct path on a weight prepared for it, as a model's (packed once at load).
    backend.WinogradEnabled = false;
    using (var direct = backend.PrepareConvWeight(Random(weightShape, 0.05f), spec))
        Measure(name, flops, bytes, () => backend.Conv2d(x, direct, b, spec));
    backend.WinogradEnabled = true;
    if (kernel == 3 && ho == (spec.Upsample2x ? 2 * size : size) && spec.Stride == 1 && Math.Min(cin, cout) >= 64)
    {
        Measure(name + " winograd", flops, bytes, () => backend.Conv2d(x, w, b, spec));
        // GroupNorm + SiLU applied while packing (the resnets' convs); the fused op's own statistics pass included.
        using var gamma = Random(new TensorShape(cin), 1);
        using var beta = Random(new TensorShape(cin), 1);
        var norm = new GroupNormSpec(gamma, beta, 32, 1e-6f, true);
        Measure(name + " winograd gn+silu", flops, bytes, () => backend.NormConv2d(x, norm, w, b, spec));
    }
}

void GroupNormSilu(int c, int size)
{
    using var x = Random(TensorShape.Nchw(1, c, size, size), 1);
    using var g = Random(new TensorShape(c), 1);
    using var b = Random(new TensorShape(c), 1);
    double bytes = 4.0 * 3 * c * size * size; // two reads, one write
    Measure($"groupnorm32+silu {c} {size}x{size}", 0, bytes, () => backend.GroupNorm(x, g, b, 32, 1e-6f, true));
}

void Attention(int c, int size)
{
    var shape = TensorShape.Nchw(1, c, size, size);
    using var q = Random(shape, 1);
    using var k = Random(shape, 1);
    using var v = Random(shape, 1);
    double n = (double)size * size;
    Measure($"attention C={c} N={n}", 4 * n * n * c, 4.0 * 4 * c * n, () => backend.Attention(q, k, v, 1 / MathF.Sqrt(c)));
}

Conv(128, 128, 512, 3, Conv2dSpec.Same);
Conv(128, 128, 256, 3, Conv2dSpec.Same);
// Wan 2.1's decoder levels at 256x256 (a causal tap each)
Conv(96, 96, 256, 3, Conv2dSpec.Same, " wan");
Conv(192, 192, 128, 3, Conv2dSpec.Same, " wan");
Conv(384, 384, 64, 3, Conv2dSpec.Same, " wan");
Conv(256, 256, 256, 3, Conv2dSpec.Same);
Conv(512, 512, 128, 3, Conv2dSpec.Same);
Conv(512, 512, 64, 3, Conv2dSpec.Same);
Conv(512, 512, 64, 1, Conv2dSpec.Pointwise);
Conv(256, 128, 512, 1, Conv2dSpec.Pointwise);
Conv(128, 256, 256, 1, Conv2dSpec.Pointwise);
Conv(128, 128, 512, 3, Conv2dSpec.DownsampleAsymmetric, " s2");
Conv(256, 256, 256, 3, Conv2dSpec.DownsampleAsymmetric, " s2");
Conv(512, 512, 128, 3, Conv2dSpec.DownsampleAsymmetric, " s2");
Conv(512, 512, 64, 3, Conv2dSpec.UpsampleSame, " up2x");
Conv(3, 128, 512, 3, Conv2dSpec.Same);
Conv(128, 3, 512, 3, Conv2dSpec.Same);
GroupNormSilu(128, 512);
GroupNormSilu(128, 256);
GroupNormSilu(256, 256);
GroupNormSilu(512, 128);
GroupNormSilu(512, 64);
Attention(512, 64);
