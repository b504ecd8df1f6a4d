using NativeVae.Models.Layers;
using NativeVae.Core;
using static NativeVae.Models.Taesd.TaesdParameters;

namespace NativeVae.Models.Taesd;

/// <summary>
/// taesd.py's <c>Encoder</c> (diffusers: <c>EncoderTiny</c> without its [-1, 1] -> [0, 1] rescale):
/// image <c>[N, 3, H, W]</c> in [0, 1] -> raw latent <c>[N, latent, ceil(H/8), ceil(W/8)]</c>.
/// </summary>
internal sealed class TaesdEncoder
{
    private readonly List<Func<IBackend, Tensor, Tensor>> _layers = [];

    public TaesdEncoder(DeviceParameters parameters, TaesdConfig config)
    {
        foreach (var layer in EncoderLayers(config))
        {
            string p = EncoderPrefix + layer.Index;
            _layers.Add(layer.Kind switch
            {
                // conv(3, 64) and conv(64, latent): 3x3, pad 1, with bias
                LayerKind.ConvIn or LayerKind.ConvOut => TaesdSequential.Step(new Conv2d(parameters, p, Conv2dSpec.Same)),
                // conv(64, 64, stride 2, bias=False): [N, C, H, W] -> [N, C, ceil(H/2), ceil(W/2)]
                LayerKind.ConvDown => TaesdSequential.Step(new Conv2d(parameters, p, Conv2dSpec.Stride2Pad1, bias: false)),
                LayerKind.Block => new TaesdBlock(parameters, p, layer.GroupNorm).Forward,
                _ => throw new InvalidOperationException($"encoder layer {layer.Index}: unexpected {layer.Kind}"),
            });
        }
    }

    public Tensor Forward(IBackend backend, Tensor image, BlockObserver? observe = null) =>
        TaesdSequential.Run(backend, image, _layers, "encoder.layers", observe);
}
