using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace NativeVae.Kernels.Cpu;

// The vector operations every CPU kernel is written against, once per width. A kernel is generic over
// <TVec, TOps> and the JIT specialises it per width (struct type arguments), so one source serves
// Vector512, Vector256, Vector128 and scalar float. The width is picked at run time (SimdWidth.Best), never by #if,
// and turned into an instantiation in one place (SimdDispatch).

/// <summary>Vector width a CPU kernel runs at.</summary>
internal enum SimdWidth
{
    Scalar = 1,
    V128 = 4,
    V256 = 8,
    V512 = 16,
}

internal static class SimdWidths
{
    /// <summary>The widest width the JIT accelerates on this machine (honours DOTNET_EnableAVX512F=0 etc.).</summary>
    public static SimdWidth Best { get; } =
        Vector512.IsHardwareAccelerated ? SimdWidth.V512 :
        Vector256.IsHardwareAccelerated ? SimdWidth.V256 :
        Vector128.IsHardwareAccelerated ? SimdWidth.V128 : SimdWidth.Scalar;

    /// <summary>Floats per vector.</summary>
    public static int Lanes(this SimdWidth width) => (int)width;
}

/// <summary>Vector operations on fp32 lanes; <c>MulAdd</c> is fused where the hardware has FMA.</summary>
internal unsafe interface IVectorOps<TVec> where TVec : struct
{
    static abstract int Lanes { get; }
    static abstract TVec Zero { get; }
    static abstract TVec Broadcast(float value);
    static abstract TVec Load(float* p);
    static abstract void Store(float* p, TVec value);
    /// <summary>Stores past the caches where the width has a non-temporal store and <paramref name="p"/> is vector-aligned (else <see cref="Store"/>).</summary>
    static abstract void StoreStreaming(float* p, TVec value);
    static abstract TVec Add(TVec a, TVec b);
    static abstract TVec Subtract(TVec a, TVec b);
    static abstract TVec Multiply(TVec a, TVec b);
    static abstract TVec Divide(TVec a, TVec b);
    /// <summary><c>a * b + c</c>.</summary>
    static abstract TVec MulAdd(TVec a, TVec b, TVec c);
    static abstract TVec Max(TVec a, TVec b);
    static abstract TVec Min(TVec a, TVec b);
    /// <summary><c>e^a</c>, to about 2 ulp (<see cref="VectorMath.Exp{TVec, TOps}"/>).</summary>
    static abstract TVec Exp(TVec a);
    /// <summary>Rounds to the nearest integer, ties to even.</summary>
    static abstract TVec Round(TVec a);
    /// <summary><c>2^n</c> for integral <paramref name="n"/> in [-126, 127].</summary>
    static abstract TVec Pow2(TVec n);
    static abstract float Sum(TVec a);
}

