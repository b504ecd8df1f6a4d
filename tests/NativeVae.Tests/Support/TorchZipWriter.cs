using System.IO.Compression;
using System.Text;
using NativeVae.Weights;
using NativeVae.Formats;

namespace NativeVae.Tests.Support;

/// <summary>
/// Writes PyTorch zip checkpoints the way <c>torch.save(state_dict)</c> does (protocol 2 pickle: GLOBAL,
/// BINPUT/LONG_BINPUT memo, BINPERSID storages, <c>_rebuild_tensor_v2</c> REDUCE, SETITEMS, the
/// <c>_metadata</c> BUILD), plus hooks to write the malformed and malicious files the readers must refuse.
/// </summary>
internal sealed class TorchZipWriter
{
    public sealed record Entry(string Name, DType DType, TensorShape Shape, float[] Values)
    {
        /// <summary>Strides written into the pickle; null = contiguous.</summary>
        public long[]? Strides { get; init; }

        /// <summary>Elements of padding before the tensor in its storage (storage offset).</summary>
        public int StorageOffset { get; init; }

        /// <summary>Wrap in torch._utils._rebuild_parameter (an nn.Parameter).</summary>
        public bool AsParameter { get; init; }
    }

    private readonly StringBuilderBytes _pickle = new();
    private int _memo;

    /// <summary>Globals spliced in before the state dict, e.g. ("os", "system") for the refusal tests.</summary>
    public List<(string Module, string Name, string Argument)> EvilCalls { get; } = [];

    /// <summary>Nest the state dict under "state_dict" (Lightning .ckpt).</summary>
    public bool NestUnderStateDict { get; init; }

    /// <summary>Storage entries to drop from the zip, or to cut short by this many bytes.</summary>
    public HashSet<string> DropStorages { get; } = [];

    public int TruncateStoragesBy { get; init; }

    public string ArchiveName { get; init; } = "archive";

    public static void Write(string path, IEnumerable<Entry> entries) => new TorchZipWriter().Save(path, entries);

    public static void WriteFloat32(string path, IEnumerable<(string Name, TensorShape Shape, float[] Values)> tensors, DType dtype = DType.F32) =>
        Write(path, tensors.Select(t => new Entry(t.Name, dtype, t.Shape, t.Values)));

    public void Save(string path, IEnumerable<Entry> entries)
    {
        var list = entries.ToList();
        var storages = new List<(string Key, byte[] Bytes)>();
        var p = _pickle;
        p.Op(0x80).Byte(2); // PROTO 2
        foreach (var (module, name, argument) in EvilCalls)
        {
            Global(module, name);
            Unicode(argument);
            p.Op(0x85).Op((byte)'R').Op((byte)'0'); // TUPLE1 REDUCE POP
        }
        if (NestUnderStateDict)
        {
            p.Op((byte)'}'); Put();
            Unicode("state_dict");
        }
        Global("collections", "OrderedDict");
        p.Op((byte)')').Op((byte)'R'); Put(); // OrderedDict()
        p.Op((byte)'(');                       // MARK for SETITEMS
        for (int i = 0; i < list.Count; i++)
        {
            var e = list[i];
            string key = i.ToString(System.Globalization.CultureInfo.InvariantCulture);
            long numel = e.Shape.ElementCount + e.StorageOffset;
            var padded = new float[numel];
            e.Values.CopyTo(padded, e.StorageOffset);
            storages.Add((key, DTypeConversion.FromFloat32(e.DType, padded)));

            Unicode(e.Name);
            if (e.AsParameter) Global("torch._utils", "_rebuild_parameter");
            Global("torch._utils", "_rebuild_tensor_v2");
            p.Op((byte)'(');                                  // MARK args
            p.Op((byte)'(');                                  // MARK persistent id
            Unicode("storage");
            Global("torch", e.DType switch { DType.F32 => "FloatStorage", DType.F16 => "HalfStorage", _ => "BFloat16Storage" });
            Unicode(key);
            Unicode("cpu");
            Int(numel);
            p.Op((byte)'t'); Put();                           // TUPLE
            p.Op(0x51);                                       // BINPERSID
            Int(e.StorageOffset);
            IntTuple(e.Shape.Dims.ToArray().Select(d => (long)d).ToArray());
            IntTuple(e.Strides ?? ContiguousStrides(e.Shape));
            p.Op(0x89);                                       // NEWFALSE requires_grad
            Global("collections", "OrderedDict");
            p.Op((byte)')').Op((byte)'R'); Put();             // backward hooks
            p.Op((byte)'t'); Put();
            p.Op((byte)'R'); Put();                           // REDUCE -> tensor
            if (e.AsParameter)
            {
                p.Op(0x88);                                   // NEWTRUE requires_grad
                Global("collections", "OrderedDict");
                p.Op((byte)')').Op((byte)'R'); Put();
                p.Op(0x87).Op((byte)'R'); Put();              // TUPLE3 REDUCE -> parameter
            }
        }
        p.Op((byte)'u');                                      // SETITEMS
        // state_dict()._metadata, set by BUILD as torch.save emits it
        p.Op((byte)'}'); Put();
        Unicode("_metadata");
        Global("collections", "OrderedDict");
        p.Op((byte)')').Op((byte)'R'); Put();
        p.Op((byte)'s');
        p.Op((byte)'b');                                      // BUILD
        if (NestUnderStateDict) p.Op((byte)'s');              // outer dict["state_dict"] = ...
        p.Op((byte)'.');                                      // STOP

        using var zip = ZipFile.Open(path, ZipArchiveMode.Create);
        AddEntry(zip, $"{ArchiveName}/data.pkl", p.ToArray());
        AddEntry(zip, $"{ArchiveName}/byteorder", Encoding.ASCII.GetBytes("little"));
        foreach (var (key, bytes) in storages)
        {
            if (DropStorages.Contains(key)) continue;
            AddEntry(zip, $"{ArchiveName}/data/{key}", bytes.AsSpan(0, Math.Max(0, bytes.Length - TruncateStoragesBy)).ToArray());
        }
        AddEntry(zip, $"{ArchiveName}/version", Encoding.ASCII.GetBytes("3\n"));
    }

