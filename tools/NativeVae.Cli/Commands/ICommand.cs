using System.CommandLine;

namespace NativeVae.Cli.Commands;

/// <summary>One CLI command: <c>nativevae {Name} ...</c>, built as a System.CommandLine <see cref="Command"/>.</summary>
internal interface ICommand
{
    /// <summary>
    /// The command with its arguments, options and action. The action writes results to
    /// <paramref name="stdout"/> and progress bars to <paramref name="stderr"/>, returns the exit code, and throws
    /// <see cref="UsageException"/> for a wrong command line that parsing cannot see (an option that does not fit
    /// the input file), any other exception for a failure.
    /// </summary>
    Command Build(TextWriter stdout, TextWriter stderr);
}

/// <summary>The command line is wrong (an option that does not fit the input, a bad list item).</summary>
internal sealed class UsageException(string message) : Exception(message);
