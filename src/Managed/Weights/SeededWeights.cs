using NativeVae.Core;

namespace NativeVae.Weights;

/// <summary>
/// Deterministic random weights, shared by the oracle generator, the tests and the benchmarks, so that models too
/// large to commit (the SD VAE is 335 MB in fp32) are reproduced from a seed instead.
/// <para>The rule, per parameter, from its name and shape only:</para>
/// <list type="bullet">
/// <item>a stream: SplitMix64 seeded with <c>seed XOR FNV-1a-64(UTF-8 name)</c>; each draw
///   <c>u = (next() &gt;&gt; 40) * 2^-24</c> in [0, 1), then <c>r = 2u - 1</c> in [-1, 1);</item>
/// <item>conv/linear weights (rank &gt;= 2): <c>r / sqrt(fan_in)</c>, fan_in = product of the dims after the first
///   (PyTorch's default kaiming_uniform(a=sqrt 5) bound);</item>
/// <item>their biases (sibling <c>.weight</c> of rank &gt;= 2): the same bound;</item>
/// <item>norm weights (rank-1 <c>.weight</c>): <c>1 + 0.25 r</c>; norm biases: <c>0.25 r</c> (perturbed away from
///   PyTorch's 1 and 0 so that parity tests see the affine);</item>
/// <item>RMS norm gammas (<c>.gamma</c>, any rank): as norm weights;</item>
/// <item>batch-norm running statistics: <c>.running_var</c> as a norm weight (<c>1 + 0.25 r</c>, positive),
///   <c>.running_mean</c> as a norm bias (<c>0.25 r</c>).</item>
/// </list>
/// </summary>
internal static class SeededWeights
{
    public const ulong DefaultSeed = 20261126;

    /// <summary>How far norm affine parameters are pushed from identity.</summary>
    private const float NormJitter = 0.25f;

    private const ulong FnvOffset = 14695981039346656037UL;
    private const ulong FnvPrime = 1099511628211UL;
    private const int MantissaShift = 40;
    private const float TwoToMinus24 = 1f / (1 << 24);

    /// <summary>Values for every parameter, in fp32, keyed by name.</summary>
    public static Dictionary<string, float[]> Generate(ulong seed, IReadOnlyList<(string Name, TensorShape Shape)> parameters)
    {
        var shapes = parameters.ToDictionary(p => p.Name, p => p.Shape, StringComparer.Ordinal);
        var result = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var (name, shape) in parameters) result[name] = Generate(seed, name, shape, shapes);
        return result;
    }

    /// <summary>
    /// The parameters as a source that generates each one when it is read and keeps nothing, so a model built from
    /// it holds its weights once, on its backend (benchmarks measure memory).
    /// </summary>
    public static IWeightSource Source(ulong seed, IReadOnlyList<(string Name, TensorShape Shape)> parameters) =>
        new GeneratingSource(seed, parameters.ToDictionary(p => p.Name, p => p.Shape, StringComparer.Ordinal));

    private static float[] Generate(ulong seed, string name, TensorShape shape, Dictionary<string, TensorShape> shapes)
    {
        var (scale, offset) = Bounds(name, shape, shapes);
        var values = new float[shape.ElementCount];
        var random = new SplitMix64(seed ^ Fnv1a64(name));
        for (long i = 0; i < values.Length; i++)
            values[i] = offset + scale * NextSigned(ref random);
        return values;
    }

    private sealed class GeneratingSource(ulong seed, Dictionary<string, TensorShape> shapes) : IWeightSource
    {
        public string Origin => $"seeded(seed={seed})";

        public IReadOnlyCollection<string> Names => shapes.Keys;

        public bool TryGetShape(string name, out TensorShape shape) => shapes.TryGetValue(name, out shape);

        public float[] ReadFloat32(string name) => shapes.TryGetValue(name, out var shape)
            ? Generate(seed, name, shape, shapes)
            : throw new KeyNotFoundException($"{Origin}: no parameter named '{name}'");
    }

    /// <summary>Values in [-1, 1) from a named stream; used for test inputs as well.</summary>
    public static float[] Uniform(ulong seed, string stream, long count)
    {
        var values = new float[count];
        var random = new SplitMix64(seed ^ Fnv1a64(stream));
        for (long i = 0; i < count; i++) values[i] = NextSigned(ref random);
        return values;
    }

    private static (float Scale, float Offset) Bounds(string name, TensorShape shape, Dictionary<string, TensorShape> shapes)
    {
        const string WeightSuffix = ".weight";
        const string BiasSuffix = ".bias";
        if (name.EndsWith(".running_var", StringComparison.Ordinal) || name.EndsWith(".gamma", StringComparison.Ordinal)) return (NormJitter, 1f);
        if (name.EndsWith(".running_mean", StringComparison.Ordinal)) return (NormJitter, 0f);
        if (name.EndsWith(WeightSuffix, StringComparison.Ordinal))
            return shape.Rank >= 2 ? (FanInBound(shape), 0f) : (NormJitter, 1f);
        if (name.EndsWith(BiasSuffix, StringComparison.Ordinal))
        {
            string weightName = name[..^BiasSuffix.Length] + WeightSuffix;
            if (!shapes.TryGetValue(weightName, out var weightShape))
                throw new ArgumentException($"seeded weights: bias '{name}' has no sibling '{weightName}'");
            return weightShape.Rank >= 2 ? (FanInBound(weightShape), 0f) : (NormJitter, 0f);
        }
        throw new ArgumentException($"seeded weights: parameter '{name}' is neither a .weight, a .bias nor a norm's .gamma or running statistic");
    }

    private static float FanInBound(TensorShape weightShape)
    {
        long fanIn = weightShape.ElementCount / weightShape[0];
        return (float)(1.0 / Math.Sqrt(fanIn));
    }

    private static float NextSigned(ref SplitMix64 random)
    {
        float u = (random.Next() >> MantissaShift) * TwoToMinus24;
        return 2f * u - 1f;
    }

    private static ulong Fnv1a64(string text)
    {
        ulong hash = FnvOffset;
        foreach (byte b in System.Text.Encoding.UTF8.GetBytes(text))
        {
            hash ^= b;
            hash *= FnvPrime;
        }
        return hash;
    }
}
