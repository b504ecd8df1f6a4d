using System.Diagnostics;
using NativeVae.Formats.Pickle;
using NativeVae.Formats.SafeTensors;
using NativeVae.Imaging;
using NativeVae.Loading;
using NativeVae.Tests.Support;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.PixelFormats;
using static NativeVae.Tests.Support.SyntheticVae;

namespace NativeVae.Tests.Fuzz;

/// <summary>
/// Seeded mutation fuzzing of every reader of untrusted input (issue 12): safetensors, latent files, PyTorch zip
/// checkpoints, bare pickles, config JSON, and each image format. Every case must end in success or in a clean
/// error (our exception types, naming the file, no raw runtime wording), within a time and an allocation bound.
/// <c>NATIVEVAE_FUZZ_CASES</c> sets the cases per reader (default <see cref="DefaultCases"/>; tools/NativeVae.Fuzz
/// runs thousands); <c>NATIVEVAE_FUZZ_SEED</c> the first seed.
/// </summary>
public class MutationFuzzTests
{
    private const int DefaultCases = 40;
    private static readonly TimeSpan MaxCaseTime = TimeSpan.FromSeconds(10);
    private const long MaxCaseAllocatedBytes = 256L << 20;
    private const int ReportedFailures = 10;

    /// <summary>What .NET, ImageSharp or System.Text.Json say on their own: never what a user should read.</summary>
    private static readonly string[] RawWording =
    [
        "(Parameter '", "Arithmetic operation resulted in an overflow", "Index was outside the bounds", "Object reference not set",
        "Attempted to divide by zero", "Specified argument was out of the range", "Exception of type", "Value cannot be null",
        "is an invalid start of a value", "Sequence contains", "End of Central Directory", "Unable to read beyond the end",
        "System.",
    ];

    private static readonly Type[] CleanErrors = [typeof(InvalidDataException), typeof(FileNotFoundException), typeof(NotSupportedException)];

    /// <summary>One reader: its seed file and how to read a file of its kind to the end.</summary>
    private sealed record Target(string Name, string Extension, Func<string, byte[]> Seed, Action<string> Read);

    private static readonly Target[] Targets =
    [
        new("safetensors", ".safetensors", SafeTensorsSeed, path =>
        {
            using var file = SafeTensorsFile.Open(path);
            foreach (string name in file.Tensors.Keys) file.ReadFloat32(name);
        }),
        new("latent", ".safetensors", LatentSeed, path => LatentFile.Read(path)),
        new("pth", ".pth", PthSeed, path =>
        {
            using var loaded = VaeLoader.Open(path);
            foreach (var (name, _) in loaded.Parameters) loaded.Weights.ReadFloat32(name);
        }),
        new("pickle", ".pkl", PickleSeed, path => RestrictedUnpickler.Load(path, File.ReadAllBytes(path))),
        new("config", ".json", ConfigSeed, path =>
        {
            // The mutated config beside the seed's weights, as a diffusers folder.
            string folder = Path.GetDirectoryName(path)!;
            File.Copy(path, Path.Combine(folder, "config.json"), overwrite: true);
            using var loaded = VaeLoader.Open(folder);
        }),
        new("png", ".png", folder => ImageSeed(new PngEncoder()), ReadImage),
        new("jpeg", ".jpg", folder => ImageSeed(new JpegEncoder()), ReadImage),
        new("bmp", ".bmp", folder => ImageSeed(new BmpEncoder()), ReadImage),
        new("webp", ".webp", folder => ImageSeed(new WebpEncoder()), ReadImage),
    ];

    private static IEnumerable<TestCaseData> Readers() => Targets.Select(t => new TestCaseData(t.Name).SetArgDisplayNames(t.Name));

    [TestCaseSource(nameof(Readers))]
    public void EveryMutationEndsCleanlyInBoundedTimeAndMemory(string reader)
    {
        var target = Targets.Single(t => t.Name == reader);
        int cases = EnvInt("NATIVEVAE_FUZZ_CASES", DefaultCases);
        int firstSeed = EnvInt("NATIVEVAE_FUZZ_SEED", 1);
        string folder = TempFolder();
        byte[] seed = target.Seed(folder);
        int ok = 0, refused = 0;
        var failures = new List<string>();
        for (int i = 0; i < cases; i++)
        {
            int caseSeed = firstSeed + i;
            var (bytes, what) = new Mutator(caseSeed).Mutate(seed);
            string path = Path.Combine(folder, $"case{caseSeed}{target.Extension}");
            File.WriteAllBytes(path, bytes);
            long allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
            var clock = Stopwatch.StartNew();
            Exception? error = null;
            try
            {
                target.Read(path);
            }
            catch (Exception e)
            {
                error = e;
            }
            var elapsed = clock.Elapsed;
            long allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;
            string? wrong = Judge(error, path, elapsed, allocated);
            if (wrong is null)
            {
                if (error is null) ok++;
                else refused++;
            }
            else
            {
                failures.Add($"seed {caseSeed} ({what}): {wrong}");
            }
            File.Delete(path);
        }
        TestContext.Out.WriteLine($"{reader}: {cases} cases from seed {firstSeed}: {ok} read, {refused} refused cleanly, {failures.Count} wrong");
        Assert.That(failures.Take(ReportedFailures), Is.Empty, $"{reader}: {failures.Count} of {cases} mutations ended badly");
    }

