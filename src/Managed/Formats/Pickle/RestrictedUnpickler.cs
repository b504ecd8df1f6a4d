using System.Buffers.Binary;
using System.Text;

namespace NativeVae.Formats.Pickle;

/// <summary>
/// Interprets the pickle of a PyTorch state dict (<c>data.pkl</c> in a <c>torch.save</c> zip) the way
/// <c>torch.load(weights_only=True)</c> does: only the opcodes <c>torch.save</c> emits (protocols 2 to 4) and only
/// the globals a state dict needs (<see cref="PickleGlobal"/>). Any other opcode or global — <c>os.system</c>,
/// <c>builtins.eval</c>, a class instance — is refused with an error naming the file, the global and the offset.
/// Nothing is looked up by name and no code runs: REDUCE only ever calls one of the allowed rebuild functions.
/// The interpreter is iterative (no recursion) and linear in its input: dicts are hashed, and MARK nesting, string
/// lengths, container entries, the stack and the memo have the caps below, each refused by name before it is spent.
/// </summary>
internal sealed class RestrictedUnpickler
{
    /// <summary>A state dict's pickle is a few hundred kilobytes; 256 MiB is far past any real one.</summary>
    public const int MaxPickleBytes = 256 << 20;

    /// <summary>
    /// Most entries in one dict or list: a state dict holds a tensor per entry, and a full SDXL checkpoint has about
    /// 2,500; a million is far past any real one.
    /// </summary>
    public const int MaxContainerEntries = 1_000_000;

    /// <summary>Most open MARKs at once: <c>torch.save</c> nests three deep (state dict, tensor args, persistent id).</summary>
    public const int MaxNestingDepth = 256;

    /// <summary>Longest string or bytes value: tensor names and metadata strings are under a kilobyte.</summary>
    public const int MaxStringBytes = 1 << 20;

    /// <summary>Most memo entries (and highest memo index + 1): <c>torch.save</c> memoizes a few objects per tensor.</summary>
    public const int MaxMemoEntries = 8 * MaxContainerEntries;

    /// <summary>Most values on the stack: the SETITEMS of the largest dict pushes two per entry.</summary>
    public const int MaxStackValues = 4 * MaxContainerEntries;

    /// <summary>Error messages show nested tuples this deep, then "(...)" (a deep tuple must not recurse).</summary>
    private const int MaxDescribedDepth = 3;

    private const int HighestProtocol = 5;

    private readonly string _origin;
    private readonly byte[] _data;
    private readonly List<object?> _stack = [];
    private readonly Stack<int> _marks = new();
    private readonly Dictionary<long, object?> _memo = [];
    private int _pos;

    private RestrictedUnpickler(string origin, byte[] data)
    {
        _origin = origin;
        _data = data;
    }

    /// <summary>Runs the pickle and returns its result.</summary>
    /// <param name="origin">names the file in errors (e.g. <c>model.pth:archive/data.pkl</c>).</param>
    /// <exception cref="InvalidDataException">a refused opcode or global, or a malformed pickle.</exception>
    public static object? Load(string origin, byte[] data)
    {
        if (data.Length > MaxPickleBytes)
            throw new InvalidDataException($"{origin}: pickle is {data.Length} bytes, more than the {MaxPickleBytes}-byte cap");
        return new RestrictedUnpickler(origin, data).Run();
    }

