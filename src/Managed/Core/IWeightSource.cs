namespace NativeVae.Core;

/// <summary>
/// Named model parameters under canonical diffusers names, whatever file they came from. Models read every
/// parameter they declare through this and check its shape before use.
/// </summary>
internal interface IWeightSource
{
    /// <summary>Where the weights came from (a path, or "seeded(...)"), for error messages.</summary>
    string Origin { get; }

    IReadOnlyCollection<string> Names { get; }

    bool TryGetShape(string name, out TensorShape shape);

    /// <summary>Where a parameter is read from, for error messages (a file and stored tensor name where known).</summary>
    string Describe(string name) => $"{Origin}: parameter '{name}'";

    /// <summary>The parameter's values in fp32 (F16/BF16 storage widened).</summary>
    float[] ReadFloat32(string name);
}
