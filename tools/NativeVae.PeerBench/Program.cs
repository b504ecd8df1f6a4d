using NativeVae;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using NativeVae.PeerBench;

// NativeVae against libtorch on the same AutoencoderKL (seeded weights, seeded inputs, same sizes), each side in its
// own child process so that each peak RSS is its own. One JSON object per case on stdout. See README.md.
//
//   NativeVae.PeerBench [--family sd|sdxl|flux2|qwenimage|wan|wan22] [--frames 5] [--sizes 512] [--ops encode,decode] [--runs 3] [--rounds 1]

var options = PeerOptions.Parse(args);
if (options.Child is { } side) return ChildRun.Run(side, options);

foreach (string op in options.Ops)
foreach (int size in options.Sizes)
{
    var results = new Dictionary<string, List<ChildResult>> { ["nativevae"] = [], ["libtorch"] = [] };
    string[] outputs = [Path.GetTempFileName(), Path.GetTempFileName()];
    try
    {
        for (int round = 0; round < options.Rounds; round++)
        {
            // Alternate which side goes first, so that neither always meets the other's leftovers (page cache, clocks).
            string[] order = round % 2 == 0 ? ["nativevae", "libtorch"] : ["libtorch", "nativevae"];
            foreach (string s in order)
                results[s].Add(ChildProcess.Run(s, options, op, size, outputs[s == "nativevae" ? 0 : 1]));
        }
        var nv = results["nativevae"];
        var lt = results["libtorch"];
        var (maxAbs, maxReference) = OutputFiles.Compare(outputs[0], outputs[1]);
        double nvSeconds = Stats.Median(nv.SelectMany(r => r.Seconds));
        double ltSeconds = Stats.Median(lt.SelectMany(r => r.Seconds));
        var line = new JsonObject
        {
            ["family"] = options.Family,
            ["op"] = op,
            ["size"] = size,
            ["frames"] = options.Video ? options.Frames : null,
            ["runs"] = nv.Sum(r => r.Seconds.Length),
            ["threads"] = PeerOptions.Threads,
            ["nativevae_seconds"] = nvSeconds,
            ["libtorch_seconds"] = ltSeconds,
            ["time_ratio"] = nvSeconds / ltSeconds,
            ["nativevae_peak_bytes"] = nv.Max(r => r.PeakRssBytes),
            ["libtorch_peak_bytes"] = lt.Max(r => r.PeakRssBytes),
            ["nativevae_loaded_bytes"] = nv.Max(r => r.LoadedRssBytes),
            ["libtorch_loaded_bytes"] = lt.Max(r => r.LoadedRssBytes),
            ["max_abs_diff"] = maxAbs,
            ["max_abs_libtorch"] = maxReference,
            ["nativevae_seconds_all"] = new JsonArray(nv.SelectMany(r => r.Seconds).Select(t => (JsonNode)t).ToArray()),
            ["libtorch_seconds_all"] = new JsonArray(lt.SelectMany(r => r.Seconds).Select(t => (JsonNode)t).ToArray()),
        };
        Console.WriteLine(line.ToJsonString());
    }
    finally
    {
        foreach (string o in outputs) File.Delete(o);
    }
}
return 0;
