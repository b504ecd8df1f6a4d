using NativeVae.Core;
using NativeVae.Kernels.Cpu;

namespace NativeVae.Backends.Cpu;

/// <summary>
/// The CPU backend's buffers: a <see cref="BufferPool{T}"/>, plus a plan for calls that repeat. Within a call
/// (<see cref="BeginCall"/>), every large buffer's size and lifetime is recorded; after the call, those lifetimes are
/// laid out in one arena (greedy by size: each buffer at the lowest offset free of every buffer alive at the same
/// time), and the next call with the same key gets its buffers at the planned offsets, in the recorded order. A
/// model call asks for the same buffers in the same order every time, so from the second call on its activations
/// take the arena's bytes (about the largest set alive at once, SD's 512x512 decode: 0.5 GiB) and no page is
/// faulted in again, where a pool keeps every size class it has seen (0.8 GiB there). A request that differs from
/// the plan ends the replay for that call: the rest comes from the pool, and the call is planned afresh.
/// Plans are kept per key (encode and decode alternate without re-planning) and share one arena, sized for the
/// largest; the first call of a new key frees it, as that call runs on the pool.
/// </summary>
internal sealed class CallMemoryPlan : IDisposable
{
    /// <summary>Buffers from this size up are planned; smaller ones always come from the pool.</summary>
    public const long PlannedFrom = 1L << 20;

    /// <summary>Planned buffers start on page boundaries.</summary>
    private const long OffsetAlignment = 4096;

    private readonly BufferPool<nint> _pool;
    private readonly List<Lifetime> _recorded = new();
    private readonly Dictionary<nint, int> _open = new();
    private string? _callKey;
    private int _clock;
    private bool _replaying;

    /// <summary>
    /// Calls with more large buffers than this are not planned (the layout is quadratic in them): exact tiling's
    /// per-tile windows, thousands per call, stay on the pool.
    /// </summary>
    private const int MaxPlannedBuffers = 1024;

    /// <summary>Keys planned at most; the oldest plan goes first.</summary>
    private const int MaxPlans = 8;

    private readonly Dictionary<string, Plan> _plans = new();
    private readonly Queue<string> _planOrder = new();
    private Lifetime[] _plan = [];
    private nint _arena;
    private long _arenaBytes;
    private bool _disabled;

    public CallMemoryPlan(BufferPool<nint> pool) => _pool = pool;

    /// <summary>Calls that ran every planned buffer from their plan (for tests and diagnostics).</summary>
    public int PlannedCalls { get; private set; }

    /// <summary>Frees the arena and forgets every plan (benchmarks measure one case at a time).</summary>
    public void Reset()
    {
        if (_callKey is not null || _disabled) return;
        FreeArena();
        _plans.Clear();
        _planOrder.Clear();
    }

    /// <summary>Bytes of the arena now held (counted in the pool's statistics as live).</summary>
    public long ArenaBytes => _arenaBytes;

    /// <summary>
    /// Starts a call named <paramref name="key"/> (same key, same sequence of buffers expected); disposing the
    /// result ends it. Calls do not nest: an inner call runs inside the outer one.
    /// </summary>
    public IDisposable BeginCall(string key)
    {
        if (_callKey is not null || _disabled) return NoCall.Instance;
        _callKey = key;
        _clock = 0;
        _recorded.Clear();
        _open.Clear();
        if (!_plans.TryGetValue(key, out var plan))
        {
            _replaying = false;
            _plan = [];
            FreeArena();
        }
        else
        {
            _replaying = true;
            _plan = plan.Buffers;
            if (_arenaBytes < plan.Bytes)
            {
                FreeArena();
                _pool.Trim(); // the buffers of the recorded calls are idle now: the arena replaces them
                long bytes = _plans.Values.Max(p => p.Bytes);
                _arena = HostMemory.Allocate(bytes);
                _arenaBytes = bytes;
                _pool.TrackExternal(_arenaBytes);
            }
        }
        return new Call(this);
    }

