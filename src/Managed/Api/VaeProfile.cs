namespace NativeVae;

/// <summary>An op-by-op profile of one untiled encode or decode.</summary>
/// <param name="TotalSeconds">Wall seconds of the whole profiled call (upload, ops, download).</param>
/// <param name="Ops">The ops by kind and shape, in the order they first ran.</param>
public sealed record VaeProfile(double TotalSeconds, IReadOnlyList<OpProfile> Ops);
