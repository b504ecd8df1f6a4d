using System.Text.RegularExpressions;

namespace NativeVae.Loading;

/// <summary>
/// Finds a Hugging Face repo id (<c>stabilityai/sd-vae-ft-mse</c>) in the local hub cache, with no network:
/// <c>&lt;cache&gt;/models--&lt;org&gt;--&lt;name&gt;/snapshots/&lt;revision&gt;/</c>, the revision named by
/// <c>refs/main</c> (or the only snapshot when there is no ref). The snapshot's files are symlinks into
/// <c>blobs/</c>; they are opened through the links, by the links' names. The cache root is
/// <c>$HF_HUB_CACHE</c>, else <c>$HF_HOME/hub</c>, else <c>$XDG_CACHE_HOME/huggingface/hub</c>, else
/// <c>~/.cache/huggingface/hub</c>, as huggingface_hub resolves it.
/// </summary>
internal static partial class HubCacheResolver
{
    private const string RepoFolderPrefix = "models--";
    private const string RepoFolderSeparator = "--";
    private const string SnapshotsFolder = "snapshots";
    private const string MainRef = "refs/main";

    /// <summary>
    /// True when <paramref name="path"/> has the shape of a hub model id, <c>org/name</c>: two parts of letters,
    /// digits, '-', '_', '.', neither starting with '.' or '-' (so no '..', no absolute path, no backslash).
    /// </summary>
    public static bool LooksLikeRepoId(string path) => RepoId().IsMatch(path) && !path.Contains("..", StringComparison.Ordinal);

    /// <summary>The hub cache folder from the environment, in huggingface_hub's order.</summary>
    /// <param name="environment">reads one environment variable (null when unset); tests pass their own.</param>
    /// <param name="home">the user's home folder.</param>
    public static string DefaultCacheRoot(Func<string, string?> environment, string home)
    {
        static string? Set(string? value) => string.IsNullOrEmpty(value) ? null : value;
        if (Set(environment("HF_HUB_CACHE")) is { } hubCache) return hubCache;
        if (Set(environment("HF_HOME")) is { } hfHome) return Path.Combine(hfHome, "hub");
        string cache = Set(environment("XDG_CACHE_HOME")) ?? Path.Combine(home, ".cache");
        return Path.Combine(cache, "huggingface", "hub");
    }

    /// <summary><see cref="DefaultCacheRoot(Func{string, string?}, string)"/> for this process.</summary>
    public static string DefaultCacheRoot() =>
        DefaultCacheRoot(Environment.GetEnvironmentVariable, Environment.GetFolderPath(Environment.SpecialFolder.UserProfile));

    /// <summary>The snapshot folder of <paramref name="repoId"/> in the cache at <paramref name="cacheRoot"/>.</summary>
    /// <exception cref="FileNotFoundException">the repo is not cached; the message names the repo, the folder looked in and how to fill it.</exception>
    /// <exception cref="InvalidDataException">the cached repo has no usable snapshot; the message lists what is there.</exception>
    public static string ResolveSnapshot(string repoId, string cacheRoot)
    {
        string repoFolder = Path.Combine(cacheRoot, RepoFolderPrefix + repoId.Replace("/", RepoFolderSeparator, StringComparison.Ordinal));
        string snapshots = Path.Combine(repoFolder, SnapshotsFolder);
        if (!Directory.Exists(snapshots))
            throw new FileNotFoundException(
                $"{repoId}: no such file or folder, and not in the Hugging Face hub cache (looked for {repoFolder}); " +
                $"download it with `huggingface-cli download {repoId}`, or point HF_HUB_CACHE / HF_HOME at the cache that holds it",
                repoFolder);

        string refPath = Path.Combine(repoFolder, MainRef);
        if (File.Exists(refPath))
        {
            string revision = File.ReadAllText(refPath).Trim();
            string snapshot = Path.Combine(snapshots, revision);
            if (revision.Length == 0 || !LooksLikeRevision(revision) || !Directory.Exists(snapshot))
                throw new InvalidDataException($"{refPath}: names revision '{revision}', which has no folder in {snapshots}");
            return snapshot;
        }
        var all = Directory.EnumerateDirectories(snapshots).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        return all.Count switch
        {
            1 => Path.Combine(snapshots, all[0]!),
            0 => throw new InvalidDataException($"{repoId}: the hub cache folder {repoFolder} holds no snapshots; download it again with `huggingface-cli download {repoId}`"),
            _ => throw new InvalidDataException(
                $"{repoId}: {MainRef} is missing in {repoFolder} and there are {all.Count} snapshots ({string.Join(", ", all)}); " +
                $"pass the path of the one to use ({snapshots}/<revision>)"),
        };
    }

    /// <summary>A ref's content is a commit hash: no path separators may lead out of <c>snapshots/</c>.</summary>
    private static bool LooksLikeRevision(string revision) =>
        revision.IndexOfAny(['/', '\\']) < 0 && revision != "." && revision != "..";

    [GeneratedRegex(@"^[A-Za-z0-9_][A-Za-z0-9._-]*/[A-Za-z0-9_][A-Za-z0-9._-]*$")]
    private static partial Regex RepoId();
}
