using System.Text.Json.Nodes;
using static NativeVae.Tests.Cli.CliRun;

namespace NativeVae.Tests.Cli;

/// <summary><c>nativevae bench</c> on a tiny size: the JSON lines carry the fields the README and scripts read.</summary>
public class BenchCommandTests
{

    [Test]
    public void JsonHasOneLinePerOpSizeAndTilingWithTheAgreedFields()
    {
        var (code, stdout, stderr) = Run("bench", "--sizes", "16", "--ops", "decode,encode", "--runs", "1", "--warmup", "0", "--json", "--device", "cpu");
        Assert.That(code, Is.Zero, stderr);
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        Assert.That(lines.Select(l => ((string)l["op"]!, (string)l["tiling"]!)),
            Is.EqualTo(new[] { ("decode", "none"), ("decode", "exact"), ("encode", "none"), ("encode", "exact") }));
        foreach (var line in lines)
        {
            Assert.That((string)line["family"]!, Is.EqualTo("sd"));
            Assert.That((int)line["size"]!, Is.EqualTo(16));
            Assert.That(((int)line["warmup_runs"]!, (int)line["runs"]!), Is.EqualTo((0, 1)));
            Assert.That((string)line["device"]!, Does.StartWith("CPU SIMD"));
            double seconds = (double)line["seconds_median"]!;
            Assert.That(seconds, Is.GreaterThan(0).And.LessThan(60));
            // The backend peak holds the fp32 weights of the halves used so far: the decoder's first (SD: ~49.5 M
            // parameters), then both (~83.7 M): each half is uploaded on its first use.
            long weights = (string)line["op"]! == "decode" ? 4L * 49_000_000 : 4L * 83_000_000;
            Assert.That((long)line["peak_bytes"]!, Is.GreaterThan(weights));
            long flops = (long)line["flops"]!;
            Assert.That(flops, Is.GreaterThan(0));
            Assert.That((double)line["gflops"]!, Is.EqualTo(flops / seconds / 1e9).Within(1e-6).Percent);
        }
        // Decode of a 2x2 latent and encode of a 16x16 image do different work.
        Assert.That((long)lines[0]["flops"]!, Is.Not.EqualTo((long)lines[2]["flops"]!));
    }

    [Test]
    public void SixteenBitBenchNamesItsDtypeHalvesTheWeightsAndCountsStoreTraffic()
    {
        var (code, stdout, stderr) = Run("bench", "--sizes", "64", "--ops", "decode", "--runs", "1", "--json", "--device", "cpu",
            "--dtype", "bf16", "--tile", "16", "--exact-store", "file");
        Assert.That(code, Is.Zero, stderr);
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        Assert.That(lines.Select(l => (string)l["tiling"]!), Is.EqualTo(new[] { "none", "exact" }));
        foreach (var line in lines)
        {
            Assert.That((string)line["dtype"]!, Is.EqualTo("bf16"));
            Assert.That((string)line["device"]!, Does.Contain("bf16 storage"));
            // The decoder's ~49.5 M weights in 2 bytes, under what fp32 would hold.
            Assert.That((long)line["peak_bytes"]!, Is.GreaterThan(2L * 49_000_000).And.LessThan(4L * 49_000_000));
        }
        Assert.That((long)lines[0]["store_bytes_per_call"]!, Is.Zero, "untiled uses no store");
        Assert.That((long)lines[1]["store_bytes_per_call"]!, Is.GreaterThan(0), "exact tiling on the CPU goes through its store");
        Assert.That((double)lines[1]["ratio_to_untiled"]!, Is.GreaterThan(0));
    }

    [Test]
    public void TableSkipsSizesEstimatedOverTheTimeLimit()
    {
        var (code, stdout, stderr) = Run("bench", "--sizes", "16,4096", "--ops", "decode", "--runs", "1", "--tiling", "none",
            "--max-seconds", "30", "--device", "cpu");
        Assert.That(code, Is.Zero, stderr);
        var rows = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith("decode", StringComparison.Ordinal)).ToList();
        Assert.That(rows, Has.Count.EqualTo(2), stdout);
        Assert.That(rows[0], Does.Not.Contain("skipped"));
        Assert.That(rows[1], Does.Contain("4096").And.Contain("skipped"));
        Assert.That(stdout, Does.Contain("Winograd").And.Contain("% peak can pass 100%"), "the CPU table says why % peak passes 100%");
    }

    /// <summary>
    /// On a GPU exact tiling ran ~36x slower than the untiled model (H200, SD encode 512: 3.4 s against 0.095 s), so
    /// estimating the tiled pass at the untiled rate let a 2048 case run for minutes past --max-seconds 40.
    /// </summary>
    [Test]
    public void TiledPassIsEstimatedAtTheTiledRateAndSkippedAloneWhenItWouldPassTheLimit()
    {
        const long Flops2048 = 19_500_000_000_000;
        var plan = NativeVae.Cli.Commands.BenchCommand.PlanCase(Flops2048, rate: 12_000, tiledRate: 330, callsPerPass: 2,
            tiledPass: true, maxSeconds: 40);
        Assert.That(plan.RunUntiled, Is.True, "the untiled pass (about 3 s) fits");
        Assert.That(plan.RunTiled, Is.False, "the tiled pass (about 118 s at the tiled rate) does not");
        Assert.That(plan.TiledEstimate, Is.EqualTo(Flops2048 / 330e9 * 2).Within(1e-9).Percent);

        var small = NativeVae.Cli.Commands.BenchCommand.PlanCase(Flops2048 / 16, 12_000, 330, 2, true, 40);
        Assert.That((small.RunUntiled, small.RunTiled), Is.EqualTo((true, true)), "512: both fit");

        var noTiledRateYet = NativeVae.Cli.Commands.BenchCommand.PlanCase(Flops2048, 12_000, null, 2, true, 40);
        Assert.That((noTiledRateYet.RunUntiled, noTiledRateYet.RunTiled), Is.EqualTo((true, true)), "before a tiled pass is measured, it is estimated at the untiled rate");

        var tooBig = NativeVae.Cli.Commands.BenchCommand.PlanCase(Flops2048 * 16, 12_000, 330, 2, true, 40);
        Assert.That((tooBig.RunUntiled, tooBig.RunTiled), Is.EqualTo((false, false)));
        Assert.That(NativeVae.Cli.Commands.BenchCommand.PlanCase(Flops2048, 12_000, 330, 2, tiledPass: false, 40).RunTiled, Is.False);
    }

    [Test]
    public void RejectsASizeThatIsNotAMultipleOfTheDownsampling()
    {
        var (code, _, stderr) = Run("bench", "--sizes", "20", "--device", "cpu");
        Assert.That(code, Is.EqualTo(NativeVae.Cli.ExitCodes.Usage));
        Assert.That(stderr, Does.Contain("--sizes: 20"));
    }

    [Test]
    public void RejectsANegativeWarmup()
    {
        var (code, _, stderr) = Run("bench", "--warmup", "-1", "--device", "cpu");
        Assert.That(code, Is.EqualTo(NativeVae.Cli.ExitCodes.Usage));
        Assert.That(stderr, Does.Contain("--warmup"));
    }
}