    private object? Run()
    {
        while (true)
        {
            int at = _pos;
            byte op = ReadByte();
            switch (op)
            {
                case 0x80: // PROTO
                    byte protocol = ReadByte();
                    if (protocol > HighestProtocol) throw Bad(at, $"pickle protocol {protocol} is not supported");
                    break;
                case 0x95: // FRAME: a length prefix only; the opcodes follow inline
                    Take(8);
                    break;
                case (byte)'.': // STOP
                    if (_stack.Count != 1) throw Bad(at, $"STOP with {_stack.Count} values on the stack");
                    return _stack[0];
                case (byte)'(': // MARK
                    if (_marks.Count >= MaxNestingDepth) throw Bad(at, $"MARKs nesting deeper than {MaxNestingDepth}");
                    _marks.Push(_stack.Count);
                    break;
                case (byte)'0': // POP
                    Pop(at);
                    break;
                case (byte)'1': // POP_MARK
                    PopMark(at);
                    break;
                case (byte)'2': // DUP
                    Push(Peek(at));
                    break;
                case (byte)'N': Push(PickleNone.Value); break;
                case 0x88: Push(true); break;  // NEWTRUE
                case 0x89: Push(false); break; // NEWFALSE
                case (byte)'J': Push((long)BinaryPrimitives.ReadInt32LittleEndian(Take(4))); break; // BININT
                case (byte)'K': Push((long)ReadByte()); break;                                       // BININT1
                case (byte)'M': Push((long)BinaryPrimitives.ReadUInt16LittleEndian(Take(2))); break; // BININT2
                case 0x8a: Push(ReadLong1(at)); break;                                                  // LONG1
                case (byte)'G': Push(BinaryPrimitives.ReadDoubleBigEndian(Take(8))); break;           // BINFLOAT
                case (byte)'X': Push(ReadUtf8(at, BinaryPrimitives.ReadUInt32LittleEndian(Take(4)))); break; // BINUNICODE
                case 0x8c: Push(ReadUtf8(at, ReadByte())); break;                                       // SHORT_BINUNICODE
                case 0x8d: Push(ReadUtf8(at, BinaryPrimitives.ReadUInt64LittleEndian(Take(8)))); break; // BINUNICODE8
                case (byte)'U': Push(ReadLatin1(at, ReadByte())); break;                                // SHORT_BINSTRING
                case (byte)'T': Push(ReadLatin1(at, BinaryPrimitives.ReadUInt32LittleEndian(Take(4)))); break; // BINSTRING
                case (byte)'C': Push(ReadBytes(at, ReadByte())); break;                                 // SHORT_BINBYTES
                case (byte)'B': Push(ReadBytes(at, BinaryPrimitives.ReadUInt32LittleEndian(Take(4)))); break; // BINBYTES
                case (byte)')': Push(Array.Empty<object?>()); break;                                    // EMPTY_TUPLE
                case 0x85: Push(new[] { Pop(at) }); break;                                              // TUPLE1
                case 0x86: { var b = Pop(at); var a = Pop(at); Push(new[] { a, b }); break; }           // TUPLE2
                case 0x87: { var c = Pop(at); var b = Pop(at); var a = Pop(at); Push(new[] { a, b, c }); break; } // TUPLE3
                case (byte)'t': Push(PopMark(at).ToArray()); break;                                     // TUPLE
                case (byte)']': Push(new List<object?>()); break;                                       // EMPTY_LIST
                case (byte)'l': Push(CheckEntries(at, PopMark(at), 0)); break;                          // LIST
                case (byte)'a': { var v = Pop(at); CheckEntries(at, ListAt(at), 1).Add(v); break; }     // APPEND
                case (byte)'e': { var items = PopMark(at); CheckEntries(at, ListAt(at), items.Count).AddRange(items); break; } // APPENDS
                case (byte)'}': Push(new PickleDict()); break;                                          // EMPTY_DICT
                case (byte)'d': Push(DictFrom(at, PopMark(at))); break;                                 // DICT
                case (byte)'s': { var v = Pop(at); var k = Pop(at); SetItem(at, DictAt(at), k, v); break; } // SETITEM
                case (byte)'u': { var items = PopMark(at); var dict = DictAt(at); AddPairs(at, dict, items); break; } // SETITEMS
                case (byte)'q': Memo(ReadByte(), at); break;                                            // BINPUT
                case (byte)'r': Memo(BinaryPrimitives.ReadUInt32LittleEndian(Take(4)), at); break;      // LONG_BINPUT
                case 0x94: Memo(_memo.Count, at); break;                                                // MEMOIZE
                case (byte)'h': Push(Recall(ReadByte(), at)); break;                                    // BINGET
                case (byte)'j': Push(Recall(BinaryPrimitives.ReadUInt32LittleEndian(Take(4)), at)); break; // LONG_BINGET
                case (byte)'c': Push(ResolveGlobal(at, ReadLine(at), ReadLine(at))); break;             // GLOBAL
                case 0x93: // STACK_GLOBAL
                {
                    var name = Pop(at) as string ?? throw Bad(at, "STACK_GLOBAL name is not a string");
                    var module = Pop(at) as string ?? throw Bad(at, "STACK_GLOBAL module is not a string");
                    Push(ResolveGlobal(at, module, name));
                    break;
                }
                case (byte)'R': // REDUCE
                {
                    var args = Pop(at) as object?[] ?? throw Bad(at, "REDUCE arguments are not a tuple");
                    var callable = Pop(at);
                    Push(Call(at, callable, args));
                    break;
                }
                case (byte)'b': // BUILD: only OrderedDict's attribute state (a state dict's _metadata) is accepted
                {
                    var state = Pop(at);
                    if (Peek(at) is not PickleDict || state is not (PickleDict or PickleNone))
                        throw Bad(at, "BUILD is only allowed to set an OrderedDict's attributes");
                    break;
                }
                case 0x51: // BINPERSID
                    Push(PersistentLoad(at, Pop(at)));
                    break;
                default:
                    throw Bad(at, $"opcode 0x{op:x2} ('{(char)op}') is not allowed in a weights-only pickle");
            }
        }
    }

