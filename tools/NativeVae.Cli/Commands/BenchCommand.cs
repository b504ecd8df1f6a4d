using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using NativeVae.Backends;
using NativeVae.Backends.Ilgpu;
using NativeVae.Cli.Bench;
using NativeVae.Kernels.Cpu;
using NativeVae.Models.AutoencoderKl;
using NativeVae.Core;
using NativeVae.Weights;
using NativeVae.Loading;

namespace NativeVae.Cli.Commands;

/// <summary>
/// <c>nativevae bench</c>: times encode and decode of an AutoencoderKL of the real SD or SDXL architecture with
/// seeded random weights (nothing to download), untiled and tiled, on the current device. Per case: one warm-up
/// run (packs weights, fills the buffer pool), then the median of <c>--runs</c> timed calls of the public API.
/// Cases whose estimated time (dry-run FLOPs over the rate measured so far) exceeds <c>--max-seconds</c> are skipped;
/// the tiled pass is estimated from the tiled rate measured so far (on a GPU exact tiling runs many times slower than
/// the untiled model: host-resident activations) and skipped alone when the untiled pass fits but both do not.
/// </summary>
internal sealed class BenchCommand : ICommand
{
    private const string DefaultSizes = "256,512";
    private const int DefaultRuns = 3;
    private const double DefaultMaxSeconds = 120;
    private const int WarmupRuns = 1;

    /// <summary>Before anything is measured, the CPU is assumed to reach this share of its FMA peak (the 3x3
    /// convolutions that dominate reach 60-90%); after a case, its measured rate is used.</summary>
    private const double FirstGuessPeakShare = 0.5;

    /// <summary>First-guess GFLOP/s of ILGPU's CPU emulator and of a GPU, before anything is measured.</summary>
    private const double EmulatorFirstGuessGflops = 0.3;
    private const double GpuFirstGuessGflops = 5000;

    private const double BytesPerMiB = 1024.0 * 1024.0;

    public string Name => "bench";

    public string Usage =>
        "bench [--family sd|sdxl] [--sizes 256,512] [--ops encode,decode] [--tiling exact|blend|none] [--tile N] [--runs N] " +
        "[--max-seconds S] [--json] [--profile] [--device auto|cpu|cuda|ilgpu-cpu]";

    public string Summary => "time encode/decode of a seeded-random VAE of the real architecture (no download): median, peak memory, GFLOP/s";

    public int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var line = new CommandLine(args, 0, ["family", "sizes", "ops", "tiling", "tile", "runs", "max-seconds", "device"], ["json", "profile"]);
        var (familyName, config) = (line.Option("family") ?? "sd") switch
        {
            "sd" => ("sd", AutoencoderKlConfig.Sd),
            "sdxl" => ("sdxl", AutoencoderKlConfig.Sdxl),
            var other => throw new UsageException($"--family '{other}' must be sd or sdxl"),
        };
        int factor = config.DownsampleFactor;
        var sizes = ParseList(line.Option("sizes") ?? DefaultSizes, "sizes")
            .Select(s => (int)ModelArguments.ParseLong(s, "sizes"))
            .Select(s => s % factor == 0 ? s : throw new UsageException($"--sizes: {s} is not a multiple of {factor}"))
            .ToList();
        var ops = ParseList(line.Option("ops") ?? "encode,decode", "ops")
            .Select(o => o is "encode" or "decode" ? o : throw new UsageException($"--ops: '{o}' must be encode or decode"))
            .ToList();
        var tiling = (line.Option("tiling") ?? "exact") switch
        {
            "none" => TilingMode.None,
            "blend" => TilingMode.Blend,
            "exact" => TilingMode.Exact,
            var other => throw new UsageException($"--tiling '{other}' must be exact, blend or none (the mode of the tiled columns)"),
        };
        int? tile = ModelArguments.Tile(line);
        int runs = (int)ModelArguments.ParseLong(line.Option("runs") ?? DefaultRuns.ToString(CultureInfo.InvariantCulture), "runs");
        double maxSeconds = ModelArguments.Float(line, "max-seconds") ?? DefaultMaxSeconds;
        bool json = line.Flag("json");
        bool profile = line.Flag("profile");
        var device = ModelArguments.ParseDevice(line.Option("device") ?? "auto");

