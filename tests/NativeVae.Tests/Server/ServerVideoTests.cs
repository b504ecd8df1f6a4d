using NativeVae.Api;
using NativeVae.Backends.Cpu;
using NativeVae.Formats.SafeTensors;
using NativeVae.Models.QwenImage;
using NativeVae.Server;
using NativeVae.Tests.Api;
using NativeVae.Tests.Support;
using NativeVae.Weights;
using static NativeVae.Tests.Server.ServerHarness;

namespace NativeVae.Tests.Server;

/// <summary>
/// Video over the hybrid-inference protocol, as the HunyuanVideo endpoint's clients speak it, for a wan model (the
/// small config of models/wan_small_t9.safetensors): a 5-D latent with <c>output_type=mp4</c> replies with MP4 bytes
/// that ffprobe opens with the right frame count, <c>pt</c> with <c>[B, 3, T, H, W]</c>, an encode of a 5-D video
/// tensor with the 5-D latent, each equal to the local call; and the refusals as 400s naming the field.
/// </summary>
public class ServerVideoTests
{
    private const string Name = "wan";

    /// <summary>Wan 2.1's published shape in miniature (16 latent channels, /8, two temporal levels), for RemoteVae, which knows the family's.</summary>
    private static readonly QwenImageConfig PublishedShape = new()
    {
        BaseDim = 4,
        DimMult = [1, 1, 1, 1],
        NumResBlocks = 1,
        TemporalDownsample = [false, true, true],
    };

    /// <summary>Wan 2.2's published shape in miniature (48 latent channels, residual blocks, the 2x2 patchify: /16), for RemoteVae.</summary>
    private static readonly QwenImageConfig PublishedShape22 = new()
    {
        BaseDim = 4,
        ZDim = QwenImageConfig.Wan22.ZDim,
        DimMult = [1, 1, 1, 1],
        NumResBlocks = 1,
        TemporalDownsample = [false, true, true],
        IsResidual = true,
        PatchSize = 2,
        LatentsMean = QwenImageConfig.Wan22Mean,
        LatentsStd = QwenImageConfig.Wan22Std,
    };

    private static Vae CreateWan() => CreateWan(SmallConfig());

    private static QwenImageConfig SmallConfig()
    {
        using var fixture = SafeTensorsFile.Open(TestPaths.Fixture("models/wan_small_t9.safetensors"));
        return QwenImageConfigJson.Parse(fixture.Metadata["config"], "fixture config");
    }

    private static Vae CreateWan(QwenImageConfig config)
    {
        var weights = InMemoryWeights.Seeded(SeededWeights.DefaultSeed, QwenImageParameters.Enumerate(config));
        return new Vae(new QwenImageModel(new CpuBackend(), config, weights, frames: true), new VaeOptions(), null, null)
        {
            Family = config.IsResidual ? ModelFamily.Wan22 : ModelFamily.Wan,
        };
    }

    private static async Task<(VaeServer Server, HttpClient Http)> StartAsync(QwenImageConfig? config = null, VaeServerOptions? options = null)
    {
        var server = VaeServer.Create([new ServedModel(Name, CreateWan(config ?? SmallConfig()))], (options ?? new VaeServerOptions()) with { Port = 0 });
        await server.StartAsync();
        return (server, new HttpClient { BaseAddress = server.BaseAddress });
    }

    private static ByteArrayContent Body(HostTensor<float> t) => new(WireTensor.FromFloat(t, WireDType.Float32));

    [Test]
    public async Task FiveDimensionalLatentsDecodeToAVideoTensorAndVideosEncodeToThem()
    {
        var (server, http) = await StartAsync();
        await using (server)
        using (http)
        using (var local = CreateWan())
        {
            var latents = RandomLatents(new TensorShape(2, 4, 2, 3, 5), "server.wan.latents");
            using var decoded = await http.PostAsync($"/{Name}/decode?output_type=pt&{ShapeQuery(latents.Shape)}&dtype=float32", Body(latents));
            var (shape, _, body) = await ReadTensorAsync(decoded);
            var expected = local.DecodeVideo(latents);
            Assert.That(shape, Is.EqualTo(new TensorShape(2, 3, 5, 12, 20)), "[B, 3, 1 + 4(T' - 1), H, W]");
            Assert.That(body, Is.EqualTo(WireTensor.FromFloat(expected, WireDType.Float32)));

            using var encoded = await http.PostAsync($"/{Name}/encode?{ShapeQuery(expected.Shape)}&dtype=float32", Body(expected));
            var (latentShape, _, latentBody) = await ReadTensorAsync(encoded);
            Assert.That(latentShape, Is.EqualTo(latents.Shape));
            Assert.That(latentBody, Is.EqualTo(WireTensor.FromFloat(local.EncodeVideo(expected), WireDType.Float32)));
        }
    }

