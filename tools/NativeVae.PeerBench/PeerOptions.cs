using System.Globalization;
using NativeVae.Models.AutoencoderKl;
using NativeVae.Models.QwenImage;

namespace NativeVae.PeerBench;

/// <summary>The command line, shared by the parent and the children it starts (a child adds --child, --op, --size, --output).</summary>
internal sealed record PeerOptions
{
    /// <summary>Threads on both sides: torch.set_num_threads and the CPU backend's workers.</summary>
    public const int Threads = 2;

    public string Family { get; init; } = "sd";
    public int[] Sizes { get; init; } = [512];
    public string[] Ops { get; init; } = ["encode", "decode"];
    public int Runs { get; init; } = 3;
    public int Rounds { get; init; } = 1;
    public string? Child { get; init; }
    public string? Output { get; init; }

    /// <summary>Frames of a wan video (encode's input; decode's output comes from 1 + (T - 1) / 4 latent frames).</summary>
    public int Frames { get; init; } = 5;

    /// <summary>True for wan and wan22: video tensors [1, C, T, H, W] through the causal frame-by-frame path.</summary>
    public bool Video => Family is "wan" or "wan22";

    /// <summary>The AutoencoderKL config of sd, sdxl and flux2; null for qwenimage (<see cref="QwenConfig"/>).</summary>
    public AutoencoderKlConfig? Config => Family switch
    {
        "sd" => AutoencoderKlConfig.Sd,
        "sdxl" => AutoencoderKlConfig.Sdxl,
        "flux2" => AutoencoderKlConfig.Flux2,
        "qwenimage" or "wan" or "wan22" => null,
        _ => throw new ArgumentException($"--family '{Family}' must be sd, sdxl, flux2, qwenimage, wan or wan22"),
    };

    /// <summary>Qwen-Image's (Wan 2.1's) published VAE config for qwenimage or wan, Wan 2.2's for wan22, else null.</summary>
    public QwenImageConfig? QwenConfig => Family switch
    {
        "qwenimage" or "wan" => QwenImageConfig.QwenImage,
        "wan22" => QwenImageConfig.Wan22,
        _ => null,
    };

    public int InChannels => Config?.InChannels ?? QwenConfig!.InputChannels;

    public int LatentChannels => Config?.LatentChannels ?? QwenConfig!.ZDim;

    public int DownsampleFactor => Config?.DownsampleFactor ?? QwenConfig!.DownsampleFactor;

    public static PeerOptions Parse(string[] args)
    {
        var o = new PeerOptions();
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"option '{args[i]}' needs a value");
            o = args[i] switch
            {
                "--family" => o with { Family = Next() },
                "--sizes" => o with { Sizes = Next().Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray() },
                "--ops" => o with { Ops = Next().Split(',') },
                "--runs" => o with { Runs = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--rounds" => o with { Rounds = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--child" => o with { Child = Next() },
                "--output" => o with { Output = Next() },
                "--op" => o with { Ops = [Next()] },
                "--size" => o with { Sizes = [int.Parse(Next(), CultureInfo.InvariantCulture)] },
                "--frames" => o with { Frames = int.Parse(Next(), CultureInfo.InvariantCulture) },
                _ => throw new ArgumentException($"unknown argument '{args[i]}'"),
            };
        }
        _ = o.Config;
        foreach (string op in o.Ops)
            if (op is not ("encode" or "decode")) throw new ArgumentException($"--ops: '{op}' must be encode or decode");
        foreach (int size in o.Sizes)
            if (size <= 0 || size % o.DownsampleFactor != 0)
                throw new ArgumentException($"--sizes: {size} is not a positive multiple of {o.DownsampleFactor}");
        if (o.Runs <= 0 || o.Rounds <= 0) throw new ArgumentException("--runs and --rounds must be positive");
        if (o.Frames < 1 || (o.Frames - 1) % QwenImageConfig.ChunkFrames != 0) throw new ArgumentException($"--frames {o.Frames} must be 1 + 4k");
        return o;
    }
}
