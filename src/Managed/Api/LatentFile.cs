using NativeVae.Core;
using NativeVae.Formats;
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

    /// <summary>
    /// The default cap on a latent file's elements: the latent of one 4096 x 4096 image (the default pixel cap) at
    /// 8x downsampling with 32 channels, the widest latent of a supported family: 512 x 512 x 32 = 8,388,608.
    /// </summary>
    public const long DefaultMaxElements = 512L * 512 * 32;

    /// <summary>Pixels per latent element of every supported family (8 x 8), and the widest latent (TAEF2's 32 channels).</summary>
    private const int PixelsPerLatentElement = 8 * 8, WidestLatentChannels = 32;

    /// <summary>The element cap that matches a pixel cap (<see cref="VaeOptions.MaxImagePixels"/>): one image's widest latent.</summary>
    public static long MaxElementsFor(long maxPixels) => Math.Max(1, maxPixels / PixelsPerLatentElement * WidestLatentChannels);

    /// <summary>
    /// Reads the <see cref="TensorName"/> tensor of a latent file, widened to fp32 if stored as fp16 or bf16. The
    /// shape the header claims is checked against <paramref name="maxElements"/> before anything is allocated, and
    /// every value must be finite (a NaN latent would decode to a black image without a word).
    /// </summary>
    /// <param name="path">the latent file.</param>
    /// <param name="maxElements">the most elements the latent may have (<see cref="DefaultMaxElements"/> unless given).</param>
    /// <exception cref="FileNotFoundException">no file at <paramref name="path"/>.</exception>
    /// <exception cref="InvalidDataException">
    /// not a safetensors file, no tensor named <see cref="TensorName"/>, more than <paramref name="maxElements"/>
    /// elements, or NaN or infinite values.
    /// </exception>
    /// <exception cref="ArgumentException"><paramref name="maxElements"/> is not positive.</exception>
    public static HostTensor<float> Read(string path, long maxElements = DefaultMaxElements)
    {
        if (maxElements <= 0) throw new ArgumentException($"maxElements {maxElements} must be positive");
        using var file = SafeTensorsFile.Open(path);
        if (!file.Tensors.TryGetValue(TensorName, out var info))
            throw new InvalidDataException($"{path}: no tensor named '{TensorName}' (tensors: {string.Join(", ", file.Tensors.Keys)})");
        // The header's checks guarantee the shape's product fits a long (its bytes fit the file).
        long elements = info.Shape.ElementCount;
        if (elements > maxElements)
            throw new InvalidDataException(
                $"{path}: tensor '{TensorName}' {info.Shape} has {elements} elements, more than the cap of {maxElements}");
        var values = file.ReadFloat32(TensorName);
        NonFiniteValues.Refuse($"{path}: tensor '{TensorName}'", values);
        return new HostTensor<float>(info.Shape, values);
    }
}
