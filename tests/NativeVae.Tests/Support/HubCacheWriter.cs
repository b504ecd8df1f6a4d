using System.Security.Cryptography;

namespace NativeVae.Tests.Support;

/// <summary>
/// Lays a folder out as huggingface_hub caches a download: the files' bytes in
/// <c>models--org--name/blobs/&lt;sha256&gt;</c>, the snapshot <c>snapshots/&lt;revision&gt;/...</c> made of
/// relative symlinks into <c>blobs/</c>, and <c>refs/main</c> naming the revision.
/// </summary>
internal static class HubCacheWriter
{
    /// <summary>Moves every file of <paramref name="staged"/> into the cache; returns the snapshot folder.</summary>
    public static string AddSnapshot(string cacheRoot, string repoId, string revision, string staged, bool writeMainRef = true)
    {
        string repoFolder = Path.Combine(cacheRoot, "models--" + repoId.Replace("/", "--"));
        string blobs = Path.Combine(repoFolder, "blobs");
        string snapshot = Path.Combine(repoFolder, "snapshots", revision);
        Directory.CreateDirectory(blobs);
        foreach (string file in Directory.EnumerateFiles(staged, "*", SearchOption.AllDirectories))
        {
            string link = Path.Combine(snapshot, Path.GetRelativePath(staged, file));
            string blob = Path.Combine(blobs, Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(file))));
            if (!File.Exists(blob)) File.Move(file, blob);
            Directory.CreateDirectory(Path.GetDirectoryName(link)!);
            File.CreateSymbolicLink(link, Path.GetRelativePath(Path.GetDirectoryName(link)!, blob));
        }
        if (writeMainRef)
        {
            Directory.CreateDirectory(Path.Combine(repoFolder, "refs"));
            File.WriteAllText(Path.Combine(repoFolder, "refs", "main"), revision);
        }
        return snapshot;
    }
}
