using NativeVae.Tests.Support;
using NativeVae.Weights;
using NativeVae.Loading;

namespace NativeVae.Tests.Kernels;

/// <summary>One attention case: Q, K, V [B, C, H, W] with N = H * W tokens.</summary>
public sealed record AttentionCase(string Name, int Batch, int Channels, int Height, int Width, float Scale)
{
    public override string ToString() => Name;
}

/// <summary>Every attention kernel version of every backend against a double reference with a full softmax.</summary>
public sealed class AttentionKernelTests
{
    private const ulong Seed = 13;
    private const double AbsTolerance = 1e-5;
    private const double RelTolerance = 1e-5;

    // SharedTile tiles: 32 queries, 64 keys, 16 / 64 channels per step; sizes straddle all of them.
    private static readonly AttentionCase[] Shapes =
    [
        new("1 token, C=1", 1, 1, 1, 1, 1f),
        new("7x5, C=4", 1, 4, 7, 5, 0.5f),
        new("3x3, batch 2, C=13", 2, 13, 3, 3, 1 / MathF.Sqrt(13)),
        new("5x4, C=96", 1, 96, 5, 4, 1 / MathF.Sqrt(96)),
        new("9x8 (72 tokens), C=70", 1, 70, 9, 8, 1 / MathF.Sqrt(70)),
        new("11x7 (77 tokens), batch 2, C=3, sharp softmax", 2, 3, 11, 7, 4f),
        new("16x17 (272 tokens: CPU key tiles of 128 and a ragged one), C=6", 1, 6, 16, 17, 1 / MathF.Sqrt(6)),
        new("8x8, C=512 (SD mid-block width)", 1, 512, 8, 8, 1 / MathF.Sqrt(512)),
    ];

    private static IEnumerable<TestCaseData> OnEveryVersion() => KernelBackends.Cases(KernelBackends.EveryVersion, Shapes);

    [TestCaseSource(nameof(OnEveryVersion))]
    public void MatchesReference(string backendName, AttentionCase c)
    {
        var backend = KernelBackends.Get(backendName);
        var shape = TensorShape.Nchw(c.Batch, c.Channels, c.Height, c.Width);
        // Spread wider than [-1, 1] so that the scores move the running max often.
        float[] q = SeededWeights.Uniform(Seed, c.Name + ".q", shape.ElementCount).Select(v => 2 * v).ToArray();
        float[] k = SeededWeights.Uniform(Seed, c.Name + ".k", shape.ElementCount).Select(v => 2 * v).ToArray();
        float[] v = SeededWeights.Uniform(Seed, c.Name + ".v", shape.ElementCount);
        double[] expected = Reference.Attention(q, k, v, c.Batch, c.Channels, c.Height * c.Width, c.Scale);

        using var tq = backend.Upload(q, shape);
        using var tk = backend.Upload(k, shape);
        using var tv = backend.Upload(v, shape);
        using var y = backend.Attention(tq, tk, tv, c.Scale);
        var actual = new float[shape.ElementCount];
        backend.Download(y, actual);
        NumericAssert.Close(actual, expected, shape, AbsTolerance, RelTolerance, $"attention {backendName} {c.Name}");
    }

    [TestCaseSource(typeof(KernelBackends), nameof(KernelBackends.EveryVersion))]
    public void OutputBufferContentsDoNotLeakIn(string backendName)
    {
        // Pooled output buffers hold whatever the last op left, NaN included; the kernels must overwrite, not accumulate.
        var backend = KernelBackends.Get(backendName);
        var shape = TensorShape.Nchw(1, 5, 3, 3);
        float[] q = SeededWeights.Uniform(Seed, "leak.q", shape.ElementCount);
        using var tq = backend.Upload(q, shape);
        var poison = Enumerable.Repeat(float.NaN, (int)shape.ElementCount).ToArray();
        using (backend.Upload(poison, shape)) { }
        // The NaN buffer is now on top of the pool's stack for this size: the output reuses it.
        using var y = backend.Attention(tq, tq, tq, 1f);
        var actual = new float[shape.ElementCount];
        backend.Download(y, actual);
        double[] expected = Reference.Attention(q, q, q, 1, 5, 9, 1);
        NumericAssert.Close(actual, expected, shape, AbsTolerance, RelTolerance, $"attention {backendName} over a NaN buffer");
    }
}
