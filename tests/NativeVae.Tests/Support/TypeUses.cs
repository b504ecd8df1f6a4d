using Mono.Cecil;
using Mono.Cecil.Cil;

namespace NativeVae.Tests.Support;

/// <summary>One type's use of another, as the compiled assembly records it.</summary>
/// <param name="User">the top-level type whose code or signatures name <paramref name="Used"/> (nested and
/// compiler-generated types count as their outermost declaring type).</param>
/// <param name="Used">the top-level type named.</param>
/// <param name="Where">the member that names it, for the failure message.</param>
internal readonly record struct TypeUse(TypeReference User, TypeReference Used, string Where);

/// <summary>
/// Every type a compiled assembly's types use, read with Mono.Cecil from what the compiler emitted: base types,
/// interfaces, attributes, fields, method signatures and generic constraints, locals, catch clauses, and every type,
/// method and field token in the IL (calls, <c>new</c>, field access, <c>typeof</c>, casts). So a use through a
/// <c>using</c>, a qualified name or a name relative to an enclosing namespace is seen alike. Not seen: constants,
/// which the compiler copies in as values, and <c>nameof</c>.
/// </summary>
internal static class TypeUses
{
    private static readonly Dictionary<string, IReadOnlyList<TypeUse>> Cache = [];

    /// <summary>The uses recorded in the assembly at <paramref name="path"/> (read once per test run).</summary>
    public static IReadOnlyList<TypeUse> Of(string path)
    {
        lock (Cache)
        {
            if (Cache.TryGetValue(path, out var known)) return known;
            using var module = ModuleDefinition.ReadModule(path, new ReaderParameters { ReadSymbols = false });
            var uses = new List<TypeUse>();
            foreach (var type in module.Types) Collect(type, Outermost(type), uses);
            return Cache[path] = uses;
        }
    }

    /// <summary>The namespace of a type, or of the type it is nested in.</summary>
    public static string Namespace(TypeReference type) => Outermost(type).Namespace;

    private static void Collect(TypeDefinition type, TypeReference user, List<TypeUse> uses)
    {
        void Add(TypeReference? used, string where)
        {
            foreach (var part in Parts(used)) uses.Add(new TypeUse(user, Outermost(part), where));
        }
        void AddMember(MemberReference member, string where)
        {
            switch (member)
            {
                case MethodReference m:
                    Add(m.DeclaringType, where);
                    Add(m.ReturnType, where);
                    foreach (var p in m.Parameters) Add(p.ParameterType, where);
                    if (m is GenericInstanceMethod g) foreach (var a in g.GenericArguments) Add(a, where);
                    break;
                case FieldReference f:
                    Add(f.DeclaringType, where);
                    Add(f.FieldType, where);
                    break;
                case TypeReference t:
                    Add(t, where);
                    break;
            }
        }
        void AddAttributes(ICustomAttributeProvider provider, string where)
        {
            foreach (var a in provider.CustomAttributes) Add(a.AttributeType, where);
        }

        string name = type.FullName;
        Add(type.BaseType, name);
        foreach (var i in type.Interfaces) Add(i.InterfaceType, name);
        AddAttributes(type, name);
        foreach (var g in type.GenericParameters)
            foreach (var c in g.Constraints) Add(c.ConstraintType, name);
        foreach (var field in type.Fields)
        {
            Add(field.FieldType, $"{name}.{field.Name}");
            AddAttributes(field, $"{name}.{field.Name}");
        }
        foreach (var method in type.Methods)
        {
            string where = $"{name}.{method.Name}";
            Add(method.ReturnType, where);
            foreach (var p in method.Parameters) Add(p.ParameterType, where);
            foreach (var g in method.GenericParameters)
                foreach (var c in g.Constraints) Add(c.ConstraintType, where);
            AddAttributes(method, where);
            if (!method.HasBody) continue;
            foreach (var local in method.Body.Variables) Add(local.VariableType, where);
            foreach (var handler in method.Body.ExceptionHandlers) Add(handler.CatchType, where);
            foreach (var instruction in method.Body.Instructions)
                if (instruction.Operand is MemberReference member && instruction.OpCode.OperandType != OperandType.InlineString)
                    AddMember(member, where);
        }
        foreach (var nested in type.NestedTypes) Collect(nested, user, uses);
    }

    /// <summary>A type and what it is built from: arrays, pointers and by-refs to their element, generics to their arguments.</summary>
    private static IEnumerable<TypeReference> Parts(TypeReference? type)
    {
        switch (type)
        {
            case null or GenericParameter:
                yield break;
            case GenericInstanceType g:
                foreach (var p in Parts(g.ElementType)) yield return p;
                foreach (var a in g.GenericArguments)
                    foreach (var p in Parts(a)) yield return p;
                break;
            case FunctionPointerType:
                yield break;
            case TypeSpecification spec: // array, pointer, by-ref, modifiers, pinned
                foreach (var p in Parts(spec.ElementType)) yield return p;
                break;
            default:
                yield return type;
                break;
        }
    }

    private static TypeReference Outermost(TypeReference type)
    {
        while (type.DeclaringType is { } outer) type = outer;
        return type;
    }
}
