namespace NativeVae.Kernels.Cpu;

// Single-head attention over channel-major Q, K, V [B, C, N], flash style: a worker takes a tile of queries and
// streams key tiles past it with an online softmax, so the N x N matrix never exists. Both products run on the
// convolution's micro-kernel, with the queries along the vector lanes:
//   S^T[j, i] = sum_c K[c, j] * Qs[c, i]      (weights: K packed [key block][c][4]; input: the query tile rows)
//   O[c, i]   = O[c, i] * alpha[i] + sum_j V[c, j] * P^T[j, i]   (weights: V packed [c block][j][4]; input: P^T)
// Keeping queries in lanes makes the softmax's per-query max and sum lane-wise (no horizontal reductions).
// Before the query tiles run, K and V of the image are packed (zero-padded to whole key tiles).

internal static unsafe class AttentionCpu
{
    /// <summary>Keys per tile: S^T and P^T are KeyTile x QueryTile (32 KiB at full width, in L1); the P V product
    /// reduces over KeyTile keys per call, long enough to amortise the call (64 measured ~20% slower).</summary>
    private const int KeyTile = 128;

    /// <summary>Channels per pass of the S^T product: the query tile's slice (32 KiB) stays in L1 across key blocks.</summary>
    private const int ChannelSlice = 128;

    private const int PackedKeySlot = 0;
    private const int PackedValueSlot = 1;
    private const int QuerySlot = 0;
    private const int ScoreSlot = 1;
    private const int OutputSlot = 2;
    private const int RowStateSlot = 3;

    /// <summary>
    /// y = softmax(scale * q^T k) v, with q and y [B, C, Tokens], k and v [B, C, KeyTokens]. When
    /// <paramref name="logSumExp"/> is not null it receives [B, Tokens]: each query's log of the sum of
    /// exp(scale * q.k) over these keys, with which outputs over disjoint chunks of the keys merge exactly.
    /// </summary>
    public static void Run(CpuWorkers workers, SimdWidth width, in AttentionParams p, float* q, float* k, float* v, float* y,
        float* logSumExp = null)
    {
        var body = new RunBody { Workers = workers, P = p, Q = q, K = k, V = v, Y = y, LogSumExp = logSumExp };
        SimdDispatch.Run(width, ref body);
    }

    private struct RunBody : ISimdBody
    {
        public CpuWorkers Workers;
        public AttentionParams P;
        public float* Q;
        public float* K;
        public float* V;
        public float* Y;
        public float* LogSumExp;

        public void Invoke<TVec, TOps>() where TVec : unmanaged where TOps : IVectorOps<TVec> =>
            Run<TVec, TOps>(Workers, P, Q, K, V, Y, LogSumExp);
    }

    private static void Run<TVec, TOps>(CpuWorkers workers, in AttentionParams p, float* q, float* k, float* v, float* y, float* logSumExp)
        where TVec : unmanaged where TOps : IVectorOps<TVec>
    {
        if (p.Batch == 0 || p.Channels == 0 || p.Tokens == 0 || p.KeyTokens == 0) return;
        int rows = MicroKernelCpu.Rows;
        int queryTile = MicroKernelCpu.Vectors<TVec, TOps>() * TOps.Lanes;
        int paddedKeys = (p.KeyTokens + KeyTile - 1) / KeyTile * KeyTile;
        int channelBlocks = (p.Channels + rows - 1) / rows;
        long queryPlane = (long)p.Channels * p.Tokens, keyPlane = (long)p.Channels * p.KeyTokens;
        var pack = new PackJob
        {
            P = p,
            PaddedKeys = paddedKeys,
            ChannelBlocks = channelBlocks,
            PackedK = workers.SharedScratch(PackedKeySlot, (long)p.Channels * paddedKeys),
            PackedV = workers.SharedScratch(PackedValueSlot, (long)channelBlocks * rows * paddedKeys),
        };
        var job = new QueryTileJob<TVec, TOps>
        {
            P = p,
            PaddedKeys = paddedKeys,
            ChannelBlocks = channelBlocks,
            QueryTiles = (p.Tokens + queryTile - 1) / queryTile,
            PackedK = pack.PackedK,
            PackedV = pack.PackedV,
            Queries = workers.ScratchTable(QuerySlot, (long)p.Channels * queryTile),
            Scores = workers.ScratchTable(ScoreSlot, (long)KeyTile * queryTile),
            Outputs = workers.ScratchTable(OutputSlot, (long)channelBlocks * rows * queryTile),
            RowStates = workers.ScratchTable(RowStateSlot, 3L * queryTile),
        };
        for (int b = 0; b < p.Batch; b++)
        {
            pack.K = k + b * keyPlane;
            pack.V = v + b * keyPlane;
            workers.Run(paddedKeys / rows + channelBlocks, ref pack);
            job.Q = q + b * queryPlane;
            job.Y = y + b * queryPlane;
            job.LogSumExp = logSumExp == null ? null : logSumExp + (long)b * p.Tokens;
            workers.Run(job.QueryTiles, ref job);
        }
    }

