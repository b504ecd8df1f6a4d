using System.IO.Compression;
using NativeVae.Tests.Support;
using NativeVae.Formats;
using NativeVae.Loading;
using NativeVae.Formats.Pickle;

namespace NativeVae.Tests.Formats;

public class TorchCheckpointTests
{
    private static readonly float[] Values = [0.5f, -1.25f, 3f, 1e-2f, -7f, 0.1f];

    private static float[] Rounded(DType dtype, float[] values)
    {
        var result = new float[values.Length];
        DTypeConversion.ToFloat32(dtype, DTypeConversion.FromFloat32(dtype, values), result);
        return result;
    }

    [TestCase(DType.F32)]
    [TestCase(DType.F16)]
    [TestCase(DType.BF16)]
    public void ReadsEveryStorageType(DType dtype)
    {
        string path = Path.Combine(SyntheticVae.TempFolder(), "m.pth");
        TorchZipWriter.Write(path,
        [
            new("conv.weight", dtype, new TensorShape(2, 3, 1, 1), Values),
            new("conv.bias", dtype, new TensorShape(2), [1f, 2f]),
        ]);
        using var file = TorchCheckpoint.Open(path);
        Assert.That(file.Entries.Keys, Is.EquivalentTo(new[] { "conv.weight", "conv.bias" }));
        Assert.That(file.Entries["conv.weight"].DType, Is.EqualTo(dtype));
        Assert.That(file.Entries["conv.weight"].Shape, Is.EqualTo(new TensorShape(2, 3, 1, 1)));
        Assert.That(file.ReadFloat32("conv.weight"), Is.EqualTo(Rounded(dtype, Values)));
        Assert.That(file.ReadFloat32("conv.bias"), Is.EqualTo(new[] { 1f, 2f }));
    }

    [Test]
    public void HonoursStorageOffsetParametersAndNestedStateDict()
    {
        string path = Path.Combine(SyntheticVae.TempFolder(), "m.ckpt");
        new TorchZipWriter { NestUnderStateDict = true }.Save(path,
        [
            new("a", DType.F32, new TensorShape(3), [1f, 2f, 3f]) { StorageOffset = 5 },
            new("b", DType.F16, new TensorShape(2, 1), [4f, 5f]) { AsParameter = true, Strides = [1, 7] }, // size-1 dim: any stride
        ]);
        using var file = TorchCheckpoint.Open(path);
        Assert.That(file.ReadFloat32("a"), Is.EqualTo(new[] { 1f, 2f, 3f }));
        Assert.That(file.ReadFloat32("b"), Is.EqualTo(new[] { 4f, 5f }));
    }

    [Test]
    public void ReadsManyTensorsPastTheShortMemo()
    {
        // more than 256 memo entries: torch.save switches from BINPUT to LONG_BINPUT
        string path = Path.Combine(SyntheticVae.TempFolder(), "m.pth");
        var entries = Enumerable.Range(0, 60).Select(i => new TorchZipWriter.Entry($"t{i}.weight", DType.F32, new TensorShape(1), [i])).ToList();
        TorchZipWriter.Write(path, entries);
        using var file = TorchCheckpoint.Open(path);
        Assert.That(file.Entries, Has.Count.EqualTo(60));
        Assert.That(file.ReadFloat32("t59.weight"), Is.EqualTo(new[] { 59f }));
    }

    [TestCase("os", "system")]
    [TestCase("builtins", "eval")]
    [TestCase("subprocess", "Popen")]
    public void RefusesGlobalsOutsideTheAllowList(string module, string name)
    {
        string path = Path.Combine(SyntheticVae.TempFolder(), "evil.pth");
        var writer = new TorchZipWriter();
        writer.EvilCalls.Add((module, name, "touch /tmp/pwned"));
        writer.Save(path, [new("a", DType.F32, new TensorShape(1), [1f])]);
        var e = Assert.Throws<InvalidDataException>(() => TorchCheckpoint.Open(path).Dispose());
        Assert.That(e!.Message, Does.StartWith(path));
        Assert.That(e.Message, Does.Contain($"global '{module}.{name}' is not allowed"));
    }

    [Test]
    public void RefusesNonContiguousTensors()
    {
        string path = Path.Combine(SyntheticVae.TempFolder(), "m.pth");
        TorchZipWriter.Write(path, [new("t", DType.F32, new TensorShape(2, 3), Values) { Strides = [1, 2] }]);
        var e = Assert.Throws<InvalidDataException>(() => TorchCheckpoint.Open(path).Dispose());
        Assert.That(e!.Message, Does.Contain("non-contiguous"));
    }

