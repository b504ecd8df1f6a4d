namespace NativeVae.Kernels.Gpu;

/// <summary>
/// Four floats held in registers: a kernel's small accumulator block. ILGPU scalarises structs, so this costs
/// nothing over four named locals and keeps register-blocked loops short.
/// </summary>
internal struct Float4
{
    public float X;
    public float Y;
    public float Z;
    public float W;

    public Float4(float x, float y, float z, float w)
    {
        X = x;
        Y = y;
        Z = z;
        W = w;
    }

    /// <summary>this + a * b, lane by lane.</summary>
    public readonly Float4 MultiplyAdd(float a, Float4 b) => new(X + a * b.X, Y + a * b.Y, Z + a * b.Z, W + a * b.W);

    /// <summary>this + a * b, lane by lane.</summary>
    public readonly Float4 MultiplyAdd(Float4 a, float b) => new(X + a.X * b, Y + a.Y * b, Z + a.Z * b, W + a.W * b);

    /// <summary>Lane 0..3 (indexing is for epilogues, not hot loops).</summary>
    public readonly float Lane(int lane) => lane switch { 0 => X, 1 => Y, 2 => Z, _ => W };
}
