namespace NativeVae.Core;

/// <summary>
/// Geometry of the pixel shuffles (<see cref="IBackend.SpaceToDepth"/>, <see cref="IBackend.DepthToSpace"/>): Wan
/// 2.2's patchify and unpatchify, and its residual blocks' parameter-free shortcuts (diffusers' <c>AvgDown3D</c>,
/// <c>DupUp3D</c>). Each <see cref="Factor"/> x <see cref="Factor"/> block of pixels of each of <see cref="Frames"/>
/// frames is one pixel of <c>Frames * Factor^2</c> channels per input channel, channel index
/// <c>(c * Frames + t) * Factor^2 + s</c> with the block's sub-position <c>s = dy * Factor + dx</c>, or
/// <c>dx * Factor + dy</c> when <see cref="WidthFirst"/> (Wan's patchify).
/// </summary>
/// <param name="Factor">pixels per side of a block (1: no spatial change).</param>
/// <param name="Frames">frames folded into channels (1, or 2 for a temporal shortcut).</param>
/// <param name="Group">
/// space to depth: consecutive channels averaged into one (AvgDown3D's group_size); depth to space: times each
/// input channel repeats before the shuffle (DupUp3D's repeats).
/// </param>
/// <param name="WidthFirst">the block's sub-position counts the column offset first.</param>
internal readonly record struct PixelShuffleSpec(int Factor, int Frames = 1, int Group = 1, bool WidthFirst = false)
{
    /// <summary>Wan 2.2's 2x2 patchify and unpatchify, channel index <c>4c + 2dx + dy</c>.</summary>
    public static PixelShuffleSpec WanPatch(int patch) => new(patch, WidthFirst: true);

    /// <summary>Channels of one input pixel's block: <c>Frames * Factor^2</c>.</summary>
    public int BlockChannels => Frames * Factor * Factor;
}
