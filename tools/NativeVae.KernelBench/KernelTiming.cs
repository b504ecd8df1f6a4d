using System.Diagnostics;
using System.Globalization;
using ILGPU.Runtime;

namespace NativeVae.KernelBench;

/// <summary>How the raw kernel benches (the tensor-core conv and attention) time a launch and report it.</summary>
internal static class KernelTiming
{
    /// <summary>Median milliseconds of <paramref name="runs"/> launches, each waited for, after one warm-up launch.</summary>
    public static double MedianMilliseconds(Accelerator accelerator, Action launch, int runs)
    {
        launch();
        accelerator.Synchronize();
        var times = new double[runs];
        for (int r = 0; r < runs; r++)
        {
            var clock = Stopwatch.StartNew();
            launch();
            accelerator.Synchronize();
            times[r] = clock.Elapsed.TotalMilliseconds;
        }
        Array.Sort(times);
        return times[runs / 2];
    }

    /// <summary>One table row, then the same case as a JSON line (prefix "json ").</summary>
    public static void Report(string label, string format, double ms, double flops)
    {
        double tflops = flops / (ms / 1000) / 1e12;
        Console.WriteLine($"{label,-58} {format,-6} {ms,10:F3} {tflops,10:F1} TFLOP/s");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"json {{\"case\":\"{label}\",\"format\":\"{format}\",\"ms\":{ms:F4},\"tflops\":{tflops:F2},\"gflop\":{flops / 1e9:F2}}}"));
    }
}
