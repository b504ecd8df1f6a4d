using System.Text;

namespace NativeVae.Tests.Support;

/// <summary>Element-wise comparison with an absolute-plus-relative tolerance and a readable failure.</summary>
internal static class TensorAssert
{
    private const int MismatchesShown = 5;

    /// <summary>Fails when any |actual - expected| &gt; abs + rel * |expected|; reports the first few and the max error.</summary>
    public static void Close(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, double abs, double rel, string what)
    {
        Assert.That(actual.Length, Is.EqualTo(expected.Length), $"{what}: element count");
        var report = new StringBuilder();
        int mismatches = 0;
        double maxError = 0;
        int maxIndex = -1;
        for (int i = 0; i < expected.Length; i++)
        {
            double e = expected[i], a = actual[i];
            double error = Math.Abs(a - e);
            if (double.IsNaN(a) != double.IsNaN(e)) error = double.PositiveInfinity;
            if (error > maxError || (maxIndex < 0 && double.IsNaN(error)))
            {
                maxError = error;
                maxIndex = i;
            }
            if (!(error <= abs + rel * Math.Abs(e)))
            {
                if (mismatches < MismatchesShown) report.AppendLine($"  [{i}] expected {e:R}, actual {a:R}, error {error:E3}");
                mismatches++;
            }
        }
        if (mismatches > 0)
            Assert.Fail($"{what}: {mismatches} of {expected.Length} elements differ (tolerance {abs:E1} + {rel:E1}*|expected|), "
                        + $"max error {maxError:E3} at [{maxIndex}]\n{report}");
    }

    /// <summary>Largest |actual - expected|.</summary>
    public static double MaxAbsDiff(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual)
    {
        double max = 0;
        for (int i = 0; i < expected.Length; i++) max = Math.Max(max, Math.Abs((double)actual[i] - expected[i]));
        return max;
    }
}
