using NativeVae.Tiling;
using NativeVae.Weights;
using NativeVae.Loading;

namespace NativeVae.Tests.Tiling;

public class BlendTilingTests
{
    [TestCase(17, 23, 8)]
    [TestCase(8, 8, 8)]
    [TestCase(5, 31, 4)]
    public void IdentityModelReassemblesTheInput(int height, int width, int tile)
    {
        // Overlapping tiles of the same picture blend to the same values, so tiling an identity is an identity.
        var input = new HostTensor<float>(TensorShape.Nchw(2, 3, height, width),
            SeededWeights.Uniform(3, "blend", 2 * 3 * height * width));
        var output = BlendTiling.Run(input, tile, tile, t => t);
        Assert.That(output.Shape, Is.EqualTo(input.Shape));
        for (int i = 0; i < input.Data.Length; i++)
            Assert.That(output.Data[i], Is.EqualTo(input.Data[i]).Within(1e-6f), $"element {i}");
    }

    [Test]
    public void SecondTileFadesInOverTheBlendExtent()
    {
        // Width 12, tile 8: tiles start at 0 and 6; each "model" returns a constant (its tile index), so in the
        // blended region of the second tile the weight of the first is (1 - x/extent), extent = int(8*0.25) = 2.
        var input = new HostTensor<float>(TensorShape.Nchw(1, 1, 1, 12));
        int calls = 0;
        var output = BlendTiling.Run(input, 8, 8, t =>
        {
            var result = new HostTensor<float>(t.Shape);
            Array.Fill(result.Data, calls++ * 10f);
            return result;
        });
        // First tile kept to row_limit 6 columns: 0..5 are 0; then the second tile (width 6) with columns 0,1 blended.
        Assert.That(output.Data, Is.EqualTo(new[] { 0f, 0, 0, 0, 0, 0, 0 * 1f + 10 * 0f, 0 * 0.5f + 10 * 0.5f, 10, 10, 10, 10 }));
    }
}
