using System.CommandLine;
using System.CommandLine.Help;
using System.Text.RegularExpressions;
using NativeVae.Cli.Commands;

namespace NativeVae.Cli;

/// <summary>
/// <c>nativevae &lt;command&gt; [arguments] [options]</c>, on System.CommandLine: <c>--help</c> on the tool and on each
/// command, tab completion (<c>dotnet-suggest</c>). Each command is one class in Commands/; add a command with one
/// line in <see cref="Commands"/>. Exit code 0 on success; on failure one line on stderr and a non-zero code
/// (<see cref="ExitCodes"/>), never a stack trace.
/// </summary>
public static partial class Program
{
    /// <summary>The commands. One line per command.</summary>
    private static readonly ICommand[] Commands =
    [
        new ConvertCommand(),
        new InfoCommand(),
        new EncodeCommand(),
        new DecodeCommand(),
        new RoundtripCommand(),
        new BenchCommand(),
        new ServeCommand(),
    ];

    /// <summary>Runs the command line with the console's writers.</summary>
    public static int Main(string[] args) => Run(args, Console.Out, Console.Error);

    /// <summary>Runs one command line in-process (also the tests' entry point); returns the exit code.</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var root = BuildRoot(stdout, stderr);
        if (args.Length == 0)
        {
            // No command: the help, on stderr, as a usage error.
            root.Parse(["--help"]).Invoke(new InvocationConfiguration { Output = stderr, Error = stderr });
            return ExitCodes.Usage;
        }
        var parse = root.Parse(args);
        var command = parse.CommandResult.Command;
        string prefix = ReferenceEquals(command, root) ? "nativevae" : $"nativevae {command.Name}";
        if (parse.Action is not HelpAction && parse.Errors.Count > 0)
        {
            // The first error names the option or argument; the rest follow from it (e.g. the value of an unknown
            // option). At the root, "Required command was not provided" comes first and an unknown command second.
            string message = ReferenceEquals(command, root) && parse.UnmatchedTokens.Count > 0
                ? $"unknown command '{parse.UnmatchedTokens[0]}'"
                : parse.Errors[0].Message;
            stderr.WriteLine($"{prefix}: error: {OneLine(message)}");
            stderr.WriteLine($"usage: {Usage(command, root)}; '{prefix} --help' says more");
            return ExitCodes.Usage;
        }
        try
        {
            return parse.Invoke(new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false });
        }
        catch (UsageException e)
        {
            stderr.WriteLine($"{prefix}: error: {OneLine(e.Message)}");
            stderr.WriteLine($"usage: {Usage(command, root)}; '{prefix} --help' says more");
            return ExitCodes.Usage;
        }
        catch (Exception e)
        {
            // Every failure reaches the user as one line; the message of our exceptions names file and tensor.
            stderr.WriteLine($"{prefix}: error: {OneLine(e.Message)}");
            return ExitCodes.Failure;
        }
    }

    private static RootCommand BuildRoot(TextWriter stdout, TextWriter stderr)
    {
        var root = new RootCommand("nativevae: run Stable Diffusion family VAEs (AutoencoderKL, TAESD) on a GPU or the CPU. " +
            "'nativevae <command> --help' describes a command.");
        foreach (var command in Commands) root.Subcommands.Add(command.Build(stdout, stderr));
        return root;
    }

    /// <summary>"nativevae info &lt;file-or-folder&gt; [options]", or the tool's own usage.</summary>
    private static string Usage(Command command, RootCommand root)
    {
        if (ReferenceEquals(command, root))
            return $"nativevae <command> [arguments] [options] (commands: {string.Join(", ", root.Subcommands.Select(c => c.Name))})";
        string arguments = string.Concat(command.Arguments.Select(a => $" <{a.Name}>"));
        string required = string.Concat(command.Options.Where(o => o.Required).Select(o => $" {o.Name} <{o.HelpName}>"));
        return $"nativevae {command.Name}{arguments}{required} [options]";
    }

    /// <summary>
    /// The message as one line, without the .NET wording a user cannot act on: an <see cref="ArgumentException"/>'s
    /// " (Parameter 'latents')" suffix names a C# parameter, not anything on the command line.
    /// </summary>
    internal static string OneLine(string message) => ParameterSuffix().Replace(message, "").ReplaceLineEndings(" ").Trim();

    [GeneratedRegex(@" ?\(Parameter '[^']*'\)")]
    private static partial Regex ParameterSuffix();
}
