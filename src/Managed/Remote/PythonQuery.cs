using System.Globalization;
using System.Text;

namespace NativeVae.Remote;

/// <summary>
/// A query string as Python's <c>requests</c> writes diffusers' parameter dicts, so that a server sees from this
/// client exactly what it sees from diffusers: keys in insertion order, booleans <c>True</c>/<c>False</c>, floats as
/// Python's <c>str(float)</c>, a list as a repeated key, and no key at all for a None value.
/// </summary>
internal sealed class PythonQuery
{
    /// <summary>Python's <c>repr</c> of a float is positional for decimal exponents in [-4, 16), scientific outside.</summary>
    private const int MinPositionalExponent = -4;

    private const int MaxPositionalExponent = 16;

    private readonly StringBuilder _query = new();

    public PythonQuery Add(string key, string value)
    {
        if (_query.Length > 0) _query.Append('&');
        _query.Append(Uri.EscapeDataString(key)).Append('=').Append(Uri.EscapeDataString(value));
        return this;
    }

    public PythonQuery Add(string key, bool value) => Add(key, value ? "True" : "False");

    public PythonQuery Add(string key, long value) => Add(key, value.ToString(CultureInfo.InvariantCulture));

    public PythonQuery Add(string key, ulong value) => Add(key, value.ToString(CultureInfo.InvariantCulture));

    /// <summary>Adds <paramref name="key"/> only when <paramref name="value"/> is given.</summary>
    public PythonQuery AddIfGiven(string key, float? value) => value is { } v ? Add(key, FormatFloat(v)) : this;

    /// <inheritdoc cref="AddIfGiven(string, float?)"/>
    public PythonQuery AddIfGiven(string key, int? value) => value is { } v ? Add(key, v) : this;

    /// <inheritdoc cref="AddIfGiven(string, float?)"/>
    public PythonQuery AddIfGiven(string key, ulong? value) => value is { } v ? Add(key, v) : this;

    /// <summary><c>shape=1&amp;shape=4&amp;...</c>: <c>list(tensor.shape)</c> as requests repeats a list's key.</summary>
    public PythonQuery AddShape(TensorShape shape)
    {
        foreach (int dim in shape.Dims) Add("shape", dim);
        return this;
    }

    /// <summary>The query without its leading <c>?</c> (empty when nothing was added).</summary>
    public override string ToString() => _query.ToString();

    /// <summary>
    /// Python's <c>str(f)</c> of the float the caller meant: the shortest digits that round-trip the float32 (so
    /// 0.18215f is "0.18215", as Python's float 0.18215 prints), laid out as Python's repr: "1.0" not "1",
    /// "1e-05", "1e+16".
    /// </summary>
    /// <exception cref="ArgumentException">NaN or an infinity, which no factor may be.</exception>
    public static string FormatFloat(float value)
    {
        if (!float.IsFinite(value)) throw new ArgumentException($"{value} is not a finite number");
        // "R" is the shortest round-trip form: "0.18215", "1E-05", "-1.5E+16", "123".
        string text = value.ToString("R", CultureInfo.InvariantCulture);
        bool negative = text.StartsWith('-');
        if (negative) text = text[1..];
        int exponentAt = text.IndexOf('E');
        int exponent = exponentAt < 0 ? 0 : int.Parse(text[(exponentAt + 1)..], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
        string mantissa = exponentAt < 0 ? text : text[..exponentAt];
        int point = mantissa.IndexOf('.');
        string digits = mantissa.Replace(".", "");
        // The decimal point sits after `pointAt` digits of `digits`.
        int pointAt = (point < 0 ? mantissa.Length : point) + exponent;
        int leadingZeros = digits.Length - digits.TrimStart('0').Length;
        digits = digits.Trim('0');
        pointAt -= leadingZeros;
        string sign = negative ? "-" : "";
        if (digits.Length == 0) return sign + "0.0";

        int scientific = pointAt - 1;
        if (scientific < MinPositionalExponent || scientific >= MaxPositionalExponent)
        {
            string fraction = digits.Length > 1 ? "." + digits[1..] : "";
            string exponentSign = scientific < 0 ? "-" : "+";
            return $"{sign}{digits[0]}{fraction}e{exponentSign}{Math.Abs(scientific):00}";
        }
        if (pointAt <= 0) return $"{sign}0.{new string('0', -pointAt)}{digits}";
        if (pointAt >= digits.Length) return $"{sign}{digits}{new string('0', pointAt - digits.Length)}.0";
        return $"{sign}{digits[..pointAt]}.{digits[pointAt..]}";
    }
}
