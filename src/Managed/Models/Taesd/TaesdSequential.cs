using NativeVae.Core;
using NativeVae.Models.Layers;

namespace NativeVae.Models.Taesd;

/// <summary>Runs layers in order like <c>nn.Sequential</c>, disposing each intermediate once the next is made.</summary>
internal static class TaesdSequential
{
    /// <summary>A convolution layer as one step of <see cref="Run"/>.</summary>
    public static Func<IBackend, Tensor, Tensor> Step(Conv2d conv) => (backend, x) => conv.Forward(backend, x);

    /// <summary>Runs the layers; <paramref name="observe"/> sees each layer's output as "{prefix}.{index}".</summary>
    public static Tensor Run(IBackend backend, Tensor input, IReadOnlyList<Func<IBackend, Tensor, Tensor>> layers,
        string prefix, BlockObserver? observe)
    {
        Tensor current = input;
        try
        {
            for (int i = 0; i < layers.Count; i++)
            {
                var next = layers[i](backend, current);
                if (!ReferenceEquals(current, input)) current.Dispose();
                current = next;
                observe?.Invoke($"{prefix}.{i}", current);
            }
            return current;
        }
        catch
        {
            if (!ReferenceEquals(current, input)) current.Dispose();   // an observer may cancel
            throw;
        }
    }
}
