using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using NativeVae.Tests.Support;

namespace NativeVae.Tests.Docs;

/// <summary>
/// The README's library snippet compiles as written, against the public API only: the compilation is an assembly
/// the library's InternalsVisibleTo does not name, referencing the library, ImageSharp and the framework.
/// </summary>
public class ReadmeSnippetTests
{
    private static readonly Regex CSharpBlock = new("```csharp\\n(?<code>.*?)```", RegexOptions.Singleline);

    [Test]
    public void LibrarySnippetsCompileAsWritten()
    {
        string readme = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "README.md"));
        var blocks = CSharpBlock.Matches(readme);
        Assert.That(blocks, Is.Not.Empty, "README.md has a ```csharp block");
        foreach (Match block in blocks)
        {
            string code = block.Groups["code"].Value;
            Assert.That(Compile(code), Is.Empty, "the README snippet as written:\n" + code);
        }
    }

    [Test]
    public void TheCheckRejectsSnippetsThatUseInternals()
    {
        // The same compilation refuses an internal type and a snippet without its using, so the check above can fail.
        Assert.That(Compile("using NativeVae;\nvar x = new NativeVae.Api.PixelRange();"), Is.Not.Empty, "internal type");
        Assert.That(Compile("using var vae = Vae.Load(\"x\");"), Is.Not.Empty, "no using NativeVae");
    }

    private static List<string> Compile(string code)
    {
        var tree = CSharpSyntaxTree.ParseText(code, new CSharpParseOptions(LanguageVersion.Latest));
        string[] platform = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator);
        var references = platform
            .Where(p => Path.GetFileName(p).StartsWith("System.", StringComparison.Ordinal) || Path.GetFileName(p) is "mscorlib.dll" or "netstandard.dll")
            .Append(typeof(Vae).Assembly.Location)
            .Append(typeof(SixLabors.ImageSharp.Image).Assembly.Location)
            .Select(p => MetadataReference.CreateFromFile(p));
        var compilation = CSharpCompilation.Create("ReadmeSnippet", [tree], references,
            new CSharpCompilationOptions(OutputKind.ConsoleApplication, nullableContextOptions: NullableContextOptions.Enable));
        using var output = new MemoryStream();
        var result = compilation.Emit(output);
        return result.Diagnostics
            .Where(d => d.Severity == DiagnosticSeverity.Error || (d.Severity == DiagnosticSeverity.Warning && d.Id.StartsWith("CS86", StringComparison.Ordinal)))
            .Select(d => d.ToString())
            .ToList();
    }
}
