using System.Reflection;
using System.Xml.Linq;

namespace NativeVae.Tests.Architecture;

/// <summary>
/// A newcomer finds the whole public API in one namespace, every type and member documented: the library exports
/// only types of namespace <c>NativeVae</c> (the kernels export nothing), and its XML documentation file has an entry
/// for each exported type and each public member declared on it.
/// </summary>
public class PublicSurfaceTests
{
    private static readonly Assembly Library = typeof(Vae).Assembly;

    [Test]
    public void EveryPublicTypeIsInNamespaceNativeVae()
    {
        var outside = Library.GetExportedTypes().Where(t => t.Namespace != "NativeVae").Select(t => t.FullName).ToArray();
        Assert.That(outside, Is.Empty);
        Assert.That(Library.GetExportedTypes().Select(t => t.Name), Does.Contain(nameof(Vae)).And.Contain(nameof(IVae)));
    }

    [Test]
    public void TheKernelsExportNothing()
    {
        var kernels = Library.GetReferencedAssemblies().Single(a => a.Name == "NativeVae.Kernels");
        Assert.That(Assembly.Load(kernels).GetExportedTypes().Select(t => t.FullName), Is.Empty);
    }

    [Test]
    public void EveryPublicTypeAndMemberHasXmlDocs()
    {
        string xml = Path.ChangeExtension(Library.Location, ".xml");
        Assert.That(File.Exists(xml), Is.True, $"{xml}: the library's XML docs (GenerateDocumentationFile)");
        var docs = XDocument.Load(xml).Descendants("member").ToDictionary(m => (string)m.Attribute("name")!);
        var documented = docs.Keys.ToHashSet();
        // A positional record's properties are documented by its <param> tags.
        bool IsRecordParameter(Type type, MemberInfo member) => member is PropertyInfo
            && docs.TryGetValue("T:" + Name(type), out var typeDoc)
            && typeDoc.Elements("param").Any(p => (string?)p.Attribute("name") == member.Name);
        var missing = new List<string>();
        foreach (var type in Library.GetExportedTypes())
        {
            if (!documented.Contains("T:" + Name(type))) missing.Add("T:" + Name(type));
            const BindingFlags Declared = BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
            foreach (var member in type.GetMembers(Declared))
            {
                if (member is MethodInfo { IsSpecialName: true } || IsCompilerMade(type, member) || IsRecordParameter(type, member)) continue; // accessors, record plumbing
                string prefix = member switch { PropertyInfo => "P:", FieldInfo => "F:", EventInfo => "E:", Type => "T:", _ => "M:" };
                string name = member is Type nested ? Name(nested) : $"{Name(type)}.{member.Name.Replace('.', '#')}";
                if (!documented.Any(d => d == prefix + name || d.StartsWith(prefix + name + "(", StringComparison.Ordinal) || d.StartsWith(prefix + name + "``", StringComparison.Ordinal)))
                    missing.Add(prefix + name);
            }
        }
        Assert.That(missing.Distinct(), Is.Empty, "public API without XML docs");
    }

    private static string Name(Type type) => type.FullName!.Replace('+', '.');

    /// <summary>
    /// Members the compiler writes: records' equality, printing and copy constructor, enums' value field, and the
    /// parameterless constructor (the type's summary is its documentation).
    /// </summary>
    private static bool IsCompilerMade(Type type, MemberInfo member) =>
        member.IsDefined(typeof(System.Runtime.CompilerServices.CompilerGeneratedAttribute))
        || (type.IsEnum && member.Name == "value__")
        || (member is ConstructorInfo c && c.GetParameters().Length == 0)
        || (type.GetMethod("<Clone>$") is not null && member.Name is "Equals" or "GetHashCode" or "ToString" or "PrintMembers" or "Deconstruct")
        || (member is ConstructorInfo copy && copy.GetParameters() is [var only] && only.ParameterType == type);
}
