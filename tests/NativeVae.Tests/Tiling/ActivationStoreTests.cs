using NativeVae.Tiling;

namespace NativeVae.Tests.Tiling;

/// <summary>The file store behind exact tiling on host-memory backends: long offsets, 16-bit elements, region reuse, and refusals that name the directory and sizes.</summary>
public class ActivationStoreTests
{
    private string _folder = "";

    [SetUp]
    public void CreateFolder() => _folder = Directory.CreateTempSubdirectory("nativevae-store-test-").FullName;

    [TearDown]
    public void DeleteFolder() => Directory.Delete(_folder, recursive: true);

    [Test]
    public void OffsetsPastTwoToTheThirtyOneBytesReadBackWhatWasWritten()
    {
        // 2^29 floats (2 GiB), as 128 channels at 2048x2048: byte offsets pass int's range.
        const long Floats = 1L << 29;
        using var store = new ActivationStore(_folder);
        store.EnsureLength((Floats + 3) * sizeof(float));
        float[] tail = [1.5f, -2f, 3.25f];
        store.Write(Floats * sizeof(float), tail, DType.F32);
        var read = new float[3];
        store.Read(Floats * sizeof(float), read, DType.F32);
        Assert.That(read, Is.EqualTo(tail));
        store.Read(0, read, DType.F32);
        Assert.That(read, Is.EqualTo(new float[3]), "never written: zeros");
        Assert.That(store.Bytes, Is.EqualTo((Floats + 3) * sizeof(float)));
    }

    [TestCase(DType.BF16)]
    [TestCase(DType.F16)]
    public void SixteenBitElementsTakeHalfTheFileAndReadBackTheValuesOnTheirGrid(DType elements)
    {
        using var space = ActivationSpace.InFile(_folder, 0, elements);
        // 8 values: 16 bytes, a whole region (regions start 16-byte aligned).
        float[] values = [1.5f, -2.25f, 3f, 0.09375f, -0f, 1024f, 7.5f, -0.5f];
        using var first = space.New(new TensorShape(values.Length));
        using var second = space.New(new TensorShape(2));
        Assert.That(second.ByteOffset - first.ByteOffset, Is.EqualTo(values.Length * 2L), "2 bytes per element");
        space.Write(first, 0, values);
        space.Write(second, 0, [float.PositiveInfinity, float.NaN]);
        var read = new float[values.Length];
        space.Read(first, 0, read);
        Assert.That(read, Is.EqualTo(values), "values exact in 16 bits come back exactly");
        var special = new float[2];
        space.Read(second, 0, special);
        Assert.That(float.IsPositiveInfinity(special[0]) && float.IsNaN(special[1]), "infinity and NaN survive");
        Assert.That(space.Bytes, Is.EqualTo(values.Length * 2L + 16), "the second's 4 bytes take a 16-byte region");
    }

    [Test]
    public void AnFp32ActivationAfterAnOddSixteenBitOneStartsAligned()
    {
        // A space may keep 16-bit feature maps beside fp32 statistics: an fp32 element must never straddle the
        // edge of a 64 MiB pinned chunk, so every region starts 16-byte aligned.
        using var space = ActivationSpace.InFile(_folder, 0, DType.BF16);
        using var odd = space.New(new TensorShape(3));
        using var single = space.New(new TensorShape(5), DType.F32);
        Assert.That((odd.Elements, single.Elements), Is.EqualTo((DType.BF16, DType.F32)));
        Assert.That(single.ByteOffset % 16, Is.Zero);
        float[] values = [1f / 3, -2.5f, 1e-7f, 3e38f, 0.1f];
        space.Write(single, 0, values);
        var read = new float[5];
        space.Read(single, 0, read);
        Assert.That(read, Is.EqualTo(values), "an fp32 activation in a 16-bit space keeps every bit");
    }

