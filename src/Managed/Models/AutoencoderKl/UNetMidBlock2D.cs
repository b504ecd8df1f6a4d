using NativeVae.Models.Layers;
using NativeVae.Core;

namespace NativeVae.Models.AutoencoderKl;

/// <summary>diffusers: <c>UNetMidBlock2D</c> without time embedding: resnet, (attention), resnet.</summary>
internal sealed class UNetMidBlock2D
{
    private readonly ResnetBlock2D _resnet0;
    private readonly AttentionBlock? _attention;
    private readonly ResnetBlock2D _resnet1;

    public UNetMidBlock2D(DeviceParameters p, string prefix, int channels, AutoencoderKlConfig config)
    {
        _resnet0 = new ResnetBlock2D(p, prefix + ".resnets.0", channels, channels, config);
        if (config.MidBlockAddAttention) _attention = new AttentionBlock(p, prefix + ".attentions.0", channels, config);
        _resnet1 = new ResnetBlock2D(p, prefix + ".resnets.1", channels, channels, config);
    }

    /// <summary>Resnet, attention, resnet; disposes <paramref name="x"/> when <paramref name="ownsInput"/> (also on failure).</summary>
    public Tensor Forward(IBackend ops, Tensor x, bool ownsInput)
    {
        var h = _resnet0.Forward(ops, x, ownsInput);
        if (_attention is not null)
        {
            try
            {
                var a = _attention.Forward(ops, h);
                h.Dispose();
                h = a;
            }
            catch
            {
                h.Dispose();
                throw;
            }
        }
        return _resnet1.Forward(ops, h, ownsInput: true);
    }
}
