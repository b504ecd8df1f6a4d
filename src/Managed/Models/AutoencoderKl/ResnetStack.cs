using NativeVae.Models.Layers;
using NativeVae.Core;

namespace NativeVae.Models.AutoencoderKl;

/// <summary>
/// The body shared by <c>DownEncoderBlock2D</c> and <c>UpDecoderBlock2D</c>: resnets in sequence, then an optional
/// resampling conv (downsampler or upsampler), named <c>{prefix}.resnets.{j}</c> and <c>{prefix}.{sampler}.0.conv</c>.
/// </summary>
internal sealed class ResnetStack
{
    private readonly ResnetBlock2D[] _resnets;
    private readonly Conv2d? _resample;

    public ResnetStack(DeviceParameters p, string prefix, int inChannels, int outChannels, int layers,
        string? samplerName, Conv2dSpec samplerSpec, AutoencoderKlConfig config)
    {
        _resnets = new ResnetBlock2D[layers];
        for (int j = 0; j < layers; j++)
            _resnets[j] = new ResnetBlock2D(p, $"{prefix}.resnets.{j}", j == 0 ? inChannels : outChannels, outChannels, config);
        if (samplerName is not null) _resample = new Conv2d(p, $"{prefix}.{samplerName}.0.conv", samplerSpec);
    }

    /// <summary>
    /// Runs the stack; every intermediate is released, and <paramref name="x"/> too (as soon as the first resnet
    /// is done with it, or on failure) when <paramref name="ownsInput"/>.
    /// </summary>
    public Tensor Forward(IBackend ops, Tensor x, bool ownsInput)
    {
        Tensor current = x;
        bool owned = ownsInput;
        foreach (var resnet in _resnets)
        {
            current = resnet.Forward(ops, current, owned);
            owned = true;
        }
        if (_resample is null) return current;
        try
        {
            return _resample.Forward(ops, current);
        }
        finally
        {
            if (owned) current.Dispose();
        }
    }
}
