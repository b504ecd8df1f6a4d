
namespace NativeVae.Core;

/// <summary>
/// Shape rules and argument checks of the ops in <see cref="IBackend"/>, shared by every backend so that each one
/// refuses bad arguments with the same message, and by the dry-run backend that plans memory and counts FLOPs.
/// </summary>
internal static class OpShapes
{
    public const int RgbChannels = 3;

    /// <summary>Output shape of <see cref="IBackend.Conv2d"/>; throws on mismatched arguments.</summary>
    public static TensorShape Conv2d(Tensor input, Tensor weight, Tensor? bias, Conv2dSpec spec, Tensor? residual)
    {
        RequireRank4(input, "conv2d input");
        RequireRank4(weight, "conv2d weight");
        int kernel = weight.Shape[2];
        if (weight.Shape[3] != kernel)
            throw new NotSupportedException($"conv2d weight {weight.Shape}: only square kernels are supported");
        if (kernel < 1)
            throw new ArgumentException($"conv2d weight {weight.Shape}: the kernel must be at least 1x1");
        if (weight.Shape[1] != input.Shape.C)
            throw new ArgumentException($"conv2d weight {weight.Shape} expects {weight.Shape[1]} input channels, input is {input.Shape}");
        if (spec.Stride < 1)
            throw new ArgumentException($"conv2d stride {spec.Stride} must be at least 1", nameof(spec));
        if (spec.PadTop < 0 || spec.PadBottom < 0 || spec.PadLeft < 0 || spec.PadRight < 0)
            throw new ArgumentException($"conv2d padding {spec} must not be negative", nameof(spec));
        int cout = weight.Shape[0];
        var output = TensorShape.Nchw(input.Shape.N, cout, spec.OutputHeight(input.Shape.H, kernel), spec.OutputWidth(input.Shape.W, kernel));
        if (bias is not null && (bias.Shape.Rank != 1 || bias.Shape[0] != cout))
            throw new ArgumentException($"conv2d bias {bias.Shape} does not match {cout} output channels");
        if (residual is not null && residual.Shape != output)
            throw new ArgumentException($"conv2d residual {residual.Shape} does not match the output {output}");
        return output;
    }

    /// <summary>Output shape of <see cref="IBackend.GroupNorm"/>; throws on mismatched arguments.</summary>
    public static TensorShape GroupNorm(Tensor input, Tensor gamma, Tensor beta, int groups)
    {
        RequireRank4(input, "group_norm input");
        int c = input.Shape.C;
        if (groups <= 0 || c % groups != 0)
            throw new ArgumentException($"group_norm: {groups} groups do not divide {c} channels of {input.Shape}", nameof(groups));
        if (gamma.ElementCount != c || beta.ElementCount != c)
            throw new ArgumentException($"group_norm affine {gamma.Shape}/{beta.Shape} does not match {c} channels");
        return input.Shape;
    }

    /// <summary>Output shape of <see cref="IBackend.SliceChannels"/>; throws when the range is not inside the channels.</summary>
    public static TensorShape SliceChannels(Tensor input, int start, int count)
    {
        RequireRank4(input, "slice_channels input");
        var s = input.Shape;
        if (start < 0 || count <= 0 || start > s.C - count)
            throw new ArgumentException($"slice_channels: channels [{start}, {(long)start + count}) are not inside the {s.C} channels of {s}");
        return TensorShape.Nchw(s.N, count, s.H, s.W);
    }

    /// <summary>
    /// The host copy of <see cref="IBackend.SliceChannels"/>: per image, one contiguous run of
    /// <paramref name="count"/> channel planes.
    /// </summary>
    public static void CopyChannels<T>(ReadOnlySpan<T> input, TensorShape shape, int start, int count, Span<T> output,
        int elementUnits = 1)
    {
        long plane = (long)shape.H * shape.W * elementUnits;
        int run = checked((int)(count * plane));
        for (int n = 0; n < shape.N; n++)
            input.Slice(checked((int)((n * (long)shape.C + start) * plane)), run).CopyTo(output.Slice(checked(n * run), run));
    }