    private object ResolveGlobal(int at, string module, string name) => (module, name) switch
    {
        ("collections", "OrderedDict") => PickleGlobal.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2") => PickleGlobal.RebuildTensorV2,
        ("torch._utils", "_rebuild_parameter") => PickleGlobal.RebuildParameter,
        ("torch", "FloatStorage") => PickleGlobal.FloatStorage,
        ("torch", "HalfStorage") => PickleGlobal.HalfStorage,
        ("torch", "BFloat16Storage") => PickleGlobal.BFloat16Storage,
        ("torch", _) when name.EndsWith("Storage", StringComparison.Ordinal) =>
            throw Bad(at, $"storage type torch.{name} is not supported (Float, Half and BFloat16 storages are read)"),
        _ => throw Bad(at, $"global '{module}.{name}' is not allowed in a weights-only checkpoint " +
                           "(only OrderedDict, the tensor rebuild functions and storage types are)"),
    };

    private object? Call(int at, object? callable, object?[] args)
    {
        switch (callable)
        {
            case PickleGlobal.OrderedDict:
                if (args.Length != 0) throw Bad(at, "OrderedDict() with arguments is not supported");
                return new PickleDict();
            case PickleGlobal.RebuildTensorV2:
                return RebuildTensor(at, args);
            case PickleGlobal.RebuildParameter:
                // (data, requires_grad, backward_hooks): a Parameter is its data for inference
                if (args.Length < 1 || args[0] is not TorchTensorRef tensor)
                    throw Bad(at, "_rebuild_parameter expects a tensor as its first argument");
                return tensor;
            default:
                throw Bad(at, $"REDUCE on {Describe(callable)}, which is not an allowed function");
        }
    }

