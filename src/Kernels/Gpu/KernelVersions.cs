namespace NativeVae.Kernels.Gpu;

/// <summary>Conv2d kernel versions (llm.c style: each a step over the last; tests run them all).</summary>
internal enum Conv2dVersion
{
    /// <summary>One thread per output pixel and a block of output channels; no shared memory.</summary>
    Direct,

    /// <summary>Implicit GEMM with shared-memory tiles of weights and input patches.</summary>
    SharedTile,
}

internal enum GroupNormVersion
{
    /// <summary>One thread per (batch, group) computes the statistics; elementwise normalise.</summary>
    Simple,

    /// <summary>One thread group per (batch, group) with a shared-memory tree reduction.</summary>
    GroupReduce,
}

internal enum AttentionVersion
{
    /// <summary>One thread per query token with online softmax; output accumulated in place.</summary>
    RowPerThread,

    /// <summary>Flash-style: a thread group per tile of queries, K/V tiles staged in shared memory.</summary>
    SharedTile,
}
