using NativeVae.Backends;
using NativeVae.Models;
using NativeVae.Models.Layers;
using NativeVae.Tensors;
using NativeVae.Weights;

namespace NativeVae.Models.AutoencoderKl;

/// <summary>
/// diffusers: <c>AutoencoderKL</c> on an <see cref="IBackend"/>: encoder (+ quant_conv) to moments, (post_quant_conv +)
/// decoder to images. Scaling and shift factors are not applied here: they belong to the API layer.
/// </summary>
internal sealed class AutoencoderKlModel : IVaeModel
{
    private readonly DeviceParameters _parameters;
    private readonly Encoder _encoder;
    private readonly Decoder _decoder;
    private readonly Conv2d? _quantConv;
    private readonly Conv2d? _postQuantConv;

    public AutoencoderKlModel(IBackend backend, AutoencoderKlConfig config, IWeightSource weights)
    {
        Backend = backend;
        Config = config;
        _parameters = new DeviceParameters(backend, weights, AutoencoderKlParameters.Enumerate(config));
        _encoder = new Encoder(_parameters, config);
        _decoder = new Decoder(_parameters, config);
        if (config.UseQuantConv) _quantConv = new Conv2d(_parameters, "quant_conv", Conv2dSpec.Pointwise);
        if (config.UsePostQuantConv) _postQuantConv = new Conv2d(_parameters, "post_quant_conv", Conv2dSpec.Pointwise);
    }

    public IBackend Backend { get; }

    public AutoencoderKlConfig Config { get; }

    public int LatentChannels => Config.LatentChannels;

    public int DownsampleFactor => Config.DownsampleFactor;

    public int SampleSize => Config.SampleSize;

    public ImageRange ImageRange => ImageRange.MinusOneToOne;

    public bool EncodesMoments => true;

    /// <summary>Bytes of device memory held by the parameters.</summary>
    public long ParameterBytes => _parameters.TotalBytes;

    /// <summary>Image [N, 3, H, W] in [-1, 1] to moments [N, 2*latent, h, w] = (mean, logvar) along channels.</summary>
    public Tensor Encode(Tensor image, BlockObserver? observe = null) => Encode(Backend, image, observe);

    /// <inheritdoc cref="Encode(Tensor, BlockObserver?)"/>
    public Tensor Encode(IBackend ops, Tensor image, BlockObserver? observe = null)
    {
        var h = _encoder.Forward(ops, image, observe);
        if (_quantConv is not null) h = Encoder.Step(h, _quantConv.Forward(ops, h));
        observe?.Invoke("moments", h);
        return h;
    }

    /// <summary>Latent [N, latent, h, w] (already unscaled) to image [N, 3, H, W] in about [-1, 1].</summary>
    public Tensor Decode(Tensor latent, BlockObserver? observe = null) => Decode(Backend, latent, observe);

    /// <inheritdoc cref="Decode(Tensor, BlockObserver?)"/>
    public Tensor Decode(IBackend ops, Tensor latent, BlockObserver? observe = null)
    {
        if (_postQuantConv is null) return _decoder.Forward(ops, latent, observe);
        using var z = _postQuantConv.Forward(ops, latent);
        observe?.Invoke("post_quant_conv", z);
        return _decoder.Forward(ops, z, observe);
    }

    public void Dispose() => _parameters.Dispose();
}
