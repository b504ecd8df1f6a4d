namespace NativeVae.Kernels;

// A parameter block passed by value to both the ILGPU and the CPU kernels. Sizes are ints: the backend refuses
// tensors whose element count does not fit one launch (tiling keeps real work far below that).

/// <summary>Single-head attention, Q/K/V/output channel-major [Batch, Channels, Tokens].</summary>
internal struct AttentionParams
{
    public int Batch;
    public int Channels;
    public int Tokens;
    public float Scale;
}