        var declared = AutoencoderKlParameters.Enumerate(config);
        IBackend backend = BackendFactory.Create(device);
        var model = new AutoencoderKlModel(backend, config, SeededWeights.Source(SeededWeights.DefaultSeed, declared));
        long weightBytes = declared.Sum(p => p.Shape.ElementCount) * sizeof(float);
        using var vae = new Vae(model, new VaeOptions { Device = device }, config.ScalingFactor, config.ShiftFactor);
        var machine = Machine.Describe(backend);

        string tilingName = tiling.ToString().ToLowerInvariant();
        if (!json)
        {
            stdout.WriteLine($"nativevae bench: {familyName} AutoencoderKL, seeded weights ({weightBytes / BytesPerMiB:F0} MiB fp32, each half uploaded on its first use), " +
                $"{backend.Name}; median of {runs} run(s) after {WarmupRuns} warm-up");
            stdout.WriteLine($"peak: {machine.PeakNote}");
            stdout.WriteLine($"memory: {machine.MemoryNote}, % of {machine.DeviceBytes / BytesPerMiB / 1024:F1} GiB {machine.DeviceMemoryName}" +
                (tiling == TilingMode.None ? "" : $"; tiled = {tilingName} tiling" + (tile is { } t ? $", tile {t}" : ", default tile")));
            if (machine.DeviceMemoryName == "RAM" && tiling == TilingMode.Exact)
                stdout.WriteLine("note: exact tiling bounds the backend's working set; its whole activations stay in host memory, " +
                    "which on the CPU is the same RAM (the rss columns show the process's peak resident set)");
            stdout.WriteLine($"{"op",-7} {"size",5} {"time s",8} {"peak MiB",9} {"% " + machine.DeviceMemoryName,6} {"rss MiB",8} " +
                $"{"tiled s",8} {"tiled MiB",9} {"rss MiB",8} {"GFLOP/s",8} {"% peak",7}");
        }

