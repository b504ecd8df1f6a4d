using NativeVae.Models.Layers;
using NativeVae.Core;
using static NativeVae.Models.Taesd.TaesdParameters;

namespace NativeVae.Models.Taesd;

/// <summary>
/// taesd.py's <c>Decoder</c> (diffusers: <c>DecoderTiny</c> without its [0, 1] -> [-1, 1] rescale):
/// raw latent <c>[N, latent, h, w]</c> -> image <c>[N, 3, 8h, 8w]</c>, nominally in [0, 1] (not clamped).
/// </summary>
internal sealed class TaesdDecoder
{
    private readonly List<Func<IBackend, Tensor, Tensor>> _layers = [];

    public TaesdDecoder(DeviceParameters parameters, TaesdConfig config)
    {
        // Clamp: tanh(x / 3) * 3 (outside diffusers' Sequential, so it has no layer index)
        _layers.Add((backend, z) => backend.Unary(UnaryOp.TanhClamp3, z));
        bool upsamplePending = false;
        foreach (var layer in DecoderLayers(config))
        {
            string p = DecoderPrefix + layer.Index;
            switch (layer.Kind)
            {
                case LayerKind.ConvIn:
                case LayerKind.ConvOut:
                    _layers.Add(TaesdSequential.Step(new Conv2d(parameters, p, Conv2dSpec.Same)));
                    break;
                case LayerKind.Relu:
                    _layers.Add((backend, x) => backend.Unary(UnaryOp.Relu, x));
                    break;
                case LayerKind.Block:
                    _layers.Add(new TaesdBlock(parameters, p, layer.GroupNorm).Forward);
                    break;
                case LayerKind.Upsample:
                    // nearest 2x is fused into the next conv (Conv2dSpec.UpsampleSame): never materialised
                    upsamplePending = true;
                    break;
                case LayerKind.ConvUp:
                    if (!upsamplePending) throw new InvalidOperationException($"decoder layer {layer.Index}: conv without its upsample");
                    upsamplePending = false;
                    // Upsample(2x) then conv(64, 64, bias=False): [N, C, h, w] -> [N, C, 2h, 2w]
                    _layers.Add(TaesdSequential.Step(new Conv2d(parameters, p, Conv2dSpec.UpsampleSame, bias: false)));
                    break;
            }
        }
    }

    public Tensor Forward(IBackend backend, Tensor latent, BlockObserver? observe = null) =>
        TaesdSequential.Run(backend, latent, _layers, "decoder.layers", observe);
}
