using NativeVae.Cli.Commands;

namespace NativeVae.Cli;

/// <summary>
/// <c>nativevae &lt;command&gt; [arguments]</c>. Each command is one class in Commands/; add a command with one
/// line in <see cref="Commands"/>. Exit code 0 on success; on failure one line on stderr and a non-zero code
/// (<see cref="ExitCodes"/>), never a stack trace.
/// </summary>
public static class Program
{
    /// <summary>The commands, by name. One line per command.</summary>
    private static readonly ICommand[] Commands =
    [
        new ConvertCommand(),
        new InfoCommand(),
        new EncodeCommand(),
        new DecodeCommand(),
        new RoundtripCommand(),
        new BenchCommand(),
    ];

    public static int Main(string[] args) => Run(args, Console.Out, Console.Error);

    /// <summary>Runs one command line in-process (also the tests' entry point).</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            (args.Length == 0 ? stderr : stdout).WriteLine(Usage());
            return args.Length == 0 ? ExitCodes.Usage : ExitCodes.Success;
        }
        var command = Commands.FirstOrDefault(c => c.Name == args[0]);
        if (command is null)
        {
            stderr.WriteLine($"nativevae: error: unknown command '{args[0]}' (commands: {string.Join(", ", Commands.Select(c => c.Name))})");
            return ExitCodes.Usage;
        }
        try
        {
            return command.Run(args[1..], stdout, stderr);
        }
        catch (UsageException e)
        {
            stderr.WriteLine($"nativevae {command.Name}: error: {OneLine(e.Message)}");
            stderr.WriteLine($"usage: nativevae {command.Usage}");
            return ExitCodes.Usage;
        }
        catch (Exception e)
        {
            // Every failure reaches the user as one line; the message of our exceptions names file and tensor.
            stderr.WriteLine($"nativevae {command.Name}: error: {OneLine(e.Message)}");
            return ExitCodes.Failure;
        }
    }

    private static string Usage() =>
        "usage: nativevae <command> [arguments]\ncommands:\n" + string.Join("\n", Commands.Select(c => $"  {c.Usage}\n      {c.Summary}"));

    private static string OneLine(string message) => message.ReplaceLineEndings(" ").Trim();
}

/// <summary>Process exit codes.</summary>
public static class ExitCodes
{
    public const int Success = 0;

    /// <summary>The command failed (bad input file, I/O error).</summary>
    public const int Failure = 1;

    /// <summary>The command line itself is wrong.</summary>
    public const int Usage = 2;
}
