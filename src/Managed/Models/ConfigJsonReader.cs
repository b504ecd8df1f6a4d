using NativeVae.Core;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace NativeVae.Models;

/// <summary>Typed reads from a config JSON object; every error names the file and the key.</summary>
internal sealed class ConfigJsonReader(JsonObject root, string origin)
{
    /// <summary>Most entries a config list may have: block lists have one per resolution level (4 in every real VAE).</summary>
    public const int MaxListEntries = 64;

    /// <summary>Parses a config object; <paramref name="what"/> names it in the error ("config", "config metadata").</summary>
    /// <exception cref="InvalidDataException">not JSON (where, not System.Text.Json's wording), or not an object.</exception>
    public static JsonObject ParseObject(string json, string origin, string what = "config")
    {
        JsonNode? node;
        try
        {
            // A key given twice is refused while parsing (else JsonObject throws a raw ArgumentException on first use).
            node = JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { AllowDuplicateProperties = false });
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{origin}: {what} is not valid JSON ({JsonErrorPosition.Of(e)})");
        }
        return node as JsonObject ?? throw new InvalidDataException($"{origin}: config is not a JSON object");
    }

    /// <summary>A float written as its shortest round-trip decimal (0.18215, not 0.18214999139308929).</summary>
    public static JsonNode Exact(float value) => JsonValue.Create(double.Parse(value.ToString("R", System.Globalization.CultureInfo.InvariantCulture), System.Globalization.CultureInfo.InvariantCulture));

    public string? String(string key) => Value(key) is { } v
        ? v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : throw Bad(key, "a string")
        : null;

    public int Int(string key, int fallback)
    {
        var v = Value(key);
        if (v is null) return fallback;
        return v.GetValueKind() == JsonValueKind.Number && v.AsValue().TryGetValue(out int i) ? i : throw Bad(key, "an integer");
    }

    /// <summary>An integer, or null when the key is absent or null (diffusers' Optional[int]).</summary>
    public int? IntOrNull(string key) => Value(key) is null ? null : Int(key, 0);

    public bool Bool(string key, bool fallback)
    {
        var v = Value(key);
        if (v is null) return fallback;
        return v.GetValueKind() switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Bad(key, "true or false"),
        };
    }

    public float Float(string key, float fallback) => NullableFloat(key, fallback) ?? throw Bad(key, "a number");

    public float? NullableFloat(string key, float? fallback)
    {
        if (!root.ContainsKey(key)) return fallback;
        var v = root[key];
        if (v is null) return null;
        return v.GetValueKind() == JsonValueKind.Number && v.AsValue().TryGetValue(out double d) && double.IsFinite(d)
            ? (float)d
            : throw Bad(key, "a number or null");
    }

    public IReadOnlyList<int> IntList(string key, IReadOnlyList<int> fallback)
    {
        var v = Value(key);
        if (v is null) return fallback;
        if (v is not JsonArray array || array.Count == 0) throw Bad(key, "a non-empty list of integers");
        if (array.Count > MaxListEntries) throw Bad(key, $"a list of at most {MaxListEntries} integers, not {array.Count}");
        var list = new List<int>(array.Count);
        foreach (var item in array)
        {
            if (item is null || item.GetValueKind() != JsonValueKind.Number || !item.AsValue().TryGetValue(out int i))
                throw Bad(key, "a non-empty list of integers");
            list.Add(i);
        }
        return list;
    }

    /// <summary>A list of numbers (as fp32), or the fallback where the key is absent.</summary>
    public IReadOnlyList<float> FloatList(string key, IReadOnlyList<float> fallback) =>
        List(key, fallback, "a list of numbers", item => item.GetValueKind() == JsonValueKind.Number && item.AsValue().TryGetValue(out double d) && double.IsFinite(d)
            ? (float)d : null);

    /// <summary>A list of booleans, or the fallback where the key is absent.</summary>
    public IReadOnlyList<bool> BoolList(string key, IReadOnlyList<bool> fallback) =>
        List(key, fallback, "a list of true/false", item => item.GetValueKind() switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => (bool?)null,
        });

    private IReadOnlyList<T> List<T>(string key, IReadOnlyList<T> fallback, string expected, Func<JsonNode, T?> read) where T : struct
    {
        var v = Value(key);
        if (v is null) return fallback;
        if (v is not JsonArray array) throw Bad(key, expected);
        if (array.Count > MaxListEntries) throw Bad(key, $"{expected} of at most {MaxListEntries} entries, not {array.Count}");
        var list = new List<T>(array.Count);
        foreach (var item in array)
            list.Add((item is null ? null : read(item)) ?? throw Bad(key, expected));
        return list;
    }

    /// <summary>A list of integers, or null where the key is absent or null (diffusers' <c>None</c>).</summary>
    public IReadOnlyList<int>? NullableIntList(string key) => Value(key) is null ? null : IntList(key, []);

    /// <summary>diffusers writes sample_size as an integer or as [height, width]; the first is kept.</summary>
    public int SampleSize(string key, int fallback)
    {
        var v = Value(key);
        if (v is JsonArray) return IntList(key, [fallback])[0];
        return Int(key, fallback);
    }

    private JsonNode? Value(string key) => root.TryGetPropertyValue(key, out var v) ? v : null;

    private InvalidDataException Bad(string key, string expected) => new($"{origin}: config key '{key}' must be {expected}");
}
