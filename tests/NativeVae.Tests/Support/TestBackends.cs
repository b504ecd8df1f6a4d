using NativeVae.Backends;
using NativeVae.Backends.Cpu;
using NativeVae.Backends.Ilgpu;

namespace NativeVae.Tests.Support;

/// <summary>
/// The backends every parity test runs on, by name. Backends are expensive to create (ILGPU compiles kernels on
/// first use), so each is created once per test run and shared; tests must not dispose them.
/// </summary>
internal static class TestBackends
{
    private static readonly Dictionary<string, Lazy<IBackend>> Backends = new()
    {
        ["ilgpu-cpu"] = new(() => new IlgpuBackend(DevicePreference.IlgpuCpu)),
        ["cpu"] = new(() => new CpuBackend()),
    };

    public static IEnumerable<string> Names => Backends.Keys;

    /// <summary>Backends fast enough for SD-sized work (not the ILGPU CPU emulator).</summary>
    public static IEnumerable<string> FastNames => Names.Where(n => n != "ilgpu-cpu");

    public static IBackend Get(string name) => Backends[name].Value;
}
