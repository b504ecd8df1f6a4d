using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using NativeVae.Kernels.Cpu;

namespace NativeVae.Tiling;

/// <summary>
/// Exact tiling's activations outside the process heap, for backends whose "device" is host RAM: one temporary file,
/// regions of it per activation, read and written by row segments with positioned I/O.
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
internal sealed class ActivationStore : IDisposable
{
    /// <summary>The most elements one system call moves: a byte count must stay below 2^31.</summary>
    private const int MaxFloatsPerIo = 1 << 26;

    private const string FilePrefix = "nativevae-store-";

    private readonly SafeFileHandle _file;

    /// <summary>Freed regions by length in floats: a model run asks for the same sizes again and again.</summary>
    private readonly Dictionary<long, Stack<long>> _freeRegions = new();

    /// <summary>The end of the highest region handed out, in bytes: the file's length.</summary>
    private long _end;

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
        ElementBytes = elements.ByteSize();
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

    /// <summary>Bytes per stored element: byte offsets of elements are multiples of it.</summary>
    public int ElementBytes { get; }

    /// <summary>16-bit elements on their way to or from the file, grown to the largest transfer.</summary>
    private ushort[] _narrow = [];

    /// <summary>Bytes the file spans now: the high-water mark of the regions.</summary>
    public long Bytes => _end;

    /// <summary>A region of <paramref name="length"/> elements (contents unspecified); returns its byte offset.</summary>
    public long Allocate(long length)
    {
        ObjectDisposedException.ThrowIf(_file.IsClosed, this);
        if (_freeRegions.TryGetValue(length, out var stack) && stack.Count > 0) return stack.Pop();
        long offset = _end;
        _end += length * ElementBytes;
        // Sparse growth: a region read before it is written reads zeros, not past the end of the file.
        RandomAccess.SetLength(_file, _end);
        return offset;
    }

    /// <summary>Returns a region from <see cref="Allocate"/> for reuse by one of the same length.</summary>
    public void Free(long offset, long length)
    {
        if (_file.IsClosed) return;
        if (!_freeRegions.TryGetValue(length, out var stack)) _freeRegions[length] = stack = new Stack<long>();
        stack.Push(offset);
    }

    /// <summary>Fills <paramref name="destination"/> from the elements at <paramref name="byteOffset"/>.</summary>
    public void Read(long byteOffset, Span<float> destination)
    {
        Interlocked.Add(ref s_bytesRead, (long)destination.Length * ElementBytes);
        while (!destination.IsEmpty)
        {
            var values = destination[..Math.Min(destination.Length, MaxFloatsPerIo)];
            var chunk = ElementBytes == sizeof(float) ? MemoryMarshal.AsBytes(values) : MemoryMarshal.AsBytes(Narrow(values.Length));
            int done = 0;
            while (done < chunk.Length)
            {
                int read = RandomAccess.Read(_file, chunk[done..], byteOffset + done);
                if (read == 0) throw new EndOfStreamException($"activation store in '{Directory}': read past its end at byte {byteOffset + done}");
                done += read;
            }
            if (ElementBytes != sizeof(float)) Convert(chunk, values, widen: true);
            byteOffset += chunk.Length;
            destination = destination[values.Length..];
        }
    }

    /// <summary>Writes <paramref name="source"/> to the elements at <paramref name="byteOffset"/>.</summary>
    public void Write(long byteOffset, ReadOnlySpan<float> source)
    {
        Interlocked.Add(ref s_bytesWritten, (long)source.Length * ElementBytes);
        while (!source.IsEmpty)
        {
            var values = source[..Math.Min(source.Length, MaxFloatsPerIo)];
            ReadOnlySpan<byte> chunk;
            if (ElementBytes == sizeof(float))
                chunk = MemoryMarshal.AsBytes(values);
            else
            {
                var narrow = MemoryMarshal.AsBytes(Narrow(values.Length));
                Convert(narrow, MemoryMarshal.CreateSpan(ref MemoryMarshal.GetReference(values), values.Length), widen: false);
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

    /// <summary>16-bit <paramref name="stored"/> to <paramref name="values"/> (widen) or back (narrow).</summary>
    private unsafe void Convert(Span<byte> stored, Span<float> values, bool widen)
    {
        var type = Elements == DType.F16 ? StorageType.F16 : StorageType.BF16;
        fixed (byte* s = stored)
        fixed (float* v = values)
        {
            if (widen) StorageConversion.Widen(type, s, 0, v, values.Length);
            else StorageConversion.Narrow(type, v, s, 0, values.Length);
        }
    }

    public void Dispose()
    {
        _freeRegions.Clear();
        _file.Dispose();
    }

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
