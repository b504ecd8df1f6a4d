using System.Diagnostics;
using System.Globalization;
using NativeVae.Imaging;

namespace NativeVae.Cli.Commands;

/// <summary>
/// <c>nativevae roundtrip &lt;image&gt; --model M -o out.png</c>: encode then decode, write the result, and print
/// <c>psnr_db=</c> against the input (resized to a multiple of 8 first, as the encoder sees it), the times and
/// the peak device memory.
/// </summary>
internal sealed class RoundtripCommand : ICommand
{
    public string Name => "roundtrip";

    public string Usage => $"roundtrip <image> {ModelArguments.Usage} -o out.png";

    public string Summary => "encode and decode an image, write the result and print its PSNR against the input";

    public int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var line = new CommandLine(args, 1, [.. ModelArguments.Names, "output"]);
        string output = line.Option("output") ?? throw new UsageException("-o/--output is required");
        var tiling = ModelArguments.Tiling(line);
        int? tile = ModelArguments.Tile(line);
        using var vae = ModelArguments.Load(line);
        long maxPixels = line.Option("max-pixels") is { } p ? ModelArguments.ParseLong(p, "max-pixels") : ImageInput.DefaultMaxPixels;
        using var input = ImageInput.Load(line.Positional[0], maxPixels);
        var resized = ImageInput.ResizeToMultiple(input, vae.DownsampleFactor);
        using var sized = ReferenceEquals(resized, input) ? input.Clone() : resized;

        var clock = Stopwatch.StartNew();
        var latent = vae.Encode([sized], new EncodeOptions { Tiling = tiling, TileSize = tile, Progress = new ProgressBar(stderr, "encode") });
        double encodeSeconds = clock.Elapsed.TotalSeconds;
        clock.Restart();
        using var result = vae.Decode(latent, new DecodeOptions { Tiling = tiling, TileSize = tile, Progress = new ProgressBar(stderr, "decode") });
        double decodeSeconds = clock.Elapsed.TotalSeconds;

        var decoded = result.Images![0];
        ImageOutput.Save(decoded, output);
        double psnr = ImageMetrics.Psnr(ImageInput.ToBytes(sized), ImageInput.ToBytes(decoded));
        var invariant = CultureInfo.InvariantCulture;
        stdout.WriteLine(string.Create(invariant, $"psnr_db={psnr:F2}"));
        stdout.WriteLine(string.Create(invariant,
            $"image={sized.Width}x{sized.Height} latent={latent.Shape} device=\"{vae.DeviceName}\" encode_s={encodeSeconds:F3} decode_s={decodeSeconds:F3} peak_device_bytes={vae.PeakDeviceBytes}"));
        return ExitCodes.Success;
    }
}
