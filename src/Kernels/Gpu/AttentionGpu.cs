using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace NativeVae.Kernels.Gpu;

// Single-head attention kernels and their launcher. Q, K, V and the output are channel-major [Batch, C, N]:
// output[b, c, i] = sum_j softmax_j(scale * sum_c' q[b, c', i] k[b, c', j]) v[b, c, j]. Both versions use the
// online softmax in fp32 (running max and sum, earlier partial outputs rescaled when the max grows), so the
// N x N score matrix is never stored; each accumulates its queries' outputs in the output buffer itself.

internal static class AttentionGpu
{
    // SharedTile: a group of 256 threads owns 32 queries and walks the keys 64 at a time.
    public const int QueryTile = 32;
    public const int KeyTile = 64;
    public const int GroupSize = 256;

    /// <summary>Channels of Q and K staged per step of the score product.</summary>
    private const int ScoreChannels = 16;

    /// <summary>Channels of V (and of the output) staged per step of the value product.</summary>
    private const int ValueChannels = 64;

    /// <summary>Scores are read along a row by consecutive queries: one word of padding keeps those reads on distinct banks.</summary>
    private const int ScorePitch = KeyTile + 1;

    /// <summary>Rows of the group: thread t sits at (row t / 32, lane t % 32).</summary>
    private const int GroupRows = GroupSize / QueryTile;

    /// <summary>
    /// One thread per (batch, query): a dot product per key, the running max and sum, and its own output column
    /// updated in place (coalesced across threads: neighbouring queries are neighbouring words).
    /// </summary>
    [GpuKernel]
    internal static void RowPerThread(Index1D index, AttentionParams p, ArrayView<float> q, ArrayView<float> k,
        ArrayView<float> v, ArrayView<float> output)
    {
        int row = index;
        int n = p.Tokens;
        if (row >= p.Batch * n) return;
        int batch = row / n;
        int batchBase = batch * p.Channels * n;
        int column = batchBase + (row - batch * n);

        float max = float.NegativeInfinity;
        float sum = 0f;
        for (int j = 0; j < n; j++)
        {
            float score = 0f;
            for (int c = 0, offset = 0; c < p.Channels; c++, offset += n)
                score += q[column + offset] * k[batchBase + offset + j];
            score *= p.Scale;
            float newMax = XMath.Max(max, score);
            // keep = 0 on the first key (max = -inf); the column is then written, not read, so whatever the
            // pooled output buffer held never leaks in (0 * NaN would).
            float keep = XMath.Exp(max - newMax);
            float weight = XMath.Exp(score - newMax);
            sum = sum * keep + weight;
            max = newMax;
            for (int c = 0, offset = 0; c < p.Channels; c++, offset += n)
            {
                float previous = j == 0 ? 0f : output[column + offset] * keep;
                output[column + offset] = previous + weight * v[batchBase + offset + j];
            }
        }

        float inverse = 1f / sum;
        for (int c = 0, offset = 0; c < p.Channels; c++, offset += n)
            output[column + offset] *= inverse;
    }

