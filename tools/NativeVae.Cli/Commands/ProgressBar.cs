namespace NativeVae.Cli.Commands;

/// <summary>
/// A one-line progress bar on stderr, redrawn in place; silent when stderr is redirected to a file.
/// Hand-written rather than Spectre.Console's Progress: that one draws through an IAnsiConsole (the tests' TextWriter
/// would need one built over it) and runs the work inside its own blocking Start callback, which owns the display;
/// here the library reports through a plain IProgress, and 20 lines write plain text to the writer given, at any
/// terminal width, and nothing when stderr is a file.
/// </summary>
internal sealed class ProgressBar(TextWriter stderr, string label) : IProgress<VaeProgress>
{
    private const int Width = 30;
    private readonly bool _interactive = !ReferenceEquals(stderr, Console.Error) || !Console.IsErrorRedirected;
    private int _lastFilled = -1;

    public void Report(VaeProgress value)
    {
        if (!_interactive || value.Total <= 0) return;
        int filled = (int)((long)Width * value.Done / value.Total);
        if (filled == _lastFilled && value.Done != value.Total) return;
        _lastFilled = filled;
        stderr.Write($"\r{label} [{new string('#', filled)}{new string('.', Width - filled)}] {value.Done}/{value.Total}");
        if (value.Done == value.Total) stderr.WriteLine();
    }
}
