using NativeVae.Core;
using NativeVae.Weights;
using NativeVae.Formats;
using NativeVae.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace NativeVae.Oracle;

/// <summary>Host arrays to and from libtorch fp32 CPU tensors, and the seeded inputs every fixture starts from.</summary>
internal static class Torch
{
    /// <summary>
    /// One thread, no autograd: a regeneration then reproduces the fixtures bit for bit on the same libtorch
    /// build (a multi-threaded conv may split its reductions differently). The CPU ops used here have no
    /// nondeterministic kernels; TorchSharp 0.107 does not implement use_deterministic_algorithms anyway.
    /// </summary>
    public static void ConfigureDeterministic()
    {
        torch.set_num_threads(1);
        torch.set_grad_enabled(false);
    }

    public static Tensor FromArray(float[] values, params long[] shape)
    {
        long count = shape.Aggregate(1L, (a, b) => checked(a * b));
        if (values.Length != count)
            throw new ArgumentException($"{values.Length} values for shape [{string.Join(", ", shape)}]");
        return torch.tensor(values, shape, dtype: ScalarType.Float32);
    }

    public static float[] ToArray(Tensor tensor)
    {
        if (tensor.dtype != ScalarType.Float32)
            throw new ArgumentException($"expected an fp32 tensor, got {tensor.dtype}");
        using var contiguous = tensor.contiguous();
        return contiguous.data<float>().ToArray();
    }

    /// <summary>
    /// A seeded tensor with values uniform in <c>[-amplitude, amplitude) + offset</c>, drawn from
    /// <see cref="SeededWeights.Uniform"/> with the stream name <paramref name="stream"/>.
    /// </summary>
    public static Tensor Uniform(ulong seed, string stream, long[] shape, float amplitude = 1f, float offset = 0f)
    {
        long count = shape.Aggregate(1L, (a, b) => checked(a * b));
        float[] values = SeededWeights.Uniform(seed, stream, count);
        for (long i = 0; i < values.LongLength; i++) values[i] = values[i] * amplitude + offset;
        return FromArray(values, shape);
    }
}
