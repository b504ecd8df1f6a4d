using NativeVae.Core;
using NativeVae.Models.Layers;

namespace NativeVae.Models.QwenImage;

/// <summary>
/// diffusers: <c>AutoencoderKLQwenImage</c> on one frame (Qwen-Image, Qwen-Image-Edit), as the 2D network of
/// <see cref="WanWeightView"/>: encoder then quant_conv to moments <c>[N, 2z, h, w]</c>, post_quant_conv then
/// decoder to an image clamped to [-1, 1]. The frame axis of its 5-D latents belongs to the API. Every parameter is
/// checked against diffusers' 3D list when the model is built; each half's image-mode weights (a third of the 3x3x3
/// convs' bytes) are uploaded on its first use (<see cref="LazyHalves{TEncoder, TDecoder}"/>).
/// </summary>
internal sealed class QwenImageModel : IVideoVaeModel
{
    private readonly LazyHalves<EncoderHalf, DecoderHalf> _halves;

    /// <param name="weightsOwner">Disposed once both halves are uploaded: what keeps <paramref name="weights"/> readable.</param>
    /// <param name="frames">
    /// upload every temporal tap, for video (<see cref="EncodeVideo"/>, <see cref="DecodeVideo"/>); without, a third of
    /// the convs' bytes and images only.
    /// </param>
    public QwenImageModel(IBackend backend, QwenImageConfig config, IWeightSource weights, IDisposable? weightsOwner = null, bool frames = false)
    {
        Backend = backend;
        Config = config;
        var declared = QwenImageParameters.Enumerate(config);
        ParameterCheck.Require(weights, declared);
        if (frames) config.ValidateForVideo();
        Frames = frames;
        var view = new WanWeightView(weights, declared, frames);
        _halves = new LazyHalves<EncoderHalf, DecoderHalf>(backend, view, weightsOwner, view.Declared,
            name => name.StartsWith("encoder.", StringComparison.Ordinal) || name.StartsWith("quant_conv.", StringComparison.Ordinal),
            p => new EncoderHalf(new QwenImageEncoder(p, config, frames), new Conv2d(p, "quant_conv", Conv2dSpec.Pointwise)),
            p => new DecoderHalf(new Conv2d(p, "post_quant_conv", Conv2dSpec.Pointwise), new QwenImageDecoder(p, config, frames)));
        // Qwen-Image's pipeline packs normalised latents; Wan's (video) takes them raw here.
        PipelineNormalization = frames ? null : LatentNormalization.PerLatentChannel(config.LatentsMean, config.LatentsStd);
    }

    public IBackend Backend { get; }

    /// <summary>True when built for video: every temporal tap uploaded.</summary>
    public bool Frames { get; }

    public int UsableFrames(int frames) => QwenImageConfig.UsableFrames(frames);

    public int LatentFrames(int frames) => Config.LatentFrames(frames);

    public int DecodedFrames(int latentFrames) => Config.DecodedFrames(latentFrames);

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

    public Tensor Decode(IBackend ops, Tensor latent, BlockObserver? observe = null) => Decode(ops, latent, observe, clamp: true);

    public bool ClampsDecode => true;

    public Tensor DecodeUnclamped(IBackend ops, Tensor latent, BlockObserver? observe = null) => Decode(ops, latent, observe, clamp: false);

    private Tensor Decode(IBackend ops, Tensor latent, BlockObserver? observe, bool clamp)
    {
        var half = _halves.Decoder;
        using var z = half.PostQuantConv.Forward(ops, latent);
        observe?.Invoke("post_quant_conv", z);
        return half.Decoder.Forward(ops, z, observe, clamp);
    }

    public void EncodeVideo(IBackend ops, int frames, Func<int, Tensor> frame, Action<Tensor> emit)
    {
        RequireFrames();
        var half = _halves.Encoder;
        int used = QwenImageConfig.UsableFrames(frames);
        using var state = new CausalFrames();
        for (int t = 0; t < used; t++)
        {
            half.Encoder.Forward(ops, frame(t), state, h =>
            {
                using (h) emit(half.QuantConv.Forward(ops, h));
            });
        }
    }

    public void DecodeVideo(IBackend ops, int latentFrames, Func<int, Tensor> latent, Action<Tensor> emit)
    {
        RequireFrames();
        var half = _halves.Decoder;
        using var state = new CausalFrames();
        for (int t = 0; t < latentFrames; t++)
        {
            using var z = half.PostQuantConv.Forward(ops, latent(t));
            half.Decoder.Forward(ops, z, state, emit);
        }
    }

    private void RequireFrames()
    {
        if (!Frames) throw new InvalidOperationException("this model was loaded for images only: video needs every temporal tap");
    }

    public void Dispose() => _halves.Dispose();

    private sealed record EncoderHalf(QwenImageEncoder Encoder, Conv2d QuantConv);

    private sealed record DecoderHalf(Conv2d PostQuantConv, QwenImageDecoder Decoder);
}
