using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace NativeVae.PeerBench;

/// <summary>What one child reports: timed seconds, its peak RSS, and its RSS once the model was loaded.</summary>
internal sealed record ChildResult(double[] Seconds, long PeakRssBytes, long LoadedRssBytes);

/// <summary>Starts this program again as a child that runs one side of one case.</summary>
internal static class ChildProcess
{
    /// <summary>
    /// glibc and libtorch allocator settings for large, repeated tensors: libtorch's allocator uses
    /// transparent-huge-page aligned blocks (THP_MEM_ALLOC_ENABLE), glibc serves large blocks from the heap instead
    /// of a fresh mmap per allocation (MALLOC_MMAP_MAX_=0) and keeps freed memory instead of returning it
    /// (MALLOC_TRIM_THRESHOLD_), so a repeated forward pass does not page-fault its activations in again.
    /// Both children get the same environment; run.sh exports the same values.
    /// </summary>
    public static readonly (string Name, string Value)[] AllocatorEnvironment =
    [
        ("THP_MEM_ALLOC_ENABLE", "1"),
        ("MALLOC_MMAP_MAX_", "0"),
        ("MALLOC_TRIM_THRESHOLD_", "68719476736"),
    ];

    public static ChildResult Run(string side, PeerOptions options, string op, int size, string output)
    {
        string self = Environment.ProcessPath ?? throw new InvalidOperationException("cannot find this program's path");
        var start = new ProcessStartInfo(self) { RedirectStandardOutput = true, UseShellExecute = false };
        // Under `dotnet NativeVae.PeerBench.dll`, the process is dotnet and the program is the entry assembly.
        if (Path.GetFileNameWithoutExtension(self) == "dotnet")
            start.ArgumentList.Add(typeof(ChildProcess).Assembly.Location);
        foreach (string a in new[]
                 {
                     "--child", side, "--family", options.Family, "--op", op,
                     "--size", size.ToString(CultureInfo.InvariantCulture),
                     "--runs", options.Runs.ToString(CultureInfo.InvariantCulture), "--output", output,
                     "--frames", options.Frames.ToString(CultureInfo.InvariantCulture),
                 })
            start.ArgumentList.Add(a);
        foreach (var (name, value) in AllocatorEnvironment) start.Environment[name] = value;

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start the {side} child");
        string stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"the {side} child for {op} {size} failed with exit code {process.ExitCode}");
        var json = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]).RootElement;
        return new ChildResult(
            json.GetProperty("seconds").EnumerateArray().Select(e => e.GetDouble()).ToArray(),
            json.GetProperty("peak_rss_bytes").GetInt64(),
            json.GetProperty("loaded_rss_bytes").GetInt64());
    }
}
