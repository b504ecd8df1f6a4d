using NativeVae.Core;
using NativeVae.Kernels;

namespace NativeVae.Backends;

// It stays on the managed side: it reads Tensor and Conv2dSpec, and the kernels must not know those.
/// <summary>
/// The parameter blocks the kernels take (src/Kernels/Common, shared by the ILGPU and CPU kernels), built in one
/// place from checked tensors.
/// </summary>
internal static class KernelParameters
{
    public static Conv2dParams Conv2d(Tensor x, Tensor weight, Conv2dSpec spec, TensorShape output, bool hasBias, bool hasResidual) => new()
    {
        Batch = x.Shape.N,
        InChannels = x.Shape.C,
        InHeight = x.Shape.H,
        InWidth = x.Shape.W,
        OutChannels = output.C,
        OutHeight = output.H,
        OutWidth = output.W,
        Kernel = weight.Shape[2],
        Stride = spec.Stride,
        PadTop = spec.PadTop,
        PadLeft = spec.PadLeft,
        Upsample2x = spec.Upsample2x ? 1 : 0,
        HasBias = hasBias ? 1 : 0,
        HasResidual = hasResidual ? 1 : 0,
    };

    /// <param name="moments">Statistics as (mean, M2) for <see cref="IBackend.GroupNormStatistics"/>.</param>
    public static GroupNormParams GroupNorm(Tensor x, int groups, float eps = 0f, bool silu = false, bool moments = false) => new()
    {
        Batch = x.Shape.N,
        Channels = x.Shape.C,
        Spatial = checked(x.Shape.H * x.Shape.W),
        Groups = groups,
        Eps = eps,
        FuseSilu = silu ? 1 : 0,
        StatsAsMoments = moments ? 1 : 0,
    };

    public static RmsNormParams RmsNorm(Tensor x, bool silu) => new()
    {
        Batch = x.Shape.N,
        Channels = x.Shape.C,
        Spatial = checked(x.Shape.H * x.Shape.W),
        Scale = MathF.Sqrt(x.Shape.C),
        Eps = IBackend.RmsNormEps,
        FuseSilu = silu ? 1 : 0,
    };

    /// <summary>The pixel shuffle from <paramref name="input"/> to <paramref name="output"/>'s shape.</summary>
    public static PixelShuffleParams PixelShuffle(TensorShape input, TensorShape output, PixelShuffleSpec spec, int frame, bool hasPrevious) => new()
    {
        Batch = input.N,
        InChannels = input.C,
        InHeight = input.H,
        InWidth = input.W,
        OutChannels = output.C,
        OutHeight = output.H,
        OutWidth = output.W,
        Factor = spec.Factor,
        Frames = spec.Frames,
        Group = spec.Group,
        Frame = frame,
        WidthFirst = spec.WidthFirst ? 1 : 0,
        HasPrevious = hasPrevious ? 1 : 0,
    };

    /// <summary>Queries <paramref name="q"/> against keys shaped as <paramref name="k"/> (the same tokens for whole attention).</summary>
    public static AttentionParams Attention(Tensor q, Tensor k, float scale) => new()
    {
        Batch = q.Shape.N,
        Channels = q.Shape.C,
        Tokens = checked(q.Shape.H * q.Shape.W),
        KeyTokens = checked(k.Shape.H * k.Shape.W),
        Scale = scale,
    };
}