    // Item < key blocks: K[c, j..j+4] -> PackedK[block][c][4]; else a block of 4 channels of V -> PackedV[block][j][4].
    private struct PackJob : IWorkItem
    {
        public AttentionParams P;
        public int PaddedKeys;
        public int ChannelBlocks;
        public float* K;
        public float* V;
        public float* PackedK;
        public float* PackedV;

        public void Execute(int item, int worker)
        {
            int rows = MicroKernelCpu.Rows;
            int keyBlocks = PaddedKeys / rows;
            int n = P.KeyTokens;
            if (item < keyBlocks)
            {
                int j0 = item * rows;
                float* dst = PackedK + (long)item * P.Channels * rows;
                for (int c = 0; c < P.Channels; c++)
                {
                    float* src = K + (long)c * n;
                    for (int r = 0; r < rows; r++) *dst++ = j0 + r < n ? src[j0 + r] : 0f;
                }
                return;
            }
            int block = item - keyBlocks;
            float* vdst = PackedV + (long)block * PaddedKeys * rows;
            for (int r = 0; r < rows; r++)
            {
                int c = block * rows + r;
                float* src = V + (long)c * n;
                for (int j = 0; j < PaddedKeys; j++) vdst[j * rows + r] = c < P.Channels && j < n ? src[j] : 0f;
            }
        }
    }

    private struct QueryTileJob<TVec, TOps> : IWorkItem where TVec : unmanaged where TOps : IVectorOps<TVec>
    {
        public AttentionParams P;
        public int PaddedKeys;
        public int ChannelBlocks;
        public int QueryTiles;
        public float* Q;
        public float* Y;
        public float* LogSumExp;
        public float* PackedK;
        public float* PackedV;
        public float** Queries;
        public float** Scores;
        public float** Outputs;
        public float** RowStates;

