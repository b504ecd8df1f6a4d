using System.Reflection;
using NativeVae.Tests.Support;
using NativeVae.Kernels;
using NativeVae.Kernels.Cpu;

namespace NativeVae.Tests.Kernels;

/// <summary>
/// The kernel folders' one direction: the CPU and ILGPU kernels both use the parameter blocks in
/// <c>src/Kernels/Common</c> (namespace <c>NativeVae.Kernels</c>) and never each other; Common uses neither.
/// </summary>
public sealed class KernelLayeringTests
{
    private const string CommonNamespace = "NativeVae.Kernels";
    private const string CpuNamespace = "NativeVae.Kernels.Cpu";
    private const string GpuNamespace = "NativeVae.Kernels.Gpu";

    private static readonly Assembly KernelAssembly = typeof(Conv2dParams).Assembly;

    [TestCase(CpuNamespace, GpuNamespace)]
    [TestCase(GpuNamespace, CpuNamespace)]
    [TestCase(CommonNamespace, CpuNamespace)]
    [TestCase(CommonNamespace, GpuNamespace)]
    public void NamespaceDoesNotUseTheOther(string user, string forbidden)
    {
        var uses = TypeUses.Of(KernelAssembly.Location).Where(u => TypeUses.Namespace(u.User) == user).ToArray();
        Assert.That(uses, Is.Not.Empty, $"no types in {user}: the test no longer looks at the kernels");
        var forbiddenUses = uses
            .Where(u => TypeUses.Namespace(u.Used) == forbidden)
            .Select(u => $"{u.User.FullName} uses {u.Used.FullName} in {u.Where}")
            .Distinct()
            .ToArray();
        Assert.That(forbiddenUses, Is.Empty, $"{user} must not use {forbidden}");
    }

    [Test]
    public void SharedParameterBlocksLiveInCommon()
    {
        // Conv2dCpu and Conv2dGpu both take Conv2dParams: it must be the common namespace's type.
        var cpuRun = typeof(Conv2dCpu).GetMethods().First(m => m.Name == nameof(Conv2dCpu.Run));
        var parameter = cpuRun.GetParameters().Single(p => p.Name == "p").ParameterType.GetElementType();
        Assert.That(parameter?.Namespace, Is.EqualTo(CommonNamespace));
    }
}