    /// <summary>
    /// Flash-style. Per key tile: (1) scores of 32 queries x 64 keys, Q and K staged 16 channels at a time, each
    /// thread a 4 x 2 register block; (2) one thread per query updates max/sum and turns its scores into weights;
    /// (3) the output columns are rescaled and accumulated 64 channels at a time from a staged V tile, the last
    /// tile also dividing by the sum. Any C and N: tails load zeros, keys past N score -inf.
    /// Launch: grid (ceil(N / 32), Batch), group 256.
    /// </summary>
    [GpuKernel(ExplicitlyGrouped = true)]
    internal static void SharedTile(AttentionParams p, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v,
        ArrayView<float> output)
    {
        var queryTile = SharedMemory.Allocate<float>(ScoreChannels * QueryTile);
        var keyTile = SharedMemory.Allocate<float>(ScoreChannels * KeyTile);
        var scores = SharedMemory.Allocate<float>(QueryTile * ScorePitch);
        var valueTile = SharedMemory.Allocate<float>(ValueChannels * KeyTile);
        var rowMax = SharedMemory.Allocate<float>(QueryTile);
        var rowSum = SharedMemory.Allocate<float>(QueryTile);
        var rowKeep = SharedMemory.Allocate<float>(QueryTile);

        int thread = Group.IdxX;
        int lane = thread % QueryTile;
        int groupRow = thread / QueryTile;
        int n = p.Tokens;
        int channels = p.Channels;
        int i0 = Grid.IdxX * QueryTile;
        int batchBase = Grid.IdxY * channels * n;
        int query = i0 + lane;

        if (thread < QueryTile)
        {
            rowMax[thread] = float.NegativeInfinity;
            rowSum[thread] = 0f;
        }
        Group.Barrier();

        for (int j0 = 0; j0 < n; j0 += KeyTile)
        {
            // (1) scores[i][j] for queries i = groupRow + 8a, keys j = lane and lane + 32.
            var near = default(Float4);
            var far = default(Float4);
            for (int c0 = 0; c0 < channels; c0 += ScoreChannels)
            {
                StageTile(q, queryTile, batchBase, c0, channels, i0, QueryTile, n, ScoreChannels, thread);
                StageTile(k, keyTile, batchBase, c0, channels, j0, KeyTile, n, ScoreChannels, thread);
                Group.Barrier();
                for (int cc = 0; cc < ScoreChannels; cc++)
                {
                    int qi = cc * QueryTile + groupRow;
                    var queries = new Float4(queryTile[qi], queryTile[qi + GroupRows],
                        queryTile[qi + 2 * GroupRows], queryTile[qi + 3 * GroupRows]);
                    near = near.MultiplyAdd(queries, keyTile[cc * KeyTile + lane]);
                    far = far.MultiplyAdd(queries, keyTile[cc * KeyTile + lane + QueryTile]);
                }
                Group.Barrier();
            }
            WriteScores(scores, groupRow, lane, near, p.Scale, j0 + lane < n);
            WriteScores(scores, groupRow, lane + QueryTile, far, p.Scale, j0 + lane + QueryTile < n);
            Group.Barrier();

            // (2) online softmax update; keys past N weigh exp(-inf) = 0, and a tile always has a real key.
            if (thread < QueryTile)
            {
                int rowStart = thread * ScorePitch;
                float tileMax = float.NegativeInfinity;
                for (int j = 0; j < KeyTile; j++) tileMax = XMath.Max(tileMax, scores[rowStart + j]);
                float oldMax = rowMax[thread];
                float newMax = XMath.Max(oldMax, tileMax);
                float tileSum = 0f;
                for (int j = 0; j < KeyTile; j++)
                {
                    float weight = XMath.Exp(scores[rowStart + j] - newMax);
                    scores[rowStart + j] = weight;
                    tileSum += weight;
                }
                float keep = XMath.Exp(oldMax - newMax);
                rowSum[thread] = rowSum[thread] * keep + tileSum;
                rowMax[thread] = newMax;
                rowKeep[thread] = keep;
            }
            Group.Barrier();

            // (3) output[c][query] = output * keep + sum_j v[c][j] * weight[query][j] for channels c = groupRow + 8a.
            bool firstTile = j0 == 0;
            float keepQuery = rowKeep[lane];
            float finish = j0 + KeyTile >= n ? 1f / rowSum[lane] : 1f;
            for (int c0 = 0; c0 < channels; c0 += ValueChannels)
            {
                StageTile(v, valueTile, batchBase, c0, channels, j0, KeyTile, n, ValueChannels, thread);
                Group.Barrier();
                var low = default(Float4);
                var high = default(Float4);
                int vi = groupRow * KeyTile;
                const int ChannelStep = GroupRows * KeyTile;
                for (int j = 0; j < KeyTile; j++, vi++)
                {
                    float weight = scores[lane * ScorePitch + j];
                    low = low.MultiplyAdd(new Float4(valueTile[vi], valueTile[vi + ChannelStep],
                        valueTile[vi + 2 * ChannelStep], valueTile[vi + 3 * ChannelStep]), weight);
                    high = high.MultiplyAdd(new Float4(valueTile[vi + 4 * ChannelStep], valueTile[vi + 5 * ChannelStep],
                        valueTile[vi + 6 * ChannelStep], valueTile[vi + 7 * ChannelStep]), weight);
                }
                if (query < n)
                {
                    for (int a = 0; a < 2 * Float4Lanes; a++)
                    {
                        int channel = c0 + groupRow + a * GroupRows;
                        if (channel >= channels) break;
                        int o = batchBase + channel * n + query;
                        float previous = firstTile ? 0f : output[o] * keepQuery;
                        float contribution = a < Float4Lanes ? low.Lane(a) : high.Lane(a - Float4Lanes);
                        output[o] = (previous + contribution) * finish;
                    }
                }
                Group.Barrier();
            }
        }
    }

