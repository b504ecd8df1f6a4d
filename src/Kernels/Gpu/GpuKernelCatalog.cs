using System.Reflection;

namespace NativeVae.Kernels.Gpu;

/// <summary>Marks a method as a kernel entry point, so that the catalog (and the PTX compile test) finds it.</summary>
[AttributeUsage(AttributeTargets.Method)]
internal sealed class GpuKernelAttribute : Attribute
{
    /// <summary>True for kernels that use groups, shared memory and barriers (launched with a KernelConfig).</summary>
    public bool ExplicitlyGrouped { get; init; }

    /// <summary>True for kernels built on mma.sync: the offline ptxas check holds them to HMMA and no local memory.</summary>
    public bool TensorCores { get; init; }
}

/// <summary>One kernel entry point.</summary>
internal sealed record GpuKernel(MethodInfo Method, bool ExplicitlyGrouped, bool TensorCores)
{
    public string Name => $"{Method.DeclaringType!.Name}.{Method.Name}";

    public override string ToString() => Name;
}

/// <summary>
/// Every kernel in this assembly. Convention in the *Gpu kernel classes: entry points are non-private and carry
/// <see cref="GpuKernelAttribute"/>, helpers are private (a test holds the kernel classes to it).
/// </summary>
internal static class GpuKernelCatalog
{
    /// <summary>The static classes holding kernels, one per op family.</summary>
    public static IReadOnlyList<Type> KernelClasses { get; } =
        [typeof(Conv2dGpu), typeof(Conv2dTensorCoreGpu), typeof(GroupNormGpu), typeof(GroupNormNhwcGpu), typeof(AttentionGpu), typeof(AttentionTensorCoreGpu), typeof(ElementwiseGpu),
         typeof(ElementwiseHalfGpu), typeof(RmsNormGpu), typeof(PixelShuffleGpu)];

    public static IReadOnlyList<GpuKernel> All { get; } = KernelClasses
        .SelectMany(type => type.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic))
        .Select(method => (method, attribute: method.GetCustomAttribute<GpuKernelAttribute>()))
        .Where(m => m.attribute is not null)
        .Select(m => new GpuKernel(m.method, m.attribute!.ExplicitlyGrouped, m.attribute.TensorCores))
        .ToArray();
}
