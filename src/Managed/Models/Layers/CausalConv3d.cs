using NativeVae.Core;

namespace NativeVae.Models.Layers;

/// <summary>
/// diffusers' <c>WanCausalConv3d</c> with a kernel 3 deep in time and 2 zero frames of padding in front, run one frame
/// at a time: output frame t is <c>conv(w[:, :, 2], x_t) + conv(w[:, :, 1], x_(t-1)) + conv(w[:, :, 0], x_(t-2)) +
/// bias</c>, three 2D convs chained through the residual input. A zero padding frame adds nothing, so its tap is
/// skipped, and a first frame (or an image) takes exactly the one conv that image mode runs. Weights:
/// <c>{prefix}.weight</c> is the last tap (with <c>{prefix}.bias</c>), <c>{prefix}.tap0|tap1.weight</c> the others
/// (<see cref="Models.QwenImage.WanWeightView"/>); an image-only model reads only the last.
/// </summary>
internal sealed class CausalConv3d
{
    private readonly Conv2d _current;
    private readonly Conv2d? _previous;
    private readonly Conv2d? _beforePrevious;

    public CausalConv3d(DeviceParameters p, string prefix, Conv2dSpec spec, bool frames)
    {
        _current = new Conv2d(p, prefix, spec);
        if (!frames) return;
        _previous = new Conv2d(p, prefix + WanTaps.Previous, spec, bias: false);
        _beforePrevious = new Conv2d(p, prefix + WanTaps.BeforePrevious, spec, bias: false);
    }

    /// <summary>
    /// The conv of frame <paramref name="x"/> (+ <paramref name="residual"/>) given the frames before it in
    /// <paramref name="state"/>, which then keeps a copy of <paramref name="x"/>. Without a state: an image, the
    /// current tap alone. The caller keeps <paramref name="x"/> and <paramref name="residual"/>.
    /// </summary>
    public Tensor Forward(IBackend ops, Tensor x, CausalFrames? state, Tensor? residual = null)
    {
        if (state is null) return _current.Forward(ops, x, residual);
        var history = state.Of(this);
        var y = Run(ops, x, history, residual);
        history.Push(ops, x);
        return y;
    }

    /// <summary>The current tap on <paramref name="x"/> plus the earlier taps on the history, with the residual.</summary>
    private Tensor Run(IBackend ops, Tensor x, CausalFrames.History history, Tensor? residual)
    {
        var sum = Accumulate(ops, history, residual);
        try
        {
            return _current.Forward(ops, x, sum);
        }
        finally
        {
            if (!ReferenceEquals(sum, residual)) sum?.Dispose();
        }
    }

    /// <summary>
    /// <see cref="Forward"/> of a frame the caller gives up: with a state, <paramref name="x"/> itself becomes the
    /// newest history frame (no copy); without, it is disposed after the conv. Either way the caller is done with it.
    /// </summary>
    public Tensor ForwardConsuming(IBackend ops, Tensor x, CausalFrames? state, Tensor? residual = null)
    {
        if (state is null)
        {
            using (x) return _current.Forward(ops, x, residual);
        }
        Tensor y;
        try
        {
            y = Run(ops, x, state.Of(this), residual);
        }
        catch
        {
            x.Dispose();
            throw;
        }
        state.Of(this).Adopt(x);
        return y;
    }

    /// <summary>
    /// The conv over the two frames in <paramref name="state"/> and <paramref name="x"/> (consumed) with no padding:
    /// the stride-2 temporal downsample's step, taken on every second frame (<see cref="Models.QwenImage.QwenImageResample"/>).
    /// </summary>
    public Tensor ForwardFullConsuming(IBackend ops, Tensor x, CausalFrames state)
    {
        var history = state.Of(this);
        if (history.Older is null || history.Newer is null)
        {
            x.Dispose();
            throw new InvalidOperationException("a temporal downsample step needs the two frames before it");
        }
        return ForwardConsuming(ops, x, state);
    }

    /// <summary>Keeps a copy of <paramref name="x"/> as this conv's newest input without running it.</summary>
    public void Remember(IBackend ops, Tensor x, CausalFrames state) => state.Of(this).Push(ops, x);

    /// <summary>Keeps <paramref name="x"/> itself (consumed) as this conv's newest input without running it.</summary>
    public void Keep(Tensor x, CausalFrames state) => state.Of(this).Adopt(x);

    private Tensor? Accumulate(IBackend ops, CausalFrames.History history, Tensor? residual)
    {
        Tensor? sum = residual;
        foreach (var (frame, tap) in new[] { (history.Older, _beforePrevious), (history.Newer, _previous) })
        {
            if (frame is null) continue;
            var next = tap!.Forward(ops, frame, sum);
            if (!ReferenceEquals(sum, residual)) sum?.Dispose();
            sum = next;
        }
        return sum;
    }
}

/// <summary>The names under which <see cref="CausalConv3d"/> finds its earlier temporal taps.</summary>
internal static class WanTaps
{
    /// <summary><c>weight[:, :, 1]</c>, applied to the previous frame.</summary>
    public const string Previous = ".tap1";

    /// <summary><c>weight[:, :, 0]</c>, applied to the frame two back.</summary>
    public const string BeforePrevious = ".tap0";
}
