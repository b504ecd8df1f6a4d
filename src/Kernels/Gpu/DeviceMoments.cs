using System.Runtime.CompilerServices;

namespace NativeVae.Kernels.Gpu;

/// <summary>
/// Count, mean and M2 (the sum of squared deviations) of a set of values, in fp32 on the device: built one value
/// at a time (Welford) and merged pairwise (Chan et al.), so statistics gathered in pieces (per lane, per warp,
/// per tile) combine without the cancellation of sum and sum-of-squares forms.
/// </summary>
internal struct DeviceMoments
{
    public float Count;
    public float Mean;
    public float M2;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Add(float value)
    {
        Count += 1f;
        float delta = value - Mean;
        Mean += delta / Count;
        M2 += delta * (value - Mean);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly DeviceMoments Merge(DeviceMoments other)
    {
        float count = Count + other.Count;
        if (count == 0f) return this;
        float delta = other.Mean - Mean;
        float share = other.Count / count;
        return new DeviceMoments
        {
            Count = count,
            Mean = Mean + delta * share,
            M2 = M2 + other.M2 + delta * delta * Count * share,
        };
    }
}
