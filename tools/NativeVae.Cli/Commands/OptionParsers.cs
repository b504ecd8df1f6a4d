using System.CommandLine;
using System.CommandLine.Completions;
using System.CommandLine.Parsing;
using System.Globalization;

namespace NativeVae.Cli.Commands;

/// <summary>
/// Options whose values are parsed with range checks and errors that name the option and the rule in one line
/// (System.CommandLine's own messages name .NET types, e.g. "as expected type 'System.Int32'").
/// </summary>
internal static class OptionParsers
{
    /// <summary>A positive integer option up to <paramref name="max"/>; a value past it is refused, never wrapped.</summary>
    /// <param name="allowZero">Zero is allowed too (a time that may be none).</param>
    public static Option<int?> PositiveInt(string name, string helpName, string description, int max = int.MaxValue, bool allowZero = false) =>
        Parsed<int>(name, helpName, description, $"must be a {(allowZero ? "non-negative" : "positive")} integer (at most {max})",
            text => long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out long v) && v >= (allowZero ? 0 : 1) && v <= max ? (int)v : null);

    /// <summary>A positive 64-bit integer option.</summary>
    public static Option<long?> PositiveLong(string name, string helpName, string description) =>
        Parsed<long>(name, helpName, description, $"must be a positive integer (at most {long.MaxValue})",
            text => long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out long v) && v > 0 ? v : null);

    /// <summary>An unsigned 64-bit integer option (a seed).</summary>
    public static Option<ulong?> UnsignedLong(string name, string helpName, string description) =>
        Parsed<ulong>(name, helpName, description, $"must be an integer from 0 to {ulong.MaxValue}",
            text => ulong.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out ulong v) ? v : null);

    /// <summary>A finite number option (invariant culture: a dot for decimals).</summary>
    public static Option<float?> Number(string name, string helpName, string description) =>
        Parsed<float>(name, helpName, description, "is not a number",
            text => float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out float v) && float.IsFinite(v) ? v : null);

    /// <summary>A positive finite number option (a frame rate).</summary>
    public static Option<double?> PositiveDouble(string name, string helpName, string description) =>
        Parsed<double>(name, helpName, description, "must be a positive number",
            text => double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && double.IsFinite(v) && v > 0 ? v : null);

    /// <summary>An absolute http or https URL option.</summary>
    public static Option<Uri> HttpUrl(string name, string helpName, string description)
    {
        var option = new Option<Uri>(name) { HelpName = helpName, Description = description };
        option.CustomParser = result =>
        {
            string text = Token(result);
            if (Uri.TryCreate(text, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps))
                return uri;
            result.AddError($"{name} '{text}' must be an absolute http:// or https:// URL");
            return null;
        };
        return option;
    }

    /// <summary>An option parsed by <paramref name="parse"/> (null: refused with "<c>name 'text' rule</c>").</summary>
    private static Option<T?> Parsed<T>(string name, string helpName, string description, string rule, Func<string, T?> parse)
        where T : struct
    {
        var option = new Option<T?>(name) { HelpName = helpName, Description = description };
        option.CustomParser = result =>
        {
            string text = Token(result);
            if (parse(text) is { } value) return value;
            result.AddError($"{name} '{text}' {rule}");
            return null;
        };
        return option;
    }

    /// <summary>An option that takes one of <paramref name="choices"/> (case-sensitive); the names are also its completions.</summary>
    public static Option<T?> Choice<T>(string name, string description, params (string Name, T Value)[] choices) where T : struct
    {
        string names = Names(choices.Select(c => c.Name).ToList());
        var option = new Option<T?>(name) { HelpName = string.Join('|', choices.Select(c => c.Name)), Description = description };
        option.CustomParser = result =>
        {
            string text = Token(result);
            foreach (var (choiceName, value) in choices)
            {
                if (choiceName == text) return value;
            }
            result.AddError($"{name} '{text}' must be {names}");
            return null;
        };
        option.CompletionSources.Add(_ => choices.Select(c => new CompletionItem(c.Name)));
        return option;
    }

    /// <summary>Every model family, by its lower-case name (sd, sdxl, flux, sd3, flux2, taesd, taesdxl, taef1, taef2).</summary>
    public static (string Name, ModelFamily Value)[] Families(params ModelFamily[] only) =>
        (only.Length > 0 ? only : Enum.GetValues<ModelFamily>()).Select(f => (FamilyName(f), f)).ToArray();

    /// <summary>Every latent form, by its lower-case name.</summary>
    public static (string Name, LatentForm Value)[] LatentForms() =>
        Enum.GetValues<LatentForm>().Select(f => (f.Name(), f)).ToArray();

    /// <summary>A family's name as the CLI and the converted format write it.</summary>
    public static string FamilyName(ModelFamily family) => family.ToString().ToLowerInvariant();

    /// <summary>"a, b or c".</summary>
    public static string Names(IReadOnlyList<string> names) =>
        names.Count == 1 ? names[0] : string.Join(", ", names.Take(names.Count - 1)) + " or " + names[^1];

    /// <summary>The option's one value token (the arity is exactly one for every non-flag option).</summary>
    private static string Token(ArgumentResult result) => result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
}
