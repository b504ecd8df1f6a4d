using NativeVae.Models.Layers;
using NativeVae.Core;

namespace NativeVae.Models.Taesd;

/// <summary>
/// A tiny autoencoder (TAESD, TAESDXL, TAEF1, TAEF2) on a backend: images <c>[N, 3, H, W]</c> in [0, 1],
/// raw latents <c>[N, latent, H/8, W/8]</c>. Scale and shift, if any, belong to the caller (the API).
/// </summary>
internal sealed class TaesdModel : IVaeModel
{
    /// <summary>Pixels per latent element: three stride-2 convolutions.</summary>
    public const int Factor = 8;

    /// <summary>diffusers' AutoencoderTiny tile_sample_min_size (512): the default blend tile, whatever the config's sample_size.</summary>
    public const int DefaultSampleSize = 512;

    private readonly DeviceParameters _parameters;
    private readonly TaesdEncoder? _encoder;
    private readonly TaesdDecoder? _decoder;
    private readonly string _origin;

    /// <summary>
    /// Builds the halves the weights hold: both, or one alone (taesd.py ships the encoder and the decoder as
    /// two files, and a decoder-only checkpoint is common); using the absent half throws.
    /// </summary>
    /// <exception cref="InvalidDataException">the weights lack a declared parameter or have another shape.</exception>
    public TaesdModel(IBackend backend, TaesdConfig config, IWeightSource weights, int sampleSize = DefaultSampleSize)
    {
        Backend = backend;
        Config = config;
        SampleSize = sampleSize;
        _origin = weights.Origin;
        var declared = TaesdParameters.OfHalvesPresent(config, name => weights.TryGetShape(name, out _), out bool hasEncoder, out bool hasDecoder);
        ParameterCheck.Require(weights, declared);
        _parameters = new DeviceParameters(backend, weights, declared);
        _encoder = hasEncoder ? new TaesdEncoder(_parameters, config) : null;
        _decoder = hasDecoder ? new TaesdDecoder(_parameters, config) : null;
    }

    public TaesdConfig Config { get; }

    public IBackend Backend { get; }

    public int LatentChannels => Config.LatentChannels;

    public int DownsampleFactor => Factor;

    public int SampleSize { get; }

    public ImageRange ImageRange => ImageRange.ZeroToOne;

    public bool EncodesMoments => false;

    public bool IsTiny => true;

    /// <summary>image <c>[N, 3, H, W]</c> in [0, 1] -> latent <c>[N, latent, ceil(H/8), ceil(W/8)]</c>.</summary>
    public Tensor Encode(Tensor image) => Encode(Backend, image);

    /// <summary>latent <c>[N, latent, h, w]</c> -> image <c>[N, 3, 8h, 8w]</c>.</summary>
    public Tensor Decode(Tensor latent) => Decode(Backend, latent);

    /// <inheritdoc cref="Encode(Tensor)"/>
    public Tensor Encode(IBackend ops, Tensor image, BlockObserver? observe = null)
    {
        if (image.Shape.Rank != 4 || image.Shape.C != TaesdConfig.ImageChannels)
            throw new ArgumentException($"TAESD encode expects an [N, 3, H, W] image, got {image.Shape}", nameof(image));
        var encoder = _encoder ?? throw new InvalidOperationException(
            $"{_origin} holds only a TAESD decoder; encoding needs the encoder too (its *_encoder.pth beside the decoder, or a diffusers AutoencoderTiny folder)");
        return encoder.Forward(ops, image, observe);
    }

    /// <inheritdoc cref="Decode(Tensor)"/>
    public Tensor Decode(IBackend ops, Tensor latent, BlockObserver? observe = null)
    {
        if (latent.Shape.Rank != 4 || latent.Shape.C != Config.LatentChannels)
            throw new ArgumentException($"TAESD decode expects [N, {Config.LatentChannels}, h, w] latents, got {latent.Shape}", nameof(latent));
        var decoder = _decoder ?? throw new InvalidOperationException(
            $"{_origin} holds only a TAESD encoder; decoding needs the decoder too (its *_decoder.pth beside the encoder, or a diffusers AutoencoderTiny folder)");
        return decoder.Forward(ops, latent, observe);
    }

    public void Dispose() => _parameters.Dispose();
}