    private TorchTensorRef RebuildTensor(int at, object?[] args)
    {
        // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
        const int MinArgs = 4;
        if (args.Length < MinArgs || args[0] is not TorchStorageRef storage || args[1] is not long offset
            || args[2] is not object?[] size || args[3] is not object?[] stride || size.Length != stride.Length)
            throw Bad(at, "_rebuild_tensor_v2 expects (storage, offset, size tuple, stride tuple, ...)");
        if (size.Length > SafeTensors.SafeTensorsFile.MaxRank)
            throw Bad(at, $"tensor size has {size.Length} dimensions, more than {SafeTensors.SafeTensorsFile.MaxRank}");
        var dims = new int[size.Length];
        for (int i = 0; i < dims.Length; i++)
        {
            if (size[i] is not long d || d < 0 || d > int.MaxValue)
                throw Bad(at, $"tensor size {Describe(size)} has an invalid dimension");
            dims[i] = (int)d;
        }
        var shape = new TensorShape(dims);
        long expectedStride = 1;
        for (int i = dims.Length - 1; i >= 0; i--)
        {
            if (stride[i] is not long s)
                throw Bad(at, $"tensor stride {Describe(stride)} is not a tuple of integers");
            // a dimension of size 1 may carry any stride: it is never stepped over
            if (dims[i] != 1 && s != expectedStride)
                throw Bad(at, $"tensor of size {shape} has strides {Describe(stride)}: non-contiguous tensors are not supported " +
                              "(save a .contiguous() copy)");
            expectedStride = checked(expectedStride * dims[i]);
        }
        long count;
        try
        {
            count = shape.ElementCount;
        }
        catch (OverflowException)
        {
            throw Bad(at, $"tensor size {shape} overflows");
        }
        if (offset < 0 || count > storage.ElementCount || offset > storage.ElementCount - count)
            throw Bad(at, $"tensor of size {shape} at offset {offset} runs past its storage '{storage.Key}' of {storage.ElementCount} elements");
        return new TorchTensorRef(storage, offset, shape);
    }

    private TorchStorageRef PersistentLoad(int at, object? pid)
    {
        // ('storage', storage_type, key, location, numel)
        const int PidLength = 5;
        if (pid is not object?[] t || t.Length != PidLength || t[0] is not "storage")
            throw Bad(at, $"persistent id {Describe(pid)} is not ('storage', type, key, location, numel)");
        DType dtype = t[1] switch
        {
            PickleGlobal.FloatStorage => DType.F32,
            PickleGlobal.HalfStorage => DType.F16,
            PickleGlobal.BFloat16Storage => DType.BF16,
            _ => throw Bad(at, $"persistent id storage type {Describe(t[1])} is not a storage type"),
        };
        if (t[2] is not string key || key.Length == 0 || !key.All(char.IsAsciiLetterOrDigit))
            throw Bad(at, $"storage key {Describe(t[2])} is not a plain name");
        if (t[4] is not long numel || numel < 0)
            throw Bad(at, $"storage '{key}' has an invalid element count {Describe(t[4])}");
        return new TorchStorageRef(dtype, key, numel);
    }

    private object Key(int at, object? key) => key switch
    {
        string or long or bool => key,
        _ => throw Bad(at, $"dict key {Describe(key)} is not a string or integer"),
    };

    private void SetItem(int at, PickleDict dict, object? key, object? value)
    {
        if (dict.Count >= MaxContainerEntries) throw Bad(at, $"a dict of more than {MaxContainerEntries} entries");
        dict.Set(Key(at, key), value);
    }

    private List<object?> CheckEntries(int at, List<object?> list, int adding)
    {
        if (list.Count > MaxContainerEntries - adding) throw Bad(at, $"a list of more than {MaxContainerEntries} entries");
        return list;
    }

    private PickleDict DictFrom(int at, List<object?> items)
    {
        var dict = new PickleDict();
        AddPairs(at, dict, items);
        return dict;
    }

    private void AddPairs(int at, PickleDict dict, List<object?> items)
    {
        if (items.Count % 2 != 0) throw Bad(at, "SETITEMS with an odd number of values");
        for (int i = 0; i < items.Count; i += 2) SetItem(at, dict, items[i], items[i + 1]);
    }

    private List<object?> ListAt(int at) => Peek(at) as List<object?> ?? throw Bad(at, "APPEND to something that is not a list");

    private PickleDict DictAt(int at) => Peek(at) as PickleDict ?? throw Bad(at, "SETITEM on something that is not a dict");

    private void Memo(long index, int at)
    {
        // torch.save numbers memo entries from 0 up, so a cap on the index caps the count as well
        if (index >= MaxMemoEntries) throw Bad(at, $"memo index {index}: more than {MaxMemoEntries} memo entries");
        _memo[index] = Peek(at);
    }

