using System.Text;
using NativeVae.Tests.Support;
using NativeVae.Formats;
using NativeVae.Formats.SafeTensors;

namespace NativeVae.Tests.Formats;

public class SafeTensorsFileTests
{
    private static readonly float[] Values = [1f, -2.5f, 0.333f, 65504f, -0f, 1e-3f];

    [TestCase(DType.F32)]
    [TestCase(DType.F16)]
    [TestCase(DType.BF16)]
    public void RoundTripsEveryDType(DType dtype)
    {
        string path = Path.Combine(SyntheticVae.TempFolder(), "t.safetensors");
        SyntheticVae.WriteSafeTensors(path, [("a", new TensorShape(2, 3), Values), ("b", new TensorShape(0), [])], dtype,
            new Dictionary<string, string> { ["k"] = "v" });
        using var file = SafeTensorsFile.Open(path);
        var expected = new float[Values.Length];
        DTypeConversion.ToFloat32(dtype, DTypeConversion.FromFloat32(dtype, Values), expected);
        Assert.That(file.ReadFloat32("a"), Is.EqualTo(expected));
        Assert.That(file.Entries["a"].DType, Is.EqualTo(dtype));
        Assert.That(file.Entries["a"].Shape, Is.EqualTo(new TensorShape(2, 3)));
        Assert.That(file.ReadFloat32("b"), Is.Empty);
        Assert.That(file.Metadata["k"], Is.EqualTo("v"));
    }

    [Test]
    public void WriterPadsHeaderToEightBytes()
    {
        string path = Path.Combine(SyntheticVae.TempFolder(), "t.safetensors");
        SyntheticVae.WriteSafeTensors(path, [("x", new TensorShape(1), [1f])]);
        var bytes = File.ReadAllBytes(path);
        ulong headerLength = BitConverter.ToUInt64(bytes, 0);
        Assert.That(headerLength % 8, Is.Zero);
        Assert.That((long)bytes.Length, Is.EqualTo(8 + (long)headerLength + 4));
    }

    private static IEnumerable<TestCaseData> BadHeaders()
    {
        // (header JSON, data bytes, expected fragment of the message)
        yield return new TestCaseData("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "truncated").SetName("TruncatedData");
        yield return new TestCaseData("{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "'t': shape [3] x F32 is 12 bytes but its span is 8").SetName("ShapeDisagreesWithSpan");
        yield return new TestCaseData("{\"t\":{\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "'t': unsupported dtype 'Q7'").SetName("UnknownDType");
        yield return new TestCaseData("{\"t\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, "'t': unsupported dtype 'I64'").SetName("UnsupportedDType");
        yield return new TestCaseData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "'b': span [4, 12) overlaps").SetName("OverlappingSpans");
        yield return new TestCaseData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "'a': gap of 4 bytes").SetName("GapBeforeTensor");
        yield return new TestCaseData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, "4 trailing bytes").SetName("TrailingBytes");
        yield return new TestCaseData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, "'a': data_offsets must be").SetName("ReversedOffsets");
        yield return new TestCaseData("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "'a': shape entry -1").SetName("NegativeDim");
        yield return new TestCaseData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2147483647,2147483647,4],\"data_offsets\":[0,4]}}", 4, "'a': shape").SetName("ShapeOverflow");
        yield return new TestCaseData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "'a' appears twice").SetName("DuplicateName");
        yield return new TestCaseData("[1,2]", 0, "not a JSON object").SetName("HeaderNotObject");
        // our words, not System.Text.Json's ("Expected depth to be zero ... LineNumber: 0 | BytePositionInLine: 5.")
        yield return new TestCaseData("{\"a\":", 0, "header is not valid JSON (line 1, byte ").SetName("HeaderNotJson");
        yield return new TestCaseData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",\"4\"]}}", 4, "'a': data_offsets must be").SetName("OffsetsNotNumbers");
        yield return new TestCaseData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "'a': shape has 9 dimensions, more than 8").SetName("RankPastTheCap");
        yield return new TestCaseData("{\"__metadata__\":{\"k\":1}}", 0, "'k' is not a string").SetName("MetadataNotString");
    }

    [TestCaseSource(nameof(BadHeaders))]
    public void RefusesBadHeaders(string header, int dataBytes, string fragment)
    {
        string path = Path.Combine(SyntheticVae.TempFolder(), "bad.safetensors");
        var headerBytes = Encoding.UTF8.GetBytes(header);
        using (var stream = File.Create(path))
        {
            stream.Write(BitConverter.GetBytes((ulong)headerBytes.Length));
            stream.Write(headerBytes);
            stream.Write(new byte[dataBytes]);
        }
        var e = Assert.Throws<InvalidDataException>(() => SafeTensorsFile.Open(path).Dispose());
        Assert.That(e!.Message, Does.StartWith(path + ":"));
        Assert.That(e.Message, Does.Contain(fragment));
    }

    [Test]
    public void RefusesHeaderLengthPastTheEnd()
    {
        string path = Path.Combine(SyntheticVae.TempFolder(), "bad.safetensors");
        File.WriteAllBytes(path, [.. BitConverter.GetBytes(1000UL), .. "{}"u8]);
        var e = Assert.Throws<InvalidDataException>(() => SafeTensorsFile.Open(path).Dispose());
        Assert.That(e!.Message, Does.Contain("runs past the end"));
    }

    [Test]
    public void RefusesHugeHeaderLengthWithoutAllocating()
    {
        string path = Path.Combine(SyntheticVae.TempFolder(), "bad.safetensors");
        File.WriteAllBytes(path, [.. BitConverter.GetBytes(ulong.MaxValue), .. "{}"u8]);
        var e = Assert.Throws<InvalidDataException>(() => SafeTensorsFile.Open(path).Dispose());
        Assert.That(e!.Message, Does.Contain("cap"));
    }

    [TestCase(0)]
    [TestCase(5)]
    public void RefusesFilesShorterThanTheLengthField(int length)
    {
        string path = Path.Combine(SyntheticVae.TempFolder(), "bad.safetensors");
        File.WriteAllBytes(path, new byte[length]);
        Assert.Throws<InvalidDataException>(() => SafeTensorsFile.Open(path).Dispose());
    }

    [Test]
    public void RefusesTruncatedRealFile()
    {
        string path = Path.Combine(SyntheticVae.TempFolder(), "t.safetensors");
        SyntheticVae.WriteSafeTensors(path, [("w", new TensorShape(4, 4), new float[16])]);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^10]);
        var e = Assert.Throws<InvalidDataException>(() => SafeTensorsFile.Open(path).Dispose());
        Assert.That(e!.Message, Does.Contain("truncated"));
    }

    [Test]
    public void FailedWriteLeavesNothingBehind()
    {
        string dir = SyntheticVae.TempFolder();
        string path = Path.Combine(dir, "out.safetensors");
        var specs = new[]
        {
            new SafeTensorSpec("a", DType.F32, new TensorShape(1), () => new byte[4]),
            new SafeTensorSpec("b", DType.F32, new TensorShape(1), () => throw new InvalidDataException("source broke")),
        };
        Assert.Throws<InvalidDataException>(() => SafeTensorsWriter.Write(path, specs));
        Assert.That(Directory.GetFileSystemEntries(dir), Is.Empty);
    }
}
