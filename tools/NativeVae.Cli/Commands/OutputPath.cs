namespace NativeVae.Cli.Commands;

/// <summary>
/// The file a command writes: checked before any work (its folder exists and takes a new file), and named as the
/// user gave it in every error, never as the temporary file the library writes beside it before the rename.
/// </summary>
internal static class OutputPath
{
    /// <exception cref="IOException">the folder is missing or read-only, or the path is a folder.</exception>
    public static void RequireWritable(string path)
    {
        string full = Path.GetFullPath(path);
        if (Directory.Exists(full)) throw new IOException($"-o/--output '{path}' is a folder; give a file name");
        RequireParent(path, full);
    }

    /// <summary>A folder of frames to write: an existing folder, or a new one in a folder that takes new entries.</summary>
    /// <exception cref="IOException">the path is a file, or its parent folder is missing or read-only.</exception>
    public static void RequireFrameFolder(string path)
    {
        string full = Path.GetFullPath(path);
        if (File.Exists(full)) throw new IOException($"-o/--output '{path}' is a file; frames are written into a folder");
        if (!Directory.Exists(full)) RequireParent(path, full);
    }

    private static void RequireParent(string path, string full)
    {
        string folder = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(folder)) throw new IOException($"-o/--output '{path}': the folder '{folder}' does not exist");
        // A probe file proves the folder takes new files (permissions, read-only mounts) before the work starts.
        string probe = Path.Combine(folder, $".{Path.GetFileName(full)}.{Environment.ProcessId}.probe");
        try
        {
            using var _ = new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"-o/--output '{path}': cannot write in the folder '{folder}' ({Reason(e)})");
        }
    }

    /// <summary>Runs <paramref name="write"/>; an I/O failure names <paramref name="path"/> and its kind.</summary>
    public static void Write(string path, Action write)
    {
        try
        {
            write();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"{path}: could not be written ({Reason(e)})");
        }
    }

    private static string Reason(Exception e) => e switch
    {
        UnauthorizedAccessException => "permission denied",
        DirectoryNotFoundException => "its folder does not exist",
        PathTooLongException => "the path is too long",
        _ when IsDiskFull(e) => "no space left on the device",
        _ => "an I/O error",
    };

    /// <summary>ENOSPC on Linux, ERROR_DISK_FULL / ERROR_HANDLE_DISK_FULL on Windows.</summary>
    private static bool IsDiskFull(Exception e) => (e.HResult & 0xFFFF) is 28 or 39 or 112;
}
