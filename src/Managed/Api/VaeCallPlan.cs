namespace NativeVae;

/// <summary>
/// What one encode or decode would do, from a dry run of its graph (nothing computed): the tiling it would run with
/// and its cost. A server checks this against its per-request limits before the work starts.
/// </summary>
/// <param name="Tiling">The tiling the call would use (<see cref="TilingMode.Auto"/> resolved).</param>
/// <param name="TileSize">The tile edge given or chosen, or null for the mode's default.</param>
/// <param name="Flops">Floating-point operations of the call's model work (2 per multiply-add of the direct form); blend
/// tiling counts its overlapping tiles.</param>
/// <param name="ActivationPeakBytes">Peak bytes of live activations untiled (the floor for an untiled call's memory).</param>
public readonly record struct VaeCallPlan(TilingMode Tiling, int? TileSize, long Flops, long ActivationPeakBytes);
