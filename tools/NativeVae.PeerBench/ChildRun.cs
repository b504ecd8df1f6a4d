using System.Diagnostics;
using System.Text.Json;
using NativeVae.Backends.Cpu;
using NativeVae.Cli.Bench;
using NativeVae.Models.AutoencoderKl;
using NativeVae.Models.QwenImage;
using NativeVae.Oracle;
using NativeVae.Oracle.AutoencoderKl;
using NativeVae.Core;
using NativeVae.Weights;
using NativeVae.Formats;
using NativeVae.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace NativeVae.PeerBench;

/// <summary>
/// One side of one case, in a child process: build the model from the seeded weights, drop the host copy of the
/// weights, reset the peak RSS, one warm-up run, <c>--runs</c> timed runs; write the last output (raw fp32) to
/// <c>--output</c> and one JSON line to stdout.
/// </summary>
internal static class ChildRun
{
    private const int WarmupRuns = 1;

    /// <summary>Image stream names shared with <c>nativevae bench</c>, so both benchmarks feed the same inputs.</summary>
    private const string ImageStream = "bench.image";
    private const string LatentStream = "bench.latent";

    public static int Run(string side, PeerOptions options)
    {
        bool encode = options.Ops.Single() == "encode";
        int size = options.Sizes.Single(), f = options.DownsampleFactor;
        var shape = (encode, options.Video) switch
        {
            (true, false) => TensorShape.Nchw(1, options.InChannels, size, size),
            (false, false) => TensorShape.Nchw(1, options.LatentChannels, size / f, size / f),
            (true, true) => new TensorShape(1, options.InChannels, options.Frames, size, size),
            (false, true) => new TensorShape(1, options.LatentChannels, options.QwenConfig!.LatentFrames(options.Frames), size / f, size / f),
        };
        float[] input = SeededWeights.Uniform(SeededWeights.DefaultSeed, encode ? ImageStream : LatentStream, shape.ElementCount);

        Func<float[]> step = (side, options.Config) switch
        {
            ("nativevae", { } config) => NativeVaeStep(new AutoencoderKlModel(new CpuBackend(threads: PeerOptions.Threads), config,
                SeededWeights.Source(SeededWeights.DefaultSeed, AutoencoderKlParameters.Enumerate(config))), encode, new HostTensor<float>(shape, input)),
            ("nativevae", null) when options.Video => NativeVaeVideoStep(new QwenImageModel(new CpuBackend(threads: PeerOptions.Threads), options.QwenConfig!,
                SeededWeights.Source(SeededWeights.DefaultSeed, QwenImageParameters.Enumerate(options.QwenConfig!)), frames: true), ModelFamilies.Parse(options.Family), encode, new HostTensor<float>(shape, input)),
            ("nativevae", null) => NativeVaeStep(new QwenImageModel(new CpuBackend(threads: PeerOptions.Threads), options.QwenConfig!,
                SeededWeights.Source(SeededWeights.DefaultSeed, QwenImageParameters.Enumerate(options.QwenConfig!))), encode, new HostTensor<float>(shape, input)),
            ("libtorch", { } config) => LibtorchStep(config, encode, input, shape),
            ("libtorch", null) when options.Video => LibtorchWanStep(options.QwenConfig!, encode, input, shape),
            ("libtorch", null) => LibtorchQwenStep(options.QwenConfig!, encode, input, shape),
            _ => throw new ArgumentException($"--child '{side}' must be nativevae or libtorch"),
        };

        // Whatever the seeded weights left on the managed heap goes back before the peak is restarted.
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        if (!ProcessMemory.ResetPeak()) throw new PlatformNotSupportedException("cannot reset the peak RSS (/proc/self/clear_refs)");
        long loaded = ProcessMemory.ResidentBytes() ?? 0;

        var seconds = new double[options.Runs];
        float[] output = [];
        for (int i = -WarmupRuns; i < options.Runs; i++)
        {
            long start = Stopwatch.GetTimestamp();
            output = step();
            if (i >= 0) seconds[i] = Stopwatch.GetElapsedTime(start).TotalSeconds;
        }
        long peak = ProcessMemory.PeakResidentBytes() ?? 0;
        using (var file = File.Create(options.Output ?? throw new ArgumentException("--output is required for a child")))
            file.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(output.AsSpan()));
        Console.WriteLine(JsonSerializer.Serialize(new { seconds, peak_rss_bytes = peak, loaded_rss_bytes = loaded }));
        return 0;
    }

    /// <summary>NativeVae's public API on the SIMD CPU backend, untiled; encode returns the raw moments like the oracle.</summary>
    private static Func<float[]> NativeVaeStep(NativeVae.Models.IVaeModel model, bool encode, HostTensor<float> input)
    {
        var vae = new Vae(model, new VaeOptions(), scalingFactor: null, shiftFactor: null);
        return encode
            ? () => vae.EncodeMoments(input, new EncodeOptions { Tiling = TilingMode.None }).Data
            : () => vae.Decode(input, new DecodeOptions { Tiling = TilingMode.None, Output = DecodeOutput.FloatTensor }).FloatTensor!.Data;
    }

    /// <summary>NativeVae's video API on the SIMD CPU backend: encode returns the latent's mode, decode the video.</summary>
    private static Func<float[]> NativeVaeVideoStep(NativeVae.Models.IVaeModel model, ModelFamily family, bool encode, HostTensor<float> input)
    {
        var vae = new Vae(model, new VaeOptions(), scalingFactor: null, shiftFactor: null) { Family = family };
        return encode ? () => vae.EncodeVideo(input).Data : () => vae.DecodeVideo(input).Data;
    }

    /// <summary>
    /// The oracle's libtorch port of diffusers' AutoencoderKLWan _encode / _decode (chunks, feat_cache, conv3d), the
    /// half that runs loaded first; encode gives the mode (the moments' first half) as NativeVae's EncodeVideo does.
    /// </summary>
    private static Func<float[]> LibtorchWanStep(QwenImageConfig config, bool encode, float[] input, TensorShape shape)
    {
        torch.set_num_threads(PeerOptions.Threads);
        torch.set_grad_enabled(false);
        var weights = new CheckedWeights(SeededWeights.Source(SeededWeights.DefaultSeed, QwenImageParameters.Enumerate(config)));
        var oracle = new NativeVae.Oracle.Wan.WanVideoOracle(config, weights);
        using (NewDisposeScope())
        {
            // Five frames (two latent frames) reach every time_conv of the half.
            int f = config.DownsampleFactor;
            if (encode) oracle.EncodeMoments(torch.zeros(new long[] { 1, config.InputChannels, 1 + QwenImageConfig.ChunkFrames, f, f }));
            else oracle.Decode(torch.zeros(new long[] { 1, config.ZDim, 2, 1, 1 }));
        }
        bool IsEncoder(string name) => name.StartsWith("encoder.", StringComparison.Ordinal) || name.StartsWith("quant_conv.", StringComparison.Ordinal);
        weights.AssertAllUsed(name => IsEncoder(name) == encode);
        var x = Torch.FromArray(input, shape.Dims.ToArray().Select(d => (long)d).ToArray());
        return () =>
        {
            using var scope = NewDisposeScope();
            var y = encode ? oracle.EncodeMoments(x).narrow(1, 0, config.ZDim) : oracle.Decode(x);
            return Torch.ToArray(y.contiguous());
        };
    }

    /// <summary>
    /// The oracle's libtorch port of diffusers' AutoencoderKL, fp32, no autograd, <see cref="PeerOptions.Threads"/>
    /// threads. The parameters of the half that runs are loaded before timing (a tiny pass touches them all); like
    /// NativeVae, which uploads each half on its first use, neither side holds the other half's weights. The
    /// weights are generated as they are read, so no host copy stays behind on either side.
    /// </summary>
    private static Func<float[]> LibtorchStep(AutoencoderKlConfig config, bool encode, float[] input, TensorShape shape)
    {
        torch.set_num_threads(PeerOptions.Threads);
        torch.set_grad_enabled(false);
        var weights = new CheckedWeights(SeededWeights.Source(SeededWeights.DefaultSeed, AutoencoderKlParameters.Enumerate(config)));
        var oracle = new AutoencoderKlOracle(config, weights, (_, _) => { });
        using (NewDisposeScope())
        {
            int f = config.DownsampleFactor;
            if (encode) oracle.EncodeMoments(torch.zeros(1, config.InChannels, f, f));
            else oracle.Decode(torch.zeros(1, config.LatentChannels, 1, 1));
        }
        bool IsEncoder(string name) => name.StartsWith("encoder.", StringComparison.Ordinal) || name.StartsWith("quant_conv.", StringComparison.Ordinal);
        // FLUX.2's bn buffers are the pipeline's, read by neither half.
        weights.AssertAllUsed(name => IsEncoder(name) == encode && !AutoencoderKlParameters.IsBatchNormBuffer(name));
        var x = Torch.FromArray(input, shape.N, shape.C, shape.H, shape.W);
        return () =>
        {
            using var scope = NewDisposeScope();
            var y = encode ? oracle.EncodeMoments(x) : oracle.Decode(x);
            return Torch.ToArray(y);
        };
    }

    /// <summary>
    /// The oracle's libtorch port of diffusers' AutoencoderKLQwenImage on one frame (5-D tensors, conv3d with causal
    /// padding: what diffusers runs), the half that runs loaded first as above.
    /// </summary>
    private static Func<float[]> LibtorchQwenStep(QwenImageConfig config, bool encode, float[] input, TensorShape shape)
    {
        torch.set_num_threads(PeerOptions.Threads);
        torch.set_grad_enabled(false);
        var weights = new CheckedWeights(SeededWeights.Source(SeededWeights.DefaultSeed, QwenImageParameters.Enumerate(config)));
        var oracle = new NativeVae.Oracle.QwenImage.QwenImageOracle(config, weights, (_, _) => { });
        using (NewDisposeScope())
        {
            int f = config.DownsampleFactor;
            if (encode) oracle.EncodeMoments(torch.zeros(new long[] { 1, config.InputChannels, 1, f, f }));
            else oracle.Decode(torch.zeros(new long[] { 1, config.ZDim, 1, 1, 1 }));
        }
        bool IsEncoder(string name) => name.StartsWith("encoder.", StringComparison.Ordinal) || name.StartsWith("quant_conv.", StringComparison.Ordinal);
        weights.AssertAllUsed(name => IsEncoder(name) == encode && !name.Contains(".time_conv.", StringComparison.Ordinal));
        var x = Torch.FromArray(input, shape.N, shape.C, shape.H, shape.W).unsqueeze(2);
        return () =>
        {
            using var scope = NewDisposeScope();
            var y = encode ? oracle.EncodeMoments(x) : oracle.Decode(x);
            return Torch.ToArray(y.squeeze(2).contiguous());
        };
    }
}
