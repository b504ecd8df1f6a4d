using NativeVae.Core;
using NativeVae.Models.Layers;

namespace NativeVae.Models.QwenImage;

/// <summary>
/// diffusers: <c>AutoencoderKLQwenImage</c> on one frame (Qwen-Image, Qwen-Image-Edit), as the 2D network of
/// <see cref="QwenImageImageMode"/>: encoder then quant_conv to moments <c>[N, 2z, h, w]</c>, post_quant_conv then
/// decoder to an image clamped to [-1, 1]. The frame axis of its 5-D latents belongs to the API. Every parameter is
/// checked against diffusers' 3D list when the model is built; each half's image-mode weights (a third of the 3x3x3
/// convs' bytes) are uploaded on its first use (<see cref="LazyHalves{TEncoder, TDecoder}"/>).
/// </summary>
internal sealed class QwenImageModel : IVaeModel
{
    private readonly LazyHalves<EncoderHalf, DecoderHalf> _halves;

    /// <param name="weightsOwner">Disposed once both halves are uploaded: what keeps <paramref name="weights"/> readable.</param>
    public QwenImageModel(IBackend backend, QwenImageConfig config, IWeightSource weights, IDisposable? weightsOwner = null)
    {
        Backend = backend;
        Config = config;
        var declared = QwenImageParameters.Enumerate(config);
        ParameterCheck.Require(weights, declared);
        var image = new QwenImageImageMode(weights, declared);
        _halves = new LazyHalves<EncoderHalf, DecoderHalf>(backend, image, weightsOwner, image.Declared,
            name => name.StartsWith("encoder.", StringComparison.Ordinal) || name.StartsWith("quant_conv.", StringComparison.Ordinal),
            p => new EncoderHalf(new QwenImageEncoder(p, config), new Conv2d(p, "quant_conv", Conv2dSpec.Pointwise)),
            p => new DecoderHalf(new Conv2d(p, "post_quant_conv", Conv2dSpec.Pointwise), new QwenImageDecoder(p, config)));
        PipelineNormalization = LatentNormalization.PerLatentChannel(config.LatentsMean, config.LatentsStd);
    }

    public IBackend Backend { get; }

    public QwenImageConfig Config { get; }

    public int LatentChannels => Config.ZDim;

    public int DownsampleFactor => Config.DownsampleFactor;

    /// <summary>diffusers' tile_sample_min_height for this model's tiled decode.</summary>
    public int SampleSize => TileSampleMinSize;

    /// <summary>AutoencoderKLQwenImage's tile_sample_min_height / width.</summary>
    public const int TileSampleMinSize = 256;

    public ImageRange ImageRange => ImageRange.MinusOneToOne;

    public bool EncodesMoments => true;

    public bool IsTiny => false;

    public bool HasFrameAxis => true;

    public LatentNormalization? PipelineNormalization { get; }

    public long ParameterBytes => _halves.ParameterBytes;

    public Tensor Encode(IBackend ops, Tensor image, BlockObserver? observe = null)
    {
        var half = _halves.Encoder;
        var h = half.Encoder.Forward(ops, image, observe);
        h = QwenImageEncoder.Step(h, half.QuantConv.Forward(ops, h));
        observe?.Invoke("moments", h);
        return h;
    }

    public Tensor Decode(IBackend ops, Tensor latent, BlockObserver? observe = null)
    {
        var half = _halves.Decoder;
        using var z = half.PostQuantConv.Forward(ops, latent);
        observe?.Invoke("post_quant_conv", z);
        return half.Decoder.Forward(ops, z, observe);
    }

    public void Dispose() => _halves.Dispose();

    private sealed record EncoderHalf(QwenImageEncoder Encoder, Conv2d QuantConv);

    private sealed record DecoderHalf(Conv2d PostQuantConv, QwenImageDecoder Decoder);
}
