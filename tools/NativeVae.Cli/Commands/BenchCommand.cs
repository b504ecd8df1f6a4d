using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.CommandLine;
using NativeVae.Cli.Bench;

namespace NativeVae.Cli.Commands;

/// <summary>
/// <c>nativevae bench</c>: times encode and decode of an AutoencoderKL of the real SD or SDXL architecture with
/// seeded random weights (nothing to download), untiled and tiled, on the current device. Per case: one warm-up
/// run (packs weights, fills the buffer pool), then the median of <c>--runs</c> timed calls of the public API.
/// Cases whose estimated time (dry-run FLOPs over the rate measured so far) exceeds <c>--max-seconds</c> are skipped;
/// the tiled pass is estimated from the tiled rate measured so far (on a GPU exact tiling runs many times slower than
/// the untiled model: host-resident activations) and skipped alone when the untiled pass fits but both do not.
/// The table is fixed-width text, one line per case, rather than a Spectre.Console table: scripts and the README
/// read its columns, and a Spectre table re-flows and wraps its cells to the terminal's width and draws borders,
/// so the same run would print differently in a narrow terminal, a wide one and a log file.
/// </summary>
internal sealed class BenchCommand : ICommand
{
    private const string DefaultSizes = "256,512";
    private const int DefaultRuns = 3;
    private const double DefaultMaxSeconds = 120;
    private const int DefaultWarmupRuns = 1;
    private const int MaxWarmupRuns = 100;

    /// <summary>Before anything is measured, the CPU is assumed to reach this share of its FMA peak (the 3x3
    /// convolutions that dominate reach 60-90%); after a case, its measured rate is used.</summary>
    private const double FirstGuessPeakShare = 0.5;

    /// <summary>First-guess GFLOP/s of ILGPU's CPU emulator and of a GPU, before anything is measured.</summary>
    private const double EmulatorFirstGuessGflops = 0.3;
    private const double GpuFirstGuessGflops = 5000;

    private const double BytesPerMiB = 1024.0 * 1024.0;

    /// <summary>Pixels per latent element of both benchmark architectures (SD and SDXL).</summary>
    private const int DownsampleFactor = 8;

    public Command Build(TextWriter stdout, TextWriter stderr)
    {
        var family = OptionParsers.Choice<ModelFamily>("--family", "the architecture, with seeded weights [default: sd]",
            OptionParsers.Families());
        var sizes = new Option<string>("--sizes") { HelpName = "256,512", Description = $"image edges in pixels, multiples of 8 [default: {DefaultSizes}]" };
        var ops = new Option<string>("--ops") { HelpName = "encode,decode", Description = "the ops to time [default: encode,decode]" };
        var tiling = OptionParsers.Choice<TilingMode>("--tiling", "the mode of the tiled columns; none drops them [default: exact]",
            ("exact", TilingMode.Exact), ("blend", TilingMode.Blend), ("none", TilingMode.None));
        var tile = OptionParsers.PositiveInt("--tile", "N", "tile edge in pixels of the tiled pass [default: as encode/decode: blend: the sample size; exact: 256 on the CPU, on a GPU the largest its budget allows]");
        var memoryLimit = OptionParsers.PositiveInt("--memory-limit-mb", "MiB",
            "the budget of activation memory the calls plan with: an untiled case over it runs exact alone, and exact tiling without --tile takes the largest tile within it [default: a share of the device's free memory]");
        var runs = OptionParsers.PositiveInt("--runs", "N", $"timed calls per case, after the warm-up; the median is reported [default: {DefaultRuns}]");
        var warmup = OptionParsers.PositiveInt("--warmup", "N",
            $"untimed calls per case before the timed ones; 0 suits calls of minutes, where the JIT and first touch of memory are noise [default: {DefaultWarmupRuns}]",
            MaxWarmupRuns, allowZero: true);
        var maxSeconds = OptionParsers.Number("--max-seconds", "S",
            $"skip a case whose estimated time (dry-run FLOPs over the rate measured so far) is over S [default: {DefaultMaxSeconds}]");
        var json = new Option<bool>("--json") { Description = "one JSON object per case and tiling on stdout instead of the table" };
        var profile = new Option<bool>("--profile") { Description = "after each case, an op-by-op profile of one untiled run" };
        var device = ModelOptions.DeviceOption();
        var dtype = ModelOptions.DTypeOption();
        var exactStore = ModelOptions.ExactStoreOption();
        var frames = OptionParsers.PositiveInt("--frames", "N", "video families (wan, wan22): frames of the video, 1 + 4k; --sizes then takes HxW too; --tiling exact tiles every frame [default: 5, untiled]");
        var command = new Command("bench",
            "time encode/decode of a seeded-random VAE of the real architecture (no download): median, peak memory, GFLOP/s")
        {
            family, sizes, ops, tiling, tile, runs, warmup, maxSeconds, json, profile, device, dtype, exactStore, frames, memoryLimit,
        };
        command.SetAction(parse => (parse.GetValue(family) ?? ModelFamily.Sd).IsVideo()
            ? VideoBench.Run(stdout, stderr, parse.GetValue(family)!.Value, parse.GetValue(sizes) ?? DefaultSizes, ParseList(parse.GetValue(ops) ?? "encode,decode", "ops"),
                parse.GetValue(frames) ?? VideoBench.DefaultFrames, parse.GetValue(runs) ?? 1, parse.GetValue(json), parse.GetValue(profile),
                parse.GetValue(device) ?? DevicePreference.Auto, parse.GetValue(dtype) ?? DType.F32,
                new VideoBench.Tiling(parse.GetValue(tiling) ?? TilingMode.None, parse.GetValue(tile), parse.GetValue(exactStore) ?? ExactTilingStore.Auto))
            : Run(stdout, stderr, new Settings(
            parse.GetValue(family) ?? ModelFamily.Sd,
            parse.GetValue(sizes) ?? DefaultSizes,
            parse.GetValue(ops) ?? "encode,decode",
            parse.GetValue(tiling) ?? TilingMode.Exact,
            parse.GetValue(tile),
            parse.GetValue(runs) ?? DefaultRuns,
            parse.GetValue(warmup) ?? DefaultWarmupRuns,
            parse.GetValue(maxSeconds) ?? DefaultMaxSeconds,
            parse.GetValue(json),
            parse.GetValue(profile),
            parse.GetValue(device) ?? DevicePreference.Auto,
            parse.GetValue(dtype) ?? DType.F32,
            parse.GetValue(exactStore) ?? ExactTilingStore.Auto,
            parse.GetValue(memoryLimit) is int mib ? mib * (long)BytesPerMiB : null)));
        return command;
    }