    [Test]
    public void RefusesMissingStorage()
    {
        string path = Path.Combine(SyntheticVae.TempFolder(), "m.pth");
        var writer = new TorchZipWriter();
        writer.DropStorages.Add("1");
        writer.Save(path, [new("a", DType.F32, new TensorShape(1), [1f]), new("b", DType.F32, new TensorShape(1), [1f])]);
        var e = Assert.Throws<InvalidDataException>(() => TorchCheckpoint.Open(path).Dispose());
        Assert.That(e!.Message, Does.Contain("tensor 'b'").And.Contain("missing"));
    }

    [Test]
    public void RefusesShortStorage()
    {
        string path = Path.Combine(SyntheticVae.TempFolder(), "m.pth");
        new TorchZipWriter { TruncateStoragesBy = 2 }.Save(path, [new("a", DType.F32, new TensorShape(2), [1f, 2f])]);
        var e = Assert.Throws<InvalidDataException>(() => TorchCheckpoint.Open(path).Dispose());
        Assert.That(e!.Message, Does.Contain("tensor 'a'").And.Contain("6 bytes"));
    }

    [Test]
    public void RefusesTruncatedZip()
    {
        string path = Path.Combine(SyntheticVae.TempFolder(), "m.pth");
        TorchZipWriter.Write(path, [new("a", DType.F32, new TensorShape(64), new float[64])]);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<InvalidDataException>(() => TorchCheckpoint.Open(path).Dispose());
        Assert.That(e!.Message, Does.StartWith(path));
    }

    [Test]
    public void RefusesZipWithoutPickle()
    {
        string path = Path.Combine(SyntheticVae.TempFolder(), "m.pth");
        using (var zip = ZipFile.Open(path, ZipArchiveMode.Create)) zip.CreateEntry("archive/version");
        var e = Assert.Throws<InvalidDataException>(() => TorchCheckpoint.Open(path).Dispose());
        Assert.That(e!.Message, Does.Contain("data.pkl"));
    }

    private static IEnumerable<TestCaseData> BadPickles()
    {
        yield return new TestCaseData(new byte[] { 0x80, 2, (byte)'}' }, "ends early").SetName("TruncatedPickle");
        yield return new TestCaseData(new byte[] { 0x80, 2, (byte)'i', (byte)'o', (byte)'s', 10, (byte)'s', (byte)'y', (byte)'s', (byte)'t', (byte)'e', (byte)'m', 10, (byte)'.' }, "opcode 0x69").SetName("InstOpcode");
        yield return new TestCaseData(new byte[] { 0x80, 2, 0x81, (byte)'.' }, "opcode 0x81").SetName("NewObjOpcode");
        yield return new TestCaseData(new byte[] { 0x80, 2, (byte)'R', (byte)'.' }, "stack underflow").SetName("ReduceOnEmptyStack");
        yield return new TestCaseData(new byte[] { 0x80, 2, (byte)'h', 7, (byte)'.' }, "memo entry 7").SetName("UnknownMemo");
        yield return new TestCaseData(new byte[] { 0x80, 9, (byte)'.' }, "protocol 9").SetName("FutureProtocol");
        yield return new TestCaseData(new byte[] { 0x80, 2, (byte)'}', (byte)'}', (byte)'.' }, "STOP with 2 values").SetName("LeftoverStack");
        yield return new TestCaseData(new byte[] { 0x80, 2, (byte)'X', 0xff, 0xff, 0xff, 0x7f, (byte)'.' }, "byte cap").SetName("HugeStringLength");
        yield return new TestCaseData(new byte[] { 0x80, 2, (byte)'N', 0x51, (byte)'.' }, "persistent id").SetName("BadPersistentId");
    }

    [TestCaseSource(nameof(BadPickles))]
    public void RefusesMalformedPickles(byte[] pickle, string fragment)
    {
        var e = Assert.Throws<InvalidDataException>(() => RestrictedUnpickler.Load("x.pth:archive/data.pkl", pickle));
        Assert.That(e!.Message, Does.StartWith("x.pth:archive/data.pkl:"));
        Assert.That(e.Message, Does.Contain(fragment));
    }

    [Test]
    public void OpenArchiveTellsZipFromSafeTensorsByContent()
    {
        string dir = SyntheticVae.TempFolder();
        string pth = Path.Combine(dir, "weights.safetensors"); // a zip with the wrong extension
        TorchZipWriter.Write(pth, [new("a", DType.F32, new TensorShape(1), [1f])]);
        using var archive = TensorArchive.Open(pth);
        Assert.That(archive, Is.InstanceOf<TorchCheckpoint>());
    }
}
