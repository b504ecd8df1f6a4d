using NativeVae.Backends;
using NativeVae.Tensors;

namespace NativeVae.Models.Taesd;

/// <summary>Runs layers in order like <c>nn.Sequential</c>, disposing each intermediate once the next is made.</summary>
internal static class TaesdSequential
{
    public static Tensor Run(IBackend backend, Tensor input, IReadOnlyList<Func<IBackend, Tensor, Tensor>> layers)
    {
        Tensor current = input;
        foreach (var layer in layers)
        {
            var next = layer(backend, current);
            if (!ReferenceEquals(current, input)) current.Dispose();
            current = next;
        }
        return current;
    }
}
