using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using NativeVae.Kernels.Gpu;

namespace NativeVae.Tests.Support;

/// <summary>
/// Each catalogued kernel compiled to PTX once per test run, without a GPU, for Ampere (what ILGPU emits on an A100,
/// H100 or H200; the newest ISA that CUDA 11.8's ptxas accepts). The compile check and the ptxas check read the same
/// text: the tensor-core kernels take ILGPU tens of seconds each to compile.
/// </summary>
internal static class CompiledPtx
{
    public static readonly CudaArchitecture Architecture = CudaArchitecture.SM_80;
    public static readonly CudaInstructionSet InstructionSet = CudaInstructionSet.ISA_78;

    private static readonly Lazy<(Context Context, PTXBackend Backend)> Compiler = new(() =>
    {
        var context = Context.Create(builder => KernelCompilation.Configure(builder));
        return (context, new PTXBackend(context, new CudaCapabilityContext(Architecture), Architecture, InstructionSet, nvvmAPI: null));
    });

    private static readonly Dictionary<string, string> Assemblies = [];

    /// <summary>The PTX of the catalogued kernel <paramref name="name"/>.</summary>
    public static string Of(string name)
    {
        lock (Assemblies)
        {
            if (Assemblies.TryGetValue(name, out var ptx)) return ptx;
            var kernel = GpuKernelCatalog.All.Single(k => k.Name == name);
            var entry = kernel.ExplicitlyGrouped
                ? EntryPointDescription.FromExplicitlyGroupedKernel(kernel.Method)
                : EntryPointDescription.FromImplicitlyGroupedKernel(kernel.Method);
            ptx = ((PTXCompiledKernel)Compiler.Value.Backend.Compile(entry, KernelSpecialization.Empty)).PTXAssembly;
            Assemblies[name] = ptx;
            return ptx;
        }
    }
}
