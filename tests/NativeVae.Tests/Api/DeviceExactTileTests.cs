using NativeVae.Api;
using NativeVae.Core;
using NativeVae.Models.AutoencoderKl;
using NativeVae.Tests.Support;
using NativeVae.Weights;

namespace NativeVae.Tests.Api;

/// <summary>
/// On a device with memory of its own, exact tiling without a tile given takes the largest power-of-two tile whose
/// worst step fits the budget (fewer strips cross the bus, with less halo); the CPU keeps its default tile. Planned on
/// ILGPU's CPU accelerator, which plans as a device does.
/// </summary>
public class DeviceExactTileTests
{
    private static readonly TensorShape Latents = TensorShape.Nchw(1, 4, 24, 20);

    private static Vae Create(string backend, long? memoryLimit)
    {
        var config = AutoencoderKlConfig.Small;
        var model = new AutoencoderKlModel(TestBackends.Get(backend), config,
            SeededWeights.Source(SeededWeights.DefaultSeed, AutoencoderKlParameters.Enumerate(config)));
        return new Vae(model, new VaeOptions { MemoryLimitBytes = memoryLimit }, null, null, ownsBackend: false) { SmallestExactTile = 4 };
    }

    [Test]
    public void ADeviceTakesTheLargestTileItsBudgetAllows()
    {
        const int Fitting = 16;
        long budget;
        using (var roomy = Create("ilgpu-cpu", null))
        {
            var figures = roomy.Figures(Latents, encode: false);
            budget = figures.TileBytes(Fitting);
            Assert.That(figures.TileBytes(2 * Fitting), Is.GreaterThan(budget), "a tile twice as large needs more");
            Assert.That(figures.UntiledBytes, Is.GreaterThan(budget), "untiled does not fit");
            Assert.That(roomy.PlanDecode(Latents, new DecodeOptions { Tiling = TilingMode.Exact }).TileSize, Is.EqualTo(TilingPlan.LargestDeviceExactTile),
                "with room for any tile, the largest");
        }
        using var tight = Create("ilgpu-cpu", budget);
        Assert.That(tight.PlanDecode(Latents, new DecodeOptions { Tiling = TilingMode.Exact }).TileSize, Is.EqualTo(Fitting));
        Assert.That(tight.PlanDecode(Latents, new DecodeOptions { Tiling = TilingMode.Auto }).TileSize, Is.EqualTo(Fitting));
    }

    [Test]
    public void TheCpuKeepsItsDefaultTile()
    {
        using var vae = Create(TestBackends.CpuName, null);
        Assert.That(vae.PlanDecode(Latents, new DecodeOptions { Tiling = TilingMode.Exact }).TileSize, Is.Null, "the default tile");
    }
}
