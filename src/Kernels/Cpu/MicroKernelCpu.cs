using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace NativeVae.Kernels.Cpu;

// The register-blocked multiply-accumulate shared by convolution and attention:
//   out[r, x] (+)= sum over (k, tap) of w[k, tap, r] * in[k * InputStride + TapOffsets[tap] + x]
// for Rows = 4 output rows r and x over Vectors (1..4) consecutive vectors of lanes. The Rows x Vectors
// accumulators stay in registers (16 zmm at full width); each step loads Vectors input vectors, broadcasts
// Rows weights and issues Rows x Vectors FMAs. Weights are packed [k][tap][Rows] so they stream linearly.
// A 3x3 convolution is 9 taps over a zero-padded input tile; a 1x1 convolution or a GEMM is one tap at 0.

/// <summary>What the micro-kernel does with its accumulators.</summary>
internal enum MicroEpilogue
{
    /// <summary><c>out = acc (+ bias[r]) (+ residual)</c>.</summary>
    Store,

    /// <summary><c>out = out + acc</c>.</summary>
    Accumulate,

    /// <summary><c>out = out * scale[x] + acc</c> (online-softmax rescaling of attention's output).</summary>
    AccumulateScaled,
}

/// <summary>Arguments of one micro-kernel call (a block of Rows output rows by Vectors vectors).</summary>
internal unsafe struct MicroTask
{
    public float* Input;
    public long InputStride;
    public int* TapOffsets;
    public int TapCount;
    public int ReduceCount;
    public float* Weights;
    public float* Output;
    public long OutputRowStride;
    /// <summary>Rows to write (1..Rows); the packed weights of the others are zero padding.</summary>
    public int ValidRows;
    /// <summary>Lanes to write in the last vector (1..Lanes); earlier vectors are written whole.</summary>
    public int LastVectorLanes;
    public MicroEpilogue Epilogue;
    /// <summary>Store: per-row bias (indexed by r) or null.</summary>
    public float* Bias;
    /// <summary>Store: added after the bias, same layout as the output, or null.</summary>
    public float* Residual;
    public long ResidualRowStride;
    /// <summary>AccumulateScaled: per-column scale.</summary>
    public float* Scale;
    /// <summary>Store: whole vectors are stored non-temporally (<see cref="CacheHints.StreamsOutput"/>).</summary>
    public bool Streaming;
}

/// <summary>Compile-time vector count of a micro-kernel instance (the JIT removes the unused accumulators).</summary>
internal interface IVectorCount
{
    static abstract int Count { get; }
}

internal readonly struct One : IVectorCount { public static int Count => 1; }
internal readonly struct Two : IVectorCount { public static int Count => 2; }
internal readonly struct Three : IVectorCount { public static int Count => 3; }
internal readonly struct Four : IVectorCount { public static int Count => 4; }

internal static unsafe class MicroKernelCpu
{
    /// <summary>Output rows per call (output channels in a convolution).</summary>
    public const int Rows = 4;

    /// <summary>Most vectors per call.</summary>
    public const int MaxVectors = 4;

    /// <summary>
    /// Vectors per call for the width: Rows x 4 accumulators, 4 inputs and a broadcast need 21 vector registers, which
    /// AVX-512 (32 zmm) and Arm's AdvSimd (32) have; AVX2 and SSE have 16, where a 4th vector spills accumulators in
    /// the hot loop, and Rows x 3 + 3 + 1 fills the 16 exactly.
    /// </summary>
    public static int Vectors<TVec, TOps>() where TVec : unmanaged where TOps : IVectorOps<TVec> =>
        TOps.Lanes >= Vector512<float>.Count || !X86Base.IsSupported ? MaxVectors : SixteenRegisterVectors;

    private const int SixteenRegisterVectors = 3;

