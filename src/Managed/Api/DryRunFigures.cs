namespace NativeVae;

/// <summary>What a dry run of one encode or decode counts, without computing anything.</summary>
/// <param name="Flops">Floating-point operations of the ops as written (a convolution counts 2 per multiply-add of
/// the direct form, whatever algorithm runs it).</param>
/// <param name="ActivationPeakBytes">Peak bytes of the live activations (no weights, no buffer pool): the floor for
/// the run's device memory.</param>
public readonly record struct DryRunFigures(long Flops, long ActivationPeakBytes);
