using NativeVae.Formats.Pickle;
using NativeVae.Formats.SafeTensors;

namespace NativeVae.Formats;

/// <summary>Checkpoint files of every format this library reads, told apart by their content.</summary>
internal static class TensorArchive
{
    /// <summary>
    /// Opens one checkpoint by its content: a zip is a PyTorch checkpoint, else safetensors; a <c>*.index.json</c>
    /// is a sharded checkpoint, its shards opened the same way.
    /// </summary>
    public static ITensorArchive Open(string path)
    {
        if (ShardedTensorArchive.IsIndexFile(path)) return ShardedTensorArchive.Open(path, Open);
        Span<byte> magic = stackalloc byte[4];
        int read;
        using (var stream = File.OpenRead(path)) read = stream.ReadAtLeast(magic, magic.Length, throwOnEndOfStream: false);
        bool zip = read == magic.Length && magic[0] == (byte)'P' && magic[1] == (byte)'K' && magic[2] == 3 && magic[3] == 4;
        return zip ? TorchCheckpoint.Open(path) : SafeTensorsFile.Open(path);
    }
}
