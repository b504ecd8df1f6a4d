namespace NativeVae;

/// <summary>Encoded image formats a decode can return (diffusers' <c>image_format</c>).</summary>
public enum ImageFormat
{
    /// <summary>Lossless PNG.</summary>
    Png,

    /// <summary>JPEG at <see cref="DecodeOptions.JpegQuality"/> (the endpoints' default format).</summary>
    Jpeg,
}
