using System.Text;

namespace NativeVae.Tests.Support;

/// <summary>Checks every element with |actual - expected| &lt;= abs + rel * |expected|; a failure lists the first mismatches.</summary>
internal static class Compare
{
    private const int ShownMismatches = 5;

    public static void Close(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, double abs, double rel, string what,
        Func<int, string>? index = null)
    {
        Assert.That(actual.Length, Is.EqualTo(expected.Length), $"{what}: length");
        var report = new StringBuilder();
        int bad = 0;
        double maxError = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double e = expected[i], a = actual[i];
            double error = Math.Abs(a - e);
            if (double.IsNaN(error)) error = double.PositiveInfinity;
            maxError = Math.Max(maxError, error);
            if (error <= abs + rel * Math.Abs(e)) continue;
            if (bad++ < ShownMismatches)
                report.AppendLine($"  at {(index is null ? i.ToString() : index(i))}: expected {e:R}, actual {a:R}, error {error:G3}");
        }
        if (bad > 0)
            Assert.Fail($"{what}: {bad} of {expected.Length} values differ (abs {abs}, rel {rel}); max error {maxError:G3}\n{report}");
    }

    /// <summary>Formats a flat index into [N, C, H, W] coordinates.</summary>
    public static Func<int, string> Nchw(int c, int h, int w) =>
        i => $"[{i / (c * h * w)}, {i / (h * w) % c}, {i / w % h}, {i % w}]";
}
