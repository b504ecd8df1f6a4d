using NativeVae.Api;
using NativeVae.Core;
using NativeVae.Models.QwenImage;
using NativeVae.Tests.Support;
using NativeVae.Weights;
using NativeVae.Formats.SafeTensors;

namespace NativeVae.Tests.Models;

/// <summary>
/// Wan 2.1 video against the libtorch oracle, which runs diffusers' AutoencoderKLWan control flow (chunks, one
/// feat_cache list, CACHE_T, "Rep", the stride-2 time_conv on the cached last frame): moments and clamped frames for
/// T = 1, 5, 9 and 11 (2 trailing frames dropped) on a small config with Wan's two temporal levels, and the real
/// config at 64x64 with T = 5; Wan 2.2 (residual blocks with AvgDown3D / DupUp3D shortcuts, the 2x2 patchify) in
/// miniature for T = 1, 5 and 9. NativeVae runs one frame at a time through 2D convs per temporal tap.
/// </summary>
public class WanVideoParityTests
{
    /// <summary>The issue's bar for fp32: max abs error 1e-4.</summary>
    private const double MaxAbsError = 1e-4;

    /// <summary>
    /// Every fixture on the CPU backend; on ILGPU's emulator the one that holds every op and cache rule (Wan 2.2 at
    /// T = 5: its first frame, and a whole chunk through both temporal levels, at batch 2; Wan 2.1's layers are a
    /// subset of its own): the longer videos repeat the same frame loop over the same ops, at several times the
    /// emulator's cost.
    /// </summary>
    public static IEnumerable<TestCaseData> Cases() =>
        (from backend in TestBackends.Names
         from fixture in new[] { "wan_small_t1", "wan_small_t5", "wan_small_t9", "wan_small_t11", "wan22_small_t1", "wan22_small_t5", "wan22_small_t9" }
         where backend != TestBackends.IlgpuCpuName || fixture == "wan22_small_t5"
         select new TestCaseData(backend, fixture))
        .Concat(from backend in TestBackends.FastNames select new TestCaseData(backend, "wan_t5"))
        .Select(c => c.SetName($"{{m}}({c.Arguments[0]},{c.Arguments[1]})"));

    [TestCaseSource(nameof(Cases))]
    public void Encode(string backend, string fixture) =>
        RunAndCompare(backend, fixture, "input.video", "moments", (model, ops, frames, frame, emit) => model.EncodeVideo(ops, frames, frame, emit));

    [TestCaseSource(nameof(Cases))]
    public void Decode(string backend, string fixture) =>
        RunAndCompare(backend, fixture, "input.latent", "sample", (model, ops, frames, frame, emit) => model.DecodeVideo(ops, frames, frame, emit));

    /// <summary>
    /// The causality identity: latent frame 0 of a video is the image-mode latent of frame 0, and decoded frame 0 is the
    /// image-mode decode of latent frame 0, bit for bit (the image model uploads only the last temporal taps).
    /// </summary>
    [TestCase("cpu", "wan_small_t5")]
    [TestCase("ilgpu-cpu", "wan_small_t5")]
    [TestCase("cpu", "wan22_small_t5")]
    public void FrameZeroIsTheImageModeResultBitForBit(string backendName, string fixtureName)
    {
        using var fixture = SafeTensorsFile.Open(TestPaths.Fixture($"models/{fixtureName}.safetensors"));
        var config = QwenImageConfigJson.Parse(fixture.Metadata["config"], "fixture config");
        var parameters = QwenImageParameters.Enumerate(config);
        var weights = InMemoryWeights.Seeded(ulong.Parse(fixture.Metadata["seed"]), parameters);
        var backend = TestBackends.Get(backendName);
        using var video = new QwenImageModel(backend, config, weights, frames: true);
        using var image = new QwenImageModel(backend, config, weights);

        foreach (var (inputName, encode) in new[] { ("input.video", true), ("input.latent", false) })
        {
            var input = new HostTensor<float>(fixture.Get(inputName).Shape, fixture.ReadFloat32(inputName));
            var frameShape = VideoFrames.FrameShape(input.Shape);
            var values = new float[frameShape.ElementCount];
            VideoFrames.Read(input, 0, values);
            using var first = backend.Upload(values, frameShape);
            float[]? fromVideo = null;
            void Take(Tensor y)
            {
                using (y)
                {
                    if (fromVideo is not null) return;
                    fromVideo = new float[y.ElementCount];
                    backend.Download(y, fromVideo);
                }
            }
            if (encode) video.EncodeVideo(backend, 1, _ => first, Take);
            else video.DecodeVideo(backend, 1, _ => first, Take);
            using var single = encode ? image.Encode(backend, first) : image.Decode(backend, first);
            var fromImage = new float[single.ElementCount];
            backend.Download(single, fromImage);
            Assert.That(fromVideo, Is.EqualTo(fromImage), $"{backendName}: {(encode ? "latent" : "decoded")} frame 0 against image mode");
        }
    }

    private delegate void VideoRun(QwenImageModel model, IBackend ops, int frames, Func<int, Tensor> frame, Action<Tensor> emit);

    private static void RunAndCompare(string backendName, string fixtureName, string inputName, string outputName, VideoRun run)
    {
        using var fixture = SafeTensorsFile.Open(TestPaths.Fixture($"models/{fixtureName}.safetensors"));
        var config = QwenImageConfigJson.Parse(fixture.Metadata["config"], "fixture config");
        ulong seed = ulong.Parse(fixture.Metadata["seed"]);
        var backend = TestBackends.Get(backendName);
        using var model = new QwenImageModel(backend, config, InMemoryWeights.Seeded(seed, QwenImageParameters.Enumerate(config)), frames: true);
        var input = new HostTensor<float>(fixture.Get(inputName).Shape, fixture.ReadFloat32(inputName));
        var expected = new HostTensor<float>(fixture.Get(outputName).Shape, fixture.ReadFloat32(outputName));
        var frameShape = VideoFrames.FrameShape(input.Shape);
        var frameValues = new float[frameShape.ElementCount];

        int produced = 0;
        Tensor? current = null;   // the caller's input frame, done with once the next is asked for
        run(model, backend, input.Shape[VideoFrames.FrameAxis], t =>
        {
            current?.Dispose();
            VideoFrames.Read(input, t, frameValues);
            return current = backend.Upload(frameValues, frameShape);
        }, y =>
        {
            using (y)
            {
                Assert.That(produced, Is.LessThan(expected.Shape[VideoFrames.FrameAxis]), $"{fixtureName}: more frames than diffusers makes");
                Assert.That(y.Shape, Is.EqualTo(VideoFrames.FrameShape(expected.Shape)), $"{fixtureName}: frame {produced}");
                var values = new float[y.ElementCount];
                backend.Download(y, values);
                var want = new float[y.ElementCount];
                VideoFrames.Read(expected, produced, want);
                NumericAssert.Close(values, want, y.Shape, MaxAbsError, 0, $"{fixtureName} {backendName} {outputName} frame {produced}");
                produced++;
            }
        });
        current?.Dispose();
        Assert.That(produced, Is.EqualTo(expected.Shape[VideoFrames.FrameAxis]), $"{fixtureName}: frames of {outputName}");
    }
}
