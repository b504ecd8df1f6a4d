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

    private readonly Tensor[] _convWeight;
    private readonly Tensor[] _convBias;
    private readonly Tensor? _widen;
    private readonly Tensor? _normGamma;
    private readonly Tensor? _normBeta;
    private readonly Tensor? _narrow;

    public TaesdBlock(DeviceParameters parameters, string prefix, bool groupNorm)
    {
        _convWeight = ConvIndices.Select(i => parameters[$"{prefix}.conv.{i}.weight"]).ToArray();
        _convBias = ConvIndices.Select(i => parameters[$"{prefix}.conv.{i}.bias"]).ToArray();
        if (groupNorm)
        {
            _widen = parameters[$"{prefix}.pool.0.weight"];
            _normGamma = parameters[$"{prefix}.pool.1.weight"];
            _normBeta = parameters[$"{prefix}.pool.1.bias"];
            _narrow = parameters[$"{prefix}.pool.3.weight"];
        }
    }

    /// <summary>x <c>[N, C, H, W]</c> -> <c>[N, C, H, W]</c>; x is not disposed.</summary>
    public Tensor Forward(IBackend backend, Tensor x)
    {
        Tensor? pooled = null;
        if (_widen is not null)
        {
            using var wide = backend.Conv2d(x, _widen, null, Conv2dSpec.Pointwise);                                   // [N, 4C, H, W]
            using var normed = backend.GroupNorm(wide, _normGamma!, _normBeta!, TaesdConfig.GroupNormGroups, TaesdConfig.GroupNormEps, fuseSilu: false);
            using var relu = backend.Unary(UnaryOp.Relu, normed);
            pooled = backend.Conv2d(relu, _narrow!, null, Conv2dSpec.Pointwise, residual: x);                     // x + pool(x), [N, C, H, W]
        }
        try
        {
            var input = pooled ?? x;
            using var h1 = backend.Conv2d(input, _convWeight[0], _convBias[0], Conv2dSpec.Same);
            using var a1 = backend.Unary(UnaryOp.Relu, h1);
            using var h2 = backend.Conv2d(a1, _convWeight[1], _convBias[1], Conv2dSpec.Same);
            using var a2 = backend.Unary(UnaryOp.Relu, h2);
            using var h3 = backend.Conv2d(a2, _convWeight[2], _convBias[2], Conv2dSpec.Same, residual: input);    // conv(...) + skip(x)
            return backend.Unary(UnaryOp.Relu, h3);                                                               // fuse
        }
        finally
        {
            pooled?.Dispose();
        }
    }
}
