using ILGPU.Algorithms;

namespace NativeVae.Kernels.Gpu;

/// <summary>Scalar helpers shared by kernels of several op families (device code, inlined by ILGPU).</summary>
internal static class DeviceMath
{
    public static int CeilDiv(int value, int divisor) => (value + divisor - 1) / divisor;

    /// <summary>
    /// x * sigmoid(x). For x far below zero exp(-x) overflows to +inf and the quotient is -0, for x far above it
    /// is x: no NaN at either end, so no clamping is needed.
    /// </summary>
    public static float Silu(float x) => x / (1f + XMath.Exp(-x));

    /// <summary>TAESD's soft clamp's limit: tanh(x / 3) * 3.</summary>
    private const float TanhClampLimit = 3f;

    /// <summary>The activation of a unary kernel; each maps 0 to 0.</summary>
    public static float Activation(UnaryKind op, float x) => op switch
    {
        UnaryKind.Silu => Silu(x),
        UnaryKind.Relu => XMath.Max(x, 0f),
        UnaryKind.ClampUnit => XMath.Clamp(x, -1f, 1f),
        _ => XMath.Tanh(x / TanhClampLimit) * TanhClampLimit,
    };

    /// <summary>
    /// Round half to even, as torch.round (which diffusers applies after * 255): 0.5 -> 0, 1.5 -> 2, 2.5 -> 2.
    /// Written out rather than calling a library round so that every backend agrees on ties.
    /// </summary>
    public static float RoundHalfToEven(float x)
    {
        float down = XMath.Floor(x);
        float fraction = x - down;
        if (fraction > 0.5f) return down + 1f;
        if (fraction < 0.5f) return down;
        // A tie: pick the even neighbour.
        float half = down * 0.5f;
        return XMath.Floor(half) == half ? down : down + 1f;
    }
}
