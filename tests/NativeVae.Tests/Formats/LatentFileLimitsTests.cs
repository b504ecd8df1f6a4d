using System.Text;
using NativeVae.Tests.Support;

namespace NativeVae.Tests.Formats;

/// <summary>
/// A latent file's claimed shape is checked before anything is allocated, and its values must be finite: a sparse
/// 512 MB latent of [1, 32, 2048, 2048] reached 8.6 GB before OOM, past 2^31 elements it failed with "Arithmetic
/// operation resulted in an overflow", and an all-NaN latent decoded to a black image with exit 0.
/// </summary>
public class LatentFileLimitsTests
{
    /// <summary>A latent file whose header claims <paramref name="shape"/>, its data a sparse hole (no disk, no memory).</summary>
    private static string SparseLatent(string dtype, int bytesPerElement, params long[] shape)
    {
        string path = Path.Combine(SyntheticVae.TempFolder(), "z.safetensors");
        long bytes = shape.Aggregate(1L, (a, d) => a * d) * bytesPerElement;
        string header = $"{{\"{LatentFile.TensorName}\":{{\"dtype\":\"{dtype}\",\"shape\":[{string.Join(",", shape)}],\"data_offsets\":[0,{bytes}]}}}}";
        var headerBytes = Encoding.UTF8.GetBytes(header);
        using var stream = File.Create(path);
        stream.Write(BitConverter.GetBytes((ulong)headerBytes.Length));
        stream.Write(headerBytes);
        stream.SetLength(stream.Length + bytes);
        return path;
    }

    [Test]
    public void ALatentPastTwoToThe31ElementsIsRefusedByTheCapNotByAnOverflow()
    {
        // 2^31 fp16 elements: 4 GiB of sparse file
        string path = SparseLatent("F16", 2, 1, 4, 32768, 16384);
        var e = Assert.Throws<InvalidDataException>(() => LatentFile.Read(path));
        Assert.That(e!.Message, Does.StartWith(path).And.Contain($"tensor '{LatentFile.TensorName}' [1, 4, 32768, 16384] has 2147483648 elements, more than the cap of {LatentFile.DefaultMaxElements}"));
        Assert.That(e.Message, Does.Not.Contain("overflow"));
    }

    [Test]
    public void ALatentWhoseImageWouldBe16384SquareIsRefusedBeforeAllocating()
    {
        string path = SparseLatent("F32", 4, 1, 32, 2048, 2048);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<InvalidDataException>(() => LatentFile.Read(path));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.That(e!.Message, Does.StartWith(path).And.Contain("134217728 elements, more than the cap"));
        Assert.That(allocated, Is.LessThan(1L << 20), "refused before the 512 MB buffer was allocated");
    }

    [Test]
    public void ThePixelCapGivesTheElementCap()
    {
        Assert.That(LatentFile.MaxElementsFor(4096L * 4096), Is.EqualTo(LatentFile.DefaultMaxElements), "the default caps agree");
        Assert.That(LatentFile.MaxElementsFor(8192L * 8192), Is.EqualTo(4 * LatentFile.DefaultMaxElements));
    }

    [Test]
    public void TheCapIsTheCallersToRaise()
    {
        var shape = new TensorShape(1, 4, 8, 8);
        string path = Path.Combine(SyntheticVae.TempFolder(), "z.safetensors");
        LatentFile.Write(path, new HostTensor<float>(shape));
        Assert.Throws<InvalidDataException>(() => LatentFile.Read(path, maxElements: 255));
        Assert.That(LatentFile.Read(path, maxElements: 256).Shape, Is.EqualTo(shape));
        var e = Assert.Throws<ArgumentException>(() => LatentFile.Read(path, maxElements: 0));
        Assert.That(e!.Message, Is.EqualTo("maxElements 0 must be positive"));
    }

    [Test]
    public void NaNAndInfinityAreRefusedNamingHowManyAndTheFirst()
    {
        var latent = new HostTensor<float>(new TensorShape(1, 4, 4, 4));
        latent.Data[5] = float.NaN;
        latent.Data[9] = float.PositiveInfinity;
        latent.Data[63] = float.NaN;
        string path = Path.Combine(SyntheticVae.TempFolder(), "nan.safetensors");
        LatentFile.Write(path, latent);
        var e = Assert.Throws<InvalidDataException>(() => LatentFile.Read(path));
        Assert.That(e!.Message, Does.StartWith(path).And.Contain($"tensor '{LatentFile.TensorName}' has 3 NaN or infinite values (the first at flat index 5, NaN)"));
    }

    [Test]
    public void AFiniteLatentRoundTrips()
    {
        var latent = new HostTensor<float>(new TensorShape(1, 4, 2, 2));
        for (int i = 0; i < latent.Data.Length; i++) latent.Data[i] = i - 7.5f;
        string path = Path.Combine(SyntheticVae.TempFolder(), "z.safetensors");
        LatentFile.Write(path, latent);
        Assert.That(LatentFile.Read(path).Data, Is.EqualTo(latent.Data));
    }
}
