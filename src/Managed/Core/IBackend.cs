
namespace NativeVae.Core;

/// <summary>
/// The op interface every model calls: buffers, copies, and the handful of ops a VAE needs.
/// One implementation per backend (ILGPU now; a SIMD CPU backend can sit beside it without touching models).
/// <para>
/// Ops return a fresh tensor from the backend's pool; the caller disposes it (which returns the buffer).
/// Inputs are never modified. All feature maps are <c>[N, C, H, W]</c>, row-major, contiguous.
/// An op a backend cannot do for a dtype throws <see cref="NotSupportedException"/> naming the op and dtype:
/// there is no silent fallback.
/// </para>
/// </summary>
internal interface IBackend : IDisposable
{
    /// <summary>Human-readable name of the backend and its device, e.g. "ILGPU CUDA (NVIDIA H100)".</summary>
    string Name { get; }

    /// <summary>Which device family runs the ops.</summary>
    BackendKind Kind { get; }

    /// <summary>What the backend does beyond this contract (fusion, memory capacity, statistics).</summary>
    BackendCapabilities Capabilities { get; }

    /// <summary>Bytes currently held by live tensors and the pool, and the peak since creation.</summary>
    MemoryStats Memory { get; }

    /// <summary>
    /// Frees what the backend keeps for reuse (pooled buffers, call plans) and restarts <see cref="Memory"/>'s peak
    /// at the live bytes, so that the next call's peak is its own. A backend that keeps nothing does nothing.
    /// </summary>
    void ResetPeakMemory() { }

    /// <summary>Bytes of call plans kept for repeated calls (counted live in <see cref="Memory"/>); freed by <see cref="ResetPeakMemory"/>.</summary>
    long PlannedBytes => 0;

    /// <summary>
    /// How the backend stores activations and weights (F32 unless it was made for 16-bit storage): ops write their
    /// outputs in it, and models upload weights and inputs in it (per-channel vectors, which kernels read as fp32,
    /// stay F32).
    /// </summary>
    DType StorageDType => DType.F32;

    /// <summary>
    /// How an activation of <paramref name="shape"/> is stored: <see cref="StorageDType"/>, except image tensors
    /// [N, 3, H, W] (the encoder's input, the decoder's output) and their 2x2 patchified form [N, 12, H/2, W/2] (Wan
    /// 2.2's), which stay F32 so that 16-bit storage never quantises pixels: bf16's step near +-1 is a whole 8-bit
    /// level. They have 3 or 12 channels against the model's 64-1024.
    /// </summary>
    DType ActivationDType(TensorShape shape) =>
        StorageDType == DType.F32 || (shape.Rank == 4 && shape.C is ImageChannels or PatchedImageChannels) ? DType.F32 : StorageDType;

    /// <summary>Channels of an image tensor.</summary>
    const int ImageChannels = 3;

    /// <summary>Channels of an image tensor patchified 2x2.</summary>
    const int PatchedImageChannels = 4 * ImageChannels;

    /// <summary>A tensor with unspecified contents, from the pool when a buffer of that size is free.</summary>
    Tensor Allocate(TensorShape shape, DType dtype = DType.F32);

    /// <summary>Copies host fp32 data into a new tensor, converting to <paramref name="dtype"/> storage.</summary>
    Tensor Upload(ReadOnlySpan<float> data, TensorShape shape, DType dtype = DType.F32);

    /// <summary>Copies a tensor to host fp32 memory (waits for pending work).</summary>
    void Download(Tensor tensor, Span<float> destination);

    /// <summary>Waits until all submitted work has finished.</summary>
    void Synchronize();

    /// <summary>
    /// Marks one model call (upload, ops, download), named by what makes calls alike (op and input shape); disposing
    /// the result ends it. A backend may plan a repeated call's memory from the previous one (the CPU backend does);
    /// tensors allocated in a call must be disposed before it ends.
    /// </summary>
    IDisposable BeginCall(string key) => NoCall.Instance;

    /// <summary>
    /// 2-D convolution. <paramref name="input"/> <c>[N, Cin, H, W]</c>, <paramref name="weight"/>
    /// <c>[Cout, Cin, K, K]</c>, <paramref name="bias"/> <c>[Cout]</c> or null; output
    /// <c>[N, Cout, Ho, Wo]</c> per <paramref name="spec"/>. When <paramref name="residual"/> is given
    /// (shape of the output) it is added after the bias: <c>y = conv(x) + b + residual</c>.
    /// </summary>
    Tensor Conv2d(Tensor input, Tensor weight, Tensor? bias, Conv2dSpec spec, Tensor? residual = null);

