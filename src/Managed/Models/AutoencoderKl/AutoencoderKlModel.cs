using NativeVae.Models;
using NativeVae.Models.Layers;
using NativeVae.Core;

namespace NativeVae.Models.AutoencoderKl;

/// <summary>
/// diffusers: <c>AutoencoderKL</c> on an <see cref="IBackend"/>: encoder (+ quant_conv) to moments, (post_quant_conv +)
/// decoder to images. Scaling and shift factors are not applied here: they belong to the API layer.
/// <para>
/// Every parameter's name and shape is checked when the model is built, but each half's weights are uploaded on the
/// half's first use: a decode-only caller (diffusers' <c>remote_decode</c>) never holds the encoder, 40% of the
/// weights. The weight source stays open until both halves are uploaded (or the model is disposed).
/// </para>
/// </summary>
internal sealed class AutoencoderKlModel : IVaeModel
{
    private readonly LazyHalves<EncoderHalf, DecoderHalf> _halves;

    /// <param name="weightsOwner">Disposed once both halves are uploaded: what keeps <paramref name="weights"/> readable (a mapped file).</param>
    public AutoencoderKlModel(IBackend backend, AutoencoderKlConfig config, IWeightSource weights, IDisposable? weightsOwner = null)
    {
        Backend = backend;
        Config = config;
        var declared = AutoencoderKlParameters.Enumerate(config);
        ParameterCheck.Require(weights, declared);
        if (config.LatentBatchNorm)
        {
            PipelineNormalization = LatentNormalization.FromBatchNorm(weights.ReadFloat32(AutoencoderKlParameters.BatchNormMean),
                weights.ReadFloat32(AutoencoderKlParameters.BatchNormVariance), config.BatchNormEps, weights.Origin);
        }
        _halves = new LazyHalves<EncoderHalf, DecoderHalf>(backend, weights, weightsOwner,
            declared.Where(p => !AutoencoderKlParameters.IsBatchNormBuffer(p.Name)), IsEncoderParameter,
            p => new EncoderHalf(new Encoder(p, Config), Config.UseQuantConv ? new Conv2d(p, "quant_conv", Conv2dSpec.Pointwise) : null),
            p => new DecoderHalf(new Decoder(p, Config), Config.UsePostQuantConv ? new Conv2d(p, "post_quant_conv", Conv2dSpec.Pointwise) : null));
    }

    private static bool IsEncoderParameter(string name) =>
        name.StartsWith("encoder.", StringComparison.Ordinal) || name.StartsWith("quant_conv.", StringComparison.Ordinal);

    public IBackend Backend { get; }

    public AutoencoderKlConfig Config { get; }

    public int LatentChannels => Config.LatentChannels;

    public int DownsampleFactor => Config.DownsampleFactor;

    public int SampleSize => Config.SampleSize;

    public ImageRange ImageRange => ImageRange.MinusOneToOne;

    public bool EncodesMoments => true;

    public bool IsTiny => false;

    public LatentNormalization? PipelineNormalization { get; }

    /// <summary>Bytes of device memory held by the parameters uploaded so far.</summary>
    public long ParameterBytes => _halves.ParameterBytes;

    /// <summary>Image [N, 3, H, W] in [-1, 1] to moments [N, 2*latent, h, w] = (mean, logvar) along channels.</summary>
    public Tensor Encode(Tensor image, BlockObserver? observe = null) => Encode(Backend, image, observe);

    /// <inheritdoc cref="Encode(Tensor, BlockObserver?)"/>
    public Tensor Encode(IBackend ops, Tensor image, BlockObserver? observe = null)
    {
        var half = _halves.Encoder;
        var h = half.Encoder.Forward(ops, image, observe);
        if (half.QuantConv is not null) h = Encoder.Step(h, half.QuantConv.Forward(ops, h));
        observe?.Invoke("moments", h);
        return h;
    }

    /// <summary>Latent [N, latent, h, w] (already unscaled) to image [N, 3, H, W] in about [-1, 1].</summary>
    public Tensor Decode(Tensor latent, BlockObserver? observe = null) => Decode(Backend, latent, observe);

    /// <inheritdoc cref="Decode(Tensor, BlockObserver?)"/>
    public Tensor Decode(IBackend ops, Tensor latent, BlockObserver? observe = null)
    {
        var half = _halves.Decoder;
        if (half.PostQuantConv is null) return half.Decoder.Forward(ops, latent, observe);
        using var z = half.PostQuantConv.Forward(ops, latent);
        observe?.Invoke("post_quant_conv", z);
        return half.Decoder.Forward(ops, z, observe);
    }

    public void Dispose() => _halves.Dispose();

    private sealed record EncoderHalf(Encoder Encoder, Conv2d? QuantConv);

    private sealed record DecoderHalf(Decoder Decoder, Conv2d? PostQuantConv);
}