    /// <summary>Output shape of <see cref="IBackend.GroupNormStatistics"/>.</summary>
    public static TensorShape GroupNormStatistics(Tensor input, int groups)
    {
        RequireRank4(input, "group_norm_statistics input");
        if (groups <= 0 || input.Shape.C % groups != 0)
            throw new ArgumentException($"group_norm_statistics: {groups} groups do not divide {input.Shape.C} channels of {input.Shape}", nameof(groups));
        return new TensorShape(input.Shape.N, groups, 2);
    }

    /// <summary>Output shape of <see cref="IBackend.ChannelAffine"/>.</summary>
    public static TensorShape ChannelAffine(Tensor input, Tensor scale, Tensor shift)
    {
        RequireRank4(input, "channel_affine input");
        var expected = new TensorShape(input.Shape.N, input.Shape.C);
        if (scale.Shape != expected || shift.Shape != expected)
            throw new ArgumentException($"channel_affine scale {scale.Shape} / shift {shift.Shape} must be {expected} for input {input.Shape}");
        return input.Shape;
    }

    /// <summary>Output shape of <see cref="IBackend.RmsNorm"/>: the input's; gamma is <c>[C]</c>.</summary>
    public static TensorShape RmsNorm(Tensor input, Tensor gamma)
    {
        RequireRank4(input, "rms_norm input");
        if (gamma.Shape != new TensorShape(input.Shape.C))
            throw new ArgumentException($"rms_norm gamma {gamma.Shape} must be [{input.Shape.C}] for input {input.Shape}");
        return input.Shape;
    }

    /// <summary>Output shape of <see cref="IBackend.SpaceToDepth"/>; throws on mismatched arguments.</summary>
    public static TensorShape SpaceToDepth(Tensor current, Tensor? previous, PixelShuffleSpec spec)
    {
        RequireRank4(current, "space_to_depth input");
        RequireShuffle(spec, "space_to_depth");
        if (spec.Frames > MaxShuffleFrames)
            throw new ArgumentException($"space_to_depth: {spec.Frames} frames; it folds at most {MaxShuffleFrames} (the earlier and the current)", nameof(spec));
        if (previous is not null && (spec.Frames != MaxShuffleFrames || previous.Shape != current.Shape))
            throw new ArgumentException($"space_to_depth: an earlier frame {previous.Shape} needs {MaxShuffleFrames} frames and the current frame's shape {current.Shape}", nameof(previous));
        var s = current.Shape;
        if (s.H % spec.Factor != 0 || s.W % spec.Factor != 0)
            throw new ArgumentException($"space_to_depth: {s.H}x{s.W} of {s} is not a multiple of the factor {spec.Factor}", nameof(current));
        long blockChannels = (long)s.C * spec.BlockChannels;
        if (blockChannels % spec.Group != 0)
            throw new ArgumentException($"space_to_depth: groups of {spec.Group} do not divide the {blockChannels} block channels of {s} ({spec})", nameof(spec));
        return RequireLaunch(s.N, blockChannels / spec.Group, s.H / spec.Factor, s.W / spec.Factor, "space_to_depth");
    }

    /// <summary>Output shape of <see cref="IBackend.DepthToSpace"/>; throws on mismatched arguments.</summary>
    public static TensorShape DepthToSpace(Tensor input, PixelShuffleSpec spec, int frame)
    {
        RequireRank4(input, "depth_to_space input");
        RequireShuffle(spec, "depth_to_space");
        if (frame < 0 || frame >= spec.Frames)
            throw new ArgumentException($"depth_to_space: frame {frame} is not one of the block's {spec.Frames}", nameof(frame));
        var s = input.Shape;
        long repeated = (long)s.C * spec.Group;
        if (repeated % spec.BlockChannels != 0)
            throw new ArgumentException($"depth_to_space: the {repeated} repeated channels of {s} are not whole blocks of {spec.BlockChannels} ({spec})", nameof(spec));
        return RequireLaunch(s.N, repeated / spec.BlockChannels, (long)s.H * spec.Factor, (long)s.W * spec.Factor, "depth_to_space");
    }

