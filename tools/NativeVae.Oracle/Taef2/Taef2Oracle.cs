using System.Collections;
using NativeVae.Core;
using NativeVae.Weights;
using NativeVae.Formats;
using NativeVae.Loading;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace NativeVae.Oracle.Taef2;

/// <summary>
/// TAEF2, the tiny autoencoder for the FLUX.2 latent space (madebyollin/taesd, <c>taesd.py</c> Encoder/Decoder with
/// the GroupNorm block variant), rebuilt from libtorch ops in fp32 and run on the real checkpoints.
/// State-dict keys are positions in the original <c>nn.Sequential</c>s: <c>N.weight</c> for a conv, and
/// <c>N.conv.0|2|4.*</c>, <c>N.pool.0|1|3.*</c> for a Block. Architecture facts: ../shared/README.md.
/// </summary>
internal sealed class Taef2Oracle : IDisposable
{
    public const int LatentChannels = 32;
    private const int ImageChannels = 3;
    private const int Width = 64;

    /// <summary>The GroupNorm variant's hidden width (1x1 conv 64 -> 256 -> 64), its groups and epsilon.</summary>
    private const int PoolWidth = 256;
    private const int PoolGroups = 4;
    private const double PoolEps = 1e-5;

    /// <summary>TAESD's latent soft clamp: tanh(x / 3) * 3.</summary>
    private const double ClampBound = 3.0;

    private readonly CheckedWeights _encoder;
    private readonly CheckedWeights _decoder;

    private Taef2Oracle(CheckedWeights encoder, CheckedWeights decoder)
    {
        _encoder = encoder;
        _decoder = decoder;
    }

    /// <summary>Reads <c>taef2_encoder.pth</c> and <c>taef2_decoder.pth</c> (fp16 storage, widened to fp32).</summary>
    public static Taef2Oracle Load(string encoderPath, string decoderPath) =>
        new(new CheckedWeights(ReadCheckpoint(encoderPath)), new CheckedWeights(ReadCheckpoint(decoderPath)));

    /// <summary>The real checkpoints in <c>{sharedRoot}/models/taef2</c>.</summary>
    public static Taef2Oracle LoadShared(string sharedRoot) => Load(
        Path.Combine(sharedRoot, "models", "taef2", "taef2_encoder.pth"),
        Path.Combine(sharedRoot, "models", "taef2", "taef2_decoder.pth"));

    /// <summary>image <c>[N, 3, H, W]</c> in [0, 1] -> raw latent <c>[N, 32, ceil(H/8), ceil(W/8)]</c>.</summary>
    public Tensor Encode(Tensor image)
    {
        var w = _encoder;
        var h = Conv(w, image, "0", ImageChannels, Width);                   // [N, 64, H, W]
        h = Block(w, h, "1", groupNorm: false);
        int index = 2;
        for (int stage = 0; stage < 3; stage++)
        {
            // Stride-2 conv, pad 1 on every side, no bias: a size s becomes ceil(s / 2).
            h = Conv(w, h, $"{index++}", Width, Width, stride: 2, bias: false);
            bool groupNorm = stage == 2;                                    // the lowest resolution only
            for (int b = 0; b < 3; b++) h = Block(w, h, $"{index++}", groupNorm);
        }
        return Conv(w, h, $"{index}", Width, LatentChannels);               // [N, 32, H/8, W/8]
    }

    /// <summary>raw latent <c>[N, 32, h, w]</c> -> image <c>[N, 3, 8h, 8w]</c>, not clamped (callers clamp to [0, 1]).</summary>
    public Tensor Decode(Tensor latent)
    {
        var w = _decoder;
        var h = torch.tanh(latent / ClampBound) * ClampBound;              // index 0: Clamp
        h = F.relu(Conv(w, h, "1", LatentChannels, Width));                 // index 2: ReLU
        int index = 3;
        for (int stage = 0; stage < 3; stage++)
        {
            bool groupNorm = stage == 0;                                    // the lowest resolution only
            for (int b = 0; b < 3; b++) h = Block(w, h, $"{index++}", groupNorm);
            index++;                                                        // nn.Upsample: no parameters
            h = F.interpolate(h, scale_factor: [2.0, 2.0], mode: InterpolationMode.Nearest);
            h = Conv(w, h, $"{index++}", Width, Width, bias: false);
        }
        h = Block(w, h, $"{index++}", groupNorm: false);
        return Conv(w, h, $"{index}", Width, ImageChannels);                // [N, 3, 8h, 8w]
    }

    /// <summary>Fails unless the two passes read every tensor of both checkpoints.</summary>
    public void AssertAllUsed()
    {
        _encoder.AssertAllUsed();
        _decoder.AssertAllUsed();
    }

    public void Dispose()
    {
        _encoder.Dispose();
        _decoder.Dispose();
    }

    // taesd: Block(64, 64): relu(conv(relu(conv(relu(conv(x))))) + x), skip = identity. In the GroupNorm variant
    // x is first replaced by x + conv1x1(relu(GroupNorm(4)(conv1x1(x)))), both 1x1 convs without bias.
    private static Tensor Block(CheckedWeights w, Tensor x, string prefix, bool groupNorm)
    {
        if (groupNorm)
        {
            var p = Conv(w, x, $"{prefix}.pool.0", Width, PoolWidth, kernel: 1, padding: 0, bias: false); // [N, 256, H, W]
            var gamma = w.Get($"{prefix}.pool.1.weight", PoolWidth);
            var beta = w.Get($"{prefix}.pool.1.bias", PoolWidth);
            p = F.relu(F.group_norm(p, PoolGroups, gamma, beta, PoolEps));
            p = Conv(w, p, $"{prefix}.pool.3", PoolWidth, Width, kernel: 1, padding: 0, bias: false);     // [N, 64, H, W]
            x = x + p;
        }
        var h = F.relu(Conv(w, x, $"{prefix}.conv.0", Width, Width));
        h = F.relu(Conv(w, h, $"{prefix}.conv.2", Width, Width));
        h = Conv(w, h, $"{prefix}.conv.4", Width, Width);
        return F.relu(h + x);
    }

    private static Tensor Conv(CheckedWeights w, Tensor x, string prefix, int inChannels, int outChannels,
        int kernel = 3, int stride = 1, int padding = 1, bool bias = true)
    {
        var weight = w.Get($"{prefix}.weight", outChannels, inChannels, kernel, kernel);
        var b = bias ? w.Get($"{prefix}.bias", outChannels) : null;
        return F.conv2d(x, weight, b, strides: [stride, stride], padding: [padding, padding]);
    }

    private static InMemoryWeights ReadCheckpoint(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"TAEF2 checkpoint not found: {path}", path);
        var weights = new InMemoryWeights(path);
        // TorchSharp cannot read PyTorch pickles itself; PyBridge's unpickler returns name -> tensor.
        Hashtable stateDict = PyTorchUnpickler.UnpickleStateDict(path);
        foreach (DictionaryEntry entry in stateDict)
        {
            using var tensor = (Tensor)entry.Value!;
            using var widened = tensor.to_type(ScalarType.Float32);
            var shape = new NativeVae.TensorShape(widened.shape.Select(d => checked((int)d)).ToArray());
            weights.Add((string)entry.Key, shape, Torch.ToArray(widened));
        }
        return weights;
    }
}
