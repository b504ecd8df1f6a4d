using NativeVae.Core;

namespace NativeVae.Backends;

/// <summary>
/// A backend that computes nothing: tensors carry shapes only. Running a model on it gives, exactly and at no
/// cost, the floating-point work of a call and the peak bytes of live activations, as the real backends allocate
/// them (one output per op, freed when disposed). Used for benchmarks' GFLOP/s and for tiling decisions.
/// </summary>
internal sealed class DryRunBackend : IBackend
{
    private const long FlopsPerMultiplyAdd = 2;

    private long _liveBytes;

    /// <summary>Tensors made so far: the next one's number.</summary>
    private int _tensors;

    public string Name => "dry run";

    public BackendKind Kind => BackendKind.DryRun;

    public MemoryStats Memory => new(_liveBytes, 0, PeakBytes);

    /// <summary>Unbounded memory; fusion as <see cref="FusesNormIntoConv"/> says, to count like the planned-for backend.</summary>
    public BackendCapabilities Capabilities => new(FusesNormIntoConv, long.MaxValue, FusesConvRelu: FusesConvRelu);

    public long PeakBytes { get; private set; }

    /// <summary>
    /// Every allocation and free of the run, in order: (tensor number, bytes, freed). Replayed through an allocator, it
    /// gives the size a store that reuses freed regions reaches (an exact-tiled call allocates the same tensors).
    /// </summary>
    public List<(int Tensor, long Bytes, bool Freed)> Allocations { get; } = new();

    /// <summary>Every convolution run so far, in order (for tile planning).</summary>
    public List<Conv2dRecord> Convolutions { get; } = new();

    /// <summary>The attention call with the most bytes so far (null before any).</summary>
    public AttentionRecord? LargestAttention { get; private set; }

    /// <summary>Multiply-adds x 2 of every convolution and attention product so far.</summary>
    public long Flops { get; private set; }

    /// <summary>Clears the counters (live tensors stay counted).</summary>
    public void ResetCounters()
    {
        Flops = 0;
        PeakBytes = _liveBytes;
        Convolutions.Clear();
        LargestAttention = null;
    }

    public Tensor Allocate(TensorShape shape, DType dtype = DType.F32) => new ShapeTensor(this, shape, dtype);

    /// <summary>The storage of the backend this run stands for: op outputs are counted at its element size.</summary>
    public DType StorageDType { get; init; } = DType.F32;

    private Tensor Output(TensorShape shape) => Allocate(shape, ((IBackend)this).ActivationDType(shape));

    public Tensor Upload(ReadOnlySpan<float> data, TensorShape shape, DType dtype = DType.F32) => Allocate(shape, dtype);

    public void Download(Tensor tensor, Span<float> destination) => destination.Clear();

    public void Synchronize() { }

    public Tensor Conv2d(Tensor input, Tensor weight, Tensor? bias, Conv2dSpec spec, Tensor? residual = null)
    {
        var output = OpShapes.Conv2d(input, weight, bias, spec, residual);
        Flops += FlopsPerMultiplyAdd * output.ElementCount * (weight.ElementCount / weight.Shape[0]);
        Convolutions.Add(new Conv2dRecord(input.Shape.C, output.C, weight.Shape[2], spec, residual is not null, input.Shape.W, output.W, output.H));
        return Output(output);
    }

    /// <summary>
    /// Whether <see cref="NormConv2d"/> is counted as the fused op of a backend that never stores the normalised
    /// input (the CPU backend) rather than as GroupNorm then Conv2d (the default).
    /// </summary>
    public bool FusesNormIntoConv { get; init; }

    /// <summary>Whether a conv with <see cref="Conv2dSpec.Relu"/> is asked for (one output) rather than conv then ReLU, as the planned-for backend does.</summary>
    public bool FusesConvRelu { get; init; }

    public Tensor NormConv2d(Tensor input, GroupNormSpec norm, Tensor weight, Tensor? bias, Conv2dSpec spec, Tensor? residual = null)
    {
        OpShapes.GroupNorm(input, norm.Gamma, norm.Beta, norm.Groups);
        if (FusesNormIntoConv) return Conv2d(input, weight, bias, spec, residual);
        using var normed = GroupNorm(input, norm.Gamma, norm.Beta, norm.Groups, norm.Eps, norm.Silu);
        return Conv2d(normed, weight, bias, spec, residual);
    }

    public Tensor GroupNorm(Tensor input, Tensor gamma, Tensor beta, int groups, float eps, bool fuseSilu) =>
        Output(OpShapes.GroupNorm(input, gamma, beta, groups));

    public Tensor GroupNormStatistics(Tensor input, int groups) => Allocate(OpShapes.GroupNormStatistics(input, groups));

    public Tensor ChannelAffine(Tensor input, Tensor scale, Tensor shift, bool fuseSilu) =>
        Output(OpShapes.ChannelAffine(input, scale, shift));

    public Tensor RmsNorm(Tensor input, Tensor gamma, bool fuseSilu) => Output(OpShapes.RmsNorm(input, gamma));

    public Tensor Attention(Tensor q, Tensor k, Tensor v, float scale)
    {
        var shape = OpShapes.Attention(q, k, v);
        long tokens = (long)shape.H * shape.W;
        // Q^T K and P V: two [T x C] by [C x T]-sized products per batch item.
        Flops += 2 * FlopsPerMultiplyAdd * shape.N * tokens * tokens * shape.C;
        if (LargestAttention is not { } largest || q.ByteLength > largest.QueryBytes)
            LargestAttention = new AttentionRecord(q.Shape, q.DType.ByteSize());
        return Output(shape);
    }

