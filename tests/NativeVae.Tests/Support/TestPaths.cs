namespace NativeVae.Tests.Support;

/// <summary>Where tests find the committed fixtures and the optional <c>../shared</c> material.</summary>
internal static class TestPaths
{
    /// <summary>The repository root: the nearest ancestor of the test binaries holding NativeVae.sln.</summary>
    public static string RepoRoot { get; } = FindRepoRoot();

    /// <summary>Committed oracle fixtures (<c>tests/fixtures</c>).</summary>
    public static string Fixtures => Path.Combine(RepoRoot, "tests", "fixtures");

    /// <summary>
    /// A path inside <c>../shared</c> beside the repository; the test is skipped (Inconclusive is not used:
    /// Ignore keeps CI green and says why) when the shared folder is absent, as in a user's clone.
    /// </summary>
    public static string RequireShared(string relative)
    {
        string path = Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared", relative));
        if (!File.Exists(path) && !Directory.Exists(path))
            Assert.Ignore($"needs ../shared/{relative}, which is absent (it sits beside the repository on the project's machines only)");
        return path;
    }

    public static string Fixture(string relative)
    {
        string path = Path.Combine(Fixtures, relative);
        if (!File.Exists(path))
            Assert.Fail($"fixture {relative} is missing; regenerate with tools/NativeVae.Oracle (see its README)");
        return path;
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "NativeVae.sln"))) return dir.FullName;
        }
        throw new InvalidOperationException($"no NativeVae.sln above {AppContext.BaseDirectory}");
    }
}
