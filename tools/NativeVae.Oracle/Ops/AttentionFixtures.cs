using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace NativeVae.Oracle.Ops;

/// <summary>
/// <c>ops/attention/&lt;case&gt;.safetensors</c>: q, k, v and y <c>[B, C, H, W]</c>, channel-major tokens (N = H*W),
/// single head. Metadata: scale = 1/sqrt(C). Reference: F.scaled_dot_product_attention on the <c>[B, 1, N, C]</c>
/// transposes (its default scale is 1/sqrt(C)).
/// </summary>
internal static class AttentionFixtures
{
    private sealed record Case(string Name, int Batch, int Channels, int Height, int Width);

    /// <summary>q, k, v uniform in [-2, 2): scores spread enough that the softmax is far from uniform.</summary>
    private const float InputAmplitude = 2f;

    private static readonly Case[] Cases =
    [
        new("c8_7x5", 1, 8, 7, 5),
        new("c96_2x3", 1, 96, 2, 3),
        new("c32_1x1", 1, 32, 1, 1),
        new("c8_batch2_3x5", 2, 8, 3, 5),
        new("c512_2x2", 1, 512, 2, 2),
    ];

    public static IEnumerable<FixtureFile> Build(ulong seed)
    {
        foreach (var c in Cases)
        {
            using var scope = NewDisposeScope();
            string stream = $"ops/attention/{c.Name}";
            long[] shape = [c.Batch, c.Channels, c.Height, c.Width];
            var q = Torch.Uniform(seed, $"{stream}/q", shape, InputAmplitude);
            var k = Torch.Uniform(seed, $"{stream}/k", shape, InputAmplitude);
            var v = Torch.Uniform(seed, $"{stream}/v", shape, InputAmplitude);
            var y = F.scaled_dot_product_attention(Tokens(q, c), Tokens(k, c), Tokens(v, c))      // [B, 1, N, C]
                .squeeze(1).transpose(1, 2).reshape(shape);                                      // [B, C, H, W]

            yield return new FixtureFile($"ops/attention/{c.Name}.safetensors")
                .Meta("scale", 1f / MathF.Sqrt(c.Channels))
                .Add("q", q)
                .Add("k", k)
                .Add("v", v)
                .Add("y", y);
        }
    }

    /// <summary><c>[B, C, H, W]</c> -> <c>[B, 1, N, C]</c>: one head, tokens along N.</summary>
    private static Tensor Tokens(Tensor t, Case c) =>
        t.reshape(c.Batch, c.Channels, c.Height * c.Width).transpose(1, 2).unsqueeze(1);
}
