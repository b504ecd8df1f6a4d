using System.Diagnostics;
using System.Runtime.InteropServices;
using NativeVae.Kernels.Cpu;
using NativeVae.Kernels.Gpu;

unsafe
{
    using var workers = new CpuWorkers();
    var width = SimdWidths.Best;
    Console.WriteLine($"width {width}, workers {workers.Count}");
    void Conv(int c, int co, int h, int k)
    {
        var p = new Conv2dParams { Batch = 1, InChannels = c, InHeight = h, InWidth = h, OutChannels = co, OutHeight = h, OutWidth = h, Kernel = k, Stride = 1, PadTop = k / 2, PadLeft = k / 2 };
        long xs = (long)c * h * h, ys = (long)co * h * h, ws = (long)co * c * k * k;
        float* x = (float*)NativeMemory.AlignedAlloc((nuint)(xs * 4), 64);
        float* y = (float*)NativeMemory.AlignedAlloc((nuint)(ys * 4), 64);
        float* w = (float*)NativeMemory.AlignedAlloc((nuint)(ws * 4), 64);
        for (long i = 0; i < xs; i++) x[i] = (i % 7) * 0.1f;
        for (long i = 0; i < ws; i++) w[i] = (i % 5) * 0.01f;
        using var pw = new Conv2dPackedWeights(w, co, c, k);
        double flops = 2.0 * co * c * k * k * h * h;
        int reps = (int)Math.Clamp(3e10 / flops, 3, 50);
        Conv2dCpu.Run(workers, width, p, x, pw, null, null, y);
        var times = new List<double>();
        for (int r = 0; r < reps; r++)
        {
            var sw = Stopwatch.StartNew();
            Conv2dCpu.Run(workers, width, p, x, pw, null, null, y);
            times.Add(sw.Elapsed.TotalSeconds);
        }
        times.Sort();
        double med = times[times.Count / 2];
        Console.WriteLine($"conv{k}x{k} {c}->{co} {h}x{h}: {med * 1e3,8:F2} ms  {flops / med / 1e9,6:F1} GFLOP/s (best {flops / times[0] / 1e9:F1})");
        NativeMemory.AlignedFree(x); NativeMemory.AlignedFree(y); NativeMemory.AlignedFree(w);
    }
    foreach (var a in args.Length > 0 ? args : ["128,128,256,3", "512,512,64,3", "512,512,64,1"])
    {
        var f = a.Split(',').Select(int.Parse).ToArray();
        Conv(f[0], f[1], f[2], f[3]);
    }
}
