using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using NativeVae.Cli.Commands;

namespace NativeVae.Cli.Bench;

/// <summary>
/// <c>nativevae bench --family wan|wan22</c>: times video encode and decode of the seeded Wan 2.1 or 2.2 VAE (published
/// config, no download) on <c>--frames</c> frames of each <c>--sizes</c> (S or HxW), untiled or (<c>--tiling exact</c>)
/// in exact tiles, after a one-frame warm-up that uploads the half's weights; reports the median time, frames per
/// second and the process's peak RSS over the case.
/// </summary>
internal static class VideoBench
{
    public const int DefaultFrames = 5;

    private const double BytesPerMiB = 1024.0 * 1024.0;

    /// <summary>How the video runs: untiled, or in exact tiles of <paramref name="Tile"/> over <paramref name="Store"/>.</summary>
    public sealed record Tiling(TilingMode Mode, int? Tile, ExactTilingStore Store)
    {
        public override string ToString() => Mode == TilingMode.None ? "untiled"
            : $"{Mode.ToString().ToLowerInvariant()} tiles of {(Tile is { } t ? t.ToString(CultureInfo.InvariantCulture) : "the default size")}, store {Store.ToString().ToLowerInvariant()}";
    }

    public static int Run(TextWriter stdout, TextWriter stderr, ModelFamily family, string sizeList, IReadOnlyList<string> ops, int frames,
        int runs, bool json, bool profile, DevicePreference device, DType dtype, Tiling tiling)
    {
        var sizes = BenchCommand.ParseList(sizeList, "sizes").Select(ParseSize).ToList();
        foreach (string op in ops)
            if (op is not ("encode" or "decode")) throw new UsageException($"--ops: '{op}' must be encode or decode");
        if (tiling.Mode == TilingMode.Blend) throw new UsageException("--tiling blend: video runs untiled or with exact tiles");
        using var bench = VaeBenchmark.CreateSeeded(family, device, dtype, tiling.Store);
        var vae = bench.Vae;
        int f = vae.DownsampleFactor;
        if (vae.UsableFrames(frames) != frames) throw new UsageException($"--frames {frames}: {family.Name()} takes 1 + 4k frames");
        foreach (var (h, w) in sizes)
            if (h % f != 0 || w % f != 0) throw new UsageException($"--sizes: {h}x{w} is not a multiple of {f}");
        int latentFrames = vae.LatentFrames(frames);
        if (!json)
        {
            stdout.WriteLine($"nativevae bench: {family.Name()} AutoencoderKLWan (video, frame by frame), seeded weights, {bench.DeviceName}; " +
                $"{frames} frames, {tiling}, median of {runs} run(s) after a one-frame warm-up");
            stdout.WriteLine($"{"op",-7} {"size",9} {"frames",6} {"time s",9} {"frames/s",9} {"peak RSS MiB",13}");
        }
        foreach (string op in ops)
        {
            foreach (var (h, w) in sizes)
            {
                bool encode = op == "encode";
                var input = encode
                    ? VaeBenchmark.SeededInput(new TensorShape(1, 3, frames, h, w), "bench.video")
                    : VaeBenchmark.SeededInput(new TensorShape(1, vae.LatentChannels, latentFrames, h / f, w / f), "bench.video.latent");
                var warmup = encode
                    ? VaeBenchmark.SeededInput(new TensorShape(1, 3, 1, h, w), "bench.video")
                    : VaeBenchmark.SeededInput(new TensorShape(1, vae.LatentChannels, 1, h / f, w / f), "bench.video.latent");
                Run(vae, warmup, encode, tiling);
                GC.Collect();
                ProcessMemory.ResetPeak();
                var seconds = new double[runs];
                for (int i = 0; i < runs; i++)
                {
                    stderr.WriteLine($"bench: {op} {h}x{w}, {frames} frames, run {i + 1} of {runs}");
                    long start = Stopwatch.GetTimestamp();
                    Run(vae, input, encode, tiling);
                    seconds[i] = Stopwatch.GetElapsedTime(start).TotalSeconds;
                }
                double median = seconds.Order().ElementAt(runs / 2);
                long peak = ProcessMemory.PeakResidentBytes() ?? 0;
                if (json)
                {
                    stdout.WriteLine(new JsonObject
                    {
                        ["family"] = family.Name(), ["op"] = op, ["height"] = h, ["width"] = w, ["frames"] = frames, ["seconds"] = median,
                        ["frames_per_second"] = frames / median, ["peak_rss_bytes"] = peak, ["device"] = bench.DeviceName,
                        ["tiling"] = tiling.Mode.ToString().ToLowerInvariant(), ["tile"] = tiling.Tile,
                    }.ToJsonString());
                }
                else
                {
                    stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"{op,-7} {$"{h}x{w}",9} {frames,6} {median,9:F2} {frames / median,9:F3} {peak / BytesPerMiB,13:F0}"));
                }
                if (profile) BenchCommand.PrintProfile(stdout, bench, input, encode, family.Name(), op, h, json);
            }
        }
        return ExitCodes.Success;
    }

    private static void Run(Vae vae, HostTensor<float> input, bool encode, Tiling tiling)
    {
        if (encode) vae.EncodeVideo(input, new EncodeOptions { Tiling = tiling.Mode, TileSize = tiling.Tile });
        else vae.DecodeVideo(input, new DecodeOptions { Tiling = tiling.Mode, TileSize = tiling.Tile });
    }

    /// <summary>"480x832" (height x width) or "256".</summary>
    private static (int Height, int Width) ParseSize(string text)
    {
        var parts = text.Split('x');
        if (parts.Length is 1 or 2 && parts.All(p => int.TryParse(p, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) && v > 0))
        {
            int h = int.Parse(parts[0], CultureInfo.InvariantCulture);
            return (h, parts.Length == 2 ? int.Parse(parts[1], CultureInfo.InvariantCulture) : h);
        }
        throw new UsageException($"--sizes: '{text}' must be S or HxW in pixels");
    }
}
