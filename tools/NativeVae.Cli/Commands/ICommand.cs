namespace NativeVae.Cli.Commands;

/// <summary>One CLI command: <c>nativevae {Name} ...</c>.</summary>
internal interface ICommand
{
    string Name { get; }

    /// <summary>The command line after <c>nativevae</c>, e.g. "info &lt;file-or-folder&gt;".</summary>
    string Usage { get; }

    string Summary { get; }

    /// <summary>Runs with the arguments after the command name; returns the exit code. Results go to
    /// <paramref name="stdout"/>, progress bars to <paramref name="stderr"/>. Throws <see cref="UsageException"/> for
    /// a wrong command line, any other exception for a failure.</summary>
    int Run(string[] args, TextWriter stdout, TextWriter stderr);
}

/// <summary>The command line is wrong (missing argument, unknown option).</summary>
internal sealed class UsageException(string message) : Exception(message);
