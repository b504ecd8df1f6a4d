using System.Text.RegularExpressions;
using NativeVae.Tests.Support;

namespace NativeVae.Tests.Architecture;

/// <summary>
/// The library's folders import one way (README "Layout"): a core of contracts that depends on nothing; formats,
/// in-memory weights, models and imaging on the core alone; backends on the core and the kernels; loading above
/// formats and models; the API on top, and the remote client (<c>Remote/</c>) beside it. Read from the sources: every <c>using NativeVae.X</c> and every qualified
/// <c>NativeVae.X.</c> name of a file in <c>src/Managed/&lt;Folder&gt;</c>, plus the API's own types (namespace
/// <c>NativeVae</c>, which every file sees without a using) named outside <c>Api/</c>. The kernels' rules are checked on
/// their assembly (<c>KernelLayeringTests</c>); the CLI sees no internals (<c>CliUsageTests</c>).
/// </summary>
public class LayeringTests
{
    private const string Kernels = "Kernels";
    private const string Formats = "Formats";

    /// <summary>What each folder of src/Managed may import. Folders not listed here fail the test until placed.</summary>
    private static readonly Dictionary<string, string[]> Allowed = new()
    {
        ["Core"] = [],
        ["Formats"] = ["Core"],
        ["Weights"] = ["Core"],
        ["Models"] = ["Core"],
        ["Imaging"] = ["Core"],
        // Tiling works on IBackend; from Kernels it takes only the 16-bit conversion its file store writes with.
        ["Tiling"] = ["Core", Kernels],
        ["Backends"] = ["Core", Kernels],
        ["Loading"] = ["Core", Formats, "Models", "Weights"],
        // The public API reaches the kernels only through the backends (the benchmark's FMA peak included).
        ["Api"] = ["Core", Formats, "Weights", "Models", "Imaging", "Tiling", "Backends", "Loading"],
        // The remote client sits beside the local API, implementing its contract (IVae, the options, DecodeResult).
        ["Remote"] = ["Core", Formats, "Models", "Imaging", "Api"],
    };

    private static readonly Regex UsingDirective = new(@"^\s*using\s+(?:static\s+)?NativeVae\.(?<ns>[A-Za-z]+)", RegexOptions.Multiline);
    private static readonly Regex QualifiedName = new(@"\bNativeVae\.(?<ns>[A-Z][A-Za-z]+)\.");

    /// <summary>
    /// A folder's namespace named relative to <c>NativeVae</c> from inside another (<c>Formats.JsonErrorPosition</c> in a
    /// file of namespace <c>NativeVae.Models</c>), which C# resolves without a using.
    /// </summary>
    private static readonly Regex RelativeName = new(
        @"(?<![\w.""])(?<ns>" + string.Join("|", Allowed.Keys.Append(Kernels)) + @")\.(?=[A-Z])");
    private static readonly Regex TypeDeclaration = new(@"\b(?:class|struct|interface|enum|record(?:\s+struct)?)\s+(?<name>[A-Z][A-Za-z0-9]*)");
    private static readonly Regex Comment = new(@"//.*$", RegexOptions.Multiline);

    private static string ManagedRoot => Path.Combine(TestPaths.RepoRoot, "src", "Managed");

    /// <summary>Per folder, the folders its files import, and one file that does so for each.</summary>
    private static Dictionary<string, Dictionary<string, string>> Imports()
    {
        var apiTypes = Directory.EnumerateFiles(Path.Combine(ManagedRoot, "Api"), "*.cs")
            .SelectMany(f => TypeDeclaration.Matches(Comment.Replace(File.ReadAllText(f), "")).Select(m => m.Groups["name"].Value))
            .ToHashSet();
        var apiTypeUse = new Regex(@"\b(?:" + string.Join("|", apiTypes.Select(Regex.Escape)) + @")\b");

        var imports = new Dictionary<string, Dictionary<string, string>>();
        foreach (string folder in Directory.EnumerateDirectories(ManagedRoot).Select(Path.GetFileName).Where(IsSourceFolder!)!)
        {
            var edges = imports[folder!] = new Dictionary<string, string>();
            foreach (string file in Directory.EnumerateFiles(Path.Combine(ManagedRoot, folder!), "*.cs", SearchOption.AllDirectories))
            {
                string code = Comment.Replace(File.ReadAllText(file), "");
                string name = Path.GetRelativePath(ManagedRoot, file);
                var used = UsingDirective.Matches(code).Concat(QualifiedName.Matches(code)).Concat(RelativeName.Matches(code))
                    .Select(m => m.Groups["ns"].Value);
                if (folder != "Api" && apiTypeUse.Match(code) is { Success: true } api) used = used.Append($"Api ({api.Value})");
                foreach (string target in used.Where(t => t != folder)) edges.TryAdd(target, name);
            }
        }
        return imports;
    }

    private static bool IsSourceFolder(string? name) => name is not null and not ("bin" or "obj");

    [Test]
    public void EveryFolderImportsOnlyWhatItsLayerAllows()
    {
        var violations = new List<string>();
        foreach (var (folder, edges) in Imports())
        {
            if (!Allowed.TryGetValue(folder, out var allowed))
            {
                violations.Add($"src/Managed/{folder} has no place in the layering: add it to LayeringTests.Allowed");
                continue;
            }
            foreach (var (target, file) in edges)
                if (!allowed.Contains(target.Split(' ')[0]))
                    violations.Add($"{folder} imports {target} (first in {file}); {folder} may import only [{string.Join(", ", allowed)}]");
        }
        Assert.That(violations, Is.Empty);
    }

    [Test]
    public void TheFolderGraphHasNoCycles()
    {
        var graph = Imports().ToDictionary(kv => kv.Key, kv => kv.Value.Keys.Select(k => k.Split(' ')[0]).ToList());
        var state = new Dictionary<string, int>(); // 1 visiting, 2 done
        var path = new Stack<string>();
        string? cycle = null;
        void Visit(string node)
        {
            if (cycle is not null || !graph.ContainsKey(node)) return;
            if (state.GetValueOrDefault(node) == 2) return;
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
        Assert.That(cycle, Is.Null, "import cycle between folders of src/Managed");
        Assert.That(graph.Keys, Is.SupersetOf(new[] { "Core", "Api", "Models", "Formats", "Loading" }), "the test sees the folders");
    }

    [Test]
    public void TheCheckSeesAViolation()
    {
        // The same reading of a file that imports upward: models must not know a file format.
        string code = Comment.Replace("using NativeVae.Formats.SafeTensors; // comment: NativeVae.Api.x\nclass M {}", "");
        Assert.That(UsingDirective.Matches(code).Select(m => m.Groups["ns"].Value), Is.EqualTo(new[] { "Formats" }));
        Assert.That(QualifiedName.Matches(code).Select(m => m.Groups["ns"].Value), Is.EqualTo(new[] { "Formats" }), "comments are not imports");
        // A namespace named relative to NativeVae, as C# allows inside it, is an import too.
        string relative = "namespace NativeVae.Models;\nclass R { string S(System.Exception e) => Formats.JsonErrorPosition.Of(e); }";
        Assert.That(RelativeName.Matches(relative).Select(m => m.Groups["ns"].Value), Is.EqualTo(new[] { "Formats" }));
    }
}
