namespace NativeVae;

/// <summary>One op kind and shape's sums over a profiled run (each call timed with the device synchronised).</summary>
/// <param name="Key">The op and its shape, e.g. <c>"conv3x3 +res 128->128 @512x512"</c>.</param>
/// <param name="Calls">How many times it ran.</param>
/// <param name="Seconds">Total seconds of its calls.</param>
/// <param name="Flops">Total floating-point operations counted (direct-form convolution FLOPs); 0 for memory-bound ops.</param>
/// <param name="Bytes">Total bytes read and written, counted for ops without FLOPs.</param>
public readonly record struct OpProfile(string Key, int Calls, double Seconds, long Flops, long Bytes);
