using NativeVae.Models;

namespace NativeVae.Api;

/// <summary>
/// The affine maps between the API's pixel ranges and a model's: API tensors are in [-1, 1] for every family, 8-bit
/// pixels are /255, and the TAESD family works in [0, 1] (<see cref="ImageRange"/>).
/// </summary>
internal readonly record struct PixelRange(ImageRange Model)
{
    private bool ZeroToOne => Model == ImageRange.ZeroToOne;

    /// <summary>ImageToTensor's mapping of pixel/255 into the model's range.</summary>
    public (float Scale, float Shift) FromPixels => ZeroToOne ? (1f, 0f) : (2f, -1f);

    /// <summary>TensorToImage's mapping of the model's range back to [0, 1].</summary>
    public (float Scale, float Shift) ToPixels => ZeroToOne ? (1f, 0f) : (0.5f, 0.5f);

    /// <summary>API [-1, 1] into the model's range; null when they are the same (no op to run).</summary>
    public (float Scale, float Shift)? FromApi => ZeroToOne ? (0.5f, 0.5f) : null;

    /// <summary>The model's range back to the API's [-1, 1]; null when they are the same.</summary>
    public (float Scale, float Shift)? ToApi => ZeroToOne ? (2f, -1f) : null;
}
