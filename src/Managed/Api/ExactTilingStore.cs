namespace NativeVae;

/// <summary>Where exact tiling keeps a call's full-size activations while its tiles run on the device.</summary>
public enum ExactTilingStore
{
    /// <summary>
    /// In host memory while they fit the memory budget beside the tiles (<see cref="VaeOptions.MemoryLimitBytes"/>);
    /// past it, on the CPU, in a temporary file.
    /// </summary>
    Auto,

    /// <summary>In host memory, whatever their size.</summary>
    Memory,

    /// <summary>
    /// In a temporary file (the page cache, which the kernel may write back and drop), so that the process's memory is
    /// set by the tile alone: for a host that must leave its RAM to other work. Costs the file's traffic.
    /// </summary>
    File,
}