    public Tensor Unary(UnaryOp op, Tensor input) => Output(input.Shape);

    public Tensor Add(Tensor a, Tensor b) => Output(OpShapes.SameShape(a, b, "add"));

    public Tensor ScaleShift(Tensor input, float scale, float shift) => Output(input.Shape);

    public long CountNonFinite(Tensor input) => 0;

    public Tensor SpaceToDepth(Tensor current, Tensor? previous, PixelShuffleSpec spec) => Output(OpShapes.SpaceToDepth(current, previous, spec));

    public Tensor DepthToSpace(Tensor input, PixelShuffleSpec spec, int frame) => Output(OpShapes.DepthToSpace(input, spec, frame));

    public Tensor SliceChannels(Tensor input, int start, int count) => Output(OpShapes.SliceChannels(input, start, count));

    public Tensor ImageToTensor(ReadOnlySpan<byte> rgb, int batch, int height, int width, float scale, float shift) =>
        Output(OpShapes.ImageToTensor(rgb.Length, batch, height, width));

    public long TensorToImage(Tensor input, Span<byte> rgb, float scale, float shift)
    {
        OpShapes.TensorToImage(input, rgb.Length);
        return 0;
    }

    public void Dispose() { }

    /// <summary>One convolution's channels and geometry.</summary>
    public readonly record struct Conv2dRecord(int InChannels, int OutChannels, int Kernel, Conv2dSpec Spec, bool HasResidual,
        int InputWidth, int OutputWidth, int OutputHeight)
    {
        /// <summary>
        /// Output rows of one exact-tiling strip of about tile x tile elements (as exact tiling cuts them: at least one
        /// row, at most the image).
        /// </summary>
        private long StripRows(int tile) => StripGeometry.Rows(OutputHeight, OutputWidth, tile);

        /// <summary>Rows and columns of a strip's input window, in the (upsampled) input's coordinates.</summary>
        private (long Rows, long Columns) Window(int tile) =>
            ((StripRows(tile) - 1) * Spec.Stride + Kernel, (long)InputWidth * (Spec.Upsample2x ? 2 : 1) + Spec.PadLeft + Spec.PadRight);

        /// <summary>
        /// fp32 bytes exact tiling keeps on the host for one strip of this conv: the input's rows it reads (a band), the
        /// upsampled window made from them, and the residual's and output's rows.
        /// </summary>
        public long HostBandBytes(int tile)
        {
            var (rows, columns) = Window(tile);
            long band = (rows / (Spec.Upsample2x ? 2 : 1) + 1) * InputWidth * InChannels;
            long upsampled = Spec.Upsample2x ? rows * columns * InChannels : 0;
            long outputs = StripRows(tile) * OutputWidth * OutChannels * (HasResidual ? 2 : 1);
            return sizeof(float) * (band + upsampled + outputs);
        }

        /// <summary>fp32 bytes one exact-tiling step of this conv holds on the device: its input window and output strip (and residual).</summary>
        public long TileBytes(int tile)
        {
            var (rows, columns) = Window(tile);
            long outputs = StripRows(tile) * OutputWidth * OutChannels * (HasResidual ? 2 : 1);
            return sizeof(float) * (rows * columns * InChannels + outputs);
        }
    }

    /// <summary>One attention call's queries (keys and values have their shape) and element size.</summary>
    public readonly record struct AttentionRecord(TensorShape Queries, int ElementBytes)
    {
        /// <summary>Its operands: q, k, v and the output.</summary>
        private const int Operands = 4;

        /// <summary>
        /// What one chunk holds beside a strip's q, k and v: its output, the kernel's packed keys and values, and the
        /// merge of the chunks before it (fp32).
        /// </summary>
        private const int ChunkOperands = 7;

        /// <summary>Bytes of the queries (and of each other operand).</summary>
        public long QueryBytes => Queries.ElementCount * ElementBytes;

        /// <summary>Bytes of the call run whole.</summary>
        public long WholeBytes => Operands * QueryBytes;

        /// <summary>
        /// Bytes of one step of exact tiling with <paramref name="tile"/>: the whole call, or where the backend runs
        /// attention over chunks of the keys, one strip of queries against one strip of keys.
        /// </summary>
        public long StepBytes(int tile, bool chunks)
        {
            if (!chunks) return WholeBytes;
            long stripTokens = (long)StripGeometry.Rows(Queries.H, Queries.W, tile) * Queries.W;
            return ChunkOperands * Queries.N * Queries.C * stripTokens * sizeof(float);
        }
    }

    private sealed class ShapeTensor : Tensor
    {
        private readonly DryRunBackend _owner;
        private readonly int _number;
        private bool _disposed;

        public ShapeTensor(DryRunBackend owner, TensorShape shape, DType dtype) : base(shape, dtype)
        {
            _owner = owner;
            _owner._liveBytes += ByteLength;
            _owner.PeakBytes = Math.Max(_owner.PeakBytes, _owner._liveBytes);
            _number = _owner._tensors++;
            _owner.Allocations.Add((_number, ByteLength, false));
        }

        public override bool IsDisposed => _disposed;

        public override void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            _owner._liveBytes -= ByteLength;
            _owner.Allocations.Add((_number, ByteLength, true));
        }
    }
}
