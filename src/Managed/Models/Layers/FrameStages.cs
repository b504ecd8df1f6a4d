using NativeVae.Core;

namespace NativeVae.Models.Layers;

/// <summary>
/// One network stage run on a frame: consumes <paramref name="x"/> and returns the frames it makes of it, one for most
/// layers, none or two where a temporal resample changes the frame rate.
/// </summary>
internal delegate IReadOnlyList<Tensor> FrameStage(IBackend ops, Tensor x, CausalFrames? state);

/// <summary>
/// A network as a list of stages through which frames are pushed one at a time, each frame a stage makes going on
/// through the rest before the next: a video pass holds one frame per stage beside the causal histories, whatever its
/// length. An image is one frame without a state. The first stage reads the caller's frame without consuming it.
/// </summary>
internal sealed class FrameStages
{
    private readonly string _entryName;
    private readonly Func<IBackend, Tensor, CausalFrames?, Tensor> _entry;
    private readonly List<(string? Name, FrameStage Run)> _stages = [];

    /// <param name="entryName">reported to the observer with the entry stage's output.</param>
    /// <param name="entry">the first stage (conv_in): reads the caller's frame, which stays the caller's.</param>
    public FrameStages(string entryName, Func<IBackend, Tensor, CausalFrames?, Tensor> entry)
    {
        _entryName = entryName;
        _entry = entry;
    }

    /// <param name="name">reported to the observer with each frame the stage makes; null: not reported.</param>
    public void Add(string? name, FrameStage run) => _stages.Add((name, run));

    /// <summary>A stage that makes one frame of each.</summary>
    public void Add(string? name, Func<IBackend, Tensor, CausalFrames?, Tensor> run) =>
        Add(name, (ops, x, state) => [run(ops, x, state)]);

    /// <summary>
    /// Pushes the caller's frame <paramref name="x"/> (kept by the caller) through every stage; <paramref name="emit"/>
    /// takes each frame out of the last.
    /// </summary>
    public void Push(IBackend ops, Tensor x, CausalFrames? state, BlockObserver? observe, Action<Tensor> emit)
    {
        var h = _entry(ops, x, state);
        try
        {
            observe?.Invoke(_entryName, h);
        }
        catch
        {
            h.Dispose();
            throw;
        }
        Push(0, ops, h, state, observe, emit);
    }

    /// <summary>An image: one frame in, the one frame out.</summary>
    public Tensor Single(IBackend ops, Tensor x, BlockObserver? observe)
    {
        Tensor? result = null;
        Push(ops, x, state: null, observe, y =>
        {
            if (result is not null) { y.Dispose(); throw new InvalidOperationException("an image made more than one frame"); }
            result = y;
        });
        return result ?? throw new InvalidOperationException("an image made no frame");
    }

    private void Push(int stage, IBackend ops, Tensor x, CausalFrames? state, BlockObserver? observe, Action<Tensor> emit)
    {
        if (stage == _stages.Count)
        {
            emit(x);
            return;
        }
        var (name, run) = _stages[stage];
        var outputs = run(ops, x, state);
        for (int i = 0; i < outputs.Count; i++)
        {
            try
            {
                if (name is not null) observe?.Invoke(name, outputs[i]);
                Push(stage + 1, ops, outputs[i], state, observe, emit);
            }
            catch
            {
                outputs[i].Dispose();
                for (int j = i + 1; j < outputs.Count; j++) outputs[j].Dispose();
                throw;
            }
        }
    }
}
