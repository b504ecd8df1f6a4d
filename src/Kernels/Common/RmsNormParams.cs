namespace NativeVae.Kernels;

// A parameter block passed by value to both the ILGPU and the CPU kernels of the channel RMS norm. Sizes are ints:
// the backend refuses tensors whose element count does not fit one launch.

/// <summary>
/// The Wan / Qwen-Image VAE's norm over [Batch, Channels, Spatial]: each pixel's channel vector divided by its L2
/// norm (at least <see cref="Eps"/>), times <see cref="Scale"/> = sqrt(Channels) and gamma[c], then SiLU.
/// </summary>
internal struct RmsNormParams
{
    public int Batch;
    public int Channels;
    public int Spatial;
    /// <summary>sqrt(Channels): the norm then has RMS gamma, as diffusers' <c>dim ** 0.5</c>.</summary>
    public float Scale;
    /// <summary>torch <c>F.normalize</c>'s floor on the norm (1e-12), not on its square.</summary>
    public float Eps;
    public int FuseSilu;
}
