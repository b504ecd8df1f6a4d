namespace NativeVae.Core;

/// <summary>Elementwise activations.</summary>
internal enum UnaryOp
{
    /// <summary><c>x * sigmoid(x)</c>.</summary>
    Silu,

    /// <summary><c>max(x, 0)</c>.</summary>
    Relu,

    /// <summary>TAESD's soft clamp <c>tanh(x / 3) * 3</c>.</summary>
    TanhClamp3,

    /// <summary><c>clamp(x, -1, 1)</c>: the Wan / Qwen-Image decoder's last step.</summary>
    ClampUnit,
}
