using System.Diagnostics;
using NativeVae.Core;

namespace NativeVae.Backends;

/// <summary>
/// Times every op of a wrapped backend (synchronising after each, so a GPU's queue does not hide the cost) and keeps,
/// per op kind and shape, the calls, seconds, floating-point work and bytes moved. For benchmarks' op-by-op
/// breakdown; the wrapped backend does the work and owns the tensors.
/// </summary>
internal sealed class ProfilingBackend(IBackend device) : IBackend
{
    private const long FlopsPerMultiplyAdd = 2;

    /// <summary>The keys of host-to-device and device-to-host copies (tensors and 8-bit pixels alike).</summary>
    public const string UploadKey = "upload", DownloadKey = "download";

    /// <summary>Per op kind and shape, in first-seen order.</summary>
    public Dictionary<string, OpTotals> Ops { get; } = new();

    public string Name => $"profiling {device.Name}";

    public BackendKind Kind => device.Kind;

    public MemoryStats Memory => device.Memory;

    public BackendCapabilities Capabilities => device.Capabilities;

    public DType StorageDType => device.StorageDType;

    public void ResetPeakMemory() => device.ResetPeakMemory();

    public Tensor Allocate(TensorShape shape, DType dtype = DType.F32) => device.Allocate(shape, dtype);

    public Tensor Upload(ReadOnlySpan<float> data, TensorShape shape, DType dtype = DType.F32)
    {
        long start = Stopwatch.GetTimestamp();
        var t = device.Upload(data, shape, dtype);
        Record(UploadKey, start, 0, t.ByteLength);
        return t;
    }

    public void Download(Tensor tensor, Span<float> destination)
    {
        long start = Stopwatch.GetTimestamp();
        device.Download(tensor, destination);
        Record(DownloadKey, start, 0, tensor.ByteLength);
    }

    public void Synchronize() => device.Synchronize();

    public Tensor Conv2d(Tensor input, Tensor weight, Tensor? bias, Conv2dSpec spec, Tensor? residual = null)
    {
        long start = Stopwatch.GetTimestamp();
        var y = device.Conv2d(input, weight, bias, spec, residual);
        RecordConv(start, "", input, weight, spec, residual, y);
        return y;
    }

    private void RecordConv(long start, string prefix, Tensor input, Tensor weight, Conv2dSpec spec, Tensor? residual, Tensor y)
    {
        int k = weight.Shape[2];
        string kind = $"{prefix}conv{k}x{k}{(spec.Stride > 1 ? $" s{spec.Stride}" : "")}{(spec.Upsample2x ? " up2x" : "")}{(residual is null ? "" : " +res")}";
        long flops = FlopsPerMultiplyAdd * y.Shape.ElementCount * (weight.Shape.ElementCount / weight.Shape[0]);
        Record($"{kind} {input.Shape.C}->{y.Shape.C} @{y.Shape.H}x{y.Shape.W}", start, flops,
            input.ByteLength + y.ByteLength + weight.ByteLength + (residual?.ByteLength ?? 0));
    }

    public Tensor NormConv2d(Tensor input, GroupNormSpec norm, Tensor weight, Tensor? bias, Conv2dSpec spec, Tensor? residual = null)
    {
        long start = Stopwatch.GetTimestamp();
        var y = device.NormConv2d(input, norm, weight, bias, spec, residual);
        RecordConv(start, "groupnorm" + (norm.Silu ? "+silu+" : "+"), input, weight, spec, residual, y);
        return y;
    }

    public ConvOutput Conv2dRegion(Tensor input, FoldedNorm? norm, Tensor weight, Tensor? bias, Conv2dSpec spec, Tensor? residual, ConvMoments moments)
    {
        long start = Stopwatch.GetTimestamp();
        var result = device.Conv2dRegion(input, norm, weight, bias, spec, residual, moments);
        RecordConv(start, norm is { } f ? "affine" + (f.Silu ? "+silu+" : "+") : "", input, weight, spec, residual, result.Output);
        return result;
    }

    public Tensor GroupNorm(Tensor input, Tensor gamma, Tensor beta, int groups, float eps, bool fuseSilu)
    {
        long start = Stopwatch.GetTimestamp();
        var y = device.GroupNorm(input, gamma, beta, groups, eps, fuseSilu);
        Record($"groupnorm{(fuseSilu ? "+silu" : "")} {input.Shape.C} @{input.Shape.H}x{input.Shape.W}", start, 0, 2 * input.ByteLength + y.ByteLength);
        return y;
    }

    public Tensor GroupNormStatistics(Tensor input, int groups)
    {
        long start = Stopwatch.GetTimestamp();
        var y = device.GroupNormStatistics(input, groups);
        Record($"groupnorm stats {input.Shape.C} @{input.Shape.H}x{input.Shape.W}", start, 0, input.ByteLength);
        return y;
    }

    public Tensor ChannelAffine(Tensor input, Tensor scale, Tensor shift, bool fuseSilu)
    {
        long start = Stopwatch.GetTimestamp();
        var y = device.ChannelAffine(input, scale, shift, fuseSilu);
        Record($"channel affine {input.Shape.C} @{input.Shape.H}x{input.Shape.W}", start, 0, input.ByteLength + y.ByteLength);
        return y;
    }

