namespace NativeVae;

/// <summary>Progress of a long encode or decode: units of work done out of the total (tiles, or blocks untiled).</summary>
/// <param name="Done">Units finished so far.</param>
/// <param name="Total">Units in the whole call.</param>
public readonly record struct VaeProgress(int Done, int Total);