    /// <summary>The frames a space to depth folds at most: the earlier frame and the current.</summary>
    public const int MaxShuffleFrames = 2;

    private static void RequireShuffle(PixelShuffleSpec spec, string op)
    {
        if (spec.Factor < 1 || spec.Frames < 1 || spec.Group < 1)
            throw new ArgumentException($"{op}: factor, frames and group of {spec} must be at least 1", nameof(spec));
    }

    /// <summary>An output shape whose element count fits one kernel launch (an int).</summary>
    private static TensorShape RequireLaunch(int n, long c, long h, long w, string op)
    {
        if (c * h * w * n > int.MaxValue)
            throw new ArgumentException($"{op}: an output of {n}x{c}x{h}x{w} elements is too large for one launch");
        return TensorShape.Nchw(n, (int)c, (int)h, (int)w);
    }

    /// <summary>Output shape of <see cref="IBackend.Attention"/>; throws on mismatched arguments.</summary>
    public static TensorShape Attention(Tensor q, Tensor k, Tensor v)
    {
        RequireRank4(q, "attention q");
        if (k.Shape != q.Shape || v.Shape != q.Shape)
            throw new ArgumentException($"attention q {q.Shape}, k {k.Shape}, v {v.Shape} must have one shape");
        return q.Shape;
    }

    /// <summary>
    /// Output and log-sum-exp shapes of <see cref="IBackend.AttentionOverKeys"/>: queries and keys of one batch and
    /// channel count, keys and values of one shape; throws on mismatched arguments.
    /// </summary>
    public static (TensorShape Output, TensorShape LogSumExp) AttentionOverKeys(Tensor q, Tensor k, Tensor v)
    {
        RequireRank4(q, "attention q");
        RequireRank4(k, "attention k");
        if (v.Shape != k.Shape || k.Shape.N != q.Shape.N || k.Shape.C != q.Shape.C)
            throw new ArgumentException($"attention q {q.Shape}, k {k.Shape}, v {v.Shape}: k and v must have one shape, with q's batch and channels");
        return (q.Shape, TensorShape.Nchw(q.Shape.N, 1, 1, checked(q.Shape.H * q.Shape.W)));
    }

    /// <summary>Output shape of an elementwise op on two tensors.</summary>
    public static TensorShape SameShape(Tensor a, Tensor b, string op)
    {
        if (a.Shape != b.Shape)
            throw new ArgumentException($"{op} of tensors with shapes {a.Shape} and {b.Shape}");
        return a.Shape;
    }

    /// <summary>Shape of the tensor made from <paramref name="byteCount"/> interleaved RGB bytes.</summary>
    public static TensorShape ImageToTensor(int byteCount, int batch, int height, int width)
    {
        if (batch <= 0 || height <= 0 || width <= 0)
            throw new ArgumentException($"image size {batch}x{height}x{width} must be positive");
        long expected = checked((long)batch * height * width * RgbChannels);
        if (byteCount != expected)
            throw new ArgumentException($"image bytes: got {byteCount}, expected {batch}x{height}x{width}x3 = {expected}");
        return TensorShape.Nchw(batch, RgbChannels, height, width);
    }

    /// <summary>Checks the arguments of <see cref="IBackend.TensorToImage"/>.</summary>
    public static void TensorToImage(Tensor input, int byteCount)
    {
        RequireRank4(input, "image tensor");
        if (input.Shape.C != RgbChannels)
            throw new ArgumentException($"image tensor {input.Shape} must have 3 channels");
        if (byteCount != input.ElementCount)
            throw new ArgumentException($"image bytes: got {byteCount}, tensor {input.Shape} needs {input.ElementCount}");
    }

    public static void RequireRank4(Tensor t, string what)
    {
        if (t.Shape.Rank != 4)
            throw new ArgumentException($"{what} must be [N, C, H, W], got {t.Shape}");
    }
}
