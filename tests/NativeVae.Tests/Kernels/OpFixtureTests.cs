using System.Globalization;
using NativeVae.Core;
using NativeVae.Tests.Support;
using NativeVae.Formats.SafeTensors;

namespace NativeVae.Tests.Kernels;

/// <summary>
/// Every oracle fixture under <c>tests/fixtures/ops/&lt;op&gt;/*.safetensors</c> (written by tools/NativeVae.Oracle
/// from libtorch) run through the ops of every backend with every kernel version. An op folder without fixtures is a
/// failure, not a pass: a parity test that checks nothing must not look green.
/// <para>Formats (tensors; <c>__metadata__</c> strings):</para>
/// <list type="bullet">
/// <item>conv2d: x [N, Cin, H, W], weight [Cout, Cin, K, K], optional bias [Cout] and residual, y;
///   stride, pad_top, pad_bottom, pad_left, pad_right, upsample2x ("0"/"1").</item>
/// <item>group_norm: x, gamma, beta, y, mean [N, G], rstd [N, G]; groups, eps, silu ("0"/"1").</item>
/// <item>attention: q, k, v [B, C, H, W], y [B, C, H, W]; scale.</item>
/// <item>elementwise: x, optional b, y; op (silu|relu|tanh_clamp|add|scale_shift), scale, shift.</item>
/// <item>rms_norm: x, gamma [C], y; silu ("0"/"1").</item>
/// <item>qwen_attention: x, gamma [C], to_qkv.weight [3C, C, 1, 1], to_qkv.bias, proj.weight [C, C, 1, 1], proj.bias, y:
///   Qwen-Image's attention block (RMS norm, fused qkv, one head, proj, residual) as the model builds it.</item>
/// <item>pixel_shuffle: x [N, C, T, H, W], y [N, C', T', H', W'] (Wan 2.2's AvgDown3D, DupUp3D, patchify, unpatchify
///   on video tensors); kind (space_to_depth|depth_to_space), factor, frames, group, width_first, first_chunk.</item>
/// </list>
/// </summary>
public sealed class OpFixtureTests
{
    private const double AbsTolerance = 1e-4;
    private const double RelTolerance = 1e-5;

    private static readonly string[] Ops = ["conv2d", "group_norm", "attention", "elementwise", "rms_norm", "qwen_attention", "pixel_shuffle"];

    private static string OpFolder(string op) => Path.Combine(TestPaths.Fixtures, "ops", op);

    private static IEnumerable<TestCaseData> Cases()
    {
        foreach (string op in Ops)
        {
            string folder = OpFolder(op);
            var files = Directory.Exists(folder)
                ? Directory.GetFiles(folder, "*.safetensors").Order(StringComparer.Ordinal).ToArray()
                : [];
            if (files.Length == 0)
            {
                yield return new TestCaseData(op, "", KernelBackends.IlgpuPlain).SetArgDisplayNames(op, "(none)");
                continue;
            }
            // Elementwise ops and the RMS norm have one ILGPU kernel; the others have a plain and a tiled version.
            var backends = op is "elementwise" or "rms_norm" or "qwen_attention" or "pixel_shuffle" ? KernelBackends.EveryBackend : KernelBackends.EveryVersion;
            foreach (string file in files)
            foreach (string backend in backends)
                yield return new TestCaseData(op, Path.GetFileName(file), backend)
                    .SetArgDisplayNames(op, Path.GetFileNameWithoutExtension(file), backend);
        }
    }

    [TestCaseSource(nameof(Cases))]
    public void MatchesOracle(string op, string file, string backendName)
    {
        if (file.Length == 0)
            Assert.Fail($"no oracle fixtures in tests/fixtures/ops/{op}: generate them with tools/NativeVae.Oracle");
        var backend = KernelBackends.Get(backendName);
        using var fixture = SafeTensorsFile.Open(Path.Combine(OpFolder(op), file));
        string what = $"{op}/{file} ({backendName}: {backend.Name})";
        switch (op)
        {
            case "conv2d": CheckConv2d(backend, fixture, what); break;
            case "group_norm": CheckGroupNorm(backend, fixture, what); break;
            case "attention": CheckAttention(backend, fixture, what); break;
            case "rms_norm": CheckRmsNorm(backend, fixture, what); break;
            case "qwen_attention": CheckQwenAttention(backend, fixture, what); break;
            case "pixel_shuffle": CheckPixelShuffle(backend, fixture, what); break;
            default: CheckElementwise(backend, fixture, what); break;
        }
    }