    /// <summary>The parsed command line.</summary>
    private sealed record Settings(ModelFamily Family, string Sizes, string Ops, TilingMode Tiling, int? Tile, int Runs,
        int WarmupRuns, double MaxSeconds, bool Json, bool Profile, DevicePreference Device, DType DType, ExactTilingStore ExactStore,
        long? MemoryLimitBytes);

    private static int Run(TextWriter stdout, TextWriter stderr, Settings settings)
    {
        string familyName = OptionParsers.FamilyName(settings.Family);
        var sizes = ParseList(settings.Sizes, "sizes")
            .Select(s => int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) && v > 0
                ? v
                : throw new UsageException($"--sizes: '{s}' must be a positive integer (at most {int.MaxValue})"))
            .Select(s => s % DownsampleFactor == 0 ? s : throw new UsageException($"--sizes: {s} is not a multiple of {DownsampleFactor}"))
            .ToList();
        var ops = ParseList(settings.Ops, "ops")
            .Select(o => o is "encode" or "decode" ? o : throw new UsageException($"--ops: '{o}' must be encode or decode"))
            .ToList();
        var tiling = settings.Tiling;
        int? tile = settings.Tile;
        int runs = settings.Runs;
        int warmupRuns = settings.WarmupRuns;
        double maxSeconds = settings.MaxSeconds;
        bool json = settings.Json;
        bool profile = settings.Profile;

        using var bench = VaeBenchmark.CreateSeeded(settings.Family, settings.Device, settings.DType, settings.ExactStore, settings.MemoryLimitBytes);
        var vae = bench.Vae;
        int factor = vae.DownsampleFactor;
        var machine = Machine.Describe(bench);