    /// <summary>
    /// <c>conv(silu?(group_norm(x)))</c> (+ bias, + residual): the GroupNorm (and SiLU) of <paramref name="norm"/>
    /// applied to the convolution's input, the same result as <see cref="GroupNorm"/> then <see cref="Conv2d"/>.
    /// A backend that can fuse them applies the normalisation as the convolution reads its input and never stores
    /// the normalised tensor (the VAE's largest activations at high resolution); the default runs the two ops.
    /// </summary>
    Tensor NormConv2d(Tensor input, GroupNormSpec norm, Tensor weight, Tensor? bias, Conv2dSpec spec, Tensor? residual = null)
    {
        using var normed = GroupNorm(input, norm.Gamma, norm.Beta, norm.Groups, norm.Eps, norm.Silu);
        return Conv2d(normed, weight, bias, spec, residual);
    }

    /// <summary>
    /// A convolution weight <c>[Cout, Cin, k, k]</c> prepared once, at load, for convolutions of <paramref name="spec"/>:
    /// the backend's own representation (the CPU packs a direct-path weight for its micro-kernel), as an opaque tensor
    /// of the same shape that <see cref="Conv2d"/>, <see cref="NormConv2d"/> and <see cref="Conv2dRegion"/> take in the
    /// weight's place and decorators pass through unchanged. It replaces <paramref name="weight"/>: a backend that
    /// makes a new tensor disposes the old one. The default keeps the weight as it is.
    /// </summary>
    Tensor PrepareConvWeight(Tensor weight, Conv2dSpec spec) => weight;

    /// <summary>
    /// One region of a convolution layer (a tile's input window, or the whole tensor), with its fusions explicit:
    /// <c>y = conv(f(x)) (+ bias, + residual)</c> where f is <paramref name="norm"/>'s per-channel affine (a GroupNorm
    /// whose statistics were gathered elsewhere, then SiLU) applied to the input's values, the padding staying zero;
    /// and the per-channel moments of y (bias and residual included) as an explicit result where
    /// <paramref name="moments"/> asks and the backend has them for less than a later statistics pass over the stored
    /// output would cost (null otherwise: the caller then measures them if a GroupNorm needs them). Exact tiling runs
    /// each conv layer as these calls: one read of the input and one write of the output, no stored normalised tensor.
    /// The default runs ChannelAffine, Conv2d and, for host moments, a statistics pass on the region, which is already
    /// on the device (<see cref="ConvRegions.Unfused"/>); a backend that gathers moments in its epilogue overrides it.
    /// </summary>
    ConvOutput Conv2dRegion(Tensor input, FoldedNorm? norm, Tensor weight, Tensor? bias, Conv2dSpec spec, Tensor? residual, ConvMoments moments) =>
        ConvRegions.Unfused(this, input, norm, weight, bias, spec, residual, moments);

    /// <summary>
    /// GroupNorm over <c>[N, C, H, W]</c> with <paramref name="groups"/> groups (dividing C), statistics in fp32,
    /// per-channel affine <paramref name="gamma"/>/<paramref name="beta"/> <c>[C]</c>, then SiLU when
    /// <paramref name="fuseSilu"/>.
    /// </summary>
    Tensor GroupNorm(Tensor input, Tensor gamma, Tensor beta, int groups, float eps, bool fuseSilu);

    /// <summary>
    /// Per-group statistics of <paramref name="input"/> <c>[N, C, H, W]</c>: an <c>[N, groups, 2]</c> tensor of
    /// (mean, M2) where M2 is the sum of squared deviations from that mean, both in fp32 from fp32 sums. Exact tiling
    /// merges these across tiles (Chan et al.'s parallel variance) to normalise a tensor that never sits whole on
    /// the device.
    /// </summary>
    Tensor GroupNormStatistics(Tensor input, int groups);

    /// <summary>
    /// <c>y[n, c] = x[n, c] * scale[n, c] + shift[n, c]</c> per channel (then SiLU when <paramref name="fuseSilu"/>),
    /// with <paramref name="scale"/> and <paramref name="shift"/> <c>[N, C]</c>: a GroupNorm whose statistics were
    /// computed elsewhere, folded with its affine.
    /// </summary>
    Tensor ChannelAffine(Tensor input, Tensor scale, Tensor shift, bool fuseSilu);

