using System.Globalization;

namespace NativeVae.Cli.Bench;

/// <summary>
/// The process's peak resident set (Linux <c>VmHWM</c>), restartable per benchmark case: writing 5 to
/// <c>/proc/self/clear_refs</c> resets the high-water mark to the current RSS (Linux 4.0+). Elsewhere: unknown.
/// </summary>
internal static class ProcessMemory
{
    private const string StatusFile = "/proc/self/status";
    private const string ClearRefsFile = "/proc/self/clear_refs";
    private const string ResetPeakCommand = "5";
    private const long BytesPerKiB = 1024;

    /// <summary>Restarts the peak at the current RSS; false when the system does not support it.</summary>
    public static bool ResetPeak()
    {
        try
        {
            File.WriteAllText(ClearRefsFile, ResetPeakCommand);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or PlatformNotSupportedException)
        {
            return false;
        }
    }

    /// <summary>Peak resident bytes since the process started or the last <see cref="ResetPeak"/>; null if unknown.</summary>
    public static long? PeakResidentBytes() => ReadStatusKiB("VmHWM:");

    /// <summary>Current resident bytes; null if unknown.</summary>
    public static long? ResidentBytes() => ReadStatusKiB("VmRSS:");

    private static long? ReadStatusKiB(string key)
    {
        if (!File.Exists(StatusFile)) return null;
        foreach (string line in File.ReadLines(StatusFile))
        {
            if (!line.StartsWith(key, StringComparison.Ordinal)) continue;
            // "VmHWM:\t  123456 kB"
            string[] parts = line[key.Length..].Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            return long.TryParse(parts[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out long kib) ? kib * BytesPerKiB : null;
        }
        return null;
    }
}
