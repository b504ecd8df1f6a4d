using System.Globalization;
using TensorShape = NativeVae.TensorShape;
using NativeVae.Formats.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace NativeVae.Oracle;

/// <summary>
/// One fixture file being assembled: named fp32 tensors in insertion order plus string metadata, written as
/// safetensors (all F32) through the library's own <see cref="SafeTensorsWriter"/>.
/// </summary>
internal sealed class FixtureFile
{
    private readonly List<SafeTensorToWrite> _tensors = [];
    private readonly Dictionary<string, string> _metadata = new(StringComparer.Ordinal);

    public FixtureFile(string relativePath) => RelativePath = relativePath;

    /// <summary>
    /// A whole-model fixture <c>models/{name}.safetensors</c> with the metadata every one carries: config_name, seed,
    /// config (diffusers' config.json) and the parameter count (the weights are regenerated from the seed).
    /// </summary>
    public static FixtureFile Model(string name, ulong seed, string configJson, IEnumerable<(string Name, TensorShape Shape)> parameters) =>
        new FixtureFile($"models/{name}.safetensors")
            .Meta("config_name", name)
            .Meta("seed", seed.ToString(CultureInfo.InvariantCulture))
            .Meta("config", configJson)
            .Meta("parameters", parameters.Sum(p => p.Shape.ElementCount).ToString(CultureInfo.InvariantCulture));

    /// <summary>Path under the fixtures folder, e.g. <c>ops/conv2d/3x3_s1_p1_bias.safetensors</c>.</summary>
    public string RelativePath { get; }

    public FixtureFile Meta(string key, string value)
    {
        _metadata[key] = value;
        return this;
    }

    public FixtureFile Meta(string key, float value) => Meta(key, Format(value));

    public FixtureFile Meta(string key, int value) => Meta(key, value.ToString(CultureInfo.InvariantCulture));

    public FixtureFile Meta(string key, bool value) => Meta(key, value ? "1" : "0");

    /// <summary>Adds a libtorch tensor (copied to host fp32 now, so the tensor may be disposed after).</summary>
    public FixtureFile Add(string name, Tensor tensor)
    {
        var shape = new TensorShape(tensor.shape.Select(d => checked((int)d)).ToArray());
        _tensors.Add(SafeTensorToWrite.FromFloat32(name, shape, Torch.ToArray(tensor)));
        return this;
    }

    /// <returns>Bytes written.</returns>
    public long Write(string fixturesRoot)
    {
        string path = Path.Combine(fixturesRoot, RelativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        SafeTensorsWriter.Write(path, _tensors, _metadata);
        return new FileInfo(path).Length;
    }

    /// <summary>Shortest round-tripping invariant form ("1E-06"), which both C# and Python parse.</summary>
    public static string Format(float value) => value.ToString("R", CultureInfo.InvariantCulture);
}