    private object? Recall(long index, int at) =>
        _memo.TryGetValue(index, out var value) ? value : throw Bad(at, $"memo entry {index} was never stored");

    private void Push(object? value)
    {
        if (_stack.Count >= MaxStackValues) throw Bad(_pos, $"more than {MaxStackValues} values on the stack");
        _stack.Add(value);
    }

    private object? Peek(int at) => _stack.Count > MarkFloor() ? _stack[^1] : throw Bad(at, "stack underflow");

    private object? Pop(int at)
    {
        if (_stack.Count <= MarkFloor()) throw Bad(at, "stack underflow");
        var value = _stack[^1];
        _stack.RemoveAt(_stack.Count - 1);
        return value;
    }

    private int MarkFloor() => _marks.Count > 0 ? _marks.Peek() : 0;

    private List<object?> PopMark(int at)
    {
        if (_marks.Count == 0) throw Bad(at, "no MARK to pop to");
        int mark = _marks.Pop();
        var items = _stack.GetRange(mark, _stack.Count - mark);
        _stack.RemoveRange(mark, _stack.Count - mark);
        return items;
    }

    private byte ReadByte() => Take(1)[0];

    private ReadOnlySpan<byte> Take(long count)
    {
        if (count < 0 || count > _data.Length - _pos)
            throw new InvalidDataException($"{_origin}: pickle ends early at offset {_pos} (wanted {count} more bytes; truncated file?)");
        var span = _data.AsSpan(_pos, (int)count);
        _pos += (int)count;
        return span;
    }

    private string ReadUtf8(int at, ulong length)
    {
        CheckLength(at, length);
        try
        {
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(Take((long)length));
        }
        catch (DecoderFallbackException)
        {
            throw Bad(at, "string is not valid UTF-8");
        }
    }

    private string ReadLatin1(int at, ulong length)
    {
        CheckLength(at, length);
        return Encoding.Latin1.GetString(Take((long)length));
    }

    private byte[] ReadBytes(int at, ulong length)
    {
        CheckLength(at, length);
        return Take((long)length).ToArray();
    }

    /// <summary>A string or bytes length within the cap and within the pickle, checked before anything is read.</summary>
    private void CheckLength(int at, ulong length)
    {
        if (length > MaxStringBytes) throw Bad(at, $"a string of {length} bytes, more than the {MaxStringBytes}-byte cap");
        if (length > (ulong)(_data.Length - _pos))
            throw Bad(at, $"a string of {length} bytes runs past the end of the pickle (truncated file?)");
    }

    private string ReadLine(int at)
    {
        int end = Array.IndexOf(_data, (byte)'\n', _pos);
        if (end < 0) throw Bad(at, "GLOBAL name is not terminated");
        string line = Encoding.ASCII.GetString(_data, _pos, end - _pos);
        _pos = end + 1;
        return line;
    }

    private long ReadLong1(int at)
    {
        int length = ReadByte();
        const int MaxLongBytes = 8;
        if (length > MaxLongBytes) throw Bad(at, $"LONG1 of {length} bytes does not fit 64 bits");
        var bytes = Take(length);
        long value = 0;
        for (int i = length - 1; i >= 0; i--) value = (value << 8) | bytes[i];
        // two's complement: sign-extend from the top byte
        if (length is > 0 and < MaxLongBytes && (bytes[length - 1] & 0x80) != 0) value -= 1L << (8 * length);
        return value;
    }

    private static string Describe(object? value) => Describe(value, 0);

    private static string Describe(object? value, int depth) => value switch
    {
        null => "null",
        string s => $"'{s}'",
        object?[] when depth >= MaxDescribedDepth => "(...)",
        object?[] t => "(" + string.Join(", ", t.Take(6).Select(v => Describe(v, depth + 1))) + (t.Length > 6 ? ", ..." : "") + ")",
        List<object?> => "a list",
        PickleDict => "a dict",
        _ => value.ToString() ?? value.GetType().Name,
    };

    private InvalidDataException Bad(int at, string rule) => new($"{_origin}: {rule} (pickle offset {at})");
}