    [Test]
    public void AFreedAndReusedRegionLeavesItsNeighboursIntact()
    {
        using var space = ActivationSpace.InFile(_folder, 0, DType.F32);
        var shape = new TensorShape(3000); // a few pages, not page-aligned
        using var a = space.New(shape);
        var b = space.New(shape);
        using var c = space.New(shape);
        var values = Enumerable.Range(1, 3000).Select(i => (float)i).ToArray();
        foreach (var t in new[] { a, b, c }) space.Write(t, 0, values);
        long freed = b.ByteOffset;
        b.Dispose();
        var read = new float[values.Length];
        space.Read(a, 0, read);
        Assert.That(read, Is.EqualTo(values), "the region before is intact");
        space.Read(c, 0, read);
        Assert.That(read, Is.EqualTo(values), "the region after is intact");
        using var again = space.New(new TensorShape(1000));
        Assert.That(again.ByteOffset, Is.EqualTo(freed), "a smaller activation reuses the freed region");
        space.Write(again, 0, values.AsSpan(0, 1000));
        space.Read(c, 0, read);
        Assert.That(read, Is.EqualTo(values), "and its neighbour stays intact");
        Assert.That(space.Bytes, Is.EqualTo(3 * 3000L * sizeof(float)), "the space did not grow");
    }

    [Test]
    public void AStoreThatCannotGrowFailsAtOnceWithBothSizes()
    {
        using var store = new ActivationStore(_folder, expectedBytes: 1 << 20);
        Assert.That(() => store.EnsureLength(long.MaxValue / 4), Throws.TypeOf<IOException>()
            .With.Message.Contains("cannot grow to").And.Message.Contains("the plan expected 1 MiB").And.Message.Contains(_folder));
        Assert.That(store.Bytes, Is.Zero, "nothing grew");
    }

    [Test]
    public void TheFileIsGoneWhenTheStoreIsDisposed()
    {
        var store = new ActivationStore(_folder);
        store.EnsureLength(4 * sizeof(float));
        store.Write(0, [1f, 2f, 3f, 4f], DType.F32);
        Assert.That(StoreFiles.Open(_folder), Is.EqualTo(1), "open while the store lives");
        store.Dispose();
        Assert.That(StoreFiles.Open(_folder), Is.Zero);
        Assert.That(Directory.GetFileSystemEntries(_folder), Is.Empty);
    }

    [Test]
    public void AMissingDirectoryIsRefusedNamingIt()
    {
        string missing = Path.Combine(_folder, "missing");
        Assert.That(() => new ActivationStore(missing), Throws.TypeOf<IOException>().With.Message.Contains(missing).And.Message.Contains("does not exist"));
    }

    [Test]
    public void ADiskWithLessFreeSpaceThanExpectedIsRefusedNamingTheDirectory()
    {
        Assert.That(() => new ActivationStore(_folder, long.MaxValue / 2), Throws.TypeOf<IOException>()
            .With.Message.Contains(_folder).And.Message.Contains("MiB free"));
        Assert.That(Directory.GetFileSystemEntries(_folder), Is.Empty, "no file made");
    }
}

/// <summary>Counts a folder's store files that are open: listed there, or (on Linux, where the name goes at once) open descriptors into it.</summary>
internal static class StoreFiles
{
    private const string ProcessDescriptors = "/proc/self/fd";

    public static int Open(string folder)
    {
        string prefix = Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder)) + Path.DirectorySeparatorChar;
        int listed = Directory.GetFiles(folder, "nativevae-store-*").Length;
        if (!OperatingSystem.IsLinux()) return listed;
        int open = 0;
        foreach (var fd in Directory.GetFiles(ProcessDescriptors))
        {
            string? target;
            try { target = new FileInfo(fd).LinkTarget; }
            catch (IOException) { continue; } // the descriptor closed while listing
            if (target is not null && target.StartsWith(prefix + "nativevae-store-", StringComparison.Ordinal)) open++;
        }
        return Math.Max(listed, open);
    }
}
