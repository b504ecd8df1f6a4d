namespace NativeVae.Core;

/// <summary>
/// The one check of weights against what a model declares, wherever they come from: the loader runs it on a
/// checkpoint before handing it on (refusing tensors the model does not have), and each model runs it on the source
/// it is given before anything is uploaded (its halves upload lazily). Errors name the file and stored tensor where
/// the source knows them (<see cref="IWeightSource.Describe"/>).
/// </summary>
internal static class ParameterCheck
{
    /// <exception cref="InvalidDataException">a declared parameter is missing or has another shape, or (with
    /// <paramref name="refuseUndeclared"/>) the source holds a tensor the model does not declare.</exception>
    public static void Require(IWeightSource source, IReadOnlyList<(string Name, TensorShape Shape)> declared, bool refuseUndeclared = false)
    {
        var declaredNames = new HashSet<string>(StringComparer.Ordinal);
        var missing = new List<(string Name, TensorShape Shape)>();
        foreach (var (name, shape) in declared)
        {
            declaredNames.Add(name);
            if (!source.TryGetShape(name, out var actual))
            {
                missing.Add((name, shape));
                continue;
            }
            if (actual != shape)
                throw new InvalidDataException($"{source.Describe(name)} has shape {actual}, the model expects {shape} for '{name}'");
        }
        if (missing.Count > 0)
            throw new InvalidDataException($"{source.Origin}: {missing.Count} parameter(s) missing, first '{missing[0].Name}' (expected shape {missing[0].Shape})");
        if (!refuseUndeclared) return;
        var extra = source.Names.Where(n => !declaredNames.Contains(n)).Order(StringComparer.Ordinal).ToList();
        if (extra.Count > 0)
            throw new InvalidDataException($"{source.Describe(extra[0])} is not a parameter of this model ({extra.Count} unexpected)");
    }
}
