using System.Text.RegularExpressions;
using NativeVae.Tests.Support;

namespace NativeVae.Tests.Architecture;

/// <summary>
/// The library's folders use one another one way. The rules have one source, the README's "Layout" section: each
/// folder of <c>src/Managed</c> has a line <c>Folder/ [Allowed, Folders]</c>. They are checked on the compiled
/// assembly (<see cref="TypeUses"/>: signatures, fields, locals and every token in the IL), where a type belongs to
/// the folder of the file that declares it (public types share namespace <c>NativeVae</c> wherever they sit), and a
/// type of the kernels' assembly to <c>Kernels</c>. The kernels' inner rules are checked in
/// <c>KernelLayeringTests</c>; the CLI sees no internals (<c>CliUsageTests</c>).
/// </summary>
public class LayeringTests
{
    private const string Kernels = "Kernels";
    private const string KernelsNamespace = "NativeVae.Kernels";

    /// <summary>A layer line of the README's layout: the folder, then its allowed imports in brackets.</summary>
    private static readonly Regex LayerLine = new(@"^\s+(?<folder>[A-Z][A-Za-z]+)/\s+\[(?<allowed>[^\]]*)\]", RegexOptions.Multiline);
    private static readonly Regex NamespaceDeclaration = new(@"^namespace\s+(?<ns>[\w.]+)", RegexOptions.Multiline);
    private static readonly Regex TopLevelType = new(
        @"^(?:(?:public|internal|file|static|sealed|abstract|partial|readonly|unsafe|ref)\s+)*(?:(?:class|struct|interface|enum|record(?:\s+struct|\s+class)?)\s+(?<name>[A-Za-z_]\w*)|delegate\s+[^(]*?\s(?<name>[A-Za-z_]\w*)\s*(?:<[^>]*>)?\s*\()",
        RegexOptions.Multiline);

    private static string ManagedRoot => Path.Combine(TestPaths.RepoRoot, "src", "Managed");

