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
            // Each intermediate is freed as soon as the next is made: at full resolution one is 64 channels of the
            // image (1 GiB at 2048x2048), so holding the chain to the end of the block held five of them.
            var input = pooled ?? x;
            var h = _convs[0].Forward(backend, input, relu: true);
            h = _convs[1].ForwardRelu(backend, h);
            return _convs[2].ForwardRelu(backend, h, residual: input);                                              // fuse: relu(conv(...) + skip(x))
        }
        finally
        {
            pooled?.Dispose();
        }
    }
}
