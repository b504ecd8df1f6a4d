using System.Text;

namespace NativeVae.Tests.Support;

/// <summary>Element-by-element comparison with an absolute-plus-relative tolerance and a readable failure.</summary>
internal static class NumericAssert
{
    private const int ReportedMismatches = 5;

    /// <summary>
    /// Fails unless |actual - expected| &lt;= abs + rel * |expected| everywhere (NaN never passes). The message names
    /// the first mismatching indices (as coordinates of <paramref name="shape"/>), expected, actual and the max error.
    /// Returns the max absolute error, which the caller may log.
    /// </summary>
    public static double Close(ReadOnlySpan<float> actual, ReadOnlySpan<double> expected, TensorShape shape,
        double abs, double rel, string what)
    {
        Assert.That(actual.Length, Is.EqualTo(expected.Length), $"{what}: element count");
        Assert.That(shape.ElementCount, Is.EqualTo(expected.Length), $"{what}: shape {shape} vs element count");
        var report = new StringBuilder();
        int mismatches = 0;
        double maxError = 0;
        long maxAt = -1;
        for (int i = 0; i < actual.Length; i++)
        {
            double error = Math.Abs(actual[i] - expected[i]);
            if (double.IsNaN(error)) error = double.PositiveInfinity;
            if (error > maxError || maxAt < 0)
            {
                maxError = error;
                maxAt = i;
            }
            if (error <= abs + rel * Math.Abs(expected[i])) continue;
            if (mismatches < ReportedMismatches)
                report.AppendLine($"  at {Coordinates(shape, i)}: expected {expected[i]:G9}, actual {actual[i]:G9}, error {error:G3}");
            mismatches++;
        }
        TestContext.Out.WriteLine($"{what}: max abs error {maxError:G3} over {actual.Length} values");
        if (mismatches > 0)
            Assert.Fail($"{what}: {mismatches} of {actual.Length} values outside {abs:G2} + {rel:G2} * |expected|; "
                + $"max error {maxError:G3} at {Coordinates(shape, maxAt)}\n{report}");
        return maxError;
    }

    public static double Close(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, TensorShape shape,
        double abs, double rel, string what)
    {
        var widened = new double[expected.Length];
        for (int i = 0; i < expected.Length; i++) widened[i] = expected[i];
        return Close(actual, widened, shape, abs, rel, what);
    }

    private static string Coordinates(TensorShape shape, long flat)
    {
        var dims = shape.Dims;
        var index = new long[dims.Length];
        for (int axis = dims.Length - 1; axis >= 0; axis--)
        {
            index[axis] = dims[axis] == 0 ? 0 : flat % dims[axis];
            flat = dims[axis] == 0 ? 0 : flat / dims[axis];
        }
        return "[" + string.Join(", ", index) + "]";
    }
}
