using NativeVae.Tiling;

namespace NativeVae.Tests.Tiling;

/// <summary>A strip's rows as runs over an activation: one range per channel, or one in all where the runs touch.</summary>
public class ElementRunsTests
{
    private static readonly TensorShape Shape = TensorShape.Nchw(2, 3, 5, 7);

    [Test]
    public void AStripIsOneRunOfRowsPerChannelAtTheChannelStride()
    {
        var runs = ElementRuns.Rows(Shape, 1, new TileRect(2, 0, 2, 7));
        long image = 3 * 5 * 7, plane = 5 * 7;
        Assert.That(runs.Ranges(), Is.EqualTo(new[] { (image + 14, 14L), (image + plane + 14, 14L), (image + 2 * plane + 14, 14L) }));
        Assert.That((runs.Elements, runs.End), Is.EqualTo((42L, image + 2 * plane + 28)));
    }

    [Test]
    public void AStripOfTheWholeImageIsOneRange()
    {
        var runs = ElementRuns.Rows(Shape, 1, new TileRect(0, 0, 5, 7));
        Assert.That(runs.Ranges(), Is.EqualTo(new[] { (3L * 5 * 7, 3L * 5 * 7) }));
        Assert.That(ElementRuns.Flat(4, 9).Ranges(), Is.EqualTo(new[] { (4L, 9L) }));
    }

    [Test]
    public void ATileThatIsNotFullWidthIsRefused()
    {
        var e = Assert.Throws<ArgumentException>(() => ElementRuns.Rows(Shape, 0, new TileRect(0, 1, 5, 6)));
        Assert.That(e!.Message, Does.Contain("not a full-width strip"));
    }

    [Test]
    public void RunsOutsideTheActivationAreRefusedBeforeAnyCopy()
    {
        using var space = ActivationSpace.InMemory();
        using var t = space.New(Shape);
        var values = new float[42];
        var past = new ElementRuns(Shape.ElementCount - 14, 3, 14, 35);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => space.Read(t, past, values));
        Assert.That(e!.Message, Does.Contain("outside"));
        Assert.Throws<ArgumentException>(() => space.Read(t, ElementRuns.Flat(0, 41), values), "the runs hold 41 values, the span 42");
    }
}
