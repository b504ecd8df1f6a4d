using NativeVae;
using System.Diagnostics;
using System.Globalization;
using NativeVae.Core;
using NativeVae.Backends.Ilgpu;
using NativeVae.Kernels.Gpu;
using NativeVae.KernelBench;

// Kernel benchmark: every ILGPU kernel version on the SD VAE's layer shapes, on the chosen accelerator.
// Warm-up first, the accelerator synchronised before each clock stop, median of the timed runs.

// The CPU accelerator preset (also --quick): emulated barriers cost milliseconds each, so the shared-memory
// versions need small spatial sizes and fewer channels to finish in about a minute on two cores.
const double CpuDefaultScale = 1.0 / 32;
const double CpuDefaultChannelScale = 1.0 / 4;
const int CpuDefaultRuns = 1;
const int GpuDefaultRuns = 10;

var device = DevicePreference.Auto;
double? scale = null;
double? channelScale = null;
int? runs = null;
bool tensorCoresOnly = false;
bool attentionOnly = false;
for (int i = 0; i < args.Length; i++)
{
    string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
    switch (args[i])
    {
        case "--device":
            device = Next() switch
            {
                "cpu" => DevicePreference.IlgpuCpu,
                "cuda" => DevicePreference.Cuda,
                "auto" => DevicePreference.Auto,
                var other => throw new ArgumentException($"--device {other}: expected cpu, cuda or auto"),
            };
            break;
        case "--scale":
            scale = ParseScale(Next());
            break;
        case "--channel-scale":
            channelScale = ParseScale(Next());
            break;
        case "--quick":
            scale = CpuDefaultScale;
            channelScale = CpuDefaultChannelScale;
            runs = CpuDefaultRuns;
            break;
        case "--runs":
            runs = int.Parse(Next(), CultureInfo.InvariantCulture);
            if (runs < 1) throw new ArgumentException("--runs must be at least 1");
            break;
        case "--tensor-cores":
            tensorCoresOnly = true;
            break;
        case "--attention":
            attentionOnly = true;
            break;
        case "--help" or "-h":
            Console.WriteLine("NativeVae.KernelBench [--device cpu|cuda|auto] [--scale S (spatial, e.g. 1/32)] [--channel-scale S] [--runs N] [--quick] [--tensor-cores] [--attention]");
            Console.WriteLine("  --tensor-cores: only the tensor-core conv (bf16, fp16), which otherwise follows the other kernels on CUDA");
            Console.WriteLine("  --attention: only the tensor-core attention at 4k, 16k and 64k tokens, C = 512 (scaled like the shapes)");
            Console.WriteLine("  defaults: CUDA full SD shapes, 10 runs; CPU accelerator --quick = spatial 1/32, channels 1/4, 1 run");
            return 0;
        default:
            throw new ArgumentException($"unknown option {args[i]} (see --help)");
    }
}

var plainChoice = new IlgpuKernelChoice(Conv2dVersion.Direct, GroupNormVersion.Simple, AttentionVersion.RowPerThread);
var tiledChoice = new IlgpuKernelChoice(Conv2dVersion.SharedTile, GroupNormVersion.GroupReduce, AttentionVersion.SharedTile);
var compile = Stopwatch.StartNew();
using var plain = new IlgpuBackend(device, plainChoice);
using var tiled = new IlgpuBackend(device, tiledChoice);
compile.Stop();

bool onCpu = plain.Kind == BackendKind.IlgpuCpu;
double spatialScale = scale ?? (onCpu ? CpuDefaultScale : 1.0);
double channelsScale = channelScale ?? (onCpu ? CpuDefaultChannelScale : 1.0);
int timedRuns = runs ?? (onCpu ? CpuDefaultRuns : GpuDefaultRuns);
Console.WriteLine($"device: {plain.Name}; kernels compiled for two backends in {compile.Elapsed.TotalSeconds:F1} s");
Console.WriteLine($"SD 512x512 layer shapes at spatial scale {spatialScale:G4}, channel scale {channelsScale:G4}; "
    + $"median of {timedRuns} run(s) after 1 warm-up");
if (onCpu)
    Console.WriteLine("NOTE: ILGPU's CPU accelerator is an emulator: tiny sizes, and the numbers compare versions on it, not GPU speed.");
Console.WriteLine();
if (attentionOnly)
{
    TensorCoreAttentionBench.Run(plain.Accelerator, spatialScale, channelsScale, timedRuns);
    return 0;
}
if (!tensorCoresOnly)
    Console.WriteLine($"{"case",-58} {"version",-12} {"median ms",10} {"rate",14}");

foreach (var benchCase in tensorCoresOnly ? [] : SdShapes.All(spatialScale, channelsScale))
{
    foreach (var backend in new[] { plain, tiled })
    {
        string version = benchCase.Family switch
        {
            "conv2d" => backend.Kernels.Conv2d.ToString(),
            "group_norm" => backend.Kernels.GroupNorm.ToString(),
            _ => backend.Kernels.Attention.ToString(),
        };
        using var op = benchCase.Prepare(backend);
        double ms = MedianMilliseconds(backend, op, timedRuns);
        double rate = benchCase.Work / (ms / 1000) / 1e9;
        string unit = benchCase.Unit == WorkUnit.Flops ? "GFLOP/s" : "GB/s";
        Console.WriteLine($"{benchCase.Label,-58} {version,-12} {ms,10:F3} {rate,10:G3} {unit}");
    }
}
// On the CPU accelerator the MMA is emulated with a warp barrier per shuffle: seconds per tiny conv, so only on request.
if (tensorCoresOnly || !onCpu)
{
    TensorCoreConvBench.Run(plain.Accelerator, spatialScale, channelsScale, timedRuns);
    TensorCoreAttentionBench.Run(plain.Accelerator, spatialScale, channelsScale, timedRuns);
}
return 0;

static double MedianMilliseconds(IlgpuBackend backend, PreparedOp op, int runs)
{
    op.Run().Dispose();
    backend.Synchronize();
    var times = new double[runs];
    for (int r = 0; r < runs; r++)
    {
        var clock = Stopwatch.StartNew();
        var y = op.Run();
        backend.Synchronize();
        clock.Stop();
        y.Dispose();
        times[r] = clock.Elapsed.TotalMilliseconds;
    }
    Array.Sort(times);
    return times[runs / 2];
}

static double ParseScale(string text)
{
    string[] parts = text.Split('/');
    double value = parts.Length == 2
        ? double.Parse(parts[0], CultureInfo.InvariantCulture) / double.Parse(parts[1], CultureInfo.InvariantCulture)
        : double.Parse(text, CultureInfo.InvariantCulture);
    if (!(value > 0 && value <= 1)) throw new ArgumentException($"--scale {text}: expected a value in (0, 1]");
    return value;
}
