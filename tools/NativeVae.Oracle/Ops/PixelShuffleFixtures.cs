using NativeVae.Oracle.Wan;
using static TorchSharp.torch;

namespace NativeVae.Oracle.Ops;

/// <summary>
/// <c>ops/pixel_shuffle/&lt;case&gt;.safetensors</c>: Wan 2.2's four pixel shuffles on video tensors, as diffusers'
/// <c>autoencoder_kl_wan.py</c> writes them with view, permute and mean (rebuilt here from libtorch ops):
/// <list type="bullet">
/// <item>space_to_depth: <c>AvgDown3D</c> (the front frame padding when T does not fill factor_t, the
///   [B, C, T/ft, ft, H/fs, fs, W/fs, fs] view, the permute to channels, the mean over group_size) and
///   <c>patchify</c>; x [B, C, T, H, W], y [B, C', T', h, w].</item>
/// <item>depth_to_space: <c>DupUp3D</c> (repeat_interleave, the [B, out, ft, fs, fs, T, H, W] view, the permute, the
///   first chunk's trim of ft - 1 frames) and <c>unpatchify</c>; x [B, C, 1, h, w], y [B, C', T', H, W].</item>
/// </list>
/// Metadata: kind, factor, frames, group (AvgDown's group_size or DupUp's repeats), width_first, first_chunk ("0"/"1").
/// </summary>
internal static class PixelShuffleFixtures
{
    private sealed record Case(string Name, string Kind, long[] Shape, int In, int Out, int FactorT, int FactorS, bool FirstChunk = false);

    private const string AvgDown = "avgdown", DupUp = "dupup", Patchify = "patchify", Unpatchify = "unpatchify";
    private const int Patch = 2;

    private static readonly Case[] Cases =
    [
        new("avgdown_c5_to_10_t2_s2", AvgDown, [1, 5, 2, 6, 4], 5, 10, 2, 2),
        // One frame with factor_t 2: AvgDown3D pads a zero frame in front (a video's first chunk).
        new("avgdown_c5_to_10_t1_s2_padded", AvgDown, [1, 5, 1, 6, 4], 5, 10, 2, 2),
        new("avgdown_c6_to_6_s2_batch2", AvgDown, [2, 6, 1, 10, 6], 6, 6, 1, 2),
        new("avgdown_c4_to_4_identity", AvgDown, [1, 4, 1, 3, 5], 4, 4, 1, 1),
        new("dupup_c6_to_6_t2_s2", DupUp, [1, 6, 1, 3, 4], 6, 6, 2, 2),
        new("dupup_c6_to_6_t2_s2_first_chunk", DupUp, [1, 6, 1, 3, 4], 6, 6, 2, 2, FirstChunk: true),
        new("dupup_c8_to_4_s2", DupUp, [2, 8, 1, 5, 3], 8, 4, 1, 2),
        new("patchify_c3_6x10_batch2", Patchify, [2, 3, 1, 6, 10], 3, 12, 1, Patch),
        new("unpatchify_c12_3x5", Unpatchify, [1, 12, 1, 3, 5], 12, 3, 1, Patch),
    ];

    public static IEnumerable<FixtureFile> Build(ulong seed)
    {
        foreach (var c in Cases)
        {
            using var scope = NewDisposeScope();
            string stream = $"ops/pixel_shuffle/{c.Name}";
            var x = Torch.Uniform(seed, $"{stream}/x", c.Shape);
            int factor = c.FactorT * c.FactorS * c.FactorS;
            var (kind, group, y) = c.Kind switch
            {
                AvgDown => ("space_to_depth", c.In * factor / c.Out, WanShuffles.AvgDown3D(x, c.Out, c.FactorT, c.FactorS)),
                DupUp => ("depth_to_space", c.Out * factor / c.In, WanShuffles.DupUp3D(x, c.Out, c.FactorT, c.FactorS, c.FirstChunk)),
                Patchify => ("space_to_depth", 1, WanShuffles.Patchify(x, c.FactorS)),
                _ => ("depth_to_space", 1, WanShuffles.Unpatchify(x, c.FactorS)),
            };
            bool widthFirst = c.Kind is Patchify or Unpatchify;
            yield return new FixtureFile($"{stream}.safetensors")
                .Meta("kind", kind)
                .Meta("factor", c.FactorS)
                .Meta("frames", c.FactorT)
                .Meta("group", group)
                .Meta("width_first", widthFirst)
                .Meta("first_chunk", c.FirstChunk)
                .Add("x", x)
                .Add("y", y.contiguous());
        }
    }
}
