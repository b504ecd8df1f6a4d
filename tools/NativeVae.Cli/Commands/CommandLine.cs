namespace NativeVae.Cli.Commands;

/// <summary>Positional arguments and <c>--name value</c> options, parsed once; unknown options are refused.</summary>
internal sealed class CommandLine
{
    /// <summary>The one short option: <c>-o</c> for <c>--output</c>.</summary>
    private const string OutputShortName = "-o";

    private readonly Dictionary<string, string> _options = new(StringComparer.Ordinal);
    private readonly HashSet<string> _flags = new(StringComparer.Ordinal);

    public CommandLine(string[] args, int positionalCount, params string[] optionNames)
        : this(args, positionalCount, optionNames, flagNames: [])
    {
    }

    /// <param name="flagNames">Options that take no value (<c>--json</c>).</param>
    public CommandLine(string[] args, int positionalCount, string[] optionNames, string[] flagNames)
    {
        var positional = new List<string>();
        for (int i = 0; i < args.Length; i++)
        {
            string arg = args[i] == OutputShortName ? "--output" : args[i];
            if (arg.StartsWith("--", StringComparison.Ordinal))
            {
                string name = arg[2..];
                string? inline = null;
                int eq = name.IndexOf('=');
                if (eq >= 0)
                {
                    inline = name[(eq + 1)..];
                    name = name[..eq];
                }
                if (flagNames.Contains(name))
                {
                    if (inline is not null) throw new UsageException($"option '--{name}' takes no value");
                    if (!_flags.Add(name)) throw new UsageException($"option '--{name}' is given twice");
                    continue;
                }
                if (!optionNames.Contains(name)) throw new UsageException($"unknown option '--{name}'");
                if (inline is null && i + 1 >= args.Length) throw new UsageException($"option '--{name}' needs a value");
                if (_options.ContainsKey(name)) throw new UsageException($"option '--{name}' is given twice");
                _options[name] = inline ?? args[++i];
            }
            else
            {
                positional.Add(arg);
            }
        }
        if (positional.Count != positionalCount)
            throw new UsageException($"expected {positionalCount} argument(s), got {positional.Count}");
        Positional = positional;
    }

    public IReadOnlyList<string> Positional { get; }

    public string? Option(string name) => _options.TryGetValue(name, out var value) ? value : null;

    /// <summary>Whether the value-less option <c>--name</c> was given.</summary>
    public bool Flag(string name) => _flags.Contains(name);
}