    public (nint Buffer, long Capacity) Rent(long bytes)
    {
        if (_callKey is null || bytes < PlannedFrom) return _pool.Rent(bytes);
        int index = _recorded.Count;
        nint buffer;
        long capacity;
        if (_replaying && index < _plan.Length && _plan[index].Bytes == bytes)
        {
            buffer = _arena + (nint)_plan[index].Offset;
            capacity = bytes;
        }
        else
        {
            _replaying = false;
            (buffer, capacity) = _pool.Rent(bytes);
        }
        _recorded.Add(new Lifetime(bytes, _clock++, int.MaxValue, 0));
        _open[buffer] = index;
        return (buffer, capacity);
    }

    public void Return(nint buffer, long capacity)
    {
        if (_open.Remove(buffer, out int index))
            _recorded[index] = _recorded[index] with { End = _clock++ };
        if (!InArena(buffer)) _pool.Return(buffer, capacity);
    }

    /// <summary>
    /// Frees a buffer instead of pooling it (see <see cref="BufferPool{T}.Free"/>): a weight's row-major copy once
    /// it is packed, on its first use only. It leaves the plan, as a buffer that outlives the call does.
    /// </summary>
    public void Free(nint buffer, long capacity)
    {
        _open.Remove(buffer);
        if (!InArena(buffer)) _pool.Free(buffer, capacity);
    }

    private bool InArena(nint buffer) => _arena != 0 && buffer >= _arena && buffer < _arena + (nint)_arenaBytes;

    private void EndCall()
    {
        string key = _callKey!;
        _callKey = null;
        if (_open.Keys.Any(InArena))
        {
            // A planned buffer outlives its call: the arena cannot be reused or freed while it lives.
            _disabled = true;
            _open.Clear();
            return;
        }
        // Buffers still alive (weights uploaded on a half's first use) are not the call's: they leave the plan.
        var transient = _recorded.Where(r => r.End != int.MaxValue).ToArray();
        bool matched = _replaying && _recorded.Count == _plan.Length && transient.Length == _plan.Length;
        _open.Clear();
        if (matched)
        {
            PlannedCalls++;
            return;
        }
        if (transient.Length > MaxPlannedBuffers)
        {
            _plans.Remove(key);
            return;
        }
        if (!_plans.ContainsKey(key))
        {
            _planOrder.Enqueue(key);
            if (_planOrder.Count > MaxPlans) _plans.Remove(_planOrder.Dequeue());
        }
        var (buffers, bytes) = Layout(transient);
        _plans[key] = new Plan(buffers, bytes);
    }

    /// <summary>Offsets for buffers with the given lifetimes: largest first, each as low as no overlapping buffer forbids.</summary>
    internal static (Lifetime[] Plan, long Bytes) Layout(IReadOnlyList<Lifetime> lifetimes)
    {
        var plan = lifetimes.ToArray();
        var order = Enumerable.Range(0, plan.Length).OrderByDescending(i => plan[i].Bytes).ThenBy(i => plan[i].Start).ToList();
        var placed = new List<int>();
        long total = 0;
        foreach (int i in order)
        {
            long size = AlignUp(plan[i].Bytes);
            long offset = 0;
            foreach (int j in placed.Where(j => plan[j].Start < plan[i].End && plan[i].Start < plan[j].End).OrderBy(j => plan[j].Offset))
            {
                if (offset + size <= plan[j].Offset) break;
                offset = Math.Max(offset, plan[j].Offset + AlignUp(plan[j].Bytes));
            }
            plan[i] = plan[i] with { Offset = offset };
            placed.Add(i);
            total = Math.Max(total, offset + size);
        }
        return (plan, total);
    }

    private static long AlignUp(long bytes) => (bytes + OffsetAlignment - 1) / OffsetAlignment * OffsetAlignment;

    private void FreeArena()
    {
        if (_arena == 0) return;
        HostMemory.Free(_arena, _arenaBytes);
        _pool.TrackExternal(-_arenaBytes);
        _arena = 0;
        _arenaBytes = 0;
    }

    public void Dispose()
    {
        if (!_disabled) FreeArena();
    }

    private sealed record Plan(Lifetime[] Buffers, long Bytes);

    /// <summary>One buffer of a call: its size, the clock ticks of its rent and return, its planned offset.</summary>
    internal readonly record struct Lifetime(long Bytes, int Start, int End, long Offset);

    private sealed class Call(CallMemoryPlan owner) : IDisposable
    {
        private bool _ended;

        public void Dispose()
        {
            if (_ended) return;
            _ended = true;
            owner.EndCall();
        }
    }
}