    public Tensor RmsNorm(Tensor input, Tensor gamma, bool fuseSilu)
    {
        long start = Stopwatch.GetTimestamp();
        var y = device.RmsNorm(input, gamma, fuseSilu);
        Record($"rms norm {input.Shape.C} @{input.Shape.H}x{input.Shape.W}", start, 0, input.ByteLength + y.ByteLength);
        return y;
    }

    public Tensor Attention(Tensor q, Tensor k, Tensor v, float scale)
    {
        long start = Stopwatch.GetTimestamp();
        var y = device.Attention(q, k, v, scale);
        long tokens = (long)q.Shape.H * q.Shape.W;
        Record($"attention C={q.Shape.C} N={tokens}", start, 2 * FlopsPerMultiplyAdd * q.Shape.N * tokens * tokens * q.Shape.C,
            4 * q.ByteLength);
        return y;
    }

    public Tensor PrepareConvWeight(Tensor weight, Conv2dSpec spec) => device.PrepareConvWeight(weight, spec);

    public AttentionChunk AttentionOverKeys(Tensor q, Tensor k, Tensor v, float scale)
    {
        long start = Stopwatch.GetTimestamp();
        var chunk = device.AttentionOverKeys(q, k, v, scale);
        long queries = (long)q.Shape.H * q.Shape.W, keys = (long)k.Shape.H * k.Shape.W;
        Record($"attention C={q.Shape.C} N={queries}x{keys}", start, 2 * FlopsPerMultiplyAdd * q.Shape.N * queries * keys * q.Shape.C,
            2 * q.ByteLength + 2 * k.ByteLength);
        return chunk;
    }

    public Tensor Unary(UnaryOp op, Tensor input) =>
        Timed(() => device.Unary(op, input), $"{op.ToString().ToLowerInvariant()} {input.Shape}", 2 * input.ByteLength);

    public Tensor Add(Tensor a, Tensor b) =>
        Timed(() => device.Add(a, b), $"add {a.Shape}", 3 * a.ByteLength);

    public Tensor ScaleShift(Tensor input, float scale, float shift) =>
        Timed(() => device.ScaleShift(input, scale, shift), $"scale-shift {input.Shape}", 2 * input.ByteLength);

    public long CountNonFinite(Tensor input) =>
        Timed(() => device.CountNonFinite(input), $"count-non-finite {input.Shape}", input.ByteLength);

    public Tensor SpaceToDepth(Tensor current, Tensor? previous, PixelShuffleSpec spec)
    {
        long start = Stopwatch.GetTimestamp();
        var y = device.SpaceToDepth(current, previous, spec);
        Record($"space-to-depth {current.Shape} /{spec.Factor}", start, 0, current.ByteLength + (previous?.ByteLength ?? 0) + y.ByteLength);
        return y;
    }

    public Tensor DepthToSpace(Tensor input, PixelShuffleSpec spec, int frame)
    {
        long start = Stopwatch.GetTimestamp();
        var y = device.DepthToSpace(input, spec, frame);
        Record($"depth-to-space {input.Shape} x{spec.Factor}", start, 0, input.ByteLength + y.ByteLength);
        return y;
    }

    public Tensor SliceChannels(Tensor input, int start, int count) =>
        Timed(() => device.SliceChannels(input, start, count), $"slice-channels {input.Shape}",
            2 * input.ByteLength * count / Math.Max(1, input.Shape.C));

    /// <summary>Recorded as an upload: the pixels cross to the device here.</summary>
    public Tensor ImageToTensor(ReadOnlySpan<byte> rgb, int batch, int height, int width, float scale, float shift)
    {
        long start = Stopwatch.GetTimestamp();
        var y = device.ImageToTensor(rgb, batch, height, width, scale, shift);
        Record(UploadKey, start, 0, rgb.Length);
        return y;
    }

    /// <summary>Recorded as a download: the pixels cross back to the host here.</summary>
    public long TensorToImage(Tensor input, Span<byte> rgb, float scale, float shift)
    {
        long start = Stopwatch.GetTimestamp();
        long nonFinite = device.TensorToImage(input, rgb, scale, shift);
        Record(DownloadKey, start, 0, rgb.Length);
        return nonFinite;
    }

    /// <summary>The wrapped backend is the caller's; nothing to free here.</summary>
    public void Dispose() { }

    /// <summary>Runs a memory-bound op (no FLOPs counted) and records its time under <paramref name="key"/>.</summary>
    private T Timed<T>(Func<T> op, string key, long bytes)
    {
        long start = Stopwatch.GetTimestamp();
        var result = op();
        Record(key, start, 0, bytes);
        return result;
    }

    private void Record(string key, long start, long flops, long bytes)
    {
        device.Synchronize();
        double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        var totals = Ops.TryGetValue(key, out var t) ? t : new OpTotals();
        Ops[key] = totals with { Calls = totals.Calls + 1, Seconds = totals.Seconds + seconds, Flops = totals.Flops + flops, Bytes = totals.Bytes + bytes };
    }

    /// <summary>One op kind's sums over a run.</summary>
    public readonly record struct OpTotals(int Calls, double Seconds, long Flops, long Bytes);
}
