using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace NativeVae.Tiling;

/// <summary>
/// Exact tiling's activations outside the process heap, for backends whose "device" is host RAM: one temporary file,
/// read and written at byte offsets with positioned I/O (<see cref="ActivationSpace"/> hands out its regions).
/// <para>
/// Positioned reads and writes (pread/pwrite) rather than a mapping: the data then lives in the page cache, which the
/// kernel may write back and drop under pressure and which never counts in the process's RSS, so RSS is bounded by
/// the tiles in flight with no per-range madvise bookkeeping.
/// </para>
/// <para>
/// The file is opened with <see cref="FileOptions.DeleteOnClose"/>, so it goes when the store is disposed, whatever
/// ended the call. On Unix its name is removed right after opening as well: the open handle keeps the data, and the
/// kernel frees it when the process ends in any way, a SIGKILL included, which DeleteOnClose (an unlink when the
/// handle is released) cannot promise there.
/// </para>
/// <para>
/// Elements are stored as fp32, or in 16 bits when the backend stores its own tensors so (its values are already on
/// that grid, so nothing is lost): half the bytes through the file. Reads and writes take fp32 either way.
/// </para>
/// </summary>
internal sealed partial class ActivationStore : IActivationMedium
{
    /// <summary>The most elements one system call moves: a byte count must stay below 2^31.</summary>
    private const int MaxFloatsPerIo = 1 << 26;

    private const string FilePrefix = "nativevae-store-";

    private readonly SafeFileHandle _file;

    /// <summary>The bytes the file spans now, every one of them allocated on the disk.</summary>
    private long _length;

    /// <summary>The most the plan expected the store to hold (0: no plan), for the message when it must grow past it.</summary>
    private readonly long _plannedBytes;

    /// <summary>Bytes moved through every store of the process so far (read, written), for benchmarks.</summary>
    private static long s_bytesRead, s_bytesWritten;

    /// <summary>Bytes read from and written to every store of this process so far.</summary>
    public static (long Read, long Written) Traffic => (Interlocked.Read(ref s_bytesRead), Interlocked.Read(ref s_bytesWritten));