        public void Execute(int item, int worker)
        {
            int lanes = TOps.Lanes;
            int vectors = MicroKernelCpu.Vectors<TVec, TOps>();
            int rows = MicroKernelCpu.Rows;
            int tile = vectors * lanes;
            int n = P.Tokens;
            int c = P.Channels;
            int i0 = item * tile;
            int validQueries = Math.Min(tile, n - i0);
            float* qs = Queries[worker];
            float* s = Scores[worker];
            float* o = Outputs[worker];
            float* max = RowStates[worker];
            float* sum = max + tile;
            float* alpha = sum + tile;

            // Queries of the tile, pre-scaled, zero past the last token: [C][tile].
            var prescale = new AffineFunction(P.Scale, 0f, silu: false);
            for (int ch = 0; ch < c; ch++)
            {
                float* dst = qs + (long)ch * tile;
                ElementwiseCpu.MapSpan<TVec, TOps, AffineFunction>(prescale, Q + (long)ch * n + i0, dst, validQueries);
                new Span<float>(dst + validQueries, tile - validQueries).Clear();
            }
            for (int i = 0; i < tile; i++)
            {
                max[i] = float.NegativeInfinity;
                sum[i] = 0f;
            }

            int* tap = stackalloc int[1];
            tap[0] = 0;
            var t = new MicroTask
            {
                TapOffsets = tap,
                TapCount = 1,
                InputStride = tile,
                OutputRowStride = tile,
                ValidRows = rows,
                LastVectorLanes = lanes,
            };
            int keys = P.KeyTokens;
            for (int j0 = 0; j0 < keys; j0 += KeyTile)
            {
                int validKeys = Math.Min(KeyTile, keys - j0);
                int keyBlocks = (validKeys + rows - 1) / rows;

                // S^T = K^T Qs over channel slices.
                for (int c0 = 0; c0 < c; c0 += ChannelSlice)
                {
                    t.Input = qs + (long)c0 * tile;
                    t.ReduceCount = Math.Min(ChannelSlice, c - c0);
                    t.Epilogue = c0 == 0 ? MicroEpilogue.Store : MicroEpilogue.Accumulate;
                    for (int kb = 0; kb < keyBlocks; kb++)
                    {
                        t.Weights = PackedK + ((long)(j0 / rows + kb) * c + c0) * rows;
                        t.Output = s + (long)kb * rows * tile;
                        MicroKernelCpu.Run<TVec, TOps>(t, vectors);
                    }
                }

                OnlineSoftmax(s, validKeys, tile, max, sum, alpha);

                // O = O * alpha + V P^T; the first key tile stores (O holds garbage before it).
                t.Input = s;
                t.ReduceCount = validKeys;
                t.Epilogue = j0 == 0 ? MicroEpilogue.Store : MicroEpilogue.AccumulateScaled;
                t.Scale = alpha;
                for (int cb = 0; cb < ChannelBlocks; cb++)
                {
                    t.Weights = PackedV + ((long)cb * PaddedKeys + j0) * rows;
                    t.Output = o + (long)cb * rows * tile;
                    MicroKernelCpu.Run<TVec, TOps>(t, vectors);
                }
            }

            if (LogSumExp != null)
                for (int i = 0; i < validQueries; i++) LogSumExp[i0 + i] = max[i] + MathF.Log(sum[i]);

            // y[c, i0 + i] = O[c, i] / l[i] for the valid queries; a partial tile ends with a vector anchored
            // at its last query (recomputing a few), or lane by lane when it is shorter than a vector.
            for (int i = 0; i < tile; i += lanes) TOps.Store(alpha + i, TOps.Divide(TOps.Broadcast(1f), TOps.Load(sum + i)));
            int anchored = validQueries >= lanes ? validQueries - lanes : -1;
            for (int ch = 0; ch < c; ch++)
            {
                float* src = o + (long)ch * tile;
                float* dst = Y + (long)ch * n + i0;
                int i = 0;
                for (; i + lanes <= validQueries; i += lanes) TOps.Store(dst + i, TOps.Multiply(TOps.Load(src + i), TOps.Load(alpha + i)));
                if (i == validQueries) continue;
                if (anchored >= 0) TOps.Store(dst + anchored, TOps.Multiply(TOps.Load(src + anchored), TOps.Load(alpha + anchored)));
                else for (; i < validQueries; i++) dst[i] = src[i] * alpha[i];
            }
        }

        /// <summary>
        /// Over the valid rows j of S^T [KeyTile][tile]: new running max m', alpha = exp(m - m'),
        /// P = exp(S - m') in place, l = l * alpha + sum_j P. Lane-wise over queries.
        /// </summary>
        private static void OnlineSoftmax(float* s, int validKeys, int tile, float* max, float* sum, float* alpha)
        {
            int lanes = TOps.Lanes;
            for (int i = 0; i < tile; i += lanes)
            {
                TVec m = TOps.Load(max + i);
                TVec mNew = m;
                for (int j = 0; j < validKeys; j++) mNew = TOps.Max(mNew, TOps.Load(s + (long)j * tile + i));
                TVec total = TOps.Zero;
                for (int j = 0; j < validKeys; j++)
                {
                    float* row = s + (long)j * tile + i;
                    TVec e = TOps.Exp(TOps.Subtract(TOps.Load(row), mNew));
                    TOps.Store(row, e);
                    total = TOps.Add(total, e);
                }
                TVec a = TOps.Exp(TOps.Subtract(m, mNew));
                TOps.Store(alpha + i, a);
                TOps.Store(sum + i, TOps.MulAdd(TOps.Load(sum + i), a, total));
                TOps.Store(max + i, mNew);
            }
        }
    }
}
