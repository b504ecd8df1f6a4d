using NativeVae.Core;
using NativeVae.Models.Layers;

namespace NativeVae.Models.QwenImage;

/// <summary>
/// diffusers: <c>AutoencoderKLQwenImage</c> on one frame (Qwen-Image, Qwen-Image-Edit), as the 2D network of
/// <see cref="QwenImageImageMode"/>: encoder then quant_conv to moments <c>[N, 2z, h, w]</c>, post_quant_conv then
/// decoder to an image clamped to [-1, 1]. The frame axis of its 5-D latents belongs to the API. Every parameter is
/// checked against diffusers' 3D list when the model is built, and the image network's weights (a third of the 3x3x3
/// convs' bytes) are uploaded then.
/// </summary>
internal sealed class QwenImageModel : IVaeModel
{
    private readonly DeviceParameters _parameters;
    private readonly QwenImageEncoder _encoder;
    private readonly Conv2d _quantConv;
    private readonly Conv2d _postQuantConv;
    private readonly QwenImageDecoder _decoder;

    public QwenImageModel(IBackend backend, QwenImageConfig config, IWeightSource weights)
    {
        Backend = backend;
        Config = config;
        var declared = QwenImageParameters.Enumerate(config);
        ParameterCheck.Require(weights, declared);
        var image = new QwenImageImageMode(weights, declared);
        _parameters = new DeviceParameters(backend, image, image.Declared);
        try
        {
            _encoder = new QwenImageEncoder(_parameters, config);
            _quantConv = new Conv2d(_parameters, "quant_conv", Conv2dSpec.Pointwise);
            _postQuantConv = new Conv2d(_parameters, "post_quant_conv", Conv2dSpec.Pointwise);
            _decoder = new QwenImageDecoder(_parameters, config);
        }
        catch
        {
            _parameters.Dispose();
            throw;
        }
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

    public long ParameterBytes => _parameters.TotalBytes;

    public Tensor Encode(IBackend ops, Tensor image, BlockObserver? observe = null)
    {
        var h = _encoder.Forward(ops, image, observe);
        h = QwenImageEncoder.Step(h, _quantConv.Forward(ops, h));
        observe?.Invoke("moments", h);
        return h;
    }

    public Tensor Decode(IBackend ops, Tensor latent, BlockObserver? observe = null)
    {
        using var z = _postQuantConv.Forward(ops, latent);
        observe?.Invoke("post_quant_conv", z);
        return _decoder.Forward(ops, z, observe);
    }

    public void Dispose() => _parameters.Dispose();
}
