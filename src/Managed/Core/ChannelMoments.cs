namespace NativeVae.Core;

/// <summary>
/// Per (image, channel) statistics of a tensor <c>[N, C, H, W]</c>: how many values each channel has, their mean and
/// their M2 (sum of squared deviations from that mean), in double. An op that writes a tensor can return them
/// (<see cref="IBackend.Conv2dRegion"/>), tiles of one tensor merge into the whole's (Chan, Golub and LeVeque's
/// parallel variance), and a GroupNorm of the tensor folds them into its per-channel affine instead of a statistics
/// pass. Channels of one image have the same count.
/// </summary>
internal sealed class ChannelMoments
{
    /// <summary>[N * C][2]: (mean, M2) per (image, channel).</summary>
    private readonly double[] _values;

    /// <summary>Values per channel of each image so far.</summary>
    private readonly long[] _counts;

    /// <summary>No values yet: the start of a merge.</summary>
    public ChannelMoments(int batch, int channels)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(batch);
        ArgumentOutOfRangeException.ThrowIfNegative(channels);
        Batch = batch;
        Channels = channels;
        _values = new double[2L * batch * channels];
        _counts = new long[batch];
    }

    /// <summary>The statistics of a whole tensor: <paramref name="meanM2"/> [N * C][2], <paramref name="count"/> values per channel.</summary>
    public static ChannelMoments Whole(int batch, int channels, ReadOnlySpan<double> meanM2, long count)
    {
        var moments = new ChannelMoments(batch, channels);
        for (int n = 0; n < batch; n++) moments.Merge(n, meanM2.Slice(2 * n * channels, 2 * channels), count);
        return moments;
    }

    /// <summary>The statistics of <paramref name="y"/> by a pass of <paramref name="backend"/>'s (one group per channel).</summary>
    public static ChannelMoments Measure(IBackend backend, Tensor y)
    {
        var s = y.Shape;
        using var stats = backend.GroupNormStatistics(y, s.C);
        var values = new float[stats.ElementCount];
        backend.Download(stats, values);
        return Whole(s.N, s.C, Array.ConvertAll(values, v => (double)v), (long)s.H * s.W);
    }

    public int Batch { get; }

    public int Channels { get; }

    /// <summary>Values per channel of image <paramref name="n"/>.</summary>
    public long Count(int n) => _counts[n];

    /// <summary>Mean of channel <paramref name="c"/> of image <paramref name="n"/>.</summary>
    public double Mean(int n, int c) => _values[2 * (n * Channels + c)];

    /// <summary>Sum of squared deviations from the mean of channel <paramref name="c"/> of image <paramref name="n"/>.</summary>
    public double M2(int n, int c) => _values[2 * (n * Channels + c) + 1];

    /// <summary>
    /// Adds a disjoint part of image <paramref name="n"/>: <paramref name="meanM2"/> holds (mean, M2) per channel,
    /// of <paramref name="count"/> values each (a tile of <c>count</c> pixels).
    /// </summary>
    public void Merge(int n, ReadOnlySpan<double> meanM2, long count)
    {
        if (meanM2.Length != 2 * Channels)
            throw new ArgumentException($"moments of {meanM2.Length / 2} channels merged into {Channels}", nameof(meanM2));
        if (count <= 0) return;
        double before = _counts[n], total = before + count;
        var values = _values.AsSpan(2 * n * Channels, 2 * Channels);
        for (int c = 0; c < Channels; c++)
        {
            double delta = meanM2[2 * c] - values[2 * c];
            values[2 * c] += delta * count / total;
            values[2 * c + 1] += meanM2[2 * c + 1] + delta * delta * before * count / total;
        }
        _counts[n] += count;
    }

    /// <summary>Adds image <paramref name="partImage"/> of <paramref name="part"/> (a tile of image <paramref name="n"/>) to image n.</summary>
    public void Merge(int n, ChannelMoments part, int partImage)
    {
        if (part.Channels != Channels)
            throw new ArgumentException($"moments of {part.Channels} channels merged into {Channels}", nameof(part));
        Merge(n, part._values.AsSpan(2 * partImage * Channels, 2 * Channels), part._counts[partImage]);
    }

    /// <summary>
    /// A GroupNorm over these statistics folded with its affine: <paramref name="scale"/> and <paramref name="shift"/>
    /// [N * C] get a, b with <c>group_norm(x) = x * a + b</c>. Each group's mean is its channels' mean (equal counts),
    /// its M2 theirs merged; the fp32 rounding of mean, 1/std and the fold is the GroupNorm kernels'.
    /// </summary>
    public void Fold(ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta, int groups, float eps, Span<float> scale, Span<float> shift)
    {
        if (groups <= 0 || Channels % groups != 0)
            throw new ArgumentException($"{groups} groups do not divide {Channels} channels", nameof(groups));
        if (gamma.Length != Channels || beta.Length != Channels)
            throw new ArgumentException($"gamma [{gamma.Length}] and beta [{beta.Length}] must have {Channels} values");
        if (scale.Length != Batch * Channels || shift.Length != Batch * Channels)
            throw new ArgumentException($"scale and shift must have {Batch * Channels} values");
        int perGroup = Channels / groups;
        for (int n = 0; n < Batch; n++)
        {
            double count = Math.Max(_counts[n], 1);
            for (int g = 0; g < groups; g++)
            {
                var (mean, m2) = Group(n, g, perGroup);
                float groupMean = (float)mean;
                float rstd = (float)(1 / Math.Sqrt(m2 / (count * perGroup) + eps));
                for (int c = g * perGroup; c < (g + 1) * perGroup; c++)
                {
                    float a = gamma[c] * rstd;
                    scale[n * Channels + c] = a;
                    shift[n * Channels + c] = beta[c] - groupMean * a;
                }
            }
        }
    }

    /// <summary>[N, groups, 2]: each group's (mean, M2), the layout of <see cref="IBackend.GroupNormStatistics"/>.</summary>
    public float[] GroupStatistics(int groups)
    {
        if (groups <= 0 || Channels % groups != 0)
            throw new ArgumentException($"{groups} groups do not divide {Channels} channels", nameof(groups));
        int perGroup = Channels / groups;
        var result = new float[2 * Batch * groups];
        for (int n = 0; n < Batch; n++)
        {
            for (int g = 0; g < groups; g++)
            {
                var (mean, m2) = Group(n, g, perGroup);
                result[2 * (n * groups + g)] = (float)mean;
                result[2 * (n * groups + g) + 1] = (float)m2;
            }
        }
        return result;
    }

    /// <summary>Group <paramref name="g"/>'s mean and M2: its channels' merged, all of one count.</summary>
    private (double Mean, double M2) Group(int n, int g, int perGroup)
    {
        double count = _counts[n];
        double mean = 0, m2 = 0;
        for (int c = g * perGroup; c < (g + 1) * perGroup; c++) mean += Mean(n, c) / perGroup;
        for (int c = g * perGroup; c < (g + 1) * perGroup; c++)
        {
            double d = Mean(n, c) - mean;
            m2 += M2(n, c) + count * d * d;
        }
        return (mean, m2);
    }
}
