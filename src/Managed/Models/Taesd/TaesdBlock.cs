using NativeVae.Models.Layers;
using NativeVae.Core;

namespace NativeVae.Models.Taesd;

/// <summary>
/// taesd.py's <c>Block</c> (diffusers: <c>AutoencoderTinyBlock</c>), 64 -> 64 channels:
/// <c>relu(conv(relu(conv(relu(conv(x))))) + x)</c>; with the TAEF2 GroupNorm branch, x is first replaced by
/// <c>x + conv1x1(relu(GroupNorm(4)(conv1x1(x, C -> 4C))), 4C -> C)</c> (taesd.py's <c>pool</c>, both 1x1 convs
/// without bias).
/// </summary>
internal sealed class TaesdBlock
{
    /// <summary>Positions of the three 3x3 convs in the block's <c>conv</c> Sequential (ReLUs in between).</summary>
    public static readonly int[] ConvIndices = [0, 2, 4];

    private readonly Conv2d[] _convs;
    private readonly Conv2d? _widen;
    private readonly GroupNorm? _norm;
    private readonly Conv2d? _narrow;

    public TaesdBlock(DeviceParameters parameters, string prefix, bool groupNorm)
    {
        _convs = ConvIndices.Select(i => new Conv2d(parameters, $"{prefix}.conv.{i}", Conv2dSpec.Same)).ToArray();
        if (groupNorm)
        {
            _widen = new Conv2d(parameters, $"{prefix}.pool.0", Conv2dSpec.Pointwise, bias: false);
            _norm = new GroupNorm(parameters, $"{prefix}.pool.1", TaesdConfig.GroupNormGroups, TaesdConfig.GroupNormEps);
            _narrow = new Conv2d(parameters, $"{prefix}.pool.3", Conv2dSpec.Pointwise, bias: false);
        }
    }

    /// <summary>x <c>[N, C, H, W]</c> -> <c>[N, C, H, W]</c>; x is not disposed.</summary>
    public Tensor Forward(IBackend backend, Tensor x)
    {
        Tensor? pooled = null;
        if (_widen is not null)
        {
            using var wide = _widen.Forward(backend, x);                                                           // [N, 4C, H, W]
            using var normed = _norm!.Forward(backend, wide, silu: false);
            using var relu = backend.Unary(UnaryOp.Relu, normed);
            pooled = _narrow!.Forward(backend, relu, residual: x);                                                 // x + pool(x), [N, C, H, W]
        }
        try
        {
            var input = pooled ?? x;
            using var h1 = _convs[0].Forward(backend, input);
            using var a1 = backend.Unary(UnaryOp.Relu, h1);
            using var h2 = _convs[1].Forward(backend, a1);
            using var a2 = backend.Unary(UnaryOp.Relu, h2);
            using var h3 = _convs[2].Forward(backend, a2, residual: input);                                        // conv(...) + skip(x)
            return backend.Unary(UnaryOp.Relu, h3);                                                               // fuse
        }
        finally
        {
            pooled?.Dispose();
        }
    }
}