    /// <summary>
    /// pt with partial_postprocess: the frames' uint8 pixels [B, T, H, W, 3], each round(clamp(x / 2 + 0.5, 0, 1) *
    /// 255) of the float video, as the image endpoint's uint8 reply lays out an image.
    /// </summary>
    [Test]
    public async Task PartialPostprocessRepliesWithEachFramesPixels()
    {
        var (server, http) = await StartAsync();
        await using (server)
        using (http)
        using (var local = CreateWan())
        {
            var latents = RandomLatents(new TensorShape(2, 4, 2, 3, 5), "server.wan.pixels");
            using var reply = await http.PostAsync($"/{Name}/decode?output_type=pt&partial_postprocess=True&{ShapeQuery(latents.Shape)}&dtype=float32", Body(latents));
            var (shape, dtype, body) = await ReadTensorAsync(reply);
            Assert.That(shape, Is.EqualTo(new TensorShape(2, 5, 12, 20, 3)), "[B, T, H, W, 3]");
            Assert.That(dtype, Is.EqualTo(WireDType.UInt8));
            var video = local.DecodeVideo(latents);
            var s = video.Shape;
            for (int n = 0; n < 2; n++)
            for (int t = 0; t < s[2]; t += 2)
            for (int c = 0; c < 3; c++)
            {
                const int Y = 7, X = 13;
                float x = video.Data[(((n * 3 + c) * s[2] + t) * s[3] + Y) * s[4] + X];
                byte expected = (byte)Math.Round(Math.Clamp(x / 2 + 0.5, 0, 1) * 255, MidpointRounding.ToEven);
                Assert.That(body[(((n * s[2] + t) * s[3] + Y) * s[4] + X) * 3 + c], Is.EqualTo(expected), $"item {n} frame {t} channel {c}");
            }
            Assert.That(body, Is.EqualTo(VideoPixels.ToUInt8(video).Data));
        }
    }

    [Test]
    public async Task AnMp4ReplyOpensInFfprobeWithItsFrames()
    {
        VideoFilesTests.RequireFfmpeg();
        var (server, http) = await StartAsync();
        await using (server)
        using (http)
        {
            var latents = RandomLatents(new TensorShape(1, 4, 3, 3, 5), "server.wan.mp4");
            using var reply = await http.PostAsync($"/{Name}/decode?output_type=mp4&{ShapeQuery(latents.Shape)}&dtype=float32&fps=8", Body(latents));
            Assert.That((int)reply.StatusCode, Is.EqualTo(200), await reply.Content.ReadAsStringAsync());
            Assert.That(reply.Content.Headers.ContentType?.MediaType, Is.EqualTo("video/mp4"));
            string path = Path.Combine(SyntheticVae.TempFolder(), "reply.mp4");
            await File.WriteAllBytesAsync(path, await reply.Content.ReadAsByteArrayAsync());
            Assert.That(VideoFiles.Probe(path), Is.EqualTo((9, 20, 12, 8.0)), "3 latent frames are 9 frames of 20x12, at the fps asked");
        }
    }

    /// <summary>A video request is held to the server's FLOP limit by its plan (a dry run of a few frames), before it runs.</summary>
    [Test]
    public async Task AVideoOverTheFlopLimitIsRefusedBeforeItRuns()
    {
        const long OneMflop = 1_000_000;
        var (server, http) = await StartAsync(options: new VaeServerOptions { MaxRequestFlops = OneMflop });
        await using (server)
        using (http)
        {
            var latents = RandomLatents(new TensorShape(1, 4, 3, 3, 5), "server.wan.flops");
            using var decode = await http.PostAsync($"/{Name}/decode?output_type=pt&{ShapeQuery(latents.Shape)}&dtype=float32", Body(latents));
            Assert.That(await ErrorOf(decode, 413), Does.Contain("TFLOP").And.Contain("[1, 4, 3, 3, 5]"));
            var video = RandomImages(new TensorShape(1, 3, 5, 12, 20), "server.wan.flops.video");
            using var encode = await http.PostAsync($"/{Name}/encode?{ShapeQuery(video.Shape)}&dtype=float32", Body(video));
            Assert.That(await ErrorOf(encode, 413), Does.Contain("TFLOP"));
        }
    }

