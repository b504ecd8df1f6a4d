using NativeVae.Backends.Ilgpu;
using NativeVae.Core;

namespace NativeVae.KernelBench;

/// <summary>What a case's work is measured in.</summary>
internal enum WorkUnit
{
    /// <summary>Floating-point operations (a multiply-add counts 2): reported as GFLOP/s.</summary>
    Flops,

    /// <summary>Bytes that must cross memory at least once: reported as GB/s.</summary>
    Bytes,
}

/// <summary>One op at one shape: its family (which kernel version applies), label, work, and how to set it up.</summary>
internal sealed record BenchCase(string Family, string Label, double Work, WorkUnit Unit, Func<IlgpuBackend, PreparedOp> Prepare);

/// <summary>Inputs uploaded to one backend and the op to time on them; disposing frees the inputs.</summary>
internal sealed class PreparedOp(Func<Tensor> run, params Tensor?[] inputs) : IDisposable
{
    public Tensor Run() => run();

    public void Dispose()
    {
        foreach (var input in inputs) input?.Dispose();
    }
}