internal unsafe readonly struct V512Ops : IVectorOps<Vector512<float>>
{
    public static int Lanes => Vector512<float>.Count;
    public static Vector512<float> Zero => Vector512<float>.Zero;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Broadcast(float value) => Vector512.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Load(float* p) => Vector512.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* p, Vector512<float> value) => value.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void StoreStreaming(float* p, Vector512<float> value)
    {
        if (((nint)p & (Vector512<byte>.Count - 1)) == 0) value.StoreAlignedNonTemporal(p);
        else value.Store(p);
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Add(Vector512<float> a, Vector512<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Subtract(Vector512<float> a, Vector512<float> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Multiply(Vector512<float> a, Vector512<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Divide(Vector512<float> a, Vector512<float> b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> MulAdd(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Vector512.MultiplyAddEstimate(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Max(Vector512<float> a, Vector512<float> b) => Vector512.Max(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Min(Vector512<float> a, Vector512<float> b) => Vector512.Min(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Exp(Vector512<float> a) => VectorMath.Exp<Vector512<float>, V512Ops>(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Round(Vector512<float> a) => Vector512.Round(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Pow2(Vector512<float> n) =>
        Vector512.ShiftLeft(Vector512.ConvertToInt32(n) + Vector512.Create(VectorMath.ExponentBias), VectorMath.MantissaBits).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector512<float> a) => Vector512.Sum(a);
}

internal unsafe readonly struct V256Ops : IVectorOps<Vector256<float>>
{
    public static int Lanes => Vector256<float>.Count;
    public static Vector256<float> Zero => Vector256<float>.Zero;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Broadcast(float value) => Vector256.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Load(float* p) => Vector256.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* p, Vector256<float> value) => value.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void StoreStreaming(float* p, Vector256<float> value)
    {
        if (((nint)p & (Vector256<byte>.Count - 1)) == 0) value.StoreAlignedNonTemporal(p);
        else value.Store(p);
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Add(Vector256<float> a, Vector256<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Subtract(Vector256<float> a, Vector256<float> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Multiply(Vector256<float> a, Vector256<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Divide(Vector256<float> a, Vector256<float> b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> MulAdd(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Vector256.MultiplyAddEstimate(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Max(Vector256<float> a, Vector256<float> b) => Vector256.Max(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Min(Vector256<float> a, Vector256<float> b) => Vector256.Min(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Exp(Vector256<float> a) => VectorMath.Exp<Vector256<float>, V256Ops>(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Round(Vector256<float> a) => Vector256.Round(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Pow2(Vector256<float> n) =>
        Vector256.ShiftLeft(Vector256.ConvertToInt32(n) + Vector256.Create(VectorMath.ExponentBias), VectorMath.MantissaBits).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector256<float> a) => Vector256.Sum(a);
}

internal unsafe readonly struct V128Ops : IVectorOps<Vector128<float>>
{
    public static int Lanes => Vector128<float>.Count;
    public static Vector128<float> Zero => Vector128<float>.Zero;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Broadcast(float value) => Vector128.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Load(float* p) => Vector128.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* p, Vector128<float> value) => value.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void StoreStreaming(float* p, Vector128<float> value)
    {
        if (((nint)p & (Vector128<byte>.Count - 1)) == 0) value.StoreAlignedNonTemporal(p);
        else value.Store(p);
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Add(Vector128<float> a, Vector128<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Subtract(Vector128<float> a, Vector128<float> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Multiply(Vector128<float> a, Vector128<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Divide(Vector128<float> a, Vector128<float> b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> MulAdd(Vector128<float> a, Vector128<float> b, Vector128<float> c) => Vector128.MultiplyAddEstimate(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Max(Vector128<float> a, Vector128<float> b) => Vector128.Max(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Min(Vector128<float> a, Vector128<float> b) => Vector128.Min(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Exp(Vector128<float> a) => VectorMath.Exp<Vector128<float>, V128Ops>(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Round(Vector128<float> a) => Vector128.Round(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Pow2(Vector128<float> n) =>
        Vector128.ShiftLeft(Vector128.ConvertToInt32(n) + Vector128.Create(VectorMath.ExponentBias), VectorMath.MantissaBits).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector128<float> a) => Vector128.Sum(a);
}

/// <summary>One lane: the path for machines (or DOTNET_EnableHWIntrinsic=0 runs) without SIMD.</summary>
internal unsafe readonly struct ScalarOps : IVectorOps<float>
{
    public static int Lanes => 1;
    public static float Zero => 0f;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Broadcast(float value) => value;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Load(float* p) => *p;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* p, float value) => *p = value;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void StoreStreaming(float* p, float value) => *p = value;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Add(float a, float b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Subtract(float a, float b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Multiply(float a, float b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Divide(float a, float b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float MulAdd(float a, float b, float c) => a * b + c;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Max(float a, float b) => MathF.Max(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Min(float a, float b) => MathF.Min(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Exp(float a) => VectorMath.Exp<float, ScalarOps>(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Round(float a) => MathF.Round(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Pow2(float n) =>
        BitConverter.Int32BitsToSingle(((int)n + VectorMath.ExponentBias) << VectorMath.MantissaBits);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(float a) => a;
}

/// <summary>
/// Elementary functions on fp32 lanes, written once over <see cref="IVectorOps{TVec}"/>. The runtime's
/// <c>Vector512.Exp(float)</c> widens to double for a correctly rounded result; SiLU, softmax and TAESD's clamp
/// need no more than a couple of ulp, which a single-precision polynomial gives at about half the cost.
/// </summary>
internal static class VectorMath
{
    public const int ExponentBias = 127;
    public const int MantissaBits = 23;

    // Cephes expf: e^x = 2^n e^r with n = round(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2] (ln 2 split in two so
    // that n ln 2 is exact), e^r by a degree-5 minimax polynomial in r after 1 + r + r^2/2.
    private const float Log2E = 1.44269504088896341f;
    private const float Ln2High = 0.693359375f;
    private const float Ln2Low = -2.12194440e-4f;
    private const float P0 = 1.9875691500e-4f, P1 = 1.3981999507e-3f, P2 = 8.3334519073e-3f;
    private const float P3 = 4.1665795894e-2f, P4 = 1.6666665459e-1f, P5 = 5.0000001201e-1f;
    // e^x over/underflows fp32 past these; clamping keeps 2^n a normal number (e^-87.3 ~ 1e-38, e^88.7 ~ 3e38).
    private const float MinArgument = -87.3f;
    private const float MaxArgument = 88.7f;

    /// <summary>e^x, within ~2 ulp for x in [-87.3, 88.7], clamped outside (NaN in, NaN-free out is not promised).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TVec Exp<TVec, TOps>(TVec x) where TVec : unmanaged where TOps : IVectorOps<TVec>
    {
        x = TOps.Min(TOps.Max(x, TOps.Broadcast(MinArgument)), TOps.Broadcast(MaxArgument));
        TVec n = TOps.Round(TOps.Multiply(x, TOps.Broadcast(Log2E)));
        TVec r = TOps.MulAdd(n, TOps.Broadcast(-Ln2High), x);
        r = TOps.MulAdd(n, TOps.Broadcast(-Ln2Low), r);
        TVec p = TOps.Broadcast(P0);
        p = TOps.MulAdd(p, r, TOps.Broadcast(P1));
        p = TOps.MulAdd(p, r, TOps.Broadcast(P2));
        p = TOps.MulAdd(p, r, TOps.Broadcast(P3));
        p = TOps.MulAdd(p, r, TOps.Broadcast(P4));
        p = TOps.MulAdd(p, r, TOps.Broadcast(P5));
        p = TOps.MulAdd(p, TOps.Multiply(r, r), TOps.Add(r, TOps.Broadcast(1f)));
        return TOps.Multiply(p, TOps.Pow2(n));
    }
}

/// <summary>
/// AVX-512 permute indices over two concatenated 16-float vectors a, b: their even and their odd positions, and the
/// interleaving of a's and b's first (then last) eight lanes.
/// </summary>
internal static class PhaseSplit
{
    public const int Lanes = 16;
    public static readonly Vector512<int> InterleaveLow = Vector512.Create(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    public static readonly Vector512<int> InterleaveHigh = Vector512.Create(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    public static readonly Vector512<int> Even = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    public static readonly Vector512<int> Odd = Vector512.Create(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
}
