using NativeVae.Tiling;

namespace NativeVae.Tests.Tiling;

/// <summary>The file store behind exact tiling on host-memory backends: long offsets, reuse, and refusals that name the directory.</summary>
public class ActivationStoreTests
{
    private string _folder = "";

    [SetUp]
    public void CreateFolder() => _folder = Directory.CreateTempSubdirectory("nativevae-store-test-").FullName;

    [TearDown]
    public void DeleteFolder() => Directory.Delete(_folder, recursive: true);

    [Test]
    public void RegionsPastTwoToTheThirtyOneElementsReadBackWhatWasWritten()
    {
        // 2^31 floats, as 128 channels at 4096x4096: the file is sparse, so only the written pages take disk.
        const long Huge = 1L << 31;
        using var store = new ActivationStore(_folder);
        long first = store.Allocate(Huge);
        long second = store.Allocate(3);
        Assert.That(second, Is.EqualTo(first + Huge * sizeof(float)), "bump allocation in bytes");
        float[] tail = [1.5f, -2f, 3.25f];
        store.Write(first + (Huge - 3) * sizeof(float), tail);
        store.Write(second, [7f, 8f, 9f]);
        var read = new float[3];
        store.Read(first + (Huge - 3) * sizeof(float), read);
        Assert.That(read, Is.EqualTo(tail));
        store.Read(second, read);
        Assert.That(read, Is.EqualTo(new[] { 7f, 8f, 9f }));
        store.Read(first, read);
        Assert.That(read, Is.EqualTo(new float[3]), "never written: zeros");
    }

    [TestCase(DType.BF16)]
    [TestCase(DType.F16)]
    public void SixteenBitElementsTakeHalfTheFileAndReadBackTheValuesOnTheirGrid(DType elements)
    {
        using var store = new ActivationStore(_folder, elements: elements);
        float[] values = [1.5f, -2.25f, 3f, 0.09375f, -0f, 1024f, 7.5f];
        long first = store.Allocate(values.Length);
        long second = store.Allocate(2);
        Assert.That(second - first, Is.EqualTo(values.Length * 2L), "2 bytes per element");
        store.Write(first, values);
        store.Write(second, [float.PositiveInfinity, float.NaN]);
        var read = new float[values.Length];
        store.Read(first, read);
        Assert.That(read, Is.EqualTo(values), "values exact in 16 bits come back exactly");
        var special = new float[2];
        store.Read(second, special);
        Assert.That(float.IsPositiveInfinity(special[0]) && float.IsNaN(special[1]), "infinity and NaN survive");
        Assert.That(store.Bytes, Is.EqualTo((values.Length + 2) * 2L));
    }

    [Test]
    public void AFreedAndReusedRegionLeavesItsNeighboursIntact()
    {
        using var store = new ActivationStore(_folder);
        const int Length = 3000; // a few pages, not page-aligned
        long a = store.Allocate(Length), b = store.Allocate(Length), c = store.Allocate(Length);
        var values = Enumerable.Range(1, Length).Select(i => (float)i).ToArray();
        foreach (long region in new[] { a, b, c }) store.Write(region, values);
        store.Free(b, Length);
        var read = new float[Length];
        store.Read(a, read);
        Assert.That(read, Is.EqualTo(values), "the region before is intact");
        store.Read(c, read);
        Assert.That(read, Is.EqualTo(values), "the region after is intact");
        long again = store.Allocate(Length);
        Assert.That(again, Is.EqualTo(b), "the freed region is reused");
        store.Write(again, values);
        store.Read(again, read);
        Assert.That(read, Is.EqualTo(values), "and holds what is written to it again");
    }

    [Test]
    public void AFreedRegionIsReusedOnlyForTheSameLength()
    {
        using var store = new ActivationStore(_folder);
        long a = store.Allocate(16);
        store.Free(a, 16);
        long b = store.Allocate(8);
        Assert.That(b, Is.Not.EqualTo(a), "a different length takes a new region");
        Assert.That(store.Allocate(16), Is.EqualTo(a));
        Assert.That(store.Bytes, Is.EqualTo(24 * sizeof(float)));
    }

    [Test]
    public void TheFileIsGoneWhenTheStoreIsDisposed()
    {
        var store = new ActivationStore(_folder);
        store.Write(store.Allocate(4), [1f, 2f, 3f, 4f]);
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
