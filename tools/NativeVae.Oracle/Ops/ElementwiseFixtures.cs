using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace NativeVae.Oracle.Ops;

/// <summary>
/// <c>ops/elementwise/&lt;case&gt;.safetensors</c>: x, optional b (same shape), y. Metadata: op
/// (silu | relu | tanh_clamp | add | scale_shift), scale, shift (1 and 0 unless op is scale_shift).
/// tanh_clamp is TAESD's <c>tanh(x / 3) * 3</c>; scale_shift is <c>x * scale + shift</c>.
/// </summary>
internal static class ElementwiseFixtures
{
    private sealed record Case(string Name, string Op, long[] Shape, float Amplitude, float Scale = 1f, float Shift = 0f);

    /// <summary>TAESD's soft clamp bound: tanh(x / 3) * 3.</summary>
    private const float TanhClampBound = 3f;

    private static readonly Case[] Cases =
    [
        // Wide ranges reach the saturated ends of sigmoid and tanh, where a naive exp overflows.
        new("silu_7x5", "silu", [1, 3, 7, 5], 20f),
        new("relu_7x5", "relu", [1, 3, 7, 5], 1f),
        new("tanh_clamp_7x5", "tanh_clamp", [1, 3, 7, 5], 12f),
        new("add_batch2_5x3", "add", [2, 5, 5, 3], 1f),
        // FLUX.1's latent scaling: (z - shift) * scaling_factor written as a scale and a shift.
        new("scale_shift_7x5", "scale_shift", [1, 16, 7, 5], 2f, 0.3611f, -0.1159f * 0.3611f),
    ];

    public static IEnumerable<FixtureFile> Build(ulong seed)
    {
        foreach (var c in Cases)
        {
            using var scope = NewDisposeScope();
            string stream = $"ops/elementwise/{c.Name}";
            var x = Torch.Uniform(seed, $"{stream}/x", c.Shape, c.Amplitude);
            var file = new FixtureFile($"ops/elementwise/{c.Name}.safetensors")
                .Meta("op", c.Op)
                .Meta("scale", c.Scale)
                .Meta("shift", c.Shift)
                .Add("x", x);
            Tensor y;
            switch (c.Op)
            {
                case "silu": y = F.silu(x); break;
                case "relu": y = F.relu(x); break;
                case "tanh_clamp": y = TorchSharp.torch.tanh(x / TanhClampBound) * TanhClampBound; break;
                case "scale_shift": y = x * c.Scale + c.Shift; break;
                case "add":
                    var b = Torch.Uniform(seed, $"{stream}/b", c.Shape, c.Amplitude);
                    file.Add("b", b);
                    y = x + b;
                    break;
                default: throw new InvalidOperationException($"elementwise fixture {c.Name}: unknown op '{c.Op}'");
            }
            yield return file.Add("y", y);
        }
    }
}