    private const int Float4Lanes = 4;

    /// <summary>
    /// Stages tile[cc * width + t] = source[batch, c0 + cc, t0 + t] for cc below <paramref name="depth"/> and t below
    /// <paramref name="width"/>, zero past C or N. Consecutive threads take consecutive tokens (coalesced).
    /// </summary>
    private static void StageTile(ArrayView<float> source, ArrayView<float> tile, int batchBase, int c0, int channels,
        int t0, int width, int n, int depth, int thread)
    {
        for (int e = thread; e < depth * width; e += GroupSize)
        {
            int cc = e / width;
            int t = e - cc * width;
            int channel = c0 + cc;
            int token = t0 + t;
            tile[e] = channel < channels && token < n ? source[batchBase + channel * n + token] : 0f;
        }
    }

    /// <summary>Writes one key column of a thread's score block: rows groupRow + 8a, scaled, -inf for keys past N.</summary>
    private static void WriteScores(ArrayView<float> scores, int groupRow, int key, Float4 block, float scale, bool valid)
    {
        for (int a = 0; a < Float4Lanes; a++)
        {
            int i = groupRow + a * GroupRows;
            scores[i * ScorePitch + key] = valid ? block.Lane(a) * scale : float.NegativeInfinity;
        }
    }
}

/// <summary>Loads the attention kernels once for one accelerator and launches the requested version.</summary>
internal sealed class AttentionLauncher
{
    private readonly Action<AcceleratorStream, Index1D, AttentionParams, ArrayView<float>, ArrayView<float>,
        ArrayView<float>, ArrayView<float>> _rowPerThread;
    private readonly Action<AcceleratorStream, KernelConfig, AttentionParams, ArrayView<float>, ArrayView<float>,
        ArrayView<float>, ArrayView<float>> _sharedTile;

    private readonly AcceleratorStream _stream;

    public AttentionLauncher(Accelerator accelerator, AcceleratorStream stream)
    {
        _stream = stream;
        _rowPerThread = accelerator.LoadAutoGroupedKernel<Index1D, AttentionParams, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>>(AttentionGpu.RowPerThread);
        _sharedTile = accelerator.LoadKernel<AttentionParams, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>>(AttentionGpu.SharedTile);
    }

    public void Run(AttentionVersion version, in AttentionParams p, ArrayView<float> q, ArrayView<float> k,
        ArrayView<float> v, ArrayView<float> output)
    {
        if (p.Batch == 0 || p.Tokens == 0 || p.Channels == 0) return;
        switch (version)
        {
            case AttentionVersion.RowPerThread:
                _rowPerThread(_stream, p.Batch * p.Tokens, p, q, k, v, output);
                break;
            case AttentionVersion.SharedTile:
                var grid = new Index2D(DeviceMath.CeilDiv(p.Tokens, AttentionGpu.QueryTile), p.Batch);
                _sharedTile(_stream, new KernelConfig(grid, new Index2D(AttentionGpu.GroupSize, 1)), p, q, k, v, output);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(version), version, "unknown attention kernel version");
        }
    }
}