    private static void CheckConv2d(IBackend backend, SafeTensorsFile f, string what)
    {
        var spec = new Conv2dSpec(MetaInt(f, "stride"), MetaInt(f, "pad_top"), MetaInt(f, "pad_bottom"),
            MetaInt(f, "pad_left"), MetaInt(f, "pad_right"), MetaInt(f, "upsample2x") != 0);
        using var x = Upload(backend, f, "x");
        using var weight = Upload(backend, f, "weight");
        using var bias = f.Tensors.ContainsKey("bias") ? Upload(backend, f, "bias") : null;
        using var residual = f.Tensors.ContainsKey("residual") ? Upload(backend, f, "residual") : null;
        using var y = backend.Conv2d(x, weight, bias, spec, residual);
        CheckOutput(backend, y, f, "y", what);
    }

    private static void CheckGroupNorm(IBackend backend, SafeTensorsFile f, string what)
    {
        int groups = MetaInt(f, "groups");
        using var x = Upload(backend, f, "x");
        using var gamma = Upload(backend, f, "gamma");
        using var beta = Upload(backend, f, "beta");
        using var y = KernelBackends.GroupNormWithStatistics(backend, x, gamma, beta, groups, MetaFloat(f, "eps"),
            MetaInt(f, "silu") != 0, out var stats);
        using var statsTensor = stats;
        CheckOutput(backend, y, f, "y", what);

        var pairs = new float[statsTensor.ElementCount];
        backend.Download(statsTensor, pairs);
        foreach (var (name, lane) in new[] { ("mean", 0), ("rstd", 1) })
        {
            var expected = f.ReadFloat32(name);
            var actual = Enumerable.Range(0, pairs.Length / 2).Select(i => pairs[2 * i + lane]).ToArray();
            NumericAssert.Close(actual, expected, f.Get(name).Shape, AbsTolerance, RelTolerance, $"{what} {name}");
        }
    }

    private static void CheckAttention(IBackend backend, SafeTensorsFile f, string what)
    {
        using var q = Upload(backend, f, "q");
        using var k = Upload(backend, f, "k");
        using var v = Upload(backend, f, "v");
        using var y = backend.Attention(q, k, v, MetaFloat(f, "scale"));
        CheckOutput(backend, y, f, "y", what);
    }

    private static void CheckRmsNorm(IBackend backend, SafeTensorsFile f, string what)
    {
        using var x = Upload(backend, f, "x");
        using var gamma = Upload(backend, f, "gamma");
        using var y = backend.RmsNorm(x, gamma, MetaInt(f, "silu") != 0);
        CheckOutput(backend, y, f, "y", what);
    }

    /// <summary>The model's own block (<see cref="NativeVae.Models.QwenImage.QwenImageAttentionBlock"/>) over the fixture's weights.</summary>
    private static void CheckQwenAttention(IBackend backend, SafeTensorsFile f, string what)
    {
        const string Prefix = "attention";
        var weights = new NativeVae.Weights.InMemoryWeights("fixture");
        var declared = new List<(string, TensorShape)>();
        foreach (string name in new[] { "gamma", "to_qkv.weight", "to_qkv.bias", "proj.weight", "proj.bias" })
        {
            string canonical = name == "gamma" ? $"{Prefix}.norm.gamma" : $"{Prefix}.{name}";
            weights.Add(canonical, f.Get(name).Shape, f.ReadFloat32(name));
            declared.Add((canonical, f.Get(name).Shape));
        }
        using var parameters = new NativeVae.Models.Layers.DeviceParameters(backend, weights, declared);
        var block = new NativeVae.Models.QwenImage.QwenImageAttentionBlock(parameters, Prefix, f.Get("x").Shape[1]);
        using var x = Upload(backend, f, "x");
        using var y = block.Forward(backend, x);
        CheckOutput(backend, y, f, "y", what);
    }