    /// <summary>Runs the instance with <paramref name="vectors"/> (1..4) vectors.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Run<TVec, TOps>(in MicroTask t, int vectors)
        where TVec : unmanaged where TOps : IVectorOps<TVec>
    {
        switch (vectors)
        {
            case 4: Run<TVec, TOps, Four>(t); break;
            case 3: Run<TVec, TOps, Three>(t); break;
            case 2: Run<TVec, TOps, Two>(t); break;
            default: Run<TVec, TOps, One>(t); break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization), SkipLocalsInit]
    private static void Run<TVec, TOps, TCount>(in MicroTask t)
        where TVec : unmanaged where TOps : IVectorOps<TVec> where TCount : IVectorCount
    {
        int lanes = TOps.Lanes;
        int v = TCount.Count;
        TVec a00 = TOps.Zero, a01 = TOps.Zero, a02 = TOps.Zero, a03 = TOps.Zero;
        TVec a10 = TOps.Zero, a11 = TOps.Zero, a12 = TOps.Zero, a13 = TOps.Zero;
        TVec a20 = TOps.Zero, a21 = TOps.Zero, a22 = TOps.Zero, a23 = TOps.Zero;
        TVec a30 = TOps.Zero, a31 = TOps.Zero, a32 = TOps.Zero, a33 = TOps.Zero;

        float* w = t.Weights;
        float* input = t.Input;
        int* taps = t.TapOffsets;
        int tapCount = t.TapCount;
        long stride = t.InputStride;
        for (int k = 0; k < t.ReduceCount; k++, input += stride)
        {
            for (int tap = 0; tap < tapCount; tap++, w += Rows)
            {
                float* x = input + taps[tap];
                TVec x0 = TOps.Load(x);
                TVec x1 = v > 1 ? TOps.Load(x + lanes) : default;
                TVec x2 = v > 2 ? TOps.Load(x + 2 * lanes) : default;
                TVec x3 = v > 3 ? TOps.Load(x + 3 * lanes) : default;

                TVec b = TOps.Broadcast(w[0]);
                a00 = TOps.MulAdd(x0, b, a00);
                if (v > 1) a01 = TOps.MulAdd(x1, b, a01);
                if (v > 2) a02 = TOps.MulAdd(x2, b, a02);
                if (v > 3) a03 = TOps.MulAdd(x3, b, a03);
                b = TOps.Broadcast(w[1]);
                a10 = TOps.MulAdd(x0, b, a10);
                if (v > 1) a11 = TOps.MulAdd(x1, b, a11);
                if (v > 2) a12 = TOps.MulAdd(x2, b, a12);
                if (v > 3) a13 = TOps.MulAdd(x3, b, a13);
                b = TOps.Broadcast(w[2]);
                a20 = TOps.MulAdd(x0, b, a20);
                if (v > 1) a21 = TOps.MulAdd(x1, b, a21);
                if (v > 2) a22 = TOps.MulAdd(x2, b, a22);
                if (v > 3) a23 = TOps.MulAdd(x3, b, a23);
                b = TOps.Broadcast(w[3]);
                a30 = TOps.MulAdd(x0, b, a30);
                if (v > 1) a31 = TOps.MulAdd(x1, b, a31);
                if (v > 2) a32 = TOps.MulAdd(x2, b, a32);
                if (v > 3) a33 = TOps.MulAdd(x3, b, a33);
            }
        }

        // Park the accumulators before the epilogue: a call made while they are live in registers makes the
        // register allocator spill them inside the hot loop (every vector register is caller-saved).
        TVec* acc = stackalloc TVec[Rows * MaxVectors];
        acc[0] = a00; acc[1] = a01; acc[2] = a02; acc[3] = a03;
        acc[4] = a10; acc[5] = a11; acc[6] = a12; acc[7] = a13;
        acc[8] = a20; acc[9] = a21; acc[10] = a22; acc[11] = a23;
        acc[12] = a30; acc[13] = a31; acc[14] = a32; acc[15] = a33;
        Finish<TVec, TOps>(t, acc, v);
    }

    private static void Finish<TVec, TOps>(in MicroTask t, TVec* acc, int vectors)
        where TVec : unmanaged where TOps : IVectorOps<TVec>
    {
        bool partial = t.LastVectorLanes != TOps.Lanes;
        int whole = partial ? vectors - 1 : vectors;
        for (int r = 0; r < t.ValidRows; r++)
        {
            float* output = t.Output + r * t.OutputRowStride;
            float* residual = t.Residual == null ? null : t.Residual + r * t.ResidualRowStride;
            TVec* row = acc + r * MaxVectors;
            for (int i = 0; i < whole; i++) FinishVector<TVec, TOps>(t, r, i, row[i], output, residual);
            if (partial) FinishPartial<TVec, TOps>(t, r, vectors - 1, row[vectors - 1], output, residual);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void FinishVector<TVec, TOps>(in MicroTask t, int r, int index, TVec acc, float* output, float* residual)
        where TVec : unmanaged where TOps : IVectorOps<TVec>
    {
        int offset = index * TOps.Lanes;
        float* o = output + offset;
        switch (t.Epilogue)
        {
            case MicroEpilogue.Store:
                if (t.Bias != null) acc = TOps.Add(acc, TOps.Broadcast(t.Bias[r]));
                if (residual != null) acc = TOps.Add(acc, TOps.Load(residual + offset));
                break;
            case MicroEpilogue.Accumulate:
                acc = TOps.Add(acc, TOps.Load(o));
                break;
            default:
                acc = TOps.MulAdd(TOps.Load(o), TOps.Load(t.Scale + offset), acc);
                break;
        }
        CacheHints.Store<TVec, TOps>(o, acc, t.Streaming);
    }

    // The last vector of a row that ends inside a vector: computed whole, written lane by lane so that
    // nothing past the row's end is touched. Runs once per row per call, off the hot loop.
    [SkipLocalsInit]
    private static void FinishPartial<TVec, TOps>(in MicroTask t, int r, int index, TVec acc, float* output, float* residual)
        where TVec : unmanaged where TOps : IVectorOps<TVec>
    {
        float* lane = stackalloc float[TOps.Lanes];
        TOps.Store(lane, acc);
        int offset = index * TOps.Lanes;
        float bias = t.Bias != null ? t.Bias[r] : 0f;
        for (int i = 0; i < t.LastVectorLanes; i++)
        {
            float* o = output + offset + i;
            *o = t.Epilogue switch
            {
                MicroEpilogue.Store => lane[i] + bias + (residual != null ? residual[offset + i] : 0f),
                MicroEpilogue.Accumulate => *o + lane[i],
                _ => *o * t.Scale[offset + i] + lane[i],
            };
        }
    }
}
