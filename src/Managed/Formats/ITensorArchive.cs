namespace NativeVae.Formats;

/// <summary>One tensor as a checkpoint file stores it: its name in the file, storage dtype and shape.</summary>
internal sealed record StoredTensor(string Name, DType DType, TensorShape Shape);

/// <summary>
/// A checkpoint file whose header has been validated: the tensors it holds, read one at a time on demand
/// (a safetensors file or a PyTorch zip checkpoint). Names are the file's own, not yet canonical.
/// </summary>
internal interface ITensorArchive : IDisposable
{
    /// <summary>The file, for error messages.</summary>
    string Path { get; }

    /// <summary>Every tensor in the file, by its name in the file.</summary>
    IReadOnlyDictionary<string, StoredTensor> Entries { get; }

    /// <summary>Free-form string metadata (safetensors' <c>__metadata__</c>); empty when the format has none.</summary>
    IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>A tensor's values widened to fp32, row-major.</summary>
    /// <exception cref="InvalidDataException">the tensor's bytes cannot be read (truncated or corrupt file).</exception>
    float[] ReadFloat32(string name);
}
