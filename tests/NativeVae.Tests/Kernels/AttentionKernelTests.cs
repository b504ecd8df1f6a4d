using NativeVae.Core;
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

    /// <summary>
    /// Attention over a chunk of the keys (exact tiling's strips): queries and keys of different counts, both
    /// straddling the CPU kernel's query tile and its 128-key tile, and the log-sum-exp beside the output.
    /// </summary>
    [TestCaseSource(typeof(KernelBackends), nameof(KernelBackends.Cpu))]
    public void AttentionOverAChunkOfTheKeysReturnsItsLogSumExp(string backendName)
    {
        var backend = KernelBackends.Get(backendName);
        const int batch = 2, channels = 13;
        var qShape = TensorShape.Nchw(batch, channels, 5, 7);
        var kShape = TensorShape.Nchw(batch, channels, 3, 61);
        float scale = 1 / MathF.Sqrt(channels);
        float[] q = SeededWeights.Uniform(Seed, "chunk.q", qShape.ElementCount).Select(v => 2 * v).ToArray();
        float[] k = SeededWeights.Uniform(Seed, "chunk.k", kShape.ElementCount).Select(v => 2 * v).ToArray();
        float[] v = SeededWeights.Uniform(Seed, "chunk.v", kShape.ElementCount);
        double[] expected = Reference.AttentionOverKeys(q, k, v, batch, channels, 35, 183, scale, out double[] expectedLse);

        using var tq = backend.Upload(q, qShape);
        using var tk = backend.Upload(k, kShape);
        using var tv = backend.Upload(v, kShape);
        Assert.That(backend.Capabilities.ChunksAttention, Is.True);
        var chunk = backend.AttentionOverKeys(tq, tk, tv, scale);
        using (chunk.Output)
        using (chunk.LogSumExp)
        {
            Assert.That(chunk.LogSumExp.Shape, Is.EqualTo(TensorShape.Nchw(batch, 1, 1, 35)));
            var actual = new float[qShape.ElementCount];
            var lse = new float[batch * 35];
            backend.Download(chunk.Output, actual);
            backend.Download(chunk.LogSumExp, lse);
            NumericAssert.Close(actual, expected, qShape, AbsTolerance, RelTolerance, $"attention over keys {backendName}");
            NumericAssert.Close(lse, expectedLse, chunk.LogSumExp.Shape, AbsTolerance, RelTolerance, $"log-sum-exp {backendName}");
        }
    }

    /// <summary>Chunks of the keys merged by their log-sum-exp give the attention over all of them.</summary>
    [TestCaseSource(typeof(KernelBackends), nameof(KernelBackends.Cpu))]
    public void ChunksOfTheKeysMergeIntoTheWholeAttention(string backendName)
    {
        var backend = KernelBackends.Get(backendName);
        const int channels = 6, height = 16, width = 9, tokens = height * width;
        var shape = TensorShape.Nchw(1, channels, height, width);
        float scale = 3f; // sharp: the chunks' maxima differ widely
        float[] q = SeededWeights.Uniform(Seed, "merge.q", shape.ElementCount);
        float[] k = SeededWeights.Uniform(Seed, "merge.k", shape.ElementCount);
        float[] v = SeededWeights.Uniform(Seed, "merge.v", shape.ElementCount);
        double[] expected = Reference.Attention(q, k, v, 1, channels, tokens, scale);

        using var tq = backend.Upload(q, shape);
        var merged = new float[shape.ElementCount];
        var mergedLse = new float[tokens];
        int[] rowsPerChunk = [5, 1, 10]; // 45, 9 and 90 keys
        int top = 0;
        foreach (int rows in rowsPerChunk)
        {
            var chunkShape = TensorShape.Nchw(1, channels, rows, width);
            float[] RowsOf(float[] x) =>
                Enumerable.Range(0, channels).SelectMany(c => x.Skip(c * tokens + top * width).Take(rows * width)).ToArray();
            using var tk = backend.Upload(RowsOf(k), chunkShape);
            using var tv = backend.Upload(RowsOf(v), chunkShape);
            var chunk = backend.AttentionOverKeys(tq, tk, tv, scale);
            using (chunk.Output)
            using (chunk.LogSumExp)
            {
                var output = new float[shape.ElementCount];
                var lse = new float[tokens];
                backend.Download(chunk.Output, output);
                backend.Download(chunk.LogSumExp, lse);
                if (top == 0)
                {
                    output.CopyTo(merged, 0);
                    lse.CopyTo(mergedLse, 0);
                }
                else AttentionChunks.Merge(merged, mergedLse, output, lse);
            }
            top += rows;
        }
        NumericAssert.Close(merged, expected, shape, AbsTolerance, RelTolerance, $"merged chunks {backendName}");
    }

    [Test]
    public void ChunksThatDoNotMatchAreRefused()
    {
        Assert.That(() => AttentionChunks.Merge(new float[12], new float[4], new float[8], new float[4]),
            Throws.ArgumentException.With.Message.Contains("do not merge"));
        var backend = KernelBackends.Get(KernelBackends.Cpu.First());
        using var q = backend.Upload(new float[12], TensorShape.Nchw(1, 3, 2, 2));
        using var k = backend.Upload(new float[8], TensorShape.Nchw(1, 2, 2, 2));
        Assert.That(() => backend.AttentionOverKeys(q, k, k, 1f), Throws.ArgumentException.With.Message.Contains("channels"));
    }
}
