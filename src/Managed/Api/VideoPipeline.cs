using NativeVae.Core;
using NativeVae.Models;

namespace NativeVae.Api;

/// <summary>
/// A video VAE's encode and decode over host video tensors <c>[N, C, T, H, W]</c>: each frame is uploaded when the
/// model asks for it and each frame it makes is downloaded into the result, so the device holds one frame per layer
/// and the causal histories, whatever the length.
/// </summary>
/// <param name="ops">the backend the ops run on: the model's own, or one wrapping it (a profiler, exact tiling's executor).</param>
internal sealed class VideoPipeline(IVideoVaeModel model, IBackend ops)
{
    public VideoPipeline(IVideoVaeModel model) : this(model, model.Backend) { }

    /// <summary>Video in [-1, 1] (checked) to the latent <c>[N, z, T', h, w]</c>: the mode or a sample, scaled as the options say.</summary>
    public HostTensor<float> Encode(HostTensor<float> video, EncodeOptions options, CancellationToken cancellation)
    {
        var s = video.Shape;
        int frames = s[VideoFrames.FrameAxis], used = model.UsableFrames(frames), latentFrames = model.LatentFrames(frames);
        int f = model.DownsampleFactor, z2 = 2 * model.LatentChannels;
        var moments = new HostTensor<float>(new TensorShape(s[0], z2, latentFrames, s[3] / f, s[4] / f));
        Run(video, used, moments, encode: true, affine: null, options.Progress, cancellation);

        // The channel split of [N, 2z, T', h, w] is that of [N, 2z, T' * h, w].
        var flat = new HostTensor<float>(TensorShape.Nchw(s[0], z2, latentFrames * (s[3] / f), s[4] / f), moments.Data);
        var latent = options.SampleSeed is { } seed ? LatentDistribution.Sample(flat, seed) : LatentDistribution.Mode(flat);
        LatentScaling.AfterEncode(latent.Data, options.ScalingFactor, options.ShiftFactor);
        return new HostTensor<float>(new TensorShape(s[0], z2 / 2, latentFrames, s[3] / f, s[4] / f), latent.Data);
    }

    /// <summary>The latent <c>[N, z, T', h, w]</c> (checked) to the video <c>[N, 3, T, H, W]</c> in [-1, 1].</summary>
    public HostTensor<float> Decode(HostTensor<float> latents, DecodeOptions options, CancellationToken cancellation)
    {
        var s = latents.Shape;
        int f = model.DownsampleFactor;
        var video = new HostTensor<float>(new TensorShape(s[0], OpShapes.RgbChannels, model.DecodedFrames(s[VideoFrames.FrameAxis]), s[3] * f, s[4] * f));
        Run(latents, s[VideoFrames.FrameAxis], video, encode: false, LatentScaling.DecodeAffine(options.ScalingFactor, options.ShiftFactor),
            options.Progress, cancellation);
        VaePipeline.RequireFinite(video.Data.LongCount(v => !float.IsFinite(v)), video.Shape, ops.Name, "video");
        return video;
    }

    /// <summary>Streams <paramref name="frames"/> frames of <paramref name="input"/> through the model into <paramref name="output"/>.</summary>
    private void Run(HostTensor<float> input, int frames, HostTensor<float> output, bool encode, (float Scale, float Shift)? affine,
        IProgress<VaeProgress>? progress, CancellationToken cancellation)
    {
        var inShape = VideoFrames.FrameShape(input.Shape);
        var inValues = new float[inShape.ElementCount];
        var outValues = new float[VideoFrames.FrameShape(output.Shape).ElementCount];
        int total = output.Shape[VideoFrames.FrameAxis], made = 0;
        Tensor? current = null;   // the input frame the model was last given: its own until it asks for the next
        try
        {
            Tensor Next(int t)
            {
                cancellation.ThrowIfCancellationRequested();
                current?.Dispose();
                current = null;
                VideoFrames.Read(input, t, inValues);
                if (affine is var (scale, shift))
                    for (int i = 0; i < inValues.Length; i++) inValues[i] = inValues[i] * scale + shift;
                return current = ops.Upload(inValues, inShape, ops.ActivationDType(inShape));
            }
            void Take(Tensor y)
            {
                using (y)
                {
                    if (made >= total) throw new InvalidOperationException($"the model made more than the {total} frames expected");
                    ops.Download(y, outValues);
                    VideoFrames.Write(output, made++, outValues);
                    progress?.Report(new VaeProgress(made, total));
                }
            }
            if (encode) model.EncodeVideo(ops, frames, Next, Take);
            else model.DecodeVideo(ops, frames, Next, Take);
        }
        finally
        {
            current?.Dispose();
        }
        if (made != total) throw new InvalidOperationException($"the model made {made} frames where {total} were expected");
    }
}
