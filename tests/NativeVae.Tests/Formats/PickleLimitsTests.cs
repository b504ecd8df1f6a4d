using System.Diagnostics;
using System.Text;
using NativeVae.Formats;
using NativeVae.Formats.Pickle;
using NativeVae.Loading;
using NativeVae.Tests.Support;

namespace NativeVae.Tests.Formats;

/// <summary>
/// The unpickler's cost is linear in its input and bounded by named caps: a checkpoint of many tensors is read
/// quickly, and nesting, string and memo bombs are refused by name before they cost memory.
/// </summary>
public class PickleLimitsTests
{
    private const string Origin = "bomb.pth:archive/data.pkl";

    [Test]
    public void ACheckpointOfManyTensorsIsRefusedQuickly()
    {
        // The fuzz finding: 100,000 non-VAE tensors took 34 s (a list-scanned dict, quadratic in the count)
        // to say the file holds no VAE tensors. The bound is generous for a shared CI core; linear work is ~1 s.
        const int TensorCount = 100_000;
        const double BoundSeconds = 10;
        string path = Path.Combine(SyntheticVae.TempFolder(), "many.pth");
        TorchZipWriter.Write(path, Enumerable.Range(0, TensorCount)
            .Select(i => new TorchZipWriter.Entry($"unet.block{i}.weight", DType.F32, new TensorShape(1), [i])));
        var clock = Stopwatch.StartNew();
        var e = Assert.Throws<InvalidDataException>(() => VaeLoader.Open(path).Dispose());
        clock.Stop();
        Assert.That(e!.Message, Does.StartWith(path).And.Contain("holds no VAE tensors"));
        Assert.That(clock.Elapsed.TotalSeconds, Is.LessThan(BoundSeconds), $"{TensorCount} tensors took {clock.Elapsed.TotalSeconds:F1} s");
    }

    [Test]
    public void ALaterSetitemReplacesTheEarlierValueOfAKey()
    {
        // dict semantics kept by the hashed dict: one entry per key, the last value wins, insertion order kept
        var p = new PickleBytes().Proto();
        p.Op('}').Op('(').Unicode("a").Int(1).Unicode("b").Int(2).Unicode("a").Int(3).Op('u').Op('.');
        var dict = (PickleDict)RestrictedUnpickler.Load(Origin, p.ToArray())!;
        Assert.That(dict.Items.Select(kv => kv.Key), Is.EqualTo(new object[] { "a", "b" }));
        Assert.That(dict.Get("a"), Is.EqualTo(3L));
        Assert.That(dict.Get("b"), Is.EqualTo(2L));
        Assert.That(dict.Get("c"), Is.Null);
    }

    [Test]
    public void RefusesNestingDeeperThanTheCap()
    {
        // a depth bomb: MARKs and empty lists nested far past any state dict, each a few bytes
        var p = new PickleBytes().Proto();
        for (int i = 0; i <= RestrictedUnpickler.MaxNestingDepth; i++) p.Op('(');
        var e = Assert.Throws<InvalidDataException>(() => RestrictedUnpickler.Load(Origin, p.ToArray()));
        Assert.That(e!.Message, Does.StartWith(Origin).And.Contain($"nesting deeper than {RestrictedUnpickler.MaxNestingDepth}"));
    }

    [Test]
    public void ReadsNestingAtTheCap()
    {
        var p = new PickleBytes().Proto();
        for (int i = 0; i < RestrictedUnpickler.MaxNestingDepth; i++) p.Op('(');
        p.Op(']');
        for (int i = 0; i < RestrictedUnpickler.MaxNestingDepth; i++) p.Op('l');
        p.Op('.');
        Assert.That(RestrictedUnpickler.Load(Origin, p.ToArray()), Is.InstanceOf<List<object?>>());
    }

    [Test]
    public void RefusesAStringLongerThanTheCap()
    {
        int length = RestrictedUnpickler.MaxStringBytes + 1;
        var p = new PickleBytes().Proto();
        p.Op('X').UInt32((uint)length).Raw(new byte[length]).Op('.');
        var e = Assert.Throws<InvalidDataException>(() => RestrictedUnpickler.Load(Origin, p.ToArray()));
        Assert.That(e!.Message, Does.StartWith(Origin).And.Contain($"more than the {RestrictedUnpickler.MaxStringBytes}-byte cap"));
    }

    [Test]
    public void RefusesAStringLengthPastTheEndWithoutAllocatingIt()
    {
        // BINUNICODE8 claiming 2^62 bytes in a 20-byte pickle
        var p = new PickleBytes().Proto();
        p.Op(0x8d).UInt64(1UL << 62).Op('.');
        var e = Assert.Throws<InvalidDataException>(() => RestrictedUnpickler.Load(Origin, p.ToArray()));
        Assert.That(e!.Message, Does.StartWith(Origin).And.Not.Contain("overflow"));
    }

