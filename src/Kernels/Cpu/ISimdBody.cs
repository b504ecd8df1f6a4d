namespace NativeVae.Kernels.Cpu;

/// <summary>
/// A piece of CPU kernel code written once over the vector width, run at the machine's width by
/// <see cref="SimdDispatch.Run{TBody}"/>. Implementations are structs holding the call's arguments (and any result),
/// so that the JIT specialises <see cref="Invoke{TVec, TOps}"/> per width and per body: no delegate, no virtual call.
/// </summary>
internal interface ISimdBody
{
    /// <summary>Runs the body at the width of <typeparamref name="TVec"/>.</summary>
    void Invoke<TVec, TOps>() where TVec : unmanaged where TOps : IVectorOps<TVec>;
}