    /// <summary>
    /// The Wan / Qwen-Image VAE's channel RMS norm over <c>[N, C, H, W]</c>: each pixel's channel vector divided by
    /// its L2 norm (torch <c>F.normalize</c>, the norm floored at <see cref="RmsNormEps"/>), times <c>sqrt(C)</c> and
    /// <paramref name="gamma"/> <c>[C]</c>, then SiLU when <paramref name="fuseSilu"/>. No mean, no groups, no
    /// statistics across pixels: a tile needs nothing beyond itself.
    /// </summary>
    Tensor RmsNorm(Tensor input, Tensor gamma, bool fuseSilu);

    /// <summary>torch <c>F.normalize</c>'s default floor on the norm.</summary>
    const float RmsNormEps = 1e-12f;

    /// <summary>
    /// Single-head attention <c>softmax(scale * Q^T K) V</c> over N tokens, with Q, K, V and the output laid out
    /// channel-major <c>[B, C, N]</c> (that is an <c>[B, C, H, W]</c> feature map with N = H*W), so that the
    /// q/k/v projections are 1x1 convolutions. Online softmax in fp32; the N x N matrix is never stored.
    /// </summary>
    Tensor Attention(Tensor q, Tensor k, Tensor v, float scale);

    /// <summary>
    /// <see cref="Attention"/> of queries <paramref name="q"/> <c>[B, C, Hq, Wq]</c> against one chunk of the keys,
    /// <paramref name="k"/> and <paramref name="v"/> <c>[B, C, Hk, Wk]</c>: the output over those keys alone, and each
    /// query's log-sum-exp of its scaled scores over them, fp32 <c>[B, 1, 1, Hq * Wq]</c>, with which outputs over
    /// disjoint chunks merge into the whole attention exactly (<see cref="AttentionChunks.Merge"/>). So exact tiling
    /// runs attention in strips of queries and keys, its memory set by the tile. Where
    /// <see cref="BackendCapabilities.ChunksAttention"/>; others throw.
    /// </summary>
    AttentionChunk AttentionOverKeys(Tensor q, Tensor k, Tensor v, float scale) =>
        throw new NotSupportedException($"{Name}: attention over a chunk of the keys");

    /// <summary>Elementwise activation.</summary>
    Tensor Unary(UnaryOp op, Tensor input);

    /// <summary>Elementwise <c>a + b</c> (same shapes).</summary>
    Tensor Add(Tensor a, Tensor b);

    /// <summary>Elementwise <c>x * scale + shift</c>.</summary>
    Tensor ScaleShift(Tensor input, float scale, float shift);

    /// <summary>How many elements of <paramref name="input"/> are NaN or infinite (waits for pending work).</summary>
    long CountNonFinite(Tensor input);

    /// <summary>
    /// Channels <c>[start, start + count)</c> of <paramref name="input"/> <c>[N, C, H, W]</c> as a new
    /// <c>[N, count, H, W]</c> tensor, copied on the device (the mean half of an encoder's moments, say).
    /// </summary>
    Tensor SliceChannels(Tensor input, int start, int count);

    /// <summary>
    /// Space to depth with a mean over channel groups (<see cref="PixelShuffleSpec"/>): each block of pixels of the
    /// earlier frame <paramref name="previous"/> (with <c>Frames</c> 2; null: the zero frame in front of a video) and
    /// of <paramref name="current"/> <c>[N, C, H, W]</c> becomes one pixel of <c>C * Frames * Factor^2</c> channels,
    /// and each run of <c>Group</c> of those is averaged into one: <c>[N, C * Frames * Factor^2 / Group, H / Factor,
    /// W / Factor]</c>. Wan 2.2's patchify (group 1) and its down blocks' AvgDown3D shortcut.
    /// </summary>
    Tensor SpaceToDepth(Tensor current, Tensor? previous, PixelShuffleSpec spec);

    /// <summary>
    /// Depth to space of repeated channels (<see cref="PixelShuffleSpec"/>): each channel of <paramref name="input"/>
    /// repeated <c>Group</c> times, the result read as blocks of <c>Frames * Factor^2</c> channels, and frame
    /// <paramref name="frame"/> of each block laid out as <c>Factor</c> x <c>Factor</c> pixels: <c>[N, C * Group /
    /// (Frames * Factor^2), H * Factor, W * Factor]</c>. Wan 2.2's unpatchify and its up blocks' DupUp3D shortcut.
    /// </summary>
    Tensor DepthToSpace(Tensor input, PixelShuffleSpec spec, int frame);

    /// <summary>
    /// Interleaved 8-bit RGB images <c>[N, H, W, 3]</c> to an fp32 tensor <c>[N, 3, H, W]</c> with
    /// <c>value = pixel / 255 * scale + shift</c> (scale 2, shift -1 gives diffusers' [-1, 1]).
    /// </summary>
    Tensor ImageToTensor(ReadOnlySpan<byte> rgb, int batch, int height, int width, float scale, float shift);

