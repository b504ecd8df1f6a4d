namespace NativeVae.Core;

/// <summary>
/// How exact tiling cuts a plane: into full-width strips of about tile x tile elements. The executor cuts them so,
/// and the planner sizes their memory from the same rule.
/// </summary>
internal static class StripGeometry
{
    /// <summary>Rows of each strip of a <paramref name="height"/> x <paramref name="width"/> plane: at least one, at most the plane.</summary>
    public static int Rows(int height, int width, int tile) =>
        (int)Math.Clamp((long)tile * tile / Math.Max(width, 1), 1, Math.Max(height, 1));
}