    /// <param name="directory">where the file goes: <see cref="Path.GetTempPath"/> when null.</param>
    /// <param name="expectedBytes">the most the store is expected to hold; refused at once when the disk has less free.</param>
    /// <param name="elements">how elements are stored in the file.</param>
    /// <exception cref="IOException">the directory is missing, not writable, or has less free space than expected.</exception>
    public ActivationStore(string? directory = null, long expectedBytes = 0, DType elements = DType.F32)
    {
        Directory = directory ?? Path.GetTempPath();
        Elements = elements;
        _plannedBytes = expectedBytes;
        if (!System.IO.Directory.Exists(Directory))
            throw new IOException($"exact tiling's activation store cannot be created: the directory '{Directory}' does not exist");
        RequireFreeSpace(Directory, expectedBytes);
        string path = Path.Combine(Directory, FilePrefix + Guid.NewGuid().ToString("N") + ".tmp");
        try
        {
            _file = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, FileOptions.DeleteOnClose);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"exact tiling's activation store cannot be created in '{Directory}': {e.Message}", e);
        }
        if (!OperatingSystem.IsWindows()) File.Delete(path);
    }

    /// <summary>The directory that holds (or, on Unix, held the name of) the file.</summary>
    public string Directory { get; }

    /// <summary>How elements are stored in the file.</summary>
    public DType Elements { get; }

    /// <summary>16-bit elements on their way to or from the file, grown to the largest transfer.</summary>
    private ushort[] _narrow = [];

    /// <summary>Bytes the file spans now.</summary>
    public long Bytes => _length;

    public long Length => _length;

    /// <summary>
    /// Grows the file to <paramref name="bytes"/>, allocating the new blocks on the disk at once (posix_fallocate on
    /// Linux), so that a full disk fails here, with the sizes, rather than as a write error deep in the run.
    /// </summary>
    public void EnsureLength(long bytes)
    {
        ObjectDisposedException.ThrowIf(_file.IsClosed, this);
        if (bytes <= _length) return;
        int error = OperatingSystem.IsLinux() ? PosixFallocate(_file, _length, bytes - _length) : 0;
        if (error != 0)
        {
            throw new IOException(
                $"exact tiling's activation store in '{Directory}' cannot grow to {bytes / Mebi} MiB (the plan expected {_plannedBytes / Mebi} MiB): " +
                $"{(error == NoSpaceError ? "no space left on the device" : $"error {error}")}; free disk space or set TMPDIR to a larger disk");
        }
        RandomAccess.SetLength(_file, bytes);
        _length = bytes;
    }

    private const long Mebi = 1024 * 1024;

    /// <summary>ENOSPC on Linux.</summary>
    private const int NoSpaceError = 28;

    /// <summary>Allocates [offset, offset + length) of the file on its disk; returns 0 or an errno.</summary>
    [LibraryImport("libc", EntryPoint = "posix_fallocate")]
    private static partial int PosixFallocate(SafeFileHandle file, long offset, long length);

    public bool Holds(DType kept) => kept == DType.F32 || kept == Elements;

    /// <summary>Fills <paramref name="destination"/> from the elements at <paramref name="byteOffset"/>, kept as <paramref name="kept"/>.</summary>
    public void Read(long byteOffset, Span<float> destination, DType kept)
    {
        int elementBytes = kept.ByteSize();
        Interlocked.Add(ref s_bytesRead, (long)destination.Length * elementBytes);
        while (!destination.IsEmpty)
        {
            var values = destination[..Math.Min(destination.Length, MaxFloatsPerIo)];
            var chunk = elementBytes == sizeof(float) ? MemoryMarshal.AsBytes(values) : MemoryMarshal.AsBytes(Narrow(values.Length));
            int done = 0;
            while (done < chunk.Length)
            {
                int read = RandomAccess.Read(_file, chunk[done..], byteOffset + done);
                if (read == 0) throw new EndOfStreamException($"activation store in '{Directory}': read past its end at byte {byteOffset + done}");
                done += read;
            }
            if (elementBytes != sizeof(float)) ElementConversion.Widen(kept, chunk, values);
            byteOffset += chunk.Length;
            destination = destination[values.Length..];
        }
    }

    /// <summary>Writes <paramref name="source"/> to the elements at <paramref name="byteOffset"/>, kept as <paramref name="kept"/>.</summary>
    public void Write(long byteOffset, ReadOnlySpan<float> source, DType kept)
    {
        int elementBytes = kept.ByteSize();
        Interlocked.Add(ref s_bytesWritten, (long)source.Length * elementBytes);
        while (!source.IsEmpty)
        {
            var values = source[..Math.Min(source.Length, MaxFloatsPerIo)];
            ReadOnlySpan<byte> chunk;
            if (elementBytes == sizeof(float))
                chunk = MemoryMarshal.AsBytes(values);
            else
            {
                var narrow = MemoryMarshal.AsBytes(Narrow(values.Length));
                ElementConversion.Narrow(kept, values, narrow);
                chunk = narrow;
            }
            RandomAccess.Write(_file, chunk, byteOffset);
            byteOffset += chunk.Length;
            source = source[values.Length..];
        }
    }

    private Span<ushort> Narrow(int length)
    {
        if (_narrow.Length < length) _narrow = new ushort[length];
        return _narrow.AsSpan(0, length);
    }

    public void Dispose() => _file.Dispose();

    /// <exception cref="IOException">the directory's drive has less than <paramref name="bytes"/> free.</exception>
    private static void RequireFreeSpace(string directory, long bytes)
    {
        if (bytes <= 0) return;
        long free = new DriveInfo(Path.GetFullPath(directory)).AvailableFreeSpace;
        if (free < bytes)
            throw new IOException(
                $"exact tiling's activation store needs up to {bytes / (1024 * 1024)} MiB in '{directory}', which has {free / (1024 * 1024)} MiB free; " +
                "free disk space or set TMPDIR to a larger disk");
    }
}
