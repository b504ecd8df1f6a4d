using NativeVae.Backends.Cpu;
using NativeVae.Core;

namespace NativeVae.Tests.Backends;

/// <summary>
/// The CPU backend's per-call memory plan: a repeated call gets its large buffers at planned offsets of one arena,
/// no two buffers alive at once overlap, the arena is no larger than the layout needs, and any change of the call's
/// buffer sequence falls back to the pool with the same results.
/// </summary>
public sealed class CallMemoryPlanTests
{
    private const long MiB = 1L << 20;

    [Test]
    public void LayoutNeverOverlapsBuffersAliveAtOnce()
    {
        var random = new Random(5);
        for (int trial = 0; trial < 50; trial++)
        {
            var lifetimes = new List<CallMemoryPlan.Lifetime>();
            int clock = 0;
            var open = new List<int>();
            for (int step = 0; step < 60; step++)
            {
                if (open.Count > 0 && random.Next(3) == 0)
                {
                    int k = open[random.Next(open.Count)];
                    open.Remove(k);
                    lifetimes[k] = lifetimes[k] with { End = clock++ };
                }
                else
                {
                    open.Add(lifetimes.Count);
                    lifetimes.Add(new CallMemoryPlan.Lifetime(random.Next(1, 64) * 4096L + random.Next(4) * 4, clock++, 0, 0));
                }
            }
            foreach (int k in open) lifetimes[k] = lifetimes[k] with { End = clock++ };

            var (plan, bytes) = CallMemoryPlan.Layout(lifetimes);
            long mostAlive = 0;
            for (int t = 0; t < clock; t++)
                mostAlive = Math.Max(mostAlive, plan.Where(b => b.Start <= t && t < b.End).Sum(b => b.Bytes));
            Assert.That(bytes, Is.GreaterThanOrEqualTo(mostAlive), "the arena holds every set of buffers alive at once");
            Assert.That(bytes, Is.LessThanOrEqualTo(plan.Sum(b => (b.Bytes + 4095) / 4096 * 4096)), "never more than one slot per buffer");
            for (int i = 0; i < plan.Length; i++)
            {
                Assert.That(plan[i].Offset % 4096, Is.Zero, "planned buffers start on pages");
                Assert.That(plan[i].Offset + plan[i].Bytes, Is.LessThanOrEqualTo(bytes));
                for (int j = i + 1; j < plan.Length; j++)
                {
                    bool together = plan[i].Start < plan[j].End && plan[j].Start < plan[i].End;
                    bool apart = plan[i].Offset + plan[i].Bytes <= plan[j].Offset || plan[j].Offset + plan[j].Bytes <= plan[i].Offset;
                    Assert.That(!together || apart, $"trial {trial}: buffers {i} and {j} are alive together and overlap");
                }
            }
        }
    }

    [Test]
    public void ARepeatedCallRunsInTheArenaAndComputesTheSame()
    {
        using var backend = new CpuBackend(threads: 2);
        float[] first = Run(backend, "k");
        // d = c + b = (b + a) + b = 5 a, exactly (small integers).
        Assert.That(first, Is.EqualTo(Input().Select(v => 5 * v).ToArray()), "the chained adds");
        float[] second = Run(backend, "k");
        float[] third = Run(backend, "k");
        Assert.That(second, Is.EqualTo(first));
        Assert.That(third, Is.EqualTo(first));
        Assert.That(backend.PlannedCalls, Is.EqualTo(2), "the second and third calls ran on the first one's plan");
        // The call holds three 3 MiB buffers at most at once: the arena is exactly those.
        Assert.That(backend.Memory.LiveBytes, Is.EqualTo(3 * 3 * MiB), "after the calls: the arena, nothing else live");

        // Another sequence under the same key falls back to the pool midway and is planned again.
        float[] other = Run(backend, "k", extra: true);
        Assert.That(other, Is.EqualTo(first));
        Assert.That(Run(backend, "k", extra: true), Is.EqualTo(first));
        Assert.That(backend.PlannedCalls, Is.EqualTo(3), "the changed call was planned again");

        backend.ResetPeakMemory();
        Assert.That(backend.Memory.LiveBytes, Is.Zero, "a reset frees the arena");
        Assert.That(Run(backend, "k"), Is.EqualTo(first), "and forgets the plans: the next call records again");
        Assert.That(backend.PlannedCalls, Is.EqualTo(3));
    }

    [Test]
    public void WeightsUploadedAndPackedInTheFirstCallStayOutOfThePlan()
    {
        using var backend = new CpuBackend(threads: 2);
        const int channels = 512; // a 1x1 weight of 1 MiB: planned size, packed (its row-major copy freed) on first use
        var weightValues = Enumerable.Range(0, channels * channels).Select(i => (i % 7 - 3) / 1000f).ToArray();
        var xValues = Enumerable.Range(0, channels * 32 * 32).Select(i => (i % 11 - 5) / 10f).ToArray();
        Tensor? weight = null;
        float[] Call()
        {
            using (backend.BeginCall("conv"))
            {
                // Like a model half's weights: uploaded inside the first call, kept after it.
                weight ??= backend.Upload(weightValues, TensorShape.Nchw(channels, channels, 1, 1));
                using var x = backend.Upload(xValues, TensorShape.Nchw(1, channels, 32, 32));
                using var y = backend.Conv2d(x, weight, null, Conv2dSpec.Pointwise);
                var result = new float[y.ElementCount];
                backend.Download(y, result);
                return result;
            }
        }
        float[] first = Call();
        Assert.That(Call(), Is.EqualTo(first));
        Assert.That(Call(), Is.EqualTo(first));
        Assert.That(backend.PlannedCalls, Is.EqualTo(2), "the weight's upload and its freed row-major copy are not the call's buffers");
        weight!.Dispose();
    }

    private static float[] Input() => Enumerable.Range(0, 3 * (int)MiB / sizeof(float)).Select(i => (float)(i % 97)).ToArray();

    /// <summary>
    /// In one call: a; b = a + a; c = b + a; a freed; d = c + b (in a's slot). Returns d. At most three 3 MiB
    /// buffers are alive at once.
    /// </summary>
    private static float[] Run(CpuBackend backend, string key, bool extra = false)
    {
        var values = Input();
        var shape = new TensorShape(values.Length);
        using (backend.BeginCall(key))
        {
            var a = backend.Upload(values, shape);
            using var spare = extra ? backend.Allocate(new TensorShape(2 * (int)MiB)) : null;
            using var b = backend.Add(a, a);
            using var c = backend.Add(b, a);
            a.Dispose();
            using var d = backend.Add(c, b);
            var result = new float[d.ElementCount];
            backend.Download(d, result);
            return result;
        }
    }
}
