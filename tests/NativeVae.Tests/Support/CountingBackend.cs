using NativeVae.Core;

namespace NativeVae.Tests.Support;

/// <summary>
/// Forwards every op to a backend and counts the calls by op name, so a test can say which ops a caller ran (each
/// member is forwarded explicitly: an interface default would run the decorator's own ops and count them).
/// </summary>
internal sealed class CountingBackend(IBackend device) : IBackend
{
    public Dictionary<string, int> Calls { get; } = new();

    public int this[string op] => Calls.GetValueOrDefault(op);

    /// <summary>Values uploaded and downloaded so far: what crossed to and from the device.</summary>
    public long UploadedValues { get; private set; }

    public long DownloadedValues { get; private set; }

    private T Count<T>(string op, T result)
    {
        Calls[op] = Calls.GetValueOrDefault(op) + 1;
        return result;
    }

    public string Name => $"counting {device.Name}";
    public BackendKind Kind => device.Kind;
    public BackendCapabilities Capabilities => device.Capabilities;
    public MemoryStats Memory => device.Memory;
    public DType StorageDType => device.StorageDType;
    public long PlannedBytes => device.PlannedBytes;
    public void ResetPeakMemory() => device.ResetPeakMemory();
    public IDisposable BeginCall(string key) => device.BeginCall(key);
    public Tensor Allocate(TensorShape shape, DType dtype = DType.F32) => device.Allocate(shape, dtype);
    public Tensor Upload(ReadOnlySpan<float> data, TensorShape shape, DType dtype = DType.F32)
    {
        UploadedValues += data.Length;
        return Count(nameof(Upload), device.Upload(data, shape, dtype));
    }

    public void Download(Tensor tensor, Span<float> destination)
    {
        DownloadedValues += destination.Length;
        Count(nameof(Download), 0);
        device.Download(tensor, destination);
    }

    public void Synchronize() => device.Synchronize();

    public Tensor Conv2d(Tensor input, Tensor weight, Tensor? bias, Conv2dSpec spec, Tensor? residual = null) =>
        Count(nameof(Conv2d), device.Conv2d(input, weight, bias, spec, residual));

    public Tensor NormConv2d(Tensor input, GroupNormSpec norm, Tensor weight, Tensor? bias, Conv2dSpec spec, Tensor? residual = null) =>
        Count(nameof(NormConv2d), device.NormConv2d(input, norm, weight, bias, spec, residual));

    public Tensor PrepareConvWeight(Tensor weight, Conv2dSpec spec) => Count(nameof(PrepareConvWeight), device.PrepareConvWeight(weight, spec));

    public ConvOutput Conv2dRegion(Tensor input, FoldedNorm? norm, Tensor weight, Tensor? bias, Conv2dSpec spec, Tensor? residual, ConvMoments moments) =>
        Count(nameof(Conv2dRegion), device.Conv2dRegion(input, norm, weight, bias, spec, residual, moments));

    public Tensor GroupNorm(Tensor input, Tensor gamma, Tensor beta, int groups, float eps, bool fuseSilu) =>
        Count(nameof(GroupNorm), device.GroupNorm(input, gamma, beta, groups, eps, fuseSilu));

    public Tensor GroupNormStatistics(Tensor input, int groups) => Count(nameof(GroupNormStatistics), device.GroupNormStatistics(input, groups));

    public Tensor ChannelAffine(Tensor input, Tensor scale, Tensor shift, bool fuseSilu) =>
        Count(nameof(ChannelAffine), device.ChannelAffine(input, scale, shift, fuseSilu));

    public Tensor RmsNorm(Tensor input, Tensor gamma, bool fuseSilu) => Count(nameof(RmsNorm), device.RmsNorm(input, gamma, fuseSilu));
    public Tensor Attention(Tensor q, Tensor k, Tensor v, float scale) => Count(nameof(Attention), device.Attention(q, k, v, scale));
    public AttentionChunk AttentionOverKeys(Tensor q, Tensor k, Tensor v, float scale) =>
        Count(nameof(AttentionOverKeys), device.AttentionOverKeys(q, k, v, scale));
    public Tensor Unary(UnaryOp op, Tensor input) => Count(nameof(Unary), device.Unary(op, input));
    public Tensor Add(Tensor a, Tensor b) => Count(nameof(Add), device.Add(a, b));
    public Tensor ScaleShift(Tensor input, float scale, float shift) => Count(nameof(ScaleShift), device.ScaleShift(input, scale, shift));
    public long CountNonFinite(Tensor input) => Count(nameof(CountNonFinite), device.CountNonFinite(input));
    public Tensor SpaceToDepth(Tensor current, Tensor? previous, PixelShuffleSpec spec) => Count(nameof(SpaceToDepth), device.SpaceToDepth(current, previous, spec));
    public Tensor DepthToSpace(Tensor input, PixelShuffleSpec spec, int frame) => Count(nameof(DepthToSpace), device.DepthToSpace(input, spec, frame));
    public Tensor SliceChannels(Tensor input, int start, int count) => Count(nameof(SliceChannels), device.SliceChannels(input, start, count));

    public Tensor ImageToTensor(ReadOnlySpan<byte> rgb, int batch, int height, int width, float scale, float shift) =>
        Count(nameof(ImageToTensor), device.ImageToTensor(rgb, batch, height, width, scale, shift));

    public long TensorToImage(Tensor input, Span<byte> rgb, float scale, float shift) =>
        Count(nameof(TensorToImage), device.TensorToImage(input, rgb, scale, shift));

    public void Dispose()
    {
    }
}
