using static TorchSharp.torch;

namespace NativeVae.Oracle.Tiling;

/// <summary>
/// Prints how a blend-tiled result departs from the untiled one. Where the shapes agree they must differ (each
/// tile sees only its own context, so seams exist; equality would mean the tiles were not run separately).
/// Where diffusers' arithmetic gives another shape (tiles smaller than the receptive field), only shapes print.
/// </summary>
internal static class BlendFixtureReport
{
    public static void Compare(string fixture, string name, Tensor tiled, Tensor untiled)
    {
        string shapes = $"[{string.Join(", ", tiled.shape)}] tiled, [{string.Join(", ", untiled.shape)}] untiled";
        if (!tiled.shape.SequenceEqual(untiled.shape))
        {
            Console.WriteLine($"{fixture}: {name} {shapes}");
            return;
        }
        using var scope = NewDisposeScope();
        var difference = (tiled - untiled).abs();
        double maxDifference = difference.max().item<float>();
        double meanDifference = difference.mean().item<float>();
        double meanMagnitude = untiled.abs().mean().item<float>();
        Console.WriteLine($"{fixture}: {name} {shapes}: |tiled - untiled| max {maxDifference:G3}, mean {meanDifference:G3} (mean |untiled| {meanMagnitude:G3})");
        if (maxDifference == 0)
            throw new InvalidOperationException($"{fixture}: tiled {name} equals the untiled one: the tiles were not run separately");
    }
}
