using System.Buffers;

namespace NativeVae.Core;

/// <summary>
/// Attention over disjoint chunks of the keys merged into attention over all of them. A chunk's output is
/// <c>o = sum_j exp(s_j - L) v_j</c> with <c>L = log sum_j exp(s_j)</c> over its keys, so two chunks combine as
/// <c>L = log(exp(La) + exp(Lb))</c> and <c>o = oa exp(La - L) + ob exp(Lb - L)</c>: exact up to float rounding,
/// in any order.
/// </summary>
internal static class AttentionChunks
{
    /// <summary>
    /// Folds a chunk (<paramref name="output"/> <c>[C, T]</c>, <paramref name="logSumExp"/> <c>[T]</c>) into the merge of
    /// the chunks before it (<paramref name="merged"/>, <paramref name="mergedLogSumExp"/>), in place.
    /// </summary>
    public static void Merge(Span<float> merged, Span<float> mergedLogSumExp, ReadOnlySpan<float> output, ReadOnlySpan<float> logSumExp)
    {
        int tokens = mergedLogSumExp.Length;
        if (logSumExp.Length != tokens || merged.Length != output.Length || tokens == 0 || merged.Length % tokens != 0)
            throw new ArgumentException($"attention chunks of {merged.Length} and {output.Length} values over {tokens} and {logSumExp.Length} queries do not merge");
        int channels = merged.Length / tokens;
        float[] weights = ArrayPool<float>.Shared.Rent(2 * tokens);
        try
        {
            var keep = weights.AsSpan(0, tokens);
            var take = weights.AsSpan(tokens, tokens);
            for (int i = 0; i < tokens; i++)
            {
                float a = mergedLogSumExp[i], b = logSumExp[i];
                float high = MathF.Max(a, b);
                float total = high + MathF.Log(MathF.Exp(a - high) + MathF.Exp(b - high));
                keep[i] = MathF.Exp(a - total);
                take[i] = MathF.Exp(b - total);
                mergedLogSumExp[i] = total;
            }
            for (int c = 0; c < channels; c++)
            {
                var m = merged.Slice(c * tokens, tokens);
                var o = output.Slice(c * tokens, tokens);
                for (int i = 0; i < tokens; i++) m[i] = m[i] * keep[i] + o[i] * take[i];
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(weights);
        }
    }
}