    private static long[] ContiguousStrides(TensorShape shape)
    {
        var strides = new long[shape.Rank];
        long s = 1;
        for (int i = shape.Rank - 1; i >= 0; i--)
        {
            strides[i] = s;
            s *= shape[i];
        }
        return strides;
    }

    private static void AddEntry(ZipArchive zip, string name, byte[] bytes)
    {
        var entry = zip.CreateEntry(name, CompressionLevel.NoCompression); // torch.save stores, never deflates
        using var stream = entry.Open();
        stream.Write(bytes);
    }

    private void Global(string module, string name)
    {
        _pickle.Op((byte)'c').Ascii($"{module}\n{name}\n");
        Put();
    }

    private void Unicode(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        _pickle.Op((byte)'X').UInt32((uint)bytes.Length).Bytes(bytes);
        Put();
    }

    private void Int(long value)
    {
        if (value is >= 0 and < 256) _pickle.Op((byte)'K').Byte((byte)value);
        else if (value is >= 0 and < 65536) _pickle.Op((byte)'M').UInt16((ushort)value);
        else _pickle.Op((byte)'J').UInt32((uint)(int)value);
    }

    private void IntTuple(long[] values)
    {
        switch (values.Length)
        {
            case 0: _pickle.Op((byte)')'); break;
            case 1: Int(values[0]); _pickle.Op(0x85); break;
            case 2: Int(values[0]); Int(values[1]); _pickle.Op(0x86); break;
            case 3: foreach (var v in values) Int(v); _pickle.Op(0x87); break;
            default:
                _pickle.Op((byte)'(');
                foreach (var v in values) Int(v);
                _pickle.Op((byte)'t');
                break;
        }
        Put();
    }

    /// <summary>Memoize the top of the stack as torch.save does (BINPUT below 256, LONG_BINPUT after).</summary>
    private void Put()
    {
        if (_memo < 256) _pickle.Op((byte)'q').Byte((byte)_memo);
        else _pickle.Op((byte)'r').UInt32((uint)_memo);
        _memo++;
    }

    private sealed class StringBuilderBytes
    {
        private readonly MemoryStream _stream = new();
        public StringBuilderBytes Op(byte op) { _stream.WriteByte(op); return this; }
        public StringBuilderBytes Byte(byte b) { _stream.WriteByte(b); return this; }
        public StringBuilderBytes UInt16(ushort v) { _stream.Write(BitConverter.GetBytes(v)); return this; }
        public StringBuilderBytes UInt32(uint v) { _stream.Write(BitConverter.GetBytes(v)); return this; }
        public StringBuilderBytes Bytes(byte[] b) { _stream.Write(b); return this; }
        public StringBuilderBytes Ascii(string s) { _stream.Write(Encoding.ASCII.GetBytes(s)); return this; }
        public byte[] ToArray() => _stream.ToArray();
    }
}
