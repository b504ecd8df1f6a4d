using NativeVae.Backends;
using NativeVae.Backends.Ilgpu;
using NativeVae.Kernels.Gpu;

namespace NativeVae.Tests.Kernels;

/// <summary>
/// The ILGPU CPU-accelerator backends the kernel tests share: one pinned to the plain versions, one to the tiled
/// versions, so that together they run every kernel version. Each compiles every kernel once, on first use;
/// both are disposed when the tests of this namespace are done.
/// </summary>
[SetUpFixture]
public sealed class KernelBackends
{
    private static IlgpuBackend? _plain;
    private static IlgpuBackend? _tiled;

    internal static IlgpuBackend Plain => _plain ??= new IlgpuBackend(DevicePreference.IlgpuCpu,
        new IlgpuKernelChoice(Conv2dVersion.Direct, GroupNormVersion.Simple, AttentionVersion.RowPerThread));

    internal static IlgpuBackend Tiled => _tiled ??= new IlgpuBackend(DevicePreference.IlgpuCpu,
        new IlgpuKernelChoice(Conv2dVersion.SharedTile, GroupNormVersion.GroupReduce, AttentionVersion.SharedTile));

    internal static IlgpuBackend For(Conv2dVersion version) => version == Conv2dVersion.Direct ? Plain : Tiled;

    internal static IlgpuBackend For(GroupNormVersion version) => version == GroupNormVersion.Simple ? Plain : Tiled;

    internal static IlgpuBackend For(AttentionVersion version) => version == AttentionVersion.RowPerThread ? Plain : Tiled;

    [OneTimeTearDown]
    public void DisposeBackends()
    {
        _plain?.Dispose();
        _tiled?.Dispose();
        _plain = null;
        _tiled = null;
    }
}
