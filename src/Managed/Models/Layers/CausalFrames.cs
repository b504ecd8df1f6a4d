using NativeVae.Core;

namespace NativeVae.Models.Layers;

/// <summary>
/// The state of one causal video pass (diffusers' <c>feat_cache</c>): for each causal layer, keyed by the layer, the
/// last two frames it was given and how many it has seen. A call creates one, passes it to every frame, and disposes
/// it at the end; the frames it holds are its own copies.
/// </summary>
internal sealed class CausalFrames : IDisposable
{
    /// <summary>diffusers' CACHE_T: the frames a causal 3x3x3 conv sees besides the current one.</summary>
    public const int HistoryFrames = 2;

    private readonly Dictionary<object, History> _histories = new(ReferenceEqualityComparer.Instance);

    /// <summary>The history of <paramref name="layer"/>, empty before its first frame.</summary>
    public History Of(object layer)
    {
        if (!_histories.TryGetValue(layer, out var history)) _histories[layer] = history = new History();
        return history;
    }

    /// <summary>Bytes of the frames held.</summary>
    public long Bytes => _histories.Values.Sum(h => h.Bytes);

    public void Dispose()
    {
        foreach (var history in _histories.Values) history.Dispose();
        _histories.Clear();
    }

    /// <summary>One layer's last two inputs (null before there were any: the zero frames of causal padding).</summary>
    internal sealed class History : IDisposable
    {
        /// <summary>The input two frames back.</summary>
        public Tensor? Older { get; private set; }

        /// <summary>The previous input.</summary>
        public Tensor? Newer { get; private set; }

        /// <summary>Frames this layer has been given so far.</summary>
        public int Seen { get; private set; }

        public long Bytes => (Older?.ByteLength ?? 0) + (Newer?.ByteLength ?? 0);

        /// <summary>Keeps a copy of <paramref name="frame"/> as the newest input (the caller keeps its own).</summary>
        public void Push(IBackend ops, Tensor frame) => Adopt(ops.SliceChannels(frame, 0, frame.Shape.C));

        /// <summary>Keeps <paramref name="frame"/> itself as the newest input: the history owns it from now on.</summary>
        public void Adopt(Tensor frame)
        {
            Older?.Dispose();
            Older = Newer;
            Newer = frame;
            Seen++;
        }

        /// <summary>Counts a frame that is not kept: the temporal upsample's first, whose history stays zero.</summary>
        public void Skip() => Seen++;

        public void Dispose()
        {
            Older?.Dispose();
            Newer?.Dispose();
            Older = Newer = null;
        }
    }
}