    /// <summary>
    /// An fp32 tensor <c>[N, 3, H, W]</c> to interleaved 8-bit RGB <c>[N, H, W, 3]</c> with
    /// <c>pixel = round(clamp(value * scale + shift, 0, 1) * 255)</c> (scale 0.5, shift 0.5 for [-1, 1] images).
    /// Returns how many values were NaN or infinite (their pixels are unspecified): a device learns it in the same
    /// download as the pixels, with no pass or wait of its own.
    /// </summary>
    long TensorToImage(Tensor input, Span<byte> rgb, float scale, float shift);
}

/// <summary>Device family behind a backend.</summary>
internal enum BackendKind
{
    /// <summary>ILGPU kernels on an NVIDIA GPU.</summary>
    IlgpuCuda,

    /// <summary>ILGPU kernels on ILGPU's CPU accelerator (an emulator, for checking GPU kernels).</summary>
    IlgpuCpu,

    /// <summary>SIMD CPU kernels (src/Kernels/Cpu) on every core.</summary>
    Cpu,

    /// <summary>Shapes only: counts work and memory, computes nothing.</summary>
    DryRun,
}

/// <summary>The call scope of a backend that plans nothing.</summary>
internal sealed class NoCall : IDisposable
{
    public static readonly NoCall Instance = new();

    public void Dispose() { }
}

/// <summary>
/// A GroupNorm (then SiLU when <paramref name="Silu"/>) folded with its statistics into a per-channel affine:
/// <paramref name="Scale"/> and <paramref name="Shift"/> <c>[N, C]</c>, fp32 (see <see cref="ChannelMoments.Fold"/>).
/// </summary>
internal readonly record struct FoldedNorm(Tensor Scale, Tensor Shift, bool Silu);

/// <summary>Attention over a chunk of the keys: the output, and each query's log-sum-exp over that chunk.</summary>
internal readonly record struct AttentionChunk(Tensor Output, Tensor LogSumExp);

/// <summary>
/// A convolution region's output and, when asked for and the backend has them, the per-channel moments of it: on the
/// host (<paramref name="Moments"/>), or as a device tensor [N, C, 2] of (mean, M2) (<paramref name="Statistics"/>,
/// the caller's to dispose).
/// </summary>
internal readonly record struct ConvOutput(Tensor Output, ChannelMoments? Moments, Tensor? Statistics = null);

/// <summary>Which per-channel moments a convolution region returns beside its output (<see cref="IBackend.Conv2dRegion"/>).</summary>
internal enum ConvMoments
{
    /// <summary>On the host (<see cref="ConvOutput.Moments"/>): exact tiling merges them as the tiles come.</summary>
    Host,

    /// <summary>
    /// On the device (<see cref="ConvOutput.Statistics"/>), from the epilogue: exact tiling on a pinned space queues
    /// them out beside the tile with no wait.
    /// </summary>
    Device,
}

/// <summary>
/// A backend whose tensors live in host memory (the SIMD CPU backend): an fp32 tensor's elements can be read and
/// written in place, so exact tiling moves a strip between its activation space and the tensor the op reads with
/// one copy instead of three.
/// </summary>
internal interface IHostTensors
{
    /// <summary>The elements of <paramref name="tensor"/>, when it is an fp32 tensor of this backend; false otherwise.</summary>
    bool TryGetElements(Tensor tensor, out Span<float> elements);
}

/// <summary>
/// What a backend offers tests beyond the op contract: the kernels' side outputs.
/// </summary>
internal interface IBackendDiagnostics
{
    /// <summary>
    /// <see cref="IBackend.GroupNorm"/> that also returns the kernels' side output <paramref name="stats"/>
    /// <c>[N, groups, 2]</c> = (mean, rstd), so tests can check it; the caller disposes both tensors.
    /// </summary>
    Tensor GroupNormWithStatistics(Tensor input, Tensor gamma, Tensor beta, int groups, float eps, bool fuseSilu, out Tensor stats);
}

/// <summary>A GroupNorm's parameters (<c>gamma</c>, <c>beta</c> <c>[C]</c>), optionally followed by SiLU.</summary>
internal readonly record struct GroupNormSpec(Tensor Gamma, Tensor Beta, int Groups, float Eps, bool Silu);

/// <summary>Device memory accounting in bytes.</summary>
internal readonly record struct MemoryStats(long LiveBytes, long PooledBytes, long PeakBytes);