        string tilingName = tiling.ToString().ToLowerInvariant();
        if (!json)
        {
            stdout.WriteLine($"nativevae bench: {familyName} {(bench.Family.IsTiny() ? "AutoencoderTiny" : bench.Family == ModelFamily.QwenImage ? "AutoencoderKLQwenImage (one frame)" : "AutoencoderKL")}, seeded weights ({bench.WeightBytes / BytesPerMiB:F0} MiB {bench.DType.ShortName()}, each half uploaded on its first use), " +
                $"{bench.DeviceName}; median of {runs} run(s) after {warmupRuns} warm-up");
            stdout.WriteLine($"peak: {machine.PeakNote}");
            if (machine.PeakGflops is not null)
                stdout.WriteLine("note: GFLOP/s counts direct-convolution FLOPs; the CPU runs 3x3 stride-1 convolutions of 64+ channels as Winograd F(4x4, 3x3), " +
                    "which does fewer multiplies, so % peak can pass 100%");
            stdout.WriteLine($"memory: {machine.MemoryNote}, % of {machine.DeviceBytes / BytesPerMiB / 1024:F1} GiB {machine.DeviceMemoryName}" +
                (tiling == TilingMode.None ? "" : $"; tiled = {tilingName} tiling" + (tile is { } t ? $", tile {t}" : ", default tile")));
            if (machine.DeviceMemoryName == "RAM" && tiling == TilingMode.Exact)
                stdout.WriteLine("note: exact tiling on the CPU keeps its activations in memory while they fit, else (or with --exact-store file) " +
                    "in a temporary file (the page cache, not the RSS); store MiB is what one call reads and writes through that file, " +
                    "x untiled the tiled time over the untiled one, max abs the largest difference of their outputs");
            stdout.WriteLine($"{"op",-7} {"size",5} {"time s",8} {"peak MiB",9} {"% " + machine.DeviceMemoryName,6} {"rss MiB",8} " +
                $"{"tiled s",8} {"tiled MiB",9} {"rss MiB",8} {"store MiB",9} {"x untiled",9} {"max abs",8} {"GFLOP/s",8} {"% peak",7}");
        }

