using System.Reflection;
using ILGPU;
using NativeVae.Kernels.Gpu;
using NativeVae.Tests.Support;

namespace NativeVae.Tests.Kernels;

/// <summary>
/// Every kernel compiled to PTX by ILGPU's CUDA backend, without a GPU: CUDA code-generation errors (an
/// unsupported intrinsic, shared memory in an implicit kernel, ...) fail here rather than on a user's machine. The
/// target is <see cref="CompiledPtx"/>'s (Ampere, whose bf16 mma.sync the tensor-core kernels need), and the text is
/// the one <see cref="PtxasCheckTests"/> assembles.
/// </summary>
public sealed class PtxCompileTests
{
    private static IEnumerable<TestCaseData> Kernels() =>
        GpuKernelCatalog.All.Select(k => new TestCaseData(k.Name).SetArgDisplayNames(k.Name));

    [TestCaseSource(nameof(Kernels))]
    public void CompilesToPtx(string name)
    {
        Assert.That(CompiledPtx.Of(name), Does.Contain(".entry"), $"{name}: no PTX entry point emitted");
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
