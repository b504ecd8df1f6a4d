namespace NativeVae.Kernels;

// A parameter block passed by value to both the ILGPU and the CPU kernels. Sizes are ints: the backend refuses
// tensors whose element count does not fit one launch (tiling keeps real work far below that).

/// <summary>
/// Single-head attention, channel-major: Q and the output [Batch, Channels, Tokens], K and V [Batch, Channels,
/// KeyTokens]. The GPU kernels take whole attention only (KeyTokens == Tokens); the CPU kernel also runs a chunk of
/// the keys, for exact tiling.
/// </summary>
internal struct AttentionParams
{
    public int Batch;
    public int Channels;
    public int Tokens;
    public int KeyTokens;
    public float Scale;
}
