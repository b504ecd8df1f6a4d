using NativeVae.Backends;
using NativeVae.Models;
using NativeVae.Core;

namespace NativeVae.Api;

/// <summary>
/// How one call splits its work: the mode (never <see cref="TilingMode.Auto"/>), the tile, when given, and for exact
/// tiling where its full-size activations live: in host memory while they fit the budget beside the tiles, else (on a
/// backend whose memory is host RAM) in a temporary file, so that memory is set by the tile and not the image.
/// </summary>
internal readonly record struct TilingPlan(TilingMode Mode, int? Tile, bool ActivationsInFile = false)
{
    /// <summary>Share of the device's memory that <see cref="TilingMode.Auto"/> plans to use.</summary>
    private const double UsableMemoryFraction = 0.8;

    /// <summary>Exact tiling's default output tile edge, in elements of each layer (on a device, the largest tile the budget allows).</summary>
    public const int DefaultExactTile = 256;

    /// <summary>
    /// The largest tile a device with memory of its own is planned with: strips of 2048^2 elements per channel, past
    /// which fewer strips save little more copy and launch overhead or halo work.
    /// </summary>
    public const int LargestDeviceExactTile = 2048;

    /// <summary>
    /// The smallest exact tile, given or chosen: each layer's tile then carries a halo of its own size or less, so a
    /// call costs a few times its untiled time (SD 256x256 decode on 2 cores: 3.7x at 32, 4.6x at 16), where 1-element
    /// tiles cost about 60x.
    /// </summary>
    public const int SmallestExactTile = 16;

    /// <summary>
    /// The caller's choice, with <see cref="TilingMode.Auto"/> resolved by <see cref="Auto"/>. An untiled or exact call
    /// whose dry-run need exceeds the budget is refused here, before any work, never by running out of memory.
    /// </summary>
    /// <param name="figures">the input's dry-run figures (cached by the caller per shape).</param>
    /// <exception cref="ArgumentException">the tile size is not positive (or, exact, below <see cref="SmallestExactTile"/>) or the mode is unknown.</exception>
    /// <exception cref="InsufficientMemoryException">the chosen mode needs more than the budget; the message gives both.</exception>
    /// <param name="smallestTile">The exact tile floor: <see cref="SmallestExactTile"/> (tests of tiling on tiny images go lower).</param>
    public static TilingPlan Choose(IVaeModel model, TilingMode mode, int? tile, long? memoryLimit, Func<AutoTilingFigures> figures,
        int smallestTile = SmallestExactTile)
    {
        RequireTile(mode, tile, smallestTile);
        if (mode is not (TilingMode.Auto or TilingMode.None or TilingMode.Exact or TilingMode.Blend))
            throw new ArgumentException($"tiling mode {(int)mode} is not one of None, Blend, Exact, Auto");
        var f = figures();
        long budget = Budget(model, memoryLimit);
        // Every mode keeps the whole output: a size whose output alone is over the budget cannot run at all.
        if (f.OutputBytes > budget)
            throw new InsufficientMemoryException(
                $"{f.Input}: the output alone needs {MiB(f.OutputBytes)} MiB, {MiB(budget)} MiB are available ({BudgetSource(model)}); " +
                "no tiling can fit it: use a smaller image or raise VaeOptions.MemoryLimitBytes");
        switch (mode)
        {
            case TilingMode.Auto:
                return Auto(model, f, budget, smallestTile);
            case TilingMode.None:
                RequireWithin(f.UntiledBytes, budget, model, $"untiled, {f.Input}", "use TilingMode.Exact or Auto");
                return new TilingPlan(mode, tile);
            case TilingMode.Exact:
            {
                // A device without a tile given gets the largest its budget allows; the CPU, the default.
                int? chosen = tile ?? (model.Backend.Capabilities.MemoryIsHost ? null : LargestFittingTile(model, f, budget, smallestTile));
                int exactTile = chosen ?? DefaultExactTile;
                long tileBytes = ExactBytes(model, f, exactTile);
                RequireWithin(tileBytes, budget, model, $"exact-tiled with tile {exactTile}, {f.Input}", "use a smaller tile or Auto");
                return new TilingPlan(mode, chosen, SpillsToFile(model, f, tileBytes, budget));
            }
            default:
                return new TilingPlan(mode, tile);
        }
    }

    private static void RequireWithin(long need, long budget, IVaeModel model, string what, string advice)
    {
        if (need > budget)
            throw new InsufficientMemoryException(
                $"{what}: the call needs {MiB(need)} MiB of activations, {MiB(budget)} MiB are available ({BudgetSource(model)}); {advice}");
    }

    private static long MiB(long bytes) => Math.Max(0, bytes) / (1024 * 1024);

    private static string BudgetSource(IVaeModel model) => model.Backend.Capabilities.MemoryIsHost
        ? $"VaeOptions.MemoryLimitBytes, else {UsableMemoryFraction:P0} of the host memory free now"
        : $"VaeOptions.MemoryLimitBytes, else {UsableMemoryFraction:P0} of the device's free memory, at most of its capacity less what it holds";

    /// <summary>
    /// Bytes a call's activations may take: the caller's limit; else a share of the memory free now (with the buffers
    /// the backend's pool holds for reuse) where the backend can tell, and on a device no more than a share of its
    /// capacity less what this process holds.
    /// </summary>
    public static long Budget(IVaeModel model, long? memoryLimit)
    {
        if (memoryLimit is long limit) return limit;
        var backend = model.Backend;
        var capabilities = backend.Capabilities;
        // The pool's idle buffers count as used to the system, but this call reuses them.
        long byFree = capabilities.FreeMemoryBytes is long free
            ? (long)((free + backend.Memory.PooledBytes) * UsableMemoryFraction)
            : long.MaxValue;
        if (capabilities.MemoryIsHost) return byFree == long.MaxValue ? (long)(capabilities.MemoryCapacityBytes * UsableMemoryFraction) : byFree;
        long byCapacity = (long)(capabilities.MemoryCapacityBytes * UsableMemoryFraction) - backend.Memory.LiveBytes;
        return Math.Min(byCapacity, byFree);
    }

    /// <summary>
    /// Exact tiling's need with <paramref name="tile"/>: the device's tiles. On a host-memory backend the activations
    /// live in a file (<see cref="Tiling.ActivationStore"/>, page cache rather than the process's memory), so what
    /// stays resident is the device's tiles, the host staging (one operand of a step at a time: a window, an output
    /// tile or one attention tensor, at most half the step), the full-width row bands the store is read and written
    /// through, and the output.
    /// </summary>
    private static long ExactBytes(IVaeModel model, AutoTilingFigures figures, int tile)
    {
        long step = figures.TileBytes(tile);
        return model.Backend.Capabilities.MemoryIsHost ? step + step / 2 + figures.HostBandBytes(tile) + figures.OutputBytes : step;
    }

    /// <summary>
    /// Untiled when the dry-run peak of activations fits the budget, else exact tiling with the largest power-of-two
    /// tile whose worst step fits. Only when untiled does not fit, so never an exact tiling that needs more than
    /// untiled; on a host-memory backend its activations go to the file store, so it fits there as on a device.
    /// </summary>
    /// <exception cref="InsufficientMemoryException">nothing fits; the message gives the need and the budget.</exception>
    /// <summary>
    /// Whether exact tiling's activations go to the file store: on a backend whose memory is host RAM, when they do not
    /// fit the budget beside the tiles (in memory they cost nothing but their bytes; through the file, the page cache's
    /// writeback). A GPU's host holds them in memory.
    /// </summary>
    private static bool SpillsToFile(IVaeModel model, AutoTilingFigures figures, long tileBytes, long budget) =>
        model.Backend.Capabilities.MemoryIsHost && figures.StoreBytes + tileBytes > budget;

    private static TilingPlan Auto(IVaeModel model, AutoTilingFigures figures, long budget, int smallestTile)
    {
        if (figures.UntiledBytes <= budget) return new TilingPlan(TilingMode.None, null);
        if (LargestFittingTile(model, figures, budget, smallestTile) is int tile)
            return new TilingPlan(TilingMode.Exact, tile, SpillsToFile(model, figures, ExactBytes(model, figures, tile), budget));
        // The message names the smallest tile tried (a power of two), not the floor it halved down to.
        int smallestTried = LargestTile(model);
        while (smallestTried / 2 >= smallestTile) smallestTried /= 2;
        throw new InsufficientMemoryException(
            $"{figures.Input}: even {smallestTried}-element exact tiles need {ExactBytes(model, figures, smallestTried)} bytes of activations, " +
            $"more than the {budget} bytes available; raise MemoryLimitBytes");
    }

    /// <summary>
    /// The largest power-of-two exact tile, from <see cref="LargestTile"/> down to <paramref name="smallestTile"/>, whose
    /// worst step fits the budget (on a device, a share of its free memory); null when none does.
    /// </summary>
    private static int? LargestFittingTile(IVaeModel model, AutoTilingFigures figures, long budget, int smallestTile)
    {
        for (int tile = LargestTile(model); tile >= smallestTile; tile /= 2)
            if (ExactBytes(model, figures, tile) <= budget) return tile;
        return null;
    }

    /// <summary>
    /// Where the search for an exact tile starts: on a device with memory of its own, strips as large as its budget
    /// allows (fewer strips cross the bus, with less halo); on the CPU, <see cref="DefaultExactTile"/>, whose strips'
    /// working set stays near the caches.
    /// </summary>
    private static int LargestTile(IVaeModel model) =>
        model.Backend.Capabilities.MemoryIsHost ? DefaultExactTile : LargestDeviceExactTile;

    /// <summary>The one dry run of an input shape on one model's backend, which planning, progress and the benchmark read.</summary>
    public static AutoTilingFigures Measure(IVaeModel model, TensorShape input, bool encode)
    {
        using var dry = new DryRunBackend
        {
            FusesNormIntoConv = model.Backend.Capabilities.FusesNormIntoConv, FusesConvRelu = model.Backend.Capabilities.FusesConvRelu,
            StorageDType = model.Backend.StorageDType,
        };
        long outputBytes;
        int blocks = 0;
        using (var x = dry.Allocate(input))
        using (var y = encode ? model.Encode(dry, x, (_, _) => blocks++) : model.Decode(dry, x, (_, _) => blocks++))
            outputBytes = y.Shape.ElementCount * sizeof(float);
        return new AutoTilingFigures(input, dry.PeakBytes, dry.LargestAttention, model.Backend.Capabilities.ChunksAttention,
            dry.Convolutions.ToArray(), outputBytes, dry.Flops, blocks,
            Tiling.RegionPool.Replay(dry.Allocations));
    }

    /// <summary>Refuses a tile size that is not positive, or (exact) below <paramref name="smallestTile"/>.</summary>
    public static void RequireTile(TilingMode mode, int? tile, int smallestTile)
    {
        if (tile is <= 0) throw new ArgumentException($"tile size {tile} must be positive");
        if (mode == TilingMode.Exact && tile < smallestTile)
            throw new ArgumentException(
                $"tile size {tile} is below exact tiling's smallest tile of {smallestTile}: smaller tiles cost many times the untiled time");
    }

    /// <summary>
    /// Latent frames of a video's dry run: the first skips the temporal layers, and the histories of the deepest
    /// temporal level fill over the next two; from the fourth on, every latent frame does the same work.
    /// </summary>
    private const int VideoDryRunLatentFrames = 4;

    /// <summary>
    /// Video's tiling: exact tiles when asked for, or (auto) when the untiled pass's activations and causal histories
    /// would not fit the budget; else untiled. Blend is refused before this.
    /// </summary>
    public static TilingMode ChooseVideo(IVaeModel model, TilingMode mode, long? memoryLimit, Func<VideoFigures> figures) =>
        mode != TilingMode.Auto ? mode
        : figures().UntiledBytes > Budget(model, memoryLimit) ? TilingMode.Exact : TilingMode.None;

    /// <summary>
    /// A video pass of <paramref name="frame"/>-sized frames: the most bytes it keeps at once (every layer's frame and
    /// causal history), untiled and through exact tiling's allocator, and the work of each of its latent frames. A dry
    /// run of a few latent frames: a longer pass keeps no more, and each later latent frame costs what the last does.
    /// </summary>
    public static VideoFigures MeasureVideo(IVideoVaeModel model, TensorShape frame, bool encode)
    {
        using var dry = new DryRunBackend
        {
            FusesNormIntoConv = model.Backend.Capabilities.FusesNormIntoConv, FusesConvRelu = model.Backend.Capabilities.FusesConvRelu,
            StorageDType = model.Backend.StorageDType,
        };
        // The FLOPs done before each input frame is asked for: latent frame k starts at input frame k (decode), or at
        // the first frame of its chunk (encode).
        var flopsBefore = new List<long>();
        Tensor? current = null;
        Tensor Next(int t)
        {
            flopsBefore.Add(dry.Flops);
            current?.Dispose();
            return current = dry.Allocate(frame);
        }
        try
        {
            if (encode) model.EncodeVideo(dry, model.DecodedFrames(VideoDryRunLatentFrames), Next, y => y.Dispose());
            else model.DecodeVideo(dry, VideoDryRunLatentFrames, Next, y => y.Dispose());
        }
        finally
        {
            current?.Dispose();
        }
        long StartOf(int latentFrame) => latentFrame == VideoDryRunLatentFrames ? dry.Flops
            : flopsBefore[encode ? model.DecodedFrames(latentFrame) : latentFrame];
        var frameFlops = Enumerable.Range(0, VideoDryRunLatentFrames).Select(k => StartOf(k + 1) - StartOf(k)).ToArray();
        return new VideoFigures(dry.PeakBytes, Tiling.RegionPool.Replay(dry.Allocations), frameFlops);
    }

    /// <summary>Names calls alike for the backend's memory plan (<see cref="IBackend.BeginCall"/>).</summary>
    public string CallKey(bool encode, TensorShape input) => $"{(encode ? "encode" : "decode")} {input} {Mode} {Tile}";
}

