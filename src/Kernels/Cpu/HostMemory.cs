using System.Runtime.InteropServices;

namespace NativeVae.Kernels.Cpu;

/// <summary>
/// The CPU kernels' and backend's native memory. Large blocks come straight from the kernel on Linux (anonymous <c>mmap</c>, advised to
/// use transparent huge pages), so that freeing one returns its memory at once whatever the C allocator's settings
/// (with <c>MALLOC_MMAP_MAX_=0</c> glibc would keep it in its heap), and touching fresh memory costs a fault per 2 MiB
/// instead of per 4 KiB page. Small ones, and every block elsewhere, come from <see cref="NativeMemory.AlignedAlloc"/>.
/// </summary>
internal static unsafe partial class HostMemory
{
    /// <summary>Alignment of every buffer: one AVX-512 vector, one cache line.</summary>
    public const int Alignment = 64;

    /// <summary>Buffers from this size up are mapped directly (one transparent huge page).</summary>
    public const long MappedFrom = 2L << 20;

    private const int ProtRead = 0x1, ProtWrite = 0x2;
    private const int MapPrivate = 0x02, MapAnonymous = 0x20;
    private const int MadvHugePage = 14;
    private static readonly nint MapFailed = -1;

    private static bool Maps(long bytes) => bytes >= MappedFrom && OperatingSystem.IsLinux();

    /// <summary>At least <paramref name="bytes"/> (and one) bytes, 64-byte aligned; free with the same size.</summary>
    public static nint Allocate(long bytes)
    {
        bytes = Math.Max(bytes, 1);
        if (!Maps(bytes)) return (nint)NativeMemory.AlignedAlloc((nuint)bytes, Alignment);
        nint p = Mmap(0, (nuint)bytes, ProtRead | ProtWrite, MapPrivate | MapAnonymous, -1, 0);
        if (p == MapFailed)
            throw new OutOfMemoryException($"CPU backend: could not map {bytes} bytes (errno {Marshal.GetLastPInvokeError()})");
        Madvise(p, (nuint)bytes, MadvHugePage); // advice only: without THP the mapping works with small pages
        return p;
    }

    public static void Free(nint buffer, long bytes)
    {
        if (Maps(bytes)) Munmap(buffer, (nuint)bytes);
        else NativeMemory.AlignedFree((void*)buffer);
    }

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static partial nint Mmap(nint address, nuint length, int protection, int flags, int fd, nint offset);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static partial int Munmap(nint address, nuint length);

    [LibraryImport("libc", EntryPoint = "madvise")]
    private static partial int Madvise(nint address, nuint length, int advice);
}
