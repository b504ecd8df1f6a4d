using NativeVae.Tiling;

namespace NativeVae.Tests.Tiling;

/// <summary>The activation space's allocator: first fit, freed neighbours merged, the end reused, so the space never holds more than a run's live activations plus their fragmentation.</summary>
public class RegionPoolTests
{
    [Test]
    public void AFreedRegionServesASmallerOneAndTheRestStaysFree()
    {
        var pool = new RegionPool();
        long a = pool.Allocate(100), b = pool.Allocate(50);
        pool.Free(a, 100);
        Assert.That(pool.Allocate(60), Is.EqualTo(a), "first fit: the freed region");
        Assert.That(pool.Allocate(40), Is.EqualTo(a + 60), "its rest");
        Assert.That(pool.End, Is.EqualTo(150), "no growth");
        Assert.That(b, Is.EqualTo(100));
    }

    [Test]
    public void FreedNeighboursMergeIntoOneRegion()
    {
        var pool = new RegionPool();
        long a = pool.Allocate(10), b = pool.Allocate(20), c = pool.Allocate(30);
        pool.Allocate(5);
        pool.Free(a, 10);
        pool.Free(c, 30);
        pool.Free(b, 20);
        Assert.That(pool.Allocate(60), Is.EqualTo(a), "a, b and c merged into 60 bytes");
        Assert.That(pool.End, Is.EqualTo(65));
        Assert.That(pool.LiveBytes, Is.EqualTo(65));
    }

    [Test]
    public void AFreeRegionAtTheEndGrowsRatherThanLeavingAHole()
    {
        var pool = new RegionPool();
        pool.Allocate(10);
        long tail = pool.Allocate(20);
        pool.Free(tail, 20);
        Assert.That(pool.Allocate(50), Is.EqualTo(tail), "the free tail is extended");
        Assert.That(pool.End, Is.EqualTo(60));
    }

    [Test]
    public void ARegionFreedTwiceIsRefused()
    {
        var pool = new RegionPool();
        long a = pool.Allocate(10);
        pool.Allocate(10);
        pool.Free(a, 10);
        Assert.That(() => pool.Free(a, 10), Throws.InvalidOperationException.With.Message.Contains("freed twice"));
    }
}
