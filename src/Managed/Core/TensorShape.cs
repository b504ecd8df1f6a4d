namespace NativeVae;

/// <summary>
/// An immutable row-major tensor shape. Images and feature maps are <c>[N, C, H, W]</c>.
/// Element counts are <see cref="long"/>: a 2048x2048 feature map with 512 channels has 2^31 elements.
/// </summary>
public readonly struct TensorShape : IEquatable<TensorShape>
{
    private readonly int[] _dims;

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

    public int Rank => _dims?.Length ?? 0;

    public int this[int axis] => _dims[axis];

    public ReadOnlySpan<int> Dims => _dims;

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
    public int N => Dim4(0);
    public int C => Dim4(1);
    public int H => Dim4(2);
    public int W => Dim4(3);

    private int Dim4(int axis)
    {
        if (Rank != 4) throw new InvalidOperationException($"expected an [N, C, H, W] shape, got {this}");
        return _dims[axis];
    }

    public static TensorShape Nchw(int n, int c, int h, int w) => new(n, c, h, w);

    public bool Equals(TensorShape other) => Dims.SequenceEqual(other.Dims);
    public override bool Equals(object? obj) => obj is TensorShape s && Equals(s);
    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (int d in _dims ?? []) hash.Add(d);
        return hash.ToHashCode();
    }
    public static bool operator ==(TensorShape a, TensorShape b) => a.Equals(b);
    public static bool operator !=(TensorShape a, TensorShape b) => !a.Equals(b);

    public override string ToString() => "[" + string.Join(", ", _dims ?? []) + "]";
}
