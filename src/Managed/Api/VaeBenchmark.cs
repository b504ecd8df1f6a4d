using System.Diagnostics;
using NativeVae.Backends;
using NativeVae.Backends.Cpu;
using NativeVae.Models;
using NativeVae.Models.AutoencoderKl;
using NativeVae.Models.QwenImage;
using NativeVae.Models.Taesd;
using NativeVae.Core;
using NativeVae.Weights;

namespace NativeVae;

/// <summary>
/// Benchmark and diagnostics: an AutoencoderKL of the real SD or SDXL architecture with seeded random weights
/// (nothing to download), run through the public <see cref="Vae"/>, plus what a benchmark reports beside the time:
/// dry-run FLOPs and activation peak, device memory figures, the CPU's FMA peak and an op-by-op profile.
/// What <c>nativevae bench</c> uses. Disposing it disposes <see cref="Vae"/> and its device.
/// </summary>
public sealed class VaeBenchmark : IDisposable
{
    /// <summary>The seed of the weights and of <see cref="SeededInput"/>.</summary>
    public const ulong DefaultSeed = SeededWeights.DefaultSeed;

    /// <summary>Unprofiled passes before the profiled one: the first records the call's buffers, the second faults
    /// in their arena, so the profiled pass's buffers come warm from the backend's plan, as the measured runs' do.</summary>
    private const int ProfileWarmupPasses = 2;

    private readonly IBackend _backend;
    private readonly IVaeModel _model;

    private VaeBenchmark(ModelFamily family, IBackend backend, DevicePreference device, DType dtype, ExactTilingStore exactStore, long? memoryLimit)
    {
        Family = family;
        _backend = backend;
        IReadOnlyList<(string Name, TensorShape Shape)> declared;
        float? scaling = null, shift = null;
        if (family.IsWanNetwork())
        {
            var config = family == ModelFamily.Wan22 ? QwenImageConfig.Wan22 : QwenImageConfig.QwenImage;
            bool frames = family.IsVideo();
            declared = QwenImageParameters.Enumerate(config);
            _model = new QwenImageModel(backend, config, SeededWeights.Source(DefaultSeed, declared), frames: frames);
            declared = new WanWeightView(SeededWeights.Source(DefaultSeed, declared), declared, frames).Declared; // what is uploaded
        }
        else if (family.IsTiny())
        {
            var config = TaesdConfig.For(family);
            declared = TaesdParameters.Enumerate(config);
            _model = new TaesdModel(backend, config, SeededWeights.Source(DefaultSeed, declared));
        }
        else
        {
            var config = AutoencoderKlConfig.For(family);
            declared = AutoencoderKlParameters.Enumerate(config);
            _model = new AutoencoderKlModel(backend, config, SeededWeights.Source(DefaultSeed, declared));
            (scaling, shift) = (config.LatentBatchNorm ? null : config.ScalingFactor, config.ShiftFactor);
        }
        WeightBytes = declared.Sum(p => p.Shape.ElementCount * (p.Shape.Rank >= 2 ? dtype.ByteSize() : sizeof(float)));
        InChannels = IBackend.ImageChannels;
        DType = dtype;
        Vae = new Vae(_model, new VaeOptions { Device = device, DType = dtype, ExactStore = exactStore, MemoryLimitBytes = memoryLimit }, scaling, shift) { Family = family };
    }

    /// <summary>Builds the seeded model of <paramref name="family"/> on the device <paramref name="device"/> picks.</summary>
    /// <param name="family">Any family: an AutoencoderKL (sd, sdxl, flux, sd3, flux2), Qwen-Image's VAE or a TAESD-family
    /// model (taesd, taesdxl, taef1, taef2), with its published config.</param>
    /// <param name="device">Which device runs it, as <see cref="VaeOptions.Device"/>.</param>
    /// <param name="dtype">Storage of weights and activations, as <see cref="VaeOptions.DType"/>.</param>
    /// <param name="exactStore">Where exact tiling keeps its activations, as <see cref="VaeOptions.ExactStore"/>.</param>
    /// <param name="memoryLimit">The calls' memory budget, as <see cref="VaeOptions.MemoryLimitBytes"/>.</param>
    public static VaeBenchmark CreateSeeded(ModelFamily family, DevicePreference device = DevicePreference.Auto, DType dtype = DType.F32,
        ExactTilingStore exactStore = ExactTilingStore.Auto, long? memoryLimit = null)
    {
        var backend = BackendFactory.Create(device, dtype);
        try
        {
            return new VaeBenchmark(family, backend, device, dtype, exactStore, memoryLimit);
        }
        catch
        {
            backend.Dispose();
            throw;
        }
    }

    /// <summary>The model, called as any loaded VAE (each half's weights are uploaded on its first use).</summary>
    public Vae Vae { get; }

    /// <summary>
    /// Bytes exact tiling has read from and written to its temporary-file activation stores (CPU backend) in this
    /// process so far: the difference across calls is their traffic through the store.
    /// </summary>
    public static long StoreTrafficBytes
    {
        get
        {
            var (read, written) = Tiling.ActivationStore.Traffic;
            return read + written;
        }
    }

