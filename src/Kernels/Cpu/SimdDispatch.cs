using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace NativeVae.Kernels.Cpu;

/// <summary>
/// The one place a CPU kernel's run-time <see cref="SimdWidth"/> becomes a generic instantiation. Every kernel entry
/// point wraps its arguments in an <see cref="ISimdBody"/> struct and calls <see cref="Run{TBody}"/>.
/// </summary>
internal static class SimdDispatch
{
    // Inlined into each caller, so the switch and the direct call to TBody's specialisation sit where the old switch did.
    /// <summary>Runs <paramref name="body"/> at <paramref name="width"/> (<see cref="SimdWidth.Scalar"/> for anything else).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Run<TBody>(SimdWidth width, ref TBody body) where TBody : struct, ISimdBody
    {
        switch (width)
        {
            case SimdWidth.V512: body.Invoke<Vector512<float>, V512Ops>(); break;
            case SimdWidth.V256: body.Invoke<Vector256<float>, V256Ops>(); break;
            case SimdWidth.V128: body.Invoke<Vector128<float>, V128Ops>(); break;
            default: body.Invoke<float, ScalarOps>(); break;
        }
    }
}
