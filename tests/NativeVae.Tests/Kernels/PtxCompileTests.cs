using System.Reflection;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using NativeVae.Kernels.Gpu;

namespace NativeVae.Tests.Kernels;

/// <summary>
/// Every kernel compiled to PTX by ILGPU's CUDA backend, without a GPU: CUDA code-generation errors (an
/// unsupported intrinsic, shared memory in an implicit kernel, ...) fail here rather than on a user's machine.
/// </summary>
public sealed class PtxCompileTests
{
    private Context? _context;
    private PTXBackend? _backend;

    /// <summary>Turing: the oldest architecture worth supporting; newer ones accept its PTX.</summary>
    private static readonly CudaArchitecture Architecture = CudaArchitecture.SM_75;
    private static readonly CudaInstructionSet InstructionSet = CudaInstructionSet.ISA_75;

    [OneTimeSetUp]
    public void CreateBackend()
    {
        _context = Context.Create(builder => KernelCompilation.Configure(builder));
        _backend = new PTXBackend(_context, new CudaCapabilityContext(Architecture), Architecture, InstructionSet, nvvmAPI: null);
    }

    [OneTimeTearDown]
    public void DisposeBackend()
    {
        _backend?.Dispose();
        _context?.Dispose();
    }

    private static IEnumerable<TestCaseData> Kernels() =>
        GpuKernelCatalog.All.Select(k => new TestCaseData(k.Name).SetArgDisplayNames(k.Name));

    [TestCaseSource(nameof(Kernels))]
    public void CompilesToPtx(string name)
    {
        var kernel = GpuKernelCatalog.All.Single(k => k.Name == name);
        var entry = kernel.ExplicitlyGrouped
            ? EntryPointDescription.FromExplicitlyGroupedKernel(kernel.Method)
            : EntryPointDescription.FromImplicitlyGroupedKernel(kernel.Method);
        var compiled = (PTXCompiledKernel)_backend!.Compile(entry, KernelSpecialization.Empty);
        Assert.That(compiled.PTXAssembly, Does.Contain(".entry"), $"{name}: no PTX entry point emitted");
    }

    [Test]
    public void CatalogHoldsEveryKernelOfEveryFamily()
    {
        // Convention: in the *Gpu kernel classes, entry points are non-private and tagged; helpers are private.
        foreach (var type in GpuKernelCatalog.KernelClasses)
        {
            var exposed = type.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly)
                .Where(m => !m.IsPrivate && !m.IsSpecialName).ToArray();
            Assert.That(exposed, Is.Not.Empty, $"{type.Name} exposes no kernel");
            foreach (var method in exposed)
            {
                var kernel = GpuKernelCatalog.All.SingleOrDefault(k => k.Method == method);
                Assert.That(kernel, Is.Not.Null, $"{type.Name}.{method.Name} is not private but lacks [GpuKernel]");
                bool takesIndex = method.GetParameters().FirstOrDefault()?.ParameterType == typeof(Index1D);
                Assert.That(takesIndex, Is.EqualTo(!kernel!.ExplicitlyGrouped),
                    $"{kernel.Name}: implicitly grouped kernels take an Index1D first, explicitly grouped ones do not");
            }
        }
    }
}