    /// <summary>How weights and activations are stored.</summary>
    public DType DType { get; }

    /// <summary>The architecture.</summary>
    public ModelFamily Family { get; }

    /// <summary>Bytes of the fp32 weights of both halves.</summary>
    public long WeightBytes { get; }

    /// <summary>Channels of the images the encoder takes (3).</summary>
    public int InChannels { get; }

    /// <summary>The backend's name, e.g. "CPU SIMD (AVX-512, 16 threads)" or "ILGPU CUDA (NVIDIA H100)".</summary>
    public string DeviceName => _backend.Name;

    /// <summary>What memory the backend allocates from.</summary>
    public DeviceMemoryKind MemoryKind => _backend.Kind switch
    {
        BackendKind.IlgpuCuda => DeviceMemoryKind.Gpu,
        BackendKind.IlgpuCpu => DeviceMemoryKind.Emulator,
        _ => DeviceMemoryKind.Ram,
    };

    /// <summary>Bytes of that memory: the GPU's, or the host memory available to the process (container limits included).</summary>
    public long DeviceMemoryBytes => _backend.Capabilities.MemoryCapacityBytes;

    /// <summary>Peak bytes the backend held since it was created or since <see cref="ResetPeakMemory"/>.</summary>
    public long PeakDeviceBytes => _backend.Memory.PeakBytes;

    /// <summary>Frees what the backend keeps for reuse (pooled buffers, call plans) and restarts the peak at what is
    /// live (the weights), so that the next measurement's peak is its own.</summary>
    public void ResetPeakMemory() => _backend.ResetPeakMemory();

    /// <summary>Seeded uniform values of <paramref name="shape"/>: an input as the benchmark feeds it.</summary>
    /// <param name="shape">The tensor's shape, e.g. an image <c>[1, 3, H, W]</c> or a latent <c>[1, 4, H/8, W/8]</c>.</param>
    /// <param name="stream">Names the sequence: one name gives the same values every time.</param>
    public static HostTensor<float> SeededInput(TensorShape shape, string stream) =>
        new(shape, SeededWeights.Uniform(DefaultSeed, stream, shape.ElementCount));

    /// <summary>Counts an untiled encode or decode without running it: the dry run its calls plan from (one per shape).</summary>
    /// <param name="input">An image shape <c>[N, 3, H, W]</c> to encode, or a latent shape to decode.</param>
    /// <param name="encode">True for encode, false for decode.</param>
    public DryRunFigures DryRun(TensorShape input, bool encode)
    {
        var figures = Vae.Figures(input, encode);
        return new DryRunFigures(figures.Flops, figures.UntiledBytes);
    }

    /// <summary>One untiled encode or decode with every op timed (device synchronised after each), summed by op kind and shape.</summary>
    /// <param name="input">An image <c>[N, 3, H, W]</c> to encode, or a latent to decode.</param>
    /// <param name="encode">True for encode, false for decode.</param>
    public VaeProfile Profile(HostTensor<float> input, bool encode)
    {
        ArgumentNullException.ThrowIfNull(input);
        ProfilingBackend profiler = null!;
        double total = 0;
        for (int pass = 0; pass <= ProfileWarmupPasses; pass++)
        {
            profiler = new ProfilingBackend(_backend);
            long start = Stopwatch.GetTimestamp();
            if (input.Shape.Rank == Api.VideoFrames.Rank && _model is IVideoVaeModel video)
            {
                var pipeline = new Api.VideoPipeline(video, profiler);
                if (encode) pipeline.Encode(input, new EncodeOptions(), CancellationToken.None);
                else pipeline.Decode(input, new DecodeOptions(), CancellationToken.None);
            }
            else
            {
                using (_backend.BeginCall($"profile {(encode ? "encode" : "decode")} {input.Shape}"))
                using (var x = profiler.Upload(input.Data, input.Shape))
                using (var y = encode ? _model.Encode(profiler, x) : _model.Decode(profiler, x))
                {
                    var output = new float[y.Shape.ElementCount];
                    profiler.Download(y, output);
                }
            }
            total = Stopwatch.GetElapsedTime(start).TotalSeconds;
        }
        var ops = profiler.Ops.Select(o => new OpProfile(o.Key, o.Value.Calls, o.Value.Seconds, o.Value.Flops, o.Value.Bytes)).ToList();
        return new VaeProfile(total, ops);
    }

    /// <summary>Measures the CPU's fp32 FMA peak: one thread per core running independent FMA chains of the widest
    /// accelerated vector width, best of three (about a second).</summary>
    public static CpuFmaPeak MeasureCpuFmaPeak()
    {
        var (gflops, threads, width) = CpuPeakMeasurement.Measure();
        return new CpuFmaPeak(gflops, threads, width);
    }

    /// <summary>Disposes <see cref="Vae"/> and the device.</summary>
    public void Dispose() => Vae.Dispose();
}