    /// <summary>Null when the outcome is acceptable, else what is wrong with it.</summary>
    private static string? Judge(Exception? error, string path, TimeSpan elapsed, long allocated)
    {
        if (elapsed > MaxCaseTime) return $"took {elapsed.TotalSeconds:F1} s (limit {MaxCaseTime.TotalSeconds} s)";
        if (allocated > MaxCaseAllocatedBytes) return $"allocated {allocated >> 20} MiB (limit {MaxCaseAllocatedBytes >> 20} MiB)";
        if (error is null) return null;
        if (!CleanErrors.Contains(error.GetType())) return $"{error.GetType().Name}: {error.Message}";
        if (RawWording.FirstOrDefault(w => error.Message.Contains(w, StringComparison.Ordinal)) is { } raw)
            return $"raw wording '{raw}' in: {error.Message}";
        string file = Path.GetFileName(path);
        if (!error.Message.Contains(file, StringComparison.Ordinal) && !error.Message.Contains(Path.GetDirectoryName(path)!, StringComparison.Ordinal))
            return $"the message does not name the file: {error.Message}";
        return null;
    }

    private static void ReadImage(string path)
    {
        using var image = ImageInput.Load(path, ImageInput.DefaultMaxPixels);
    }

    private static int EnvInt(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), out int value) && value > 0 ? value : fallback;

    // ---- seeds: small real files of each kind -----------------------------------------------------------------

    private static byte[] SafeTensorsSeed(string folder)
    {
        string path = Path.Combine(folder, "seed.safetensors");
        WriteSafeTensors(path, InLayout(SmallSd, Layout.Diffusers).Take(6), NativeVae.DType.F16);
        return File.ReadAllBytes(path);
    }

    private static byte[] LatentSeed(string folder)
    {
        string path = Path.Combine(folder, "seed.latent.safetensors");
        LatentFile.Write(path, new HostTensor<float>(TensorShape.Nchw(1, 4, 3, 5), Enumerable.Range(0, 60).Select(i => i / 10f).ToArray()));
        return File.ReadAllBytes(path);
    }

    private static byte[] PthSeed(string folder)
    {
        string path = Path.Combine(folder, "seed.pth");
        TorchZipWriter.WriteFloat32(path, InLayout(SmallSd, Layout.Ldm, "first_stage_model."));
        return File.ReadAllBytes(path);
    }

    private static byte[] PickleSeed(string folder)
    {
        using var zip = System.IO.Compression.ZipFile.OpenRead(WritePth(folder));
        var entry = zip.Entries.Single(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal));
        using var stream = entry.Open();
        using var memory = new MemoryStream();
        stream.CopyTo(memory);
        return memory.ToArray();
    }

    private static string WritePth(string folder)
    {
        string path = Path.Combine(folder, "pickle-source.pth");
        TorchZipWriter.WriteFloat32(path, InLayout(SmallSd, Layout.Diffusers).Take(8));
        return path;
    }

    private static byte[] ConfigSeed(string folder)
    {
        WriteSafeTensors(Path.Combine(folder, "diffusion_pytorch_model.safetensors"), InLayout(SmallSd, Layout.Diffusers));
        var json = NativeVae.Models.AutoencoderKl.AutoencoderKlConfigJson.ToJsonObject(SmallSd);
        json["_class_name"] = "AutoencoderKL";
        return System.Text.Encoding.UTF8.GetBytes(json.ToJsonString());
    }

    private static byte[] ImageSeed(SixLabors.ImageSharp.Formats.IImageEncoder encoder)
    {
        using var image = new Image<Rgb24>(24, 16);
        for (int y = 0; y < image.Height; y++)
        for (int x = 0; x < image.Width; x++)
            image[x, y] = new Rgb24((byte)(x * 10), (byte)(y * 15), (byte)(x * y));
        using var memory = new MemoryStream();
        image.Save(memory, encoder);
        return memory.ToArray();
    }
}
