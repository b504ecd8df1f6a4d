namespace NativeVae;

/// <summary>
/// An immutable row-major tensor shape. Images and feature maps are <c>[N, C, H, W]</c>.
/// Element counts are <see cref="long"/>: a 2048x2048 feature map with 512 channels has 2^31 elements.
/// </summary>
public readonly struct TensorShape : IEquatable<TensorShape>
{
    private readonly int[] _dims;

    /// <summary>A shape of the given dimensions, outermost first.</summary>
    /// <exception cref="ArgumentException">a dimension is negative.</exception>
    public TensorShape(params int[] dims)
    {
        ArgumentNullException.ThrowIfNull(dims);
        foreach (int d in dims)
        {
            if (d < 0)
                throw new ArgumentException($"negative dimension in shape [{string.Join(", ", dims)}]", nameof(dims));
        }
        _dims = (int[])dims.Clone();
    }

    /// <summary>Number of dimensions (0 for the default shape).</summary>
    public int Rank => _dims?.Length ?? 0;

    /// <summary>The size of dimension <paramref name="axis"/>, outermost first.</summary>
    public int this[int axis] => _dims[axis];

    /// <summary>All dimensions, outermost first.</summary>
    public ReadOnlySpan<int> Dims => _dims;

    /// <summary>The product of the dimensions (checked: overflow throws).</summary>
    public long ElementCount
    {
        get
        {
            long n = 1;
            foreach (int d in _dims ?? []) n = checked(n * d);
            return n;
        }
    }

    // [N, C, H, W] accessors; they check the rank so that a misuse names the shape.

    /// <summary>Batch size of an <c>[N, C, H, W]</c> shape.</summary>
    /// <exception cref="InvalidOperationException">the shape is not of rank 4.</exception>
    public int N => Dim4(0);

    /// <summary>Channels of an <c>[N, C, H, W]</c> shape.</summary>
    /// <exception cref="InvalidOperationException">the shape is not of rank 4.</exception>
    public int C => Dim4(1);

    /// <summary>Height of an <c>[N, C, H, W]</c> shape.</summary>
    /// <exception cref="InvalidOperationException">the shape is not of rank 4.</exception>
    public int H => Dim4(2);

    /// <summary>Width of an <c>[N, C, H, W]</c> shape.</summary>
    /// <exception cref="InvalidOperationException">the shape is not of rank 4.</exception>
    public int W => Dim4(3);

    private int Dim4(int axis)
    {
        if (Rank != 4) throw new InvalidOperationException($"expected an [N, C, H, W] shape, got {this}");
        return _dims[axis];
    }

    /// <summary>The shape <c>[n, c, h, w]</c>.</summary>
    public static TensorShape Nchw(int n, int c, int h, int w) => new(n, c, h, w);

    /// <summary>Same rank and dimensions.</summary>
    public bool Equals(TensorShape other) => Dims.SequenceEqual(other.Dims);

    /// <inheritdoc cref="Equals(TensorShape)"/>
    public override bool Equals(object? obj) => obj is TensorShape s && Equals(s);

    /// <summary>A hash of the dimensions.</summary>
    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (int d in _dims ?? []) hash.Add(d);
        return hash.ToHashCode();
    }
    /// <inheritdoc cref="Equals(TensorShape)"/>
    public static bool operator ==(TensorShape a, TensorShape b) => a.Equals(b);

    /// <summary>Different rank or dimensions.</summary>
    public static bool operator !=(TensorShape a, TensorShape b) => !a.Equals(b);

    /// <summary>The dimensions as <c>[1, 4, 64, 64]</c>.</summary>
    public override string ToString() => "[" + string.Join(", ", _dims ?? []) + "]";
}