    [Test]
    public void RefusesAMemoIndexPastTheCap()
    {
        // memo indices count up from 0, so the index cap bounds the memo: LONG_BINPUT at the cap is refused
        var p = new PickleBytes().Proto().Op('N').Op('r').UInt32(RestrictedUnpickler.MaxMemoEntries).Op('.');
        var e = Assert.Throws<InvalidDataException>(() => RestrictedUnpickler.Load(Origin, p.ToArray()));
        Assert.That(e!.Message, Does.StartWith(Origin).And.Contain($"more than {RestrictedUnpickler.MaxMemoEntries} memo entries"));
    }

    [Test]
    public void RefusesAStackDeeperThanTheCap()
    {
        var p = new PickleBytes().Proto();
        for (int i = 0; i <= RestrictedUnpickler.MaxStackValues; i++) p.Op('N');
        var e = Assert.Throws<InvalidDataException>(() => RestrictedUnpickler.Load(Origin, p.ToArray()));
        Assert.That(e!.Message, Does.StartWith(Origin).And.Contain($"more than {RestrictedUnpickler.MaxStackValues} values on the stack"));
    }

    [Test]
    public void RefusesADeeplyNestedPersistentIdWithoutRecursing()
    {
        // a tuple nested 200,000 deep (TUPLE1 is one byte): describing it in the error must not overflow the stack
        const int Depth = 200_000;
        var p = new PickleBytes().Proto().Op('N');
        for (int i = 0; i < Depth; i++) p.Op(0x85);
        p.Op(0x51).Op('.');
        var e = Assert.Throws<InvalidDataException>(() => RestrictedUnpickler.Load(Origin, p.ToArray()));
        Assert.That(e!.Message, Does.StartWith(Origin).And.Contain("persistent id ((((...)))) is not"));
    }

    [Test]
    public void RefusesABytesLengthPastInt32WithOurMessage()
    {
        var p = new PickleBytes().Proto().Op('B').UInt32(uint.MaxValue).Op('.');
        var e = Assert.Throws<InvalidDataException>(() => RestrictedUnpickler.Load(Origin, p.ToArray()));
        Assert.That(e!.Message, Does.StartWith(Origin).And.Contain($"more than the {RestrictedUnpickler.MaxStringBytes}-byte cap"));
    }

    [Test]
    public void RefusesADictWithMoreEntriesThanTheTensorCap()
    {
        // one value memoized and recalled: each SETITEM adds an entry for a few bytes
        var p = new PickleBytes().Proto().Op('}').Op('N').Op(0x94).Op('0');
        for (int i = 0; i <= RestrictedUnpickler.MaxContainerEntries; i++) p.Op('J').UInt32((uint)i).Op('h').Byte(0).Op('s');
        p.Op('.');
        var e = Assert.Throws<InvalidDataException>(() => RestrictedUnpickler.Load(Origin, p.ToArray()));
        Assert.That(e!.Message, Does.StartWith(Origin).And.Contain($"more than {RestrictedUnpickler.MaxContainerEntries} entries"));
    }

    [Test]
    public void RefusesATensorOfRankPastTheCap()
    {
        string path = Path.Combine(SyntheticVae.TempFolder(), "rank.pth");
        TorchZipWriter.Write(path, [new("t", DType.F32, new TensorShape(1, 1, 1, 1, 1, 1, 1, 1, 1), [1f])]);
        var e = Assert.Throws<InvalidDataException>(() => TorchCheckpoint.Open(path).Dispose());
        Assert.That(e!.Message, Does.StartWith(path).And.Contain("tensor size has 9 dimensions, more than 8"));
    }

    /// <summary>Raw pickle opcodes, for the inputs TorchZipWriter would never write.</summary>
    private sealed class PickleBytes
    {
        private readonly MemoryStream _stream = new();
        public PickleBytes Proto() => Op(0x80).Byte(2);
        public PickleBytes Op(char op) => Byte((byte)op);
        public PickleBytes Op(byte op) => Byte(op);
        public PickleBytes Byte(byte b) { _stream.WriteByte(b); return this; }
        public PickleBytes UInt32(uint v) { _stream.Write(BitConverter.GetBytes(v)); return this; }
        public PickleBytes UInt64(ulong v) { _stream.Write(BitConverter.GetBytes(v)); return this; }
        public PickleBytes Raw(byte[] bytes) { _stream.Write(bytes); return this; }
        public PickleBytes Int(byte v) => Op('K').Byte(v);
        public PickleBytes Unicode(string s)
        {
            var bytes = Encoding.UTF8.GetBytes(s);
            return Op('X').UInt32((uint)bytes.Length).Raw(bytes);
        }
        public byte[] ToArray() => _stream.ToArray();
    }
}
