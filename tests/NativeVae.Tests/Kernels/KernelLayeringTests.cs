using System.Reflection;
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

    private const BindingFlags Declared =
        BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;

    private static readonly Assembly KernelAssembly = typeof(Conv2dParams).Assembly;

    [TestCase(CpuNamespace, GpuNamespace)]
    [TestCase(GpuNamespace, CpuNamespace)]
    [TestCase(CommonNamespace, CpuNamespace)]
    [TestCase(CommonNamespace, GpuNamespace)]
    public void NamespaceDoesNotUseTheOther(string user, string forbidden)
    {
        var types = KernelAssembly.GetTypes().Where(t => t.Namespace == user).ToArray();
        Assert.That(types, Is.Not.Empty, $"no types in {user}: the test no longer looks at the kernels");
        var uses = types
            .SelectMany(t => TypesUsedBy(t).Select(used => (User: t, Used: used)))
            .Where(u => u.Used.Namespace == forbidden)
            .Select(u => $"{u.User.FullName} uses {u.Used.FullName}")
            .Distinct()
            .ToArray();
        Assert.That(uses, Is.Empty, $"{user} must not use {forbidden}");
    }

    [Test]
    public void SharedParameterBlocksLiveInCommon()
    {
        // Conv2dCpu and Conv2dGpu both take Conv2dParams: it must be the common namespace's type.
        var cpuRun = typeof(Conv2dCpu).GetMethods().First(m => m.Name == nameof(Conv2dCpu.Run));
        var parameter = cpuRun.GetParameters().Single(p => p.Name == "p").ParameterType.GetElementType();
        Assert.That(parameter?.Namespace, Is.EqualTo(CommonNamespace));
    }

    /// <summary>Types named in a type's signatures, fields and method locals (not the IL's call targets).</summary>
    private static IEnumerable<Type> TypesUsedBy(Type type)
    {
        var named = new List<Type>();
        if (type.BaseType is not null) named.Add(type.BaseType);
        named.AddRange(type.GetInterfaces());
        named.AddRange(type.GetFields(Declared).Select(f => f.FieldType));
        foreach (var method in type.GetMethods(Declared).Cast<MethodBase>().Concat(type.GetConstructors(Declared)))
        {
            named.AddRange(method.GetParameters().Select(p => p.ParameterType));
            if (method is MethodInfo info) named.Add(info.ReturnType);
            var locals = method.GetMethodBody()?.LocalVariables;
            if (locals is not null) named.AddRange(locals.Select(l => l.LocalType));
        }
        return named.SelectMany(Unwrap);
    }

    /// <summary>A type and what it is built from: pointers, arrays and by-refs to their element, generics to their arguments.</summary>
    private static IEnumerable<Type> Unwrap(Type type)
    {
        if (type.HasElementType) return Unwrap(type.GetElementType()!);
        if (type.IsGenericParameter) return [];
        var parts = new List<Type> { type };
        if (type.IsGenericType) parts.AddRange(type.GetGenericArguments().SelectMany(Unwrap));
        return parts;
    }
}
