namespace NativeVae.Kernels;

// A parameter block passed by value to both the ILGPU and the CPU kernels. Sizes are ints: the backend refuses
// tensors whose element count does not fit one launch (tiling keeps real work far below that).

/// <summary>Geometry of one conv2d launch, NCHW input and output, weight [Cout, Cin, K, K].</summary>
internal struct Conv2dParams
{
    public int Batch;
    public int InChannels;
    public int InHeight;
    public int InWidth;
    public int OutChannels;
    public int OutHeight;
    public int OutWidth;
    public int Kernel;
    public int Stride;
    public int PadTop;
    public int PadLeft;
    /// <summary>1: the input is read as if nearest-upsampled 2x (virtual size 2H x 2W).</summary>
    public int Upsample2x;
    public int HasBias;
    public int HasResidual;
    /// <summary>1: the tensor-core kernels also write per-tile, per-channel moments of their output (GroupNorm partials).</summary>
    public int HasMoments;
    /// <summary>
    /// 1: a 3x3, pad 1 conv of a nearest-2x-upsampled input (Upsample2x set) computed as 4 sub-pixel phases of 2x2
    /// taps on the input itself, 2.25x fewer multiplies; weights packed per phase (tensor-core kernels only).
    /// </summary>
    public int SubPixel;
    /// <summary>
    /// Rows of the packed weight (tensor-core kernels): output channels from here up read zero weights, so a weight
    /// stored [Cout, K, K, CinPadded] serves a padded output. 0: OutChannels rows.
    /// </summary>
    public int WeightRows;
    /// <summary>
    /// 1: the tensor-core kernels store fp32 NCHW [Batch, real channels, OutHeight, OutWidth] (real channels =
    /// WeightRows, or OutChannels when 0), the padding dropped, instead of 16-bit NHWC; no residual.
    /// </summary>
    public int OutputF32;
}