        var cases = ops.SelectMany(op => sizes.Select(size => (Op: op, Size: size))).ToList();
        int passes = tiling == TilingMode.None ? 1 : 2;
        var progress = new ProgressBar(stderr, "bench");
        int totalRuns = cases.Count * passes * (warmupRuns + runs), doneRuns = 0;
        var rates = new Dictionary<string, double>();
        var tiledRates = new Dictionary<string, double>();
        foreach (var (op, size) in cases)
        {
            bool encode = op == "encode";
            var input = encode
                ? VaeBenchmark.SeededInput(TensorShape.Nchw(1, bench.InChannels, size, size), "bench.image")
                : VaeBenchmark.SeededInput(TensorShape.Nchw(1, vae.LatentChannels, size / factor, size / factor), "bench.latent");
            var (flops, activationBytes) = bench.DryRun(input.Shape, encode);
            var plan = PlanCase(flops, RateFor(rates, op, machine.FirstGuessGflops), RateFor(tiledRates, op, null),
                warmupRuns + runs, tiling != TilingMode.None, maxSeconds);
            if (!plan.RunUntiled)
            {
                doneRuns += passes * (warmupRuns + runs);
                string note = $"skipped: about {plan.Estimate:F0} s at {plan.Rate:F0} GFLOP/s is over --max-seconds {maxSeconds:F0}";
                if (json) stderr.WriteLine($"nativevae bench: {op} {size}: {note}");
                else stdout.WriteLine($"{op,-7} {size,5} {note}");
                continue;
            }

            void Step() => progress.Report(new VaeProgress(++doneRuns, totalRuns));
            Measurement? whole = null;
            string? untiledRefusal = null;
            try
            {
                whole = Measure(bench, input, encode, TilingMode.None, tile, warmupRuns, runs, Step);
                rates[op] = flops / whole.Seconds / 1e9;
            }
            catch (InsufficientMemoryException e) when (tiling == TilingMode.Exact)
            {
                // Past the memory budget untiled; exact tiling is what such a size is for, so it runs alone.
                untiledRefusal = e.Message;
                doneRuns += warmupRuns + runs;
                if (json) stderr.WriteLine($"nativevae bench: {op} {size}: untiled skipped: {e.Message}");
            }
            Measurement? tiled = null;
            if (plan.RunTiled || untiledRefusal is not null)
            {
                tiled = Measure(bench, input, encode, tiling, tile, warmupRuns, runs, Step);
                tiledRates[op] = flops / tiled.Seconds / 1e9;
            }
            else if (tiling != TilingMode.None)
            {
                doneRuns += warmupRuns + runs;
                string note = $"{tilingName}-tiled pass skipped: about {plan.TiledEstimate:F0} s at {plan.TiledRate:F0} GFLOP/s " +
                    $"(tiled rate measured so far) would pass --max-seconds {maxSeconds:F0}";
                if (json) stderr.WriteLine($"nativevae bench: {op} {size}: {note}");
                else stdout.WriteLine($"{op,-7} {size,5} {note}");
            }

            double? ratio = whole is not null && tiled is not null ? tiled.Seconds / whole.Seconds : null;
            double? maxAbs = whole is not null && tiled is not null ? MaxAbsDifference(whole.Output, tiled.Output) : null;
            if (json)
            {
                foreach (var m in new[] { whole, tiled }.OfType<Measurement>())
                    stdout.WriteLine(JsonLine(familyName, op, size, m, bench.DeviceName, bench.DType, flops, activationBytes, machine, warmupRuns, runs,
                        ReferenceEquals(m, tiled) ? ratio : null, ReferenceEquals(m, tiled) ? maxAbs : null));
            }
            else
            {
                static string MiB(long? bytes) => bytes is { } b ? (b / BytesPerMiB).ToString("F0", CultureInfo.InvariantCulture) : "-";
                static string Seconds(Measurement? m) => m is null ? "-" : m.Seconds.ToString("F3", CultureInfo.InvariantCulture);
                var rated = whole ?? tiled!;
                double gflops = flops / rated.Seconds / 1e9;
                string share = machine.PeakGflops is { } peak ? $"{100 * gflops / peak:F0}%" : "-";
                string deviceShare = whole is null ? "-" : $"{100.0 * whole.PeakBytes / machine.DeviceBytes:F1}%";
                stdout.WriteLine($"{op,-7} {size,5} {Seconds(whole),8} {MiB(whole?.PeakBytes),9} {deviceShare,6} " +
                    $"{MiB(whole?.PeakRssBytes),8} {Seconds(tiled),8} {MiB(tiled?.PeakBytes),9} {MiB(tiled?.PeakRssBytes),8} " +
                    $"{MiB(tiled?.StoreBytesPerCall),9} {(ratio is { } r ? r.ToString("F2", CultureInfo.InvariantCulture) : "-"),9} " +
                    $"{(maxAbs is { } d ? d.ToString("0.0E+0", CultureInfo.InvariantCulture) : "-"),8} " +
                    $"{gflops,8:F1} {share,7}");
                if (untiledRefusal is not null) stdout.WriteLine($"        untiled skipped: {untiledRefusal}");
            }
            if (profile) PrintProfile(stdout, bench, input, encode, familyName, op, size, json);
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
    private sealed record Measurement(TilingMode Tiling, double Seconds, double[] Times, long PeakBytes, long? PeakRssBytes, long? RssBeforeBytes,
        long StoreBytesPerCall, float[] Output);

    /// <summary>The largest absolute difference of two outputs of one case: exact tiling's against untiled.</summary>
    private static double MaxAbsDifference(float[] a, float[] b) =>
        a.Length == b.Length ? a.Zip(b, (x, y) => (double)Math.Abs(x - y)).DefaultIfEmpty(0).Max() : double.NaN;

    private static Measurement Measure(VaeBenchmark bench, HostTensor<float> input, bool encode, TilingMode tiling,
        int? tile, int warmupRuns, int runs, Action step)
    {
        var vae = bench.Vae;
        // Each case starts from an empty pool and the current RSS, so that its peaks are its own.
        bench.ResetPeakMemory();
        // The managed heap returns what earlier cases left (host tensors, exact tiling's host activations) to the OS,
        // so the RSS peak starts from what this case holds.
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        bool rssReset = ProcessMemory.ResetPeak();
        long? rssBefore = rssReset ? ProcessMemory.ResidentBytes() : null;
        var times = new double[runs];
        long storeBefore = VaeBenchmark.StoreTrafficBytes;
        float[] output = [];
        for (int i = -warmupRuns; i < runs; i++)
        {
            long start = Stopwatch.GetTimestamp();
            if (encode)
                output = vae.Encode(input, new EncodeOptions { Tiling = tiling, TileSize = tile }).Data;
            else
            {
                using var decoded = vae.Decode(input, new DecodeOptions { Tiling = tiling, TileSize = tile, Output = DecodeOutput.FloatTensor });
                output = decoded.FloatTensor!.Data;
            }
            if (i >= 0) times[i] = Stopwatch.GetElapsedTime(start).TotalSeconds;
            step();
        }
        return new Measurement(tiling, Median(times), times, bench.PeakDeviceBytes,
            rssReset ? ProcessMemory.PeakResidentBytes() : null, rssBefore,
            (VaeBenchmark.StoreTrafficBytes - storeBefore) / (warmupRuns + runs), output);
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
    internal static void PrintProfile(TextWriter stdout, VaeBenchmark bench, HostTensor<float> input,
        bool encode, string family, string op, int size, bool json)
    {
        var result = bench.Profile(input, encode);
        double total = result.TotalSeconds;
        var ops = result.Ops;
        if (json)
        {
            // Profile lines carry "profile" (the op kind and shape) and no seconds_median: readers of the
            // measurement lines skip them by that key.
            foreach (var t in ops)
                stdout.WriteLine(JsonSerializer.Serialize(new
                {
                    family, op, size, tiling = "none", device = bench.DeviceName, profile = t.Key,
                    calls = t.Calls, seconds = t.Seconds, flops = t.Flops, bytes = t.Bytes,
                }));
            return;
        }
        // The kind is the key up to its shape: "conv3x3 +res 128->128 @512x512" -> "conv3x3 +res".
        static string Kind(string key) => string.Join(' ', key.Split(' ').TakeWhile(w => !w.Contains("->") && !w.StartsWith('@') && !w.StartsWith('[') && !w.Contains('=')));
        stdout.WriteLine($"  profile of one {op} {size} run: {total:F3} s, {ops.Sum(o => o.Seconds) / total:P0} of it inside ops");
        void Rows(IEnumerable<(string Name, int Calls, double Seconds, long Flops, long Bytes)> rows, int take)
        {
            foreach (var r in rows.OrderByDescending(r => r.Seconds).Take(take))
            {
                string rate = r.Flops > 0 ? $"{r.Flops / r.Seconds / 1e9,7:F1} GFLOP/s" : $"{r.Bytes / r.Seconds / 1e9,7:F1} GB/s   ";
                stdout.WriteLine($"    {r.Name,-40} {r.Calls,4}x {r.Seconds * 1e3,9:F1} ms {r.Seconds / total,6:P1} {rate}");
            }
        }
        Rows(ops.GroupBy(o => Kind(o.Key)).Select(g => (g.Key, g.Sum(o => o.Calls), g.Sum(o => o.Seconds),
            g.Sum(o => o.Flops), g.Sum(o => o.Bytes))), ProfileKinds);
        stdout.WriteLine("  by shape:");
        Rows(ops.Select(o => (o.Key, o.Calls, o.Seconds, o.Flops, o.Bytes)), ProfileShapes);
    }

    private static string JsonLine(string family, string op, int size, Measurement m, string device, DType dtype, long flops,
        long activationBytes, Machine machine, int warmupRuns, int runs, double? ratioToUntiled, double? maxAbsToUntiled)
    {
        double gflops = flops / m.Seconds / 1e9;
        var fields = new Dictionary<string, object?>
        {
            ["family"] = family,
            ["op"] = op,
            ["size"] = size,
            ["tiling"] = m.Tiling.ToString().ToLowerInvariant(),
            ["device"] = device,
            ["dtype"] = dtype.ShortName(),
            ["warmup_runs"] = warmupRuns,
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
            ["store_bytes_per_call"] = m.StoreBytesPerCall,
            ["ratio_to_untiled"] = ratioToUntiled,
            ["max_abs_vs_untiled"] = maxAbsToUntiled,
        };
        return JsonSerializer.Serialize(fields);
    }

    internal static string[] ParseList(string text, string name)
    {
        var items = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return items.Length > 0 ? items : throw new UsageException($"--{name} is empty");
    }

    /// <summary>What the table's percentages are of: the device's memory and, on the CPU, a measured FMA peak.</summary>
    private sealed record Machine(long DeviceBytes, string DeviceMemoryName, string MemoryNote, double? PeakGflops, string PeakNote,
        double FirstGuessGflops)
    {
        public static Machine Describe(VaeBenchmark bench)
        {
            if (bench.MemoryKind != DeviceMemoryKind.Ram)
            {
                bool emulator = bench.MemoryKind == DeviceMemoryKind.Emulator;
                return new Machine(bench.DeviceMemoryBytes, emulator ? "emu" : "GPU",
                    "device buffer pool peak (weights, activations, pooled buffers)", null,
                    "unknown for this device (no % column)", emulator ? EmulatorFirstGuessGflops : GpuFirstGuessGflops);
            }
            var peak = VaeBenchmark.MeasureCpuFmaPeak();
            return new Machine(bench.DeviceMemoryBytes, "RAM",
                "backend peak (weights, packed conv weights, activations and pooled buffers, worker scratch); " +
                "JSON adds the process's peak RSS",
                peak.Gflops, $"{peak.Gflops:F0} GFLOP/s fp32, measured: {peak.Threads} threads of independent {peak.SimdWidth} FMA chains (best of 3)",
                peak.Gflops * FirstGuessPeakShare);
        }
    }
}
