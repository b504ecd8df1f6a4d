using NativeVae.Loading;
using NativeVae.Formats;
using NativeVae.Core;
using NativeVae.Formats.SafeTensors;

namespace NativeVae.Loading;

/// <summary>
/// Writes a loaded VAE in NativeVae's converted format (weights/README.md): a standard safetensors file with
/// canonical diffusers names in declaration order, one dtype, and <c>__metadata__</c> holding format, family and
/// the config as diffusers-style JSON. Tensors are converted one at a time while writing; the output appears
/// only when complete (temporary file + rename), so a failed conversion leaves nothing behind.
/// </summary>
internal static class VaeConverter
{
    public static void Convert(LoadedVae vae, string outputPath, DType dtype)
    {
        var specs = vae.Parameters.Select(p => new SafeTensorSpec(p.Name, dtype, p.Shape, () =>
        {
            var values = vae.Weights.ReadFloat32(p.Name);
            if (values.LongLength != p.Shape.ElementCount)
                throw new InvalidDataException($"{vae.Weights.Describe(p.Name)}: read {values.LongLength} values for {p.Shape}");
            return DTypeConversion.FromFloat32(dtype, values);
        }));
        SafeTensorsWriter.Write(outputPath, specs, Metadata(vae));
    }

    public static Dictionary<string, string> Metadata(LoadedVae vae) => new(StringComparer.Ordinal)
    {
        [VaeLoader.FormatKey] = VaeLoader.FormatValue,
        [VaeLoader.FormatVersionKey] = VaeLoader.FormatVersion,
        [VaeLoader.FamilyKey] = vae.Family.Name(),
        [VaeLoader.ConfigKey] = vae.ConfigJson().ToJsonString(),
    };
}