    [Test]
    public async Task VideoRequestsThatCannotBeAnsweredAreRefusedByField()
    {
        var (server, http) = await StartAsync();
        await using (server)
        using (http)
        {
            var latents = RandomLatents(new TensorShape(2, 4, 2, 3, 5), "server.wan.refused");
            using var pil = await http.PostAsync($"/{Name}/decode?output_type=pil&{ShapeQuery(latents.Shape)}&dtype=float32", Body(latents));
            Assert.That(await ErrorOf(pil, 400), Does.Contain("'mp4' or 'pt'"));
            using var twoVideos = await http.PostAsync($"/{Name}/decode?output_type=mp4&{ShapeQuery(latents.Shape)}&dtype=float32", Body(latents));
            Assert.That(await ErrorOf(twoVideos, 400), Does.Contain("one video"));

            var sevenFrames = RandomImages(new TensorShape(1, 3, 7, 12, 20), "server.wan.seven");
            using var seven = await http.PostAsync($"/{Name}/encode?{ShapeQuery(sevenFrames.Shape)}&dtype=float32", Body(sevenFrames));
            Assert.That(await ErrorOf(seven, 400), Does.Contain("last 2 would be dropped"));
            using var dropped = await http.PostAsync($"/{Name}/encode?{ShapeQuery(sevenFrames.Shape)}&dtype=float32&drop_trailing_frames=True", Body(sevenFrames));
            var (shape, _, _) = await ReadTensorAsync(dropped);
            Assert.That(shape, Is.EqualTo(new TensorShape(1, 4, 2, 3, 5)), "drop_trailing_frames encodes the first 5");
        }
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task RemoteVaeEncodesAndDecodesVideoThroughTheServer(bool wan22)
    {
        var config = wan22 ? PublishedShape22 : PublishedShape;
        var (server, http) = await StartAsync(config);
        await using (server)
        using (http)
        using (var local = CreateWan(config))
        using (var remote = new RemoteVae(new RemoteVaeOptions
               {
                   Endpoint = new Uri(server.BaseAddress, Name + "/"), Family = wan22 ? ModelFamily.Wan22 : ModelFamily.Wan, LatentDType = WireDType.Float32,
               }))
        {
            var video = RandomImages(new TensorShape(1, 3, 5, 16, 32), "remote.wan.video");
            var latent = await remote.EncodeVideoAsync(video);
            Assert.That(latent.Shape, Is.EqualTo(new TensorShape(1, config.ZDim, 2, 16 / config.DownsampleFactor, 32 / config.DownsampleFactor)));
            Assert.That(latent.Data, Is.EqualTo(local.EncodeVideo(video).Data), "EncodeVideo through the server");
            var decoded = await remote.DecodeVideoAsync(latent);
            Assert.That(decoded.Shape, Is.EqualTo(video.Shape));
            Assert.That(decoded.Data, Is.EqualTo(local.DecodeVideo(latent).Data), "DecodeVideo through the server");

            Assert.That(Assert.ThrowsAsync<ArgumentException>(() => remote.EncodeVideoAsync(RandomImages(new TensorShape(1, 3, 6, 16, 32), "six")))!.Message,
                Does.Contain("last 1 would be dropped"), "refused before sending");
            if (!VideoFiles.FfmpegAvailable) return;
            byte[] mp4 = await remote.DecodeVideoMp4Async(latent, fps: 5);
            string path = Path.Combine(SyntheticVae.TempFolder(), "remote.mp4");
            await File.WriteAllBytesAsync(path, mp4);
            Assert.That(VideoFiles.Probe(path), Is.EqualTo((5, 32, 16, 5.0)));
        }
    }
}
