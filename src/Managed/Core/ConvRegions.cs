namespace NativeVae.Core;

/// <summary>A convolution region (<see cref="IBackend.Conv2dRegion"/>) built from a backend's plain ops.</summary>
internal static class ConvRegions
{
    /// <summary>
    /// ChannelAffine, Conv2d, then for host moments a statistics pass over the region (already on the device): the
    /// default region, and a backend's wherever its epilogue has nothing better.
    /// </summary>
    public static ConvOutput Unfused(IBackend device, Tensor input, FoldedNorm? norm, Tensor weight, Tensor? bias, Conv2dSpec spec,
        Tensor? residual, ConvMoments moments) =>
        AfterAffine(device, input, norm, x =>
        {
            var y = device.Conv2d(x, weight, bias, spec, residual);
            try
            {
                return new ConvOutput(y, moments == ConvMoments.Host ? ChannelMoments.Measure(device, y) : null);
            }
            catch
            {
                y.Dispose();
                throw;
            }
        });

    /// <summary>Runs <paramref name="conv"/> on <paramref name="input"/> with <paramref name="norm"/>'s affine (then SiLU) applied first, into a temporary.</summary>
    public static ConvOutput AfterAffine(IBackend device, Tensor input, FoldedNorm? norm, Func<Tensor, ConvOutput> conv)
    {
        using var normed = norm is { } f ? device.ChannelAffine(input, f.Scale, f.Shift, f.Silu) : null;
        return conv(normed ?? input);
    }
}
