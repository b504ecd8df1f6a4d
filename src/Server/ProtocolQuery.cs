using System.Globalization;
using Microsoft.AspNetCore.Http;

namespace NativeVae.Server;

/// <summary>
/// A request's query, read as the hybrid-inference toolkit reads it: booleans as <c>True</c>/<c>False</c> in any case,
/// decimal numbers, a repeated key (<c>shape</c>) as a list. Each parse error names the parameter.
/// </summary>
internal sealed class ProtocolQuery(IQueryCollection query)
{
    public bool Has(string name) => query.ContainsKey(name);

    /// <summary>All values of a repeated key, in order.</summary>
    public IReadOnlyList<string> All(string name) => query.TryGetValue(name, out var values) ? values.Select(v => v ?? "").ToArray() : [];

    /// <summary>The value of a single-valued key, or null when absent.</summary>
    public string? String(string name)
    {
        if (!query.TryGetValue(name, out var values)) return null;
        if (values.Count != 1) throw ProtocolException.BadRequest($"`{name}` is given {values.Count} times; give it once");
        return values[0] ?? "";
    }

    /// <summary>One of <paramref name="choices"/>, or <paramref name="fallback"/> when absent.</summary>
    public string Choice(string name, string fallback, params string[] choices)
    {
        string value = String(name) ?? fallback;
        if (!choices.Contains(value))
            throw ProtocolException.BadRequest($"`{name}` is '{value}'; it must be one of {string.Join(", ", choices.Select(c => $"'{c}'"))}");
        return value;
    }

    public bool? Bool(string name)
    {
        string? value = String(name);
        if (value is null) return null;
        if (string.Equals(value, "true", StringComparison.OrdinalIgnoreCase)) return true;
        if (string.Equals(value, "false", StringComparison.OrdinalIgnoreCase)) return false;
        throw ProtocolException.BadRequest($"`{name}` is '{value}'; it must be True or False");
    }

    /// <summary>A finite float (Python writes them as <c>str(f)</c>: 0.18215, 1.0, 1e-05).</summary>
    public float? Float(string name)
    {
        string? value = String(name);
        if (value is null) return null;
        if (!float.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out float parsed) || !float.IsFinite(parsed))
            throw ProtocolException.BadRequest($"`{name}` is '{value}'; it must be a finite number");
        return parsed;
    }

    /// <summary>A positive decimal int.</summary>
    public int? PositiveInt(string name)
    {
        string? value = String(name);
        if (value is null) return null;
        if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int parsed) || parsed <= 0)
            throw ProtocolException.BadRequest($"`{name}` is '{value}'; it must be a positive integer");
        return parsed;
    }

    public ulong? UInt64(string name)
    {
        string? value = String(name);
        if (value is null) return null;
        if (!ulong.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out ulong parsed))
            throw ProtocolException.BadRequest($"`{name}` is '{value}'; it must be a non-negative integer");
        return parsed;
    }
}
