namespace NativeVae.Formats;

/// <summary>
/// Refuses NaN and infinite values read from a file: a NaN latent decoded to an all-black image with exit 0, and a
/// NaN weight would do the same to every output. The error says how many there are and where the first is.
/// </summary>
internal static class NonFiniteValues
{
    /// <summary>Throws when <paramref name="values"/> holds a NaN or an infinity.</summary>
    /// <param name="what">names the file and tensor, e.g. "z.safetensors: tensor 'latent'".</param>
    /// <exception cref="InvalidDataException">one or more values are not finite.</exception>
    public static void Refuse(string what, ReadOnlySpan<float> values)
    {
        int first = -1;
        long count = 0;
        for (int i = 0; i < values.Length; i++)
        {
            if (float.IsFinite(values[i])) continue;
            if (first < 0) first = i;
            count++;
        }
        if (count > 0)
            throw new InvalidDataException($"{what} has {count} NaN or infinite values (the first at flat index {first}, {values[first]})");
    }
}
