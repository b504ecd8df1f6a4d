using NativeVae.Backends;
using NativeVae.Models.Layers;
using NativeVae.Tensors;
using NativeVae.Weights;

namespace NativeVae.Models.Taesd;

/// <summary>
/// A tiny autoencoder (TAESD, TAESDXL, TAEF1, TAEF2) on a backend: images <c>[N, 3, H, W]</c> in [0, 1],
/// raw latents <c>[N, latent, H/8, W/8]</c>. Scale and shift, if any, belong to the caller (the API).
/// </summary>
internal sealed class TaesdModel : IDisposable
{
    private readonly IBackend _backend;
    private readonly DeviceParameters _parameters;
    private readonly TaesdEncoder _encoder;
    private readonly TaesdDecoder _decoder;

    /// <exception cref="InvalidDataException">the weights lack a declared parameter or have another shape.</exception>
    public TaesdModel(IBackend backend, TaesdConfig config, IWeightSource weights)
    {
        _backend = backend;
        Config = config;
        _parameters = new DeviceParameters(backend, weights, TaesdParameters.Enumerate(config));
        _encoder = new TaesdEncoder(_parameters, config);
        _decoder = new TaesdDecoder(_parameters, config);
    }

    public TaesdConfig Config { get; }

    /// <summary>image <c>[N, 3, H, W]</c> in [0, 1] -> latent <c>[N, latent, ceil(H/8), ceil(W/8)]</c>.</summary>
    public Tensor Encode(Tensor image)
    {
        if (image.Shape.Rank != 4 || image.Shape.C != TaesdConfig.ImageChannels)
            throw new ArgumentException($"TAESD encode expects an [N, 3, H, W] image, got {image.Shape}", nameof(image));
        return _encoder.Forward(_backend, image);
    }

    /// <summary>latent <c>[N, latent, h, w]</c> -> image <c>[N, 3, 8h, 8w]</c>.</summary>
    public Tensor Decode(Tensor latent)
    {
        if (latent.Shape.Rank != 4 || latent.Shape.C != Config.LatentChannels)
            throw new ArgumentException($"TAESD decode expects [N, {Config.LatentChannels}, h, w] latents, got {latent.Shape}", nameof(latent));
        return _decoder.Forward(_backend, latent);
    }

    public void Dispose() => _parameters.Dispose();
}