    /// <summary>What each folder may use, read from the README's "Layout" section.</summary>
    internal static Dictionary<string, string[]> AllowedFromReadme(string readme)
    {
        int start = readme.IndexOf("## Layout", StringComparison.Ordinal);
        Assert.That(start, Is.GreaterThanOrEqualTo(0), "README has no '## Layout' section");
        int end = readme.IndexOf("\n## ", start + 1, StringComparison.Ordinal);
        string layout = end < 0 ? readme[start..] : readme[start..end];
        return LayerLine.Matches(layout).ToDictionary(
            m => m.Groups["folder"].Value,
            m => m.Groups["allowed"].Value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries));
    }

    private static Dictionary<string, string[]> Allowed() =>
        AllowedFromReadme(File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "README.md")));

    /// <summary>
    /// The folder of every top-level type the library's sources declare, by full name (file-scoped namespaces, so a
    /// top-level declaration starts its line), plus the kernels' assembly.
    /// </summary>
    private static readonly Lazy<Dictionary<string, string>> DeclaringFolders = new(() =>
    {
        var folders = new Dictionary<string, string>();
        foreach (string file in Directory.EnumerateFiles(ManagedRoot, "*.cs", SearchOption.AllDirectories))
        {
            string folder = Path.GetRelativePath(ManagedRoot, file).Split(Path.DirectorySeparatorChar)[0];
            if (folder is "bin" or "obj") continue;
            string code = File.ReadAllText(file);
            string ns = NamespaceDeclaration.Match(code).Groups["ns"].Value;
            foreach (Match m in TopLevelType.Matches(code)) folders[$"{ns}.{m.Groups["name"].Value}"] = folder;
        }
        return folders;
    });

    /// <summary>The folder of a type of the library or the kernels; null for anything else (the runtime, packages, compiler-made types).</summary>
    private static string? FolderOf(Mono.Cecil.TypeReference type)
    {
        string ns = TypeUses.Namespace(type);
        if (ns == KernelsNamespace || ns.StartsWith(KernelsNamespace + ".", StringComparison.Ordinal)) return Kernels;
        string name = $"{ns}.{type.Name.Split('`')[0]}";
        return DeclaringFolders.Value.GetValueOrDefault(name);
    }

    private static string[] SourceFolders() =>
        Directory.EnumerateDirectories(ManagedRoot).Select(Path.GetFileName).OfType<string>()
            .Where(name => name is not ("bin" or "obj")).Order().ToArray();

    [Test]
    public void TheReadmeGivesEveryFolderItsPlace()
    {
        var allowed = Allowed();
        Assert.That(allowed.Keys.Order(), Is.EqualTo(SourceFolders()),
            "every folder of src/Managed needs one line 'Folder/ [Imports]' in the README's Layout, and no other folder has one");
        var known = allowed.Keys.Append(Kernels).ToHashSet();
        foreach (var (folder, imports) in allowed)
            Assert.That(imports, Is.SubsetOf(known), $"README: {folder}/ may import only folders that exist");
    }

    [Test]
    public void EveryFolderUsesOnlyWhatItsLayerAllows()
    {
        var allowed = Allowed();
        var violations = Violations(typeof(NativeVae.Vae).Assembly.Location, allowed);
        Assert.That(violations, Is.Empty);
        var users = TypeUses.Of(typeof(NativeVae.Vae).Assembly.Location).Select(u => u.User).DistinctBy(t => t.FullName).ToArray();
        // Every type the sources declare is placed (compiler-made ones, such as <PrivateImplementationDetails>, are not theirs).
        Assert.That(users.Where(t => !t.Name.StartsWith('<') && FolderOf(t) is null).Select(t => t.FullName), Is.Empty,
            "types the test cannot place in a folder");
        Assert.That(users.Select(FolderOf).OfType<string>().Distinct(), Is.EquivalentTo(SourceFolders()), "the check sees every folder's types");
    }

    /// <summary>One line per (folder, used folder) pair that its rules forbid, with the first use found.</summary>
    private static List<string> Violations(string assembly, Dictionary<string, string[]> allowed)
    {
        var seen = new HashSet<(string, string)>();
        var violations = new List<string>();
        foreach (var use in TypeUses.Of(assembly))
        {
            string? user = FolderOf(use.User);
            string? used = FolderOf(use.Used);
            if (user is null || used is null || user == used) continue;
            if (!allowed.TryGetValue(user, out var imports))
            {
                if (seen.Add((user, ""))) violations.Add($"{user}/ has no line in the README's Layout");
                continue;
            }
            if (!imports.Contains(used) && seen.Add((user, used)))
                violations.Add($"{user}/ uses {used}/ ({use.Used.FullName} in {use.Where}); README allows {user}/ only [{string.Join(", ", imports)}]");
        }
        return violations;
    }

    [Test]
    public void TheFolderRulesHaveNoCycles()
    {
        var graph = Allowed();
        var state = new Dictionary<string, int>(); // 1 visiting, 2 done
        var path = new Stack<string>();
        string? cycle = null;
        void Visit(string node)
        {
            if (cycle is not null || !graph.ContainsKey(node) || state.GetValueOrDefault(node) == 2) return;
            if (state.GetValueOrDefault(node) == 1)
            {
                cycle = string.Join(" -> ", path.Reverse().SkipWhile(n => n != node).Append(node));
                return;
            }
            state[node] = 1;
            path.Push(node);
            foreach (string next in graph[node]) Visit(next);
            path.Pop();
            state[node] = 2;
        }
        foreach (string node in graph.Keys) Visit(node);
        Assert.That(cycle, Is.Null, "the README's layer rules allow an import cycle");
    }

    [Test]
    public void TheCheckSeesAViolation()
    {
        // Rules that forbid what the library really does: the API uses the models, Models/ the core.
        var strict = AllowedFromReadme("## Layout\n    Api/  [Core]\n    Models/ []\n    Core/ []\n## Next\n    Other/ [Api]\n");
        Assert.That(strict.Keys, Is.EquivalentTo(new[] { "Api", "Models", "Core" }), "only the Layout section is read");
        var violations = Violations(typeof(NativeVae.Vae).Assembly.Location, strict);
        Assert.That(violations, Has.Some.StartsWith("Api/ uses Models/"));
        Assert.That(violations, Has.Some.StartsWith("Models/ uses Core/"));
        Assert.That(violations, Has.Some.EqualTo("Loading/ has no line in the README's Layout"));
        // Public types are placed by their file, not their namespace: TensorShape (namespace NativeVae) sits in Core/.
        Assert.That(DeclaringFolders.Value["NativeVae.TensorShape"], Is.EqualTo("Core"));
        Assert.That(DeclaringFolders.Value["NativeVae.Vae"], Is.EqualTo("Api"));
    }
}