        var cases = ops.SelectMany(op => sizes.Select(size => (Op: op, Size: size))).ToList();
        int passes = tiling == TilingMode.None ? 1 : 2;
        var progress = new ProgressBar(stderr, "bench");
        int totalRuns = cases.Count * passes * (WarmupRuns + runs), doneRuns = 0;
        var rates = new Dictionary<string, double>();
        var tiledRates = new Dictionary<string, double>();
        foreach (var (op, size) in cases)
        {
            bool encode = op == "encode";
            var input = encode
                ? Seeded(TensorShape.Nchw(1, config.InChannels, size, size), "bench.image")
                : Seeded(TensorShape.Nchw(1, config.LatentChannels, size / factor, size / factor), "bench.latent");
            var (flops, activationBytes) = DryRun(model, input.Shape, encode);
            var plan = PlanCase(flops, RateFor(rates, op, machine.FirstGuessGflops), RateFor(tiledRates, op, null),
                WarmupRuns + runs, tiling != TilingMode.None, maxSeconds);
            if (!plan.RunUntiled)
            {
                doneRuns += passes * (WarmupRuns + runs);
                string note = $"skipped: about {plan.Estimate:F0} s at {plan.Rate:F0} GFLOP/s is over --max-seconds {maxSeconds:F0}";
                if (json) stderr.WriteLine($"nativevae bench: {op} {size}: {note}");
                else stdout.WriteLine($"{op,-7} {size,5} {note}");
                continue;
            }

            void Step() => progress.Report(new VaeProgress(++doneRuns, totalRuns));
            var whole = Measure(vae, backend, input, encode, TilingMode.None, tile, runs, Step);
            rates[op] = flops / whole.Seconds / 1e9;
            Measurement? tiled = null;
            if (plan.RunTiled)
            {
                tiled = Measure(vae, backend, input, encode, tiling, tile, runs, Step);
                tiledRates[op] = flops / tiled.Seconds / 1e9;
            }
            else if (tiling != TilingMode.None)
            {
                doneRuns += WarmupRuns + runs;
                string note = $"{tilingName}-tiled pass skipped: about {plan.TiledEstimate:F0} s at {plan.TiledRate:F0} GFLOP/s " +
                    $"(tiled rate measured so far) would pass --max-seconds {maxSeconds:F0}";
                if (json) stderr.WriteLine($"nativevae bench: {op} {size}: {note}");
                else stdout.WriteLine($"{op,-7} {size,5} {note}");
            }

            double gflops = flops / whole.Seconds / 1e9;
            double? peakShare = machine.PeakGflops is { } peak ? gflops / peak : null;
            if (json)
            {
                foreach (var m in tiled is null ? [whole] : new[] { whole, tiled })
                    stdout.WriteLine(JsonLine(familyName, op, size, m, backend, flops, activationBytes, machine, runs));
            }
            else
            {
                static string MiB(long? bytes) => bytes is { } b ? (b / BytesPerMiB).ToString("F0", CultureInfo.InvariantCulture) : "-";
                string tiledTime = tiled is null ? "-" : tiled.Seconds.ToString("F3", CultureInfo.InvariantCulture);
                string share = peakShare is { } p ? $"{100 * p:F0}%" : "-";
                stdout.WriteLine($"{op,-7} {size,5} {whole.Seconds,8:F3} {MiB(whole.PeakBytes),9} " +
                    $"{100.0 * whole.PeakBytes / machine.DeviceBytes,5:F1}% {MiB(whole.PeakRssBytes),8} {tiledTime,8} {MiB(tiled?.PeakBytes),9} " +
                    $"{MiB(tiled?.PeakRssBytes),8} {gflops,8:F1} {share,7}");
            }
            if (profile) PrintProfile(stdout, model, backend, input, encode, familyName, op, size, json);
        }
        progress.Report(new VaeProgress(totalRuns, totalRuns));
        return ExitCodes.Success;
    }

    /// <summary>The rate measured for this op, else the slowest one measured for another op, else the first guess.</summary>
    private static double? RateFor(Dictionary<string, double> rates, string op, double? firstGuess) =>
        rates.TryGetValue(op, out double measured) ? measured : rates.Count > 0 ? rates.Values.Min() : firstGuess;

    /// <summary>Whether a case's passes run, and the estimates that decided it (seconds for warm-up plus timed calls).</summary>
    internal sealed record CasePlan(bool RunUntiled, bool RunTiled, double Rate, double Estimate, double TiledRate, double TiledEstimate);

    /// <summary>
    /// Decides a case: the untiled pass runs when its estimate fits <paramref name="maxSeconds"/>; the tiled pass also
    /// when both together fit, estimated at <paramref name="tiledRate"/> (the tiled rate measured so far) or, before
    /// any tiled pass was measured, at the untiled rate (as on the CPU, where tiling costs little). A case whose
    /// untiled pass fits but would not with the tiled one keeps its untiled pass.
    /// </summary>
    internal static CasePlan PlanCase(long flops, double? rate, double? tiledRate, int callsPerPass, bool tiledPass, double maxSeconds)
    {
        double untiledRate = rate ?? GpuFirstGuessGflops;
        double tiled = tiledRate ?? untiledRate;
        double estimate = flops / (untiledRate * 1e9) * callsPerPass;
        double tiledEstimate = tiledPass ? flops / (tiled * 1e9) * callsPerPass : 0;
        bool runUntiled = estimate <= maxSeconds;
        bool runTiled = tiledPass && runUntiled && estimate + tiledEstimate <= maxSeconds;
        return new CasePlan(runUntiled, runTiled, untiledRate, estimate + (runUntiled ? 0 : tiledEstimate), tiled, tiledEstimate);
    }

    /// <summary>One measured configuration: median seconds of the timed runs, backend and process peaks.</summary>
    private sealed record Measurement(TilingMode Tiling, double Seconds, double[] Times, long PeakBytes, long? PeakRssBytes, long? RssBeforeBytes);

    private static Measurement Measure(Vae vae, IBackend backend, HostTensor<float> input, bool encode, TilingMode tiling,
        int? tile, int runs, Action step)
    {
        // Each case starts from an empty pool and the current RSS, so that its peaks are its own.
        backend.ResetPeakMemory();
        // The managed heap returns what earlier cases left (host tensors, exact tiling's host activations) to the OS,
        // so the RSS peak starts from what this case holds.
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        bool rssReset = ProcessMemory.ResetPeak();
        long? rssBefore = rssReset ? ProcessMemory.ResidentBytes() : null;
        var times = new double[runs];
        for (int i = -WarmupRuns; i < runs; i++)
        {
            long start = Stopwatch.GetTimestamp();
            if (encode) vae.Encode(input, new EncodeOptions { Tiling = tiling, TileSize = tile });
            else vae.Decode(input, new DecodeOptions { Tiling = tiling, TileSize = tile, Output = DecodeOutput.FloatTensor });
            if (i >= 0) times[i] = Stopwatch.GetElapsedTime(start).TotalSeconds;
            step();
        }
        return new Measurement(tiling, Median(times), times, backend.Memory.PeakBytes,
            rssReset ? ProcessMemory.PeakResidentBytes() : null, rssBefore);
    }

    /// <summary>The middle time, or the mean of the two middle ones.</summary>
    internal static double Median(IReadOnlyList<double> values)
    {
        var sorted = values.Order().ToArray();
        int mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    /// <summary>Kinds and shapes listed in an op-by-op profile.</summary>
    private const int ProfileKinds = 12;
    private const int ProfileShapes = 15;

    /// <summary>One untiled run with every op timed (synchronised), summed by op kind and by kind and shape.</summary>
    private static void PrintProfile(TextWriter stdout, AutoencoderKlModel model, IBackend backend, HostTensor<float> input,
        bool encode, string family, string op, int size, bool json)
    {
        // The profiled pass runs as a call of its own, after unprofiled ones of the same key (the first records the
        // call's buffers, the second faults in their arena), so that its buffers come from the backend's plan for it,
        // warm, as the measured runs' do (IBackend.BeginCall).
        const int ProfilePasses = 3;
        ProfilingBackend profiler = null!;
        double total = 0;
        for (int pass = 0; pass < ProfilePasses; pass++)
        {
            profiler = new ProfilingBackend(backend);
            long start = Stopwatch.GetTimestamp();
            using (backend.BeginCall($"profile {op} {input.Shape}"))
            using (var x = profiler.Upload(input.Data, input.Shape))
            using (var y = encode ? model.Encode(profiler, x) : model.Decode(profiler, x))
            {
                var output = new float[y.Shape.ElementCount];
                profiler.Download(y, output);
            }
            total = Stopwatch.GetElapsedTime(start).TotalSeconds;
        }
        var ops = profiler.Ops.Select(o => (Key: o.Key, o.Value)).ToList();
        if (json)
        {
            // Profile lines carry "profile" (the op kind and shape) and no seconds_median: readers of the
            // measurement lines skip them by that key.
            foreach (var (key, t) in ops)
                stdout.WriteLine(JsonSerializer.Serialize(new
                {
                    family, op, size, tiling = "none", device = backend.Name, profile = key,
                    calls = t.Calls, seconds = t.Seconds, flops = t.Flops, bytes = t.Bytes,
                }));
            return;
        }
        // The kind is the key up to its shape: "conv3x3 +res 128->128 @512x512" -> "conv3x3 +res".
        static string Kind(string key) => string.Join(' ', key.Split(' ').TakeWhile(w => !w.Contains("->") && !w.StartsWith('@') && !w.StartsWith('[') && !w.Contains('=')));
        stdout.WriteLine($"  profile of one {op} {size} run: {total:F3} s, {ops.Sum(o => o.Value.Seconds) / total:P0} of it inside ops");
        void Rows(IEnumerable<(string Name, int Calls, double Seconds, long Flops, long Bytes)> rows, int take)
        {
            foreach (var r in rows.OrderByDescending(r => r.Seconds).Take(take))
            {
                string rate = r.Flops > 0 ? $"{r.Flops / r.Seconds / 1e9,7:F1} GFLOP/s" : $"{r.Bytes / r.Seconds / 1e9,7:F1} GB/s   ";
                stdout.WriteLine($"    {r.Name,-40} {r.Calls,4}x {r.Seconds * 1e3,9:F1} ms {r.Seconds / total,6:P1} {rate}");
            }
        }
        Rows(ops.GroupBy(o => Kind(o.Key)).Select(g => (g.Key, g.Sum(o => o.Value.Calls), g.Sum(o => o.Value.Seconds),
            g.Sum(o => o.Value.Flops), g.Sum(o => o.Value.Bytes))), ProfileKinds);
        stdout.WriteLine("  by shape:");
        Rows(ops.Select(o => (o.Key, o.Value.Calls, o.Value.Seconds, o.Value.Flops, o.Value.Bytes)), ProfileShapes);
    }

    /// <summary>The run's FLOPs and the peak bytes of its live activations (no pool, no weights): the floor for its memory.</summary>
    private static (long Flops, long ActivationBytes) DryRun(AutoencoderKlModel model, TensorShape shape, bool encode)
    {
        using var dry = new DryRunBackend();
        using var x = dry.Allocate(shape);
        using var y = encode ? model.Encode(dry, x) : model.Decode(dry, x);
        return (dry.Flops, dry.PeakBytes);
    }

    private static HostTensor<float> Seeded(TensorShape shape, string stream) =>
        new(shape, SeededWeights.Uniform(SeededWeights.DefaultSeed, stream, shape.ElementCount));

    private static string JsonLine(string family, string op, int size, Measurement m, IBackend backend, long flops, long activationBytes,
        Machine machine, int runs)
    {
        double gflops = flops / m.Seconds / 1e9;
        var fields = new Dictionary<string, object?>
        {
            ["family"] = family,
            ["op"] = op,
            ["size"] = size,
            ["tiling"] = m.Tiling.ToString().ToLowerInvariant(),
            ["device"] = backend.Name,
            ["runs"] = runs,
            ["seconds_median"] = m.Seconds,
            ["seconds"] = m.Times,
            ["peak_bytes"] = m.PeakBytes,
            ["activation_peak_bytes"] = activationBytes,
            ["peak_memory_share"] = (double)m.PeakBytes / machine.DeviceBytes,
            ["process_peak_rss_bytes"] = m.PeakRssBytes,
            ["process_rss_before_bytes"] = m.RssBeforeBytes,
            ["flops"] = flops,
            ["gflops"] = gflops,
            ["peak_gflops"] = machine.PeakGflops,
            ["peak_share"] = machine.PeakGflops is { } p ? gflops / p : null,
        };
        return JsonSerializer.Serialize(fields);
    }

    private static string[] ParseList(string text, string name)
    {
        var items = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return items.Length > 0 ? items : throw new UsageException($"--{name} is empty");
    }

    /// <summary>What the table's percentages are of: the device's memory and, on the CPU, a measured FMA peak.</summary>
    private sealed record Machine(long DeviceBytes, string DeviceMemoryName, string MemoryNote, double? PeakGflops, string PeakNote,
        double FirstGuessGflops)
    {
        public static Machine Describe(IBackend backend)
        {
            if (backend is IlgpuBackend gpu)
            {
                bool emulator = gpu.Kind == BackendKind.IlgpuCpu;
                return new Machine(gpu.Accelerator.MemorySize, emulator ? "emu" : "GPU",
                    "device buffer pool peak (weights, activations, pooled buffers)", null,
                    "unknown for this device (no % column)", emulator ? EmulatorFirstGuessGflops : GpuFirstGuessGflops);
            }
            using var workers = new CpuWorkers();
            var width = SimdWidths.Best;
            double peak = FmaPeakCpu.MeasureGflops(workers, width);
            return new Machine(GC.GetGCMemoryInfo().TotalAvailableMemoryBytes, "RAM",
                "backend peak (weights, packed conv weights, activations and pooled buffers, worker scratch); " +
                "JSON adds the process's peak RSS",
                peak, $"{peak:F0} GFLOP/s fp32, measured: {workers.Count} threads of independent {width} FMA chains (best of 3)",
                peak * FirstGuessPeakShare);
        }
    }
}
