using NativeVae.Core;
using NativeVae.Formats.SafeTensors;

namespace NativeVae;

/// <summary>
/// A latent stored as a safetensors file holding one fp32 tensor named <see cref="TensorName"/>: <c>[N, C, h, w]</c>,
/// or packed FLUX latents <c>[N, seq, 64]</c>. What <c>nativevae encode</c> writes and <c>nativevae decode</c> reads;
/// any safetensors writer (e.g. <c>safetensors.torch.save_file({"latent": z}, path)</c>) makes one.
/// </summary>
public static class LatentFile
{
    /// <summary>The name of the latent tensor inside the file.</summary>
    public const string TensorName = "latent";

    /// <summary>The file extension latent files carry.</summary>
    public const string Extension = ".safetensors";

    /// <summary>Writes <paramref name="latent"/> as fp32. The file appears whole or not at all (written beside it, then renamed).</summary>
    /// <exception cref="IOException">the file cannot be written.</exception>
    public static void Write(string path, HostTensor<float> latent)
    {
        ArgumentNullException.ThrowIfNull(latent);
        SafeTensorsWriter.Write(path, [SafeTensorToWrite.FromFloat32(TensorName, latent.Shape, latent.Data)]);
    }

    /// <summary>Reads the <see cref="TensorName"/> tensor of a latent file, widened to fp32 if stored as fp16 or bf16.</summary>
    /// <exception cref="FileNotFoundException">no file at <paramref name="path"/>.</exception>
    /// <exception cref="InvalidDataException">not a safetensors file, or it has no tensor named <see cref="TensorName"/>.</exception>
    public static HostTensor<float> Read(string path)
    {
        using var file = SafeTensorsFile.Open(path);
        if (!file.Tensors.TryGetValue(TensorName, out var info))
            throw new InvalidDataException($"{path}: no tensor named '{TensorName}' (tensors: {string.Join(", ", file.Tensors.Keys)})");
        return new HostTensor<float>(info.Shape, file.ReadFloat32(TensorName));
    }
}