/// <summary>
/// A video pass's dry-run figures for one frame shape: its untiled peak, exact tiling's store, and the FLOPs of each of
/// its first latent frames, the last of which every later one repeats.
/// </summary>
internal sealed record VideoFigures(long UntiledBytes, long StoreBytes, IReadOnlyList<long> FrameFlops)
{
    /// <summary>The FLOPs of a pass of <paramref name="latentFrames"/> latent frames.</summary>
    public long Flops(int latentFrames)
    {
        long flops = 0;
        for (int k = 0; k < Math.Min(latentFrames, FrameFlops.Count - 1); k++) flops += FrameFlops[k];
        return flops + Math.Max(0, latentFrames - (FrameFlops.Count - 1)) * FrameFlops[^1];
    }
}

/// <summary>
/// A dry run's figures for one input shape: the untiled activation peak, the largest attention, every convolution,
/// the FLOPs, the observed blocks (progress totals) and exact tiling's store. The same for every call of that shape, so
/// a pipeline keeps them for its planner, estimates, progress and the benchmark.
/// </summary>
internal sealed record AutoTilingFigures(TensorShape Input, long UntiledBytes, DryRunBackend.AttentionRecord? Attention,
    bool ChunksAttention, IReadOnlyList<DryRunBackend.Conv2dRecord> Convolutions, long OutputBytes, long Flops, int Blocks,
    long StoreBytes)
{
    /// <summary>
    /// Exact tiling's worst step with <paramref name="tile"/>: a convolution's tile with its halo, or the attention
    /// (whole, or a strip of queries against a strip of keys where the backend chunks it).
    /// </summary>
    public long TileBytes(int tile) => Math.Max(Attention?.StepBytes(tile, ChunksAttention) ?? 0,
        Convolutions.Count == 0 ? 0 : Convolutions.Max(c => c.TileBytes(tile)));

    /// <summary>The widest convolution's host row bands with <paramref name="tile"/> (exact tiling through the store).</summary>
    public long HostBandBytes(int tile) => Convolutions.Count == 0 ? 0 : Convolutions.Max(c => c.HostBandBytes(tile));
}