    /// <summary>
    /// A video fixture frame by frame, as the model runs it: space to depth of the last frame with the one before it
    /// (none: the padding frame); depth to space of the one frame into each output frame (the first chunk's trimmed
    /// ones skipped).
    /// </summary>
    private static void CheckPixelShuffle(IBackend backend, SafeTensorsFile f, string what)
    {
        var spec = new PixelShuffleSpec(MetaInt(f, "factor"), MetaInt(f, "frames"), MetaInt(f, "group"), MetaInt(f, "width_first") != 0);
        var xShape = f.Get("x").Shape;
        var yShape = f.Get("y").Shape;
        float[] x = f.ReadFloat32("x"), y = f.ReadFloat32("y");
        if (Meta(f, "kind") == "space_to_depth")
        {
            int frames = xShape[2];
            using var current = backend.Upload(VideoFrame(x, xShape, frames - 1), FrameShape(xShape));
            using var previous = frames == spec.Frames && frames > 1 ? backend.Upload(VideoFrame(x, xShape, 0), FrameShape(xShape)) : null;
            using var result = backend.SpaceToDepth(current, previous, spec);
            CheckFrame(backend, result, VideoFrame(y, yShape, 0), FrameShape(yShape), what);
            return;
        }
        using var input = backend.Upload(VideoFrame(x, xShape, 0), FrameShape(xShape));
        int trimmed = spec.Frames - yShape[2];
        Assert.That(trimmed, Is.EqualTo(MetaInt(f, "first_chunk") != 0 ? spec.Frames - 1 : 0), $"{what}: output frames");
        for (int t = 0; t < yShape[2]; t++)
        {
            using var result = backend.DepthToSpace(input, spec, trimmed + t);
            CheckFrame(backend, result, VideoFrame(y, yShape, t), FrameShape(yShape), $"{what} frame {t}");
        }
    }

    private static TensorShape FrameShape(TensorShape video) => TensorShape.Nchw(video[0], video[1], video[3], video[4]);

    /// <summary>Frame <paramref name="t"/> [N, C, H, W] of a video [N, C, T, H, W].</summary>
    private static float[] VideoFrame(float[] video, TensorShape shape, int t)
    {
        int n = shape[0], c = shape[1], frames = shape[2], plane = shape[3] * shape[4];
        var frame = new float[(long)n * c * plane];
        for (int i = 0; i < n * c; i++) Array.Copy(video, ((long)i * frames + t) * plane, frame, (long)i * plane, plane);
        return frame;
    }

    private static void CheckFrame(IBackend backend, Tensor y, float[] expected, TensorShape shape, string what)
    {
        Assert.That(y.Shape, Is.EqualTo(shape), $"{what}: output shape");
        var actual = new float[y.ElementCount];
        backend.Download(y, actual);
        NumericAssert.Close(actual, expected, shape, AbsTolerance, RelTolerance, what);
    }

    private static void CheckElementwise(IBackend backend, SafeTensorsFile f, string what)
    {
        using var x = Upload(backend, f, "x");
        string op = Meta(f, "op");
        using var y = op switch
        {
            "silu" => backend.Unary(UnaryOp.Silu, x),
            "relu" => backend.Unary(UnaryOp.Relu, x),
            "tanh_clamp" => backend.Unary(UnaryOp.TanhClamp3, x),
            "add" => AddFixture(backend, f, x),
            "scale_shift" => backend.ScaleShift(x, MetaFloat(f, "scale"), MetaFloat(f, "shift")),
            _ => throw new InvalidDataException($"{f.Path}: unknown elementwise op '{op}'"),
        };
        CheckOutput(backend, y, f, "y", what);
    }

    private static Tensor AddFixture(IBackend backend, SafeTensorsFile f, Tensor x)
    {
        using var b = Upload(backend, f, "b");
        return backend.Add(x, b);
    }

    private static void CheckOutput(IBackend backend, Tensor y, SafeTensorsFile f, string name, string what)
    {
        var shape = f.Get(name).Shape;
        Assert.That(y.Shape, Is.EqualTo(shape), $"{what}: output shape");
        var actual = new float[y.ElementCount];
        backend.Download(y, actual);
        NumericAssert.Close(actual, f.ReadFloat32(name), shape, AbsTolerance, RelTolerance, what);
    }

    private static Tensor Upload(IBackend backend, SafeTensorsFile f, string name) =>
        backend.Upload(f.ReadFloat32(name), f.Get(name).Shape);

    private static string Meta(SafeTensorsFile f, string key) =>
        f.Metadata.TryGetValue(key, out string? value)
            ? value
            : throw new InvalidDataException($"{f.Path}: __metadata__ has no '{key}'");

    private static int MetaInt(SafeTensorsFile f, string key) => int.Parse(Meta(f, key), CultureInfo.InvariantCulture);

    private static float MetaFloat(SafeTensorsFile f, string key) => float.Parse(Meta(f, key), CultureInfo.InvariantCulture);
}
