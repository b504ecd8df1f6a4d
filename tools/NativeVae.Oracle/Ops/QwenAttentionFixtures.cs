using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace NativeVae.Oracle.Ops;

/// <summary>
/// <c>ops/qwen_attention/&lt;case&gt;.safetensors</c>: diffusers' <c>QwenImageAttentionBlock</c> on frames
/// <c>[B*T, C, H, W]</c>, its fused-qkv attention: x; gamma <c>[C]</c> (the RMS norm's); to_qkv.weight
/// <c>[3C, C, 1, 1]</c> and bias <c>[3C]</c>; proj.weight <c>[C, C, 1, 1]</c> and bias; y. Reference, as the block
/// computes it: RMS norm, to_qkv, reshape to <c>[BT, 1, 3C, HW]</c>, permute to tokens, chunk q, k, v on the last
/// axis, F.scaled_dot_product_attention (scale 1/sqrt(C)), back to <c>[BT, C, H, W]</c>, proj, plus x.
/// </summary>
internal static class QwenAttentionFixtures
{
    private sealed record Case(string Name, int Batch, int Channels, int Height, int Width);

    private const float InputAmplitude = 2f;
    private const float GammaJitter = 0.25f;

    private static readonly Case[] Cases =
    [
        new("c8_7x5", 1, 8, 7, 5),
        new("c24_batch2_3x11", 2, 24, 3, 11),
        new("c96_1x1", 1, 96, 1, 1),
        new("c160_2x3", 1, 160, 2, 3),
    ];

    public static IEnumerable<FixtureFile> Build(ulong seed)
    {
        foreach (var c in Cases)
        {
            using var scope = NewDisposeScope();
            string stream = $"ops/qwen_attention/{c.Name}";
            int dim = c.Channels;
            double bound = 1.0 / Math.Sqrt(dim);
            var x = Torch.Uniform(seed, $"{stream}/x", [c.Batch, dim, c.Height, c.Width], InputAmplitude);
            var gamma = Torch.Uniform(seed, $"{stream}/gamma", [dim], GammaJitter, 1f);
            var qkvWeight = Torch.Uniform(seed, $"{stream}/to_qkv.weight", [3 * dim, dim, 1, 1], (float)bound);
            var qkvBias = Torch.Uniform(seed, $"{stream}/to_qkv.bias", [3 * dim], (float)bound);
            var projWeight = Torch.Uniform(seed, $"{stream}/proj.weight", [dim, dim, 1, 1], (float)bound);
            var projBias = Torch.Uniform(seed, $"{stream}/proj.bias", [dim], (float)bound);

            var normed = F.normalize(x, dim: 1) * Math.Sqrt(dim) * gamma.view(-1, 1, 1);
            var qkv = F.conv2d(normed, qkvWeight, qkvBias).reshape(c.Batch, 1, 3 * dim, -1).permute(0, 1, 3, 2).contiguous();
            var parts = qkv.chunk(3, dim: -1);
            var attended = F.scaled_dot_product_attention(parts[0], parts[1], parts[2])
                .squeeze(1).permute(0, 2, 1).reshape(c.Batch, dim, c.Height, c.Width);
            var y = F.conv2d(attended, projWeight, projBias) + x;

            yield return new FixtureFile($"ops/qwen_attention/{c.Name}.safetensors")
                .Add("x", x)
                .Add("gamma", gamma)
                .Add("to_qkv.weight", qkvWeight)
                .Add("to_qkv.bias", qkvBias)
                .Add("proj.weight", projWeight)
                .Add("proj.bias", projBias)
                .Add("y", y);
        }
    }
}
