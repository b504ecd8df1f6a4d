using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace NativeVae.Oracle.Ops;

/// <summary>
/// <c>ops/conv2d/&lt;case&gt;.safetensors</c>: x <c>[N, Cin, H, W]</c>, weight <c>[Cout, Cin, K, K]</c>, optional bias
/// <c>[Cout]</c>, optional residual (output shape), y. Metadata: stride, pad_top, pad_bottom, pad_left,
/// pad_right, upsample2x ("0"/"1"). Reference: optional nearest 2x interpolate, F.pad, conv2d without padding,
/// then + residual.
/// </summary>
internal static class Conv2dFixtures
{
    private sealed record Case(
        string Name, int Batch, int InChannels, int Height, int Width, int OutChannels, int Kernel,
        int Stride, int PadTop, int PadBottom, int PadLeft, int PadRight,
        bool Bias = true, bool Residual = false, bool Upsample2x = false);

    private static readonly Case[] Cases =
    [
        new("3x3_s1_p1_bias_7x5", 1, 3, 7, 5, 5, 3, 1, 1, 1, 1, 1),
        new("3x3_s1_p1_nobias_7x5", 1, 3, 7, 5, 5, 3, 1, 1, 1, 1, 1, Bias: false),
        // diffusers' Downsample2D: pad bottom and right only, stride 2; odd and even sizes.
        new("3x3_s2_padbr_7x5", 1, 4, 7, 5, 6, 3, 2, 0, 1, 0, 1),
        new("3x3_s2_padbr_8x6", 1, 4, 8, 6, 6, 3, 2, 0, 1, 0, 1),
        // TAESD's downsampling conv: stride 2, pad 1 all round, no bias.
        new("3x3_s2_p1_nobias_7x5", 1, 8, 7, 5, 8, 3, 2, 1, 1, 1, 1, Bias: false),
        new("1x1_c96_7x5", 1, 96, 7, 5, 48, 1, 1, 0, 0, 0, 0),
        new("3x3_c96_5x3", 1, 96, 5, 3, 32, 3, 1, 1, 1, 1, 1),
        // diffusers' Upsample2D: nearest 2x (5x3 -> 10x6) then 3x3 pad 1.
        new("upsample2x_3x3_5x3", 1, 4, 5, 3, 6, 3, 1, 1, 1, 1, 1, Upsample2x: true),
        new("3x3_residual_7x5", 1, 5, 7, 5, 5, 3, 1, 1, 1, 1, 1, Residual: true),
        new("3x3_1x1image", 1, 8, 1, 1, 4, 3, 1, 1, 1, 1, 1),
        new("3x3_batch2_7x5", 2, 3, 7, 5, 5, 3, 1, 1, 1, 1, 1, Residual: true),
        new("upsample2x_batch2_3x2", 2, 3, 3, 2, 4, 3, 1, 1, 1, 1, 1, Upsample2x: true),
    ];

    public static IEnumerable<FixtureFile> Build(ulong seed)
    {
        foreach (var c in Cases)
        {
            using var scope = NewDisposeScope();
            string stream = $"ops/conv2d/{c.Name}";
            var x = Torch.Uniform(seed, $"{stream}/x", [c.Batch, c.InChannels, c.Height, c.Width]);
            // PyTorch's default conv init bound 1/sqrt(fan_in), as for the model weights.
            float bound = 1f / MathF.Sqrt(c.InChannels * c.Kernel * c.Kernel);
            var weight = Torch.Uniform(seed, $"{stream}/weight", [c.OutChannels, c.InChannels, c.Kernel, c.Kernel], bound);
            var bias = c.Bias ? Torch.Uniform(seed, $"{stream}/bias", [c.OutChannels], bound) : null;

            var input = c.Upsample2x ? F.interpolate(x, scale_factor: [2.0, 2.0], mode: InterpolationMode.Nearest) : x;
            var padded = F.pad(input, [c.PadLeft, c.PadRight, c.PadTop, c.PadBottom]);
            var y = F.conv2d(padded, weight, bias, strides: [c.Stride, c.Stride], padding: [0, 0]);

            var file = new FixtureFile($"ops/conv2d/{c.Name}.safetensors")
                .Meta("stride", c.Stride)
                .Meta("pad_top", c.PadTop)
                .Meta("pad_bottom", c.PadBottom)
                .Meta("pad_left", c.PadLeft)
                .Meta("pad_right", c.PadRight)
                .Meta("upsample2x", c.Upsample2x)
                .Add("x", x)
                .Add("weight", weight);
            if (bias is not null) file.Add("bias", bias);
            if (c.Residual)
            {
                var residual = Torch.Uniform(seed, $"{stream}/residual", y.shape);
                file.Add("residual", residual);
                y = y + residual;
            }
            file.Add("y", y);
            yield return file;
        }
    }
}
