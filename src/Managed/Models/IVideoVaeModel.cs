using NativeVae.Core;

namespace NativeVae.Models;

/// <summary>
/// A causal video VAE (Wan): frames go in one at a time, each call keeping its own causal state, so a video of any
/// length holds one frame per layer besides each causal conv's last two inputs.
/// </summary>
internal interface IVideoVaeModel : IVaeModel
{
    /// <summary>The frames of a <paramref name="frames"/>-frame video that encode uses (diffusers drops the rest).</summary>
    int UsableFrames(int frames);

    /// <summary>Latent frames of a <paramref name="frames"/>-frame video.</summary>
    int LatentFrames(int frames);

    /// <summary>Frames decoded from <paramref name="latentFrames"/> latent frames.</summary>
    int DecodedFrames(int latentFrames);

    /// <summary>
    /// Encodes <paramref name="frames"/> frames [N, 3, H, W] in [-1, 1], asked for in order from
    /// <paramref name="frame"/> (the caller keeps each); <paramref name="emit"/> takes each moments frame
    /// [N, 2z, h, w] in order (and disposes it). Frames past the last whole chunk are never asked for.
    /// </summary>
    void EncodeVideo(IBackend ops, int frames, Func<int, Tensor> frame, Action<Tensor> emit);

    /// <summary>
    /// Decodes <paramref name="latentFrames"/> latent frames [N, z, h, w], asked for in order from
    /// <paramref name="latent"/> (the caller keeps each); <paramref name="emit"/> takes each clamped frame
    /// [N, 3, H, W] in order (and disposes it).
    /// </summary>
    void DecodeVideo(IBackend ops, int latentFrames, Func<int, Tensor> latent, Action<Tensor> emit);
}
