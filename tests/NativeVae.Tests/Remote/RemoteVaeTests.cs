using System.Net;
using System.Runtime.InteropServices;
using System.Text;
using NativeVae.Remote;
using NativeVae.Weights;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace NativeVae.Tests.Remote;

/// <summary>
/// <see cref="RemoteVae"/> against a fake handler that records each request and answers with canned replies: the
/// query strings diffusers sends for the same calls (remote-protocol.md), headers and body bytes, reply parsing,
/// retries, errors, deadline and cancellation. Nothing leaves the process.
/// </summary>
public class RemoteVaeTests
{
    private const ulong Seed = 20260801;
    private static readonly Uri Endpoint = new("http://127.0.0.1:9/vae/");

    private sealed record Recorded(HttpMethod Method, Uri Uri, string? ContentType, string Accept, string? Authorization, byte[] Body)
    {
        public string Query => Uri.Query.TrimStart('?');
    }

    /// <summary>Records each request (its body read at once) and answers with the next canned reply.</summary>
    private sealed class FakeHandler : HttpMessageHandler
    {
        private readonly Queue<Func<CancellationToken, Task<HttpResponseMessage>>> _replies = new();

        public List<Recorded> Requests { get; } = [];

        public FakeHandler Then(Func<CancellationToken, Task<HttpResponseMessage>> reply)
        {
            _replies.Enqueue(reply);
            return this;
        }

        public FakeHandler Then(Func<HttpResponseMessage> reply) => Then(_ => Task.FromResult(reply()));

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellation)
        {
            byte[] body = request.Content is null ? [] : await request.Content.ReadAsByteArrayAsync(cancellation);
            Requests.Add(new Recorded(request.Method, request.RequestUri!, request.Content?.Headers.ContentType?.ToString(),
                request.Headers.Accept.ToString(), request.Headers.Authorization?.ToString(), body));
            if (_replies.Count == 0) throw new InvalidOperationException("the test gave no reply for this request");
            return await _replies.Dequeue()(cancellation);
        }
    }

    private static (RemoteVae Vae, FakeHandler Handler, List<TimeSpan> Waits) Create(ModelFamily family = ModelFamily.Sd,
        Func<RemoteVaeOptions, RemoteVaeOptions>? configure = null)
    {
        var handler = new FakeHandler();
        var options = new RemoteVaeOptions { Endpoint = Endpoint, Family = family };
        var vae = new RemoteVae(new HttpClient(handler), configure?.Invoke(options) ?? options);
        var waits = new List<TimeSpan>();
        vae.Transport.Delay = (wait, _) =>
        {
            waits.Add(wait);
            return Task.CompletedTask;
        };
        return (vae, handler, waits);
    }

    private static string ShapeText(params int[] dims) => "[" + string.Join(", ", dims) + "]";

    private static HttpResponseMessage Tensor(byte[] body, string? shape, string? dtype)
    {
        var reply = new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent(body) };
        if (shape is not null) reply.Headers.Add("shape", shape);
        if (dtype is not null) reply.Headers.Add("dtype", dtype);
        return reply;
    }

    private static HttpResponseMessage Status(HttpStatusCode status, string body = "", string mediaType = "application/json") =>
        new(status) { Content = new StringContent(body, Encoding.UTF8, mediaType) };

    private static HostTensor<float> Seeded(string stream, params int[] dims)
    {
        var shape = new TensorShape(dims);
        return new HostTensor<float>(shape, SeededWeights.Uniform(Seed, stream, (int)shape.ElementCount));
    }

    private static byte[] Float32Bytes(float[] values) => MemoryMarshal.AsBytes(values.AsSpan()).ToArray();

    private static byte[] Float16Bytes(float[] values) =>
        values.SelectMany(v => BitConverter.GetBytes(BitConverter.HalfToUInt16Bits((Half)v))).ToArray();

    /// <summary>Values that float16 holds exactly, so a float16 reply can be compared exactly.</summary>
    private static float[] Sixteenths(long count) => Enumerable.Range(0, (int)count).Select(i => i % 33 / 16f - 1f).ToArray();

    private static byte[] PixelBytes(long count) => Enumerable.Range(0, (int)count).Select(i => (byte)(i * 7 % 256)).ToArray();

    private static string TempFile(string name) => Path.Combine(Support.SyntheticVae.TempFolder(), name);

    // ---- decode -------------------------------------------------------------------------------------------------

    [Test]
    public async Task DecodeToAFloatTensorSendsDiffusersPtQueryHeadersAndTheLatentBytes()
    {
        var (vae, handler, _) = Create();
        var latents = Seeded("remote.latents", 1, 4, 2, 3);
        var pixels = Sixteenths(1 * 3 * 16 * 24);
        handler.Then(() => Tensor(Float16Bytes(pixels), "[1, 3, 16, 24]", "float16"));

        using var result = await vae.DecodeAsync(latents, new DecodeOptions { Output = DecodeOutput.FloatTensor, ScalingFactor = 0.18215f });

        var request = handler.Requests.Single();
        Assert.That(request.Method, Is.EqualTo(HttpMethod.Post));
        Assert.That(request.Uri.GetLeftPart(UriPartial.Path), Is.EqualTo(Endpoint.AbsoluteUri));
        // diffusers' prepare(): image_format, output_type, partial_postprocess, shape..., dtype, then the factors given.
        Assert.That(request.Query, Is.EqualTo(
            "image_format=jpg&output_type=pt&partial_postprocess=False&shape=1&shape=4&shape=2&shape=3&dtype=float32&scaling_factor=0.18215"));
        Assert.That(request.ContentType, Is.EqualTo("tensor/binary"));
        Assert.That(request.Accept, Is.EqualTo("tensor/binary"));
        Assert.That(request.Authorization, Is.Null, "no token, no header");
        Assert.That(request.Body, Is.EqualTo(Float32Bytes(latents.Data)), "raw little-endian float32, row-major, no header");
        Assert.That(result.FloatTensor.Shape, Is.EqualTo(TensorShape.Nchw(1, 3, 16, 24)));
        Assert.That(result.FloatTensor.Data, Is.EqualTo(pixels));
    }

    [Test]
    public async Task DecodeSendsFloat16LatentsWhenAskedAndBothFactorsAndHeightWidth()
    {
        var (vae, handler, _) = Create(ModelFamily.Flux, o => o with { LatentDType = WireDType.Float16 });
        var latents = new HostTensor<float>(TensorShape.Nchw(1, 16, 2, 2), Sixteenths(64));
        handler.Then(() => Tensor(Float32Bytes(Sixteenths(3 * 16 * 16)), ShapeText(1, 3, 16, 16), "float32"));

        using var result = await vae.DecodeAsync(latents, new DecodeOptions
        {
            Output = DecodeOutput.FloatTensor, ScalingFactor = 0.3611f, ShiftFactor = 0.1159f, Height = 16, Width = 16,
        });

        var request = handler.Requests.Single();
        Assert.That(request.Query, Is.EqualTo("image_format=jpg&output_type=pt&partial_postprocess=False&shape=1&shape=16&shape=2&shape=2" +
            "&dtype=float16&scaling_factor=0.3611&shift_factor=0.1159&height=16&width=16"));
        Assert.That(request.Body, Is.EqualTo(Float16Bytes(latents.Data)));
        Assert.That(result.FloatTensor.Data, Is.EqualTo(Sixteenths(3 * 16 * 16)));
    }

    [Test]
    public async Task DecodeToUInt8AsksForPartialPostprocessAndReturnsThePixels()
    {
        var (vae, handler, _) = Create();
        var rgb = PixelBytes(2 * 16 * 8 * 3);
        handler.Then(() => Tensor(rgb, ShapeText(2, 16, 8, 3), "uint8"));

        using var result = await vae.DecodeAsync(Seeded("remote.u8", 2, 4, 2, 1), new DecodeOptions { Output = DecodeOutput.UInt8Tensor });

        Assert.That(handler.Requests.Single().Query, Is.EqualTo(
            "image_format=jpg&output_type=pt&partial_postprocess=True&shape=2&shape=4&shape=2&shape=1&dtype=float32"));
        Assert.That(result.UInt8Tensor.Shape, Is.EqualTo(new TensorShape(2, 16, 8, 3)));
        Assert.That(result.UInt8Tensor.Data, Is.EqualTo(rgb));
    }

    [Test]
    public async Task DecodeToImagesBuildsEachImageFromTheUInt8PixelsAsTheLocalDecodeDoes()
    {
        var (vae, handler, _) = Create();
        const int N = 2, H = 16, W = 8;
        var rgb = PixelBytes(N * H * W * 3);
        handler.Then(() => Tensor(rgb, ShapeText(N, H, W, 3), "uint8"));

        using var result = await vae.DecodeAsync(Seeded("remote.images", N, 4, 2, 1));

        Assert.That(handler.Requests.Single().Query, Does.Contain("output_type=pt&partial_postprocess=True"), "images come from the uint8 tensor");
        Assert.That(result.Images, Has.Count.EqualTo(N));
        for (int n = 0; n < N; n++)
        {
            var image = result.Images[n];
            Assert.That((image.Width, image.Height), Is.EqualTo((W, H)));
            foreach (var (y, x) in new[] { (0, 0), (3, 5), (H - 1, W - 1) })
            {
                int at = ((n * H + y) * W + x) * 3;
                Assert.That(image[x, y], Is.EqualTo(new Rgb24(rgb[at], rgb[at + 1], rgb[at + 2])), $"image {n} at ({x}, {y})");
            }
        }
    }

    [Test]
    public async Task DecodeToEncodedImagesSendsOneRequestPerImageAndReturnsTheFiles()
    {
        var (vae, handler, _) = Create();
        var latents = Seeded("remote.pil", 2, 4, 1, 2);
        var files = new[] { Png(1), Png(2) };
        handler.Then(() => File(files[0], "image/png")).Then(() => File(files[1], "image/png"));

        using var result = await vae.DecodeAsync(latents, new DecodeOptions { Output = DecodeOutput.EncodedImages, ImageFormat = ImageFormat.Png });

        Assert.That(handler.Requests, Has.Count.EqualTo(2), "a pil reply holds only the first image");
        foreach (var request in handler.Requests)
        {
            Assert.That(request.Query, Is.EqualTo("image_format=png&output_type=pil&partial_postprocess=False&shape=1&shape=4&shape=1&shape=2&dtype=float32"));
            Assert.That(request.Accept, Is.EqualTo("image/png"));
            Assert.That(request.ContentType, Is.EqualTo("tensor/binary"));
        }
        Assert.That(handler.Requests[1].Body, Is.EqualTo(Float32Bytes(latents.Data[8..])), "the second request carries the second latent");
        Assert.That(result.EncodedImages, Is.EqualTo(files));
    }

    [Test]
    public async Task JpegQualityIsSentOnlyForJpegFilesAndOnlyWhenNotTheDefault()
    {
        var (vae, handler, _) = Create();
        var latents = Seeded("remote.jpeg", 1, 4, 1, 1);
        handler.Then(() => File([0xFF, 0xD8, 0xFF, 0xE0], "image/jpeg")).Then(() => File([0xFF, 0xD8, 0xFF, 0xE0], "image/jpeg"));

        using (await vae.DecodeAsync(latents, new DecodeOptions { Output = DecodeOutput.EncodedImages, JpegQuality = 90 })) { }
        using (await vae.DecodeAsync(latents, new DecodeOptions { Output = DecodeOutput.EncodedImages })) { }

        Assert.That(handler.Requests[0].Query, Does.StartWith("image_format=jpg&output_type=pil&").And.EndWith("&jpeg_quality=90"));
        Assert.That(handler.Requests[0].Accept, Is.EqualTo("image/jpeg"));
        Assert.That(handler.Requests[1].Query, Does.Not.Contain("jpeg_quality"));
    }

    [Test]
    public void AnEncodedImageReplyOfTheWrongFormatIsRefused()
    {
        var (vae, handler, _) = Create();
        handler.Then(() => File(Png(3), "image/png"));
        var e = Assert.ThrowsAsync<InvalidDataException>(() => vae.DecodeAsync(Seeded("remote.wrong", 1, 4, 1, 1),
            new DecodeOptions { Output = DecodeOutput.EncodedImages }));
        Assert.That(e!.Message, Does.Contain("image_format=jpg").And.Contain("not a JPEG"));
    }

    [Test]
    public async Task TilingExtensionsAreSentOnlyWhenNotTheDefault()
    {
        var (vae, handler, _) = Create();
        var latents = Seeded("remote.tiling", 1, 4, 1, 1);
        for (int i = 0; i < 2; i++) handler.Then(() => Tensor(Float32Bytes(new float[3 * 8 * 8]), ShapeText(1, 3, 8, 8), "float32"));

        using (await vae.DecodeAsync(latents, new DecodeOptions { Output = DecodeOutput.FloatTensor, Tiling = TilingMode.Exact, TileSize = 256 })) { }
        using (await vae.DecodeAsync(latents, new DecodeOptions { Output = DecodeOutput.FloatTensor })) { }

        Assert.That(handler.Requests[0].Query, Does.EndWith("&dtype=float32&tiling=exact&tile_size=256"));
        Assert.That(handler.Requests[1].Query, Does.EndWith("&dtype=float32"), "auto tiling and no tile: nothing extra");
    }

    [Test]
    public void PackedFluxLatentsWithoutHeightAndWidthAreRefusedBeforeSending()
    {
        var (vae, handler, _) = Create(ModelFamily.Flux);
        var packed = Seeded("remote.packed", 1, 4, 64);
        var e = Assert.Throws<ArgumentException>(() => vae.DecodeAsync(packed));
        Assert.That(e!.Message, Does.StartWith("`height` and `width` required for packed latents."));
        Assert.That(handler.Requests, Is.Empty);
    }

    [Test]
    public async Task PackedFluxLatentsAreSentPackedWithHeightAndWidth()
    {
        var (vae, handler, _) = Create(ModelFamily.Flux);
        var packed = Seeded("remote.packed", 1, 4, 64);
        handler.Then(() => Tensor(PixelBytes(32 * 32 * 3), ShapeText(1, 32, 32, 3), "uint8"));

        using var result = await vae.DecodeAsync(packed, new DecodeOptions { Output = DecodeOutput.UInt8Tensor, Height = 32, Width = 32 });

        Assert.That(handler.Requests.Single().Query, Is.EqualTo(
            "image_format=jpg&output_type=pt&partial_postprocess=True&shape=1&shape=4&shape=64&dtype=float32&height=32&width=32"));
        Assert.That(handler.Requests.Single().Body, Is.EqualTo(Float32Bytes(packed.Data)), "packed as given: the endpoint unpacks");
        Assert.That(result.UInt8Tensor.Shape, Is.EqualTo(new TensorShape(1, 32, 32, 3)));
    }

    [Test]
    public void LatentsOfTheWrongChannelsOrNonFiniteAreRefusedBeforeSending()
    {
        var (vae, handler, _) = Create();
        var e = Assert.Throws<ArgumentException>(() => vae.DecodeAsync(Seeded("remote.c16", 1, 16, 2, 2)));
        Assert.That(e!.Message, Does.Contain("[N, 4, h, w]").And.Contain("[1, 16, 2, 2]"));
        var nan = Seeded("remote.nan", 1, 4, 2, 2);
        nan.Data[5] = float.NaN;
        Assert.That(() => vae.DecodeAsync(nan), Throws.ArgumentException.With.Message.Contains("NaN"));
        Assert.That(() => vae.DecodeAsync(Seeded("remote.big", 1, 4, 2, 2), new DecodeOptions { ScalingFactor = 0f }),
            Throws.ArgumentException.With.Message.Contains("scaling_factor"));
        Assert.That(handler.Requests, Is.Empty);
    }

    [Test]
    public void LatentsDecodingPastThePixelLimitAreRefused()
    {
        var (vae, handler, _) = Create(configure: o => o with { MaxImagePixels = 64 * 64 });
        Assert.That(() => vae.DecodeAsync(Seeded("remote.cap", 1, 4, 9, 8)),
            Throws.ArgumentException.With.Message.Contains("MaxImagePixels"));
        Assert.That(handler.Requests, Is.Empty);
    }

    // ---- replies that do not fit ----------------------------------------------------------------------------------

    private static IEnumerable<TestCaseData> BadReplies()
    {
        var good = new byte[3 * 8 * 8 * 2];
        yield return new TestCaseData(good, null, "float16", "no `shape` header").SetName("NoShapeHeader");
        yield return new TestCaseData(good, ShapeText(1, 3, 8, 8), null, "no `dtype` header").SetName("NoDTypeHeader");
        yield return new TestCaseData(good, "1, 3, 8, 8", "float16", "`shape` header is malformed").SetName("ShapeNotAList");
        yield return new TestCaseData(good, ShapeText(1, 3, 8, 8), "float64", "`dtype` header is malformed").SetName("UnknownDType");
        yield return new TestCaseData(good, ShapeText(1, 3, 8, 8), "uint8", "`dtype` header is uint8").SetName("UInt8ForAFloatRequest");
        yield return new TestCaseData(good, ShapeText(1, 3, 16, 4), "float16", "`shape` header is [1, 3, 16, 4]").SetName("OtherShape");
        yield return new TestCaseData(good[..^2], ShapeText(1, 3, 8, 8), "float16", "body has 382 bytes").SetName("ShortBody");
        yield return new TestCaseData(new byte[good.Length + 2], ShapeText(1, 3, 8, 8), "float16", "384").SetName("LongBody");
    }

    [TestCaseSource(nameof(BadReplies))]
    public void AReplyWhoseHeadersOrBodyDoNotFitIsInvalidData(byte[] body, string? shape, string? dtype, string expected)
    {
        var (vae, handler, _) = Create();
        handler.Then(() => Tensor(body, shape, dtype));
        var e = Assert.ThrowsAsync<InvalidDataException>(() => vae.DecodeAsync(Seeded("remote.bad", 1, 4, 1, 1),
            new DecodeOptions { Output = DecodeOutput.FloatTensor }));
        Assert.That(e!.Message, Does.StartWith(Endpoint.AbsoluteUri).And.Contain(expected));
    }

    // ---- encode -------------------------------------------------------------------------------------------------

    [Test]
    public async Task EncodeATensorSendsItsBytesWithShapeDTypeFactorsAndSeed()
    {
        var (vae, handler, _) = Create(ModelFamily.Sdxl, o => o with { LatentDType = WireDType.Float16 });
        var images = new HostTensor<float>(TensorShape.Nchw(1, 3, 16, 16), Sixteenths(3 * 16 * 16));
        var latent = Seeded("remote.latent", 1, 4, 2, 2);
        handler.Then(() => Tensor(Float32Bytes(latent.Data), ShapeText(1, 4, 2, 2), "float32"));

        var result = await vae.EncodeAsync(images, new EncodeOptions { ScalingFactor = 0.13025f, SampleSeed = 7 });

        var request = handler.Requests.Single();
        // diffusers' prepare_encode(): the factors, then shape and dtype of a tensor; sample_seed is NativeVae's.
        Assert.That(request.Query, Is.EqualTo("scaling_factor=0.13025&shape=1&shape=3&shape=16&shape=16&dtype=float16&sample_seed=7"));
        Assert.That(request.ContentType, Is.EqualTo("tensor/binary"));
        Assert.That(request.Body, Is.EqualTo(Float16Bytes(images.Data)));
        Assert.That(result.Shape, Is.EqualTo(latent.Shape));
        Assert.That(result.Data, Is.EqualTo(latent.Data));
    }

    [Test]
    public async Task EncodeAPngFileSendsTheFileItselfWithNoContentType()
    {
        var (vae, handler, _) = Create();
        string path = TempFile("in.png");
        System.IO.File.WriteAllBytes(path, Png(4, 24, 16));
        handler.Then(() => Tensor(Float32Bytes(new float[4 * 2 * 3]), ShapeText(1, 4, 2, 3), "float32"));

        var latent = await vae.EncodeAsync(path, new EncodeOptions { ScalingFactor = 0.18215f });

        var request = handler.Requests.Single();
        Assert.That(request.Query, Is.EqualTo("scaling_factor=0.18215"));
        Assert.That(request.ContentType, Is.Null, "diffusers sends an image with no Content-Type");
        Assert.That(request.Accept, Is.EqualTo("*/*"));
        Assert.That(request.Body, Is.EqualTo(System.IO.File.ReadAllBytes(path)));
        Assert.That(latent.Shape, Is.EqualTo(TensorShape.Nchw(1, 4, 2, 3)));
    }

    [Test]
    public async Task EncodeAJpegFileSendsItReencodedAsLosslessPng()
    {
        var (vae, handler, _) = Create();
        string path = TempFile("in.jpg");
        using (var image = new Image<Rgb24>(16, 16, new Rgb24(200, 30, 90))) image.SaveAsJpeg(path);
        handler.Then(() => Tensor(Float32Bytes(new float[4 * 2 * 2]), ShapeText(1, 4, 2, 2), "float32"));

        await vae.EncodeAsync(path);

        var request = handler.Requests.Single();
        Assert.That(request.Query, Is.Empty, "no factors given, no query");
        Assert.That(request.Body.AsSpan(0, 8).ToArray(), Is.EqualTo(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }));
        using var sent = Image.Load<Rgb24>(request.Body);
        using var original = ImageFiles.Load(path);
        Assert.That(ImageFiles.Psnr(sent, original), Is.EqualTo(double.PositiveInfinity), "the same pixels as the decoded JPEG");
    }

    [Test]
    public void EncodeRefusesAFileOverThePixelLimitOrAMissingOneBeforeSending()
    {
        var (vae, handler, _) = Create(configure: o => o with { MaxImagePixels = 100 });
        string path = TempFile("big.png");
        System.IO.File.WriteAllBytes(path, Png(5, 16, 16));
        Assert.That(() => vae.EncodeAsync(path), Throws.InstanceOf<InvalidDataException>().With.Message.Contains("exceeds the limit of 100"));
        Assert.That(() => vae.EncodeAsync(path + ".missing"), Throws.InstanceOf<FileNotFoundException>());
        Assert.That(() => vae.EncodeAsync(new HostTensor<float>(TensorShape.Nchw(1, 3, 16, 16))),
            Throws.ArgumentException.With.Message.Contains("MaxImagePixels"));
        Assert.That(handler.Requests, Is.Empty);
    }

    [Test]
    public void AnEncodeReplyOfTheWrongChannelsIsRefused()
    {
        var (vae, handler, _) = Create();
        handler.Then(() => Tensor(Float32Bytes(new float[16 * 2 * 2]), ShapeText(1, 16, 2, 2), "float32"));
        var e = Assert.ThrowsAsync<InvalidDataException>(() => vae.EncodeAsync(new HostTensor<float>(TensorShape.Nchw(1, 3, 16, 16))));
        Assert.That(e!.Message, Does.Contain("`shape` header is [1, 16, 2, 2]").And.Contain("[1, 4, h, w]"));
    }

    // ---- retries, errors, deadline --------------------------------------------------------------------------------

    private static HttpResponseMessage Unavailable(int? retryAfterSeconds)
    {
        var reply = Status(HttpStatusCode.ServiceUnavailable, "{\"error\": \"loading\"}");
        if (retryAfterSeconds is { } s) reply.Headers.Add("Retry-After", s.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return reply;
    }

    private static Func<HttpResponseMessage> Latent() => () => Tensor(Float32Bytes(new float[4 * 2 * 2]), ShapeText(1, 4, 2, 2), "float32");

    private static HostTensor<float> Image16() => new(TensorShape.Nchw(1, 3, 16, 16));

    [Test]
    public async Task A503IsRetriedAfterItsRetryAfterThenWithDoublingDelaysUntilSuccess()
    {
        var (vae, handler, waits) = Create();
        handler.Then(() => Unavailable(2)).Then(() => Unavailable(null)).Then(Latent());

        var latent = await vae.EncodeAsync(Image16());

        Assert.That(handler.Requests, Has.Count.EqualTo(3));
        Assert.That(waits, Is.EqualTo(new[] { TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(1) }),
            "Retry-After first; then RetryDelay 0.5 s doubled for the second retry");
        Assert.That(handler.Requests.Select(r => r.Body.Length).Distinct(), Is.EqualTo(new[] { 3 * 16 * 16 * 4 }), "each try sends the whole body");
        Assert.That(latent.Shape, Is.EqualTo(TensorShape.Nchw(1, 4, 2, 2)));
    }

    [Test]
    public void ARetryAfterLongerThanTheTimeLeftIsCutToIt()
    {
        var (vae, handler, waits) = Create(configure: o => o with { Timeout = TimeSpan.FromSeconds(10) });
        handler.Then(() => Unavailable(3600)).Then(Latent());
        Assert.That(async () => await vae.EncodeAsync(Image16()), Throws.Nothing);
        Assert.That(waits.Single(), Is.LessThanOrEqualTo(TimeSpan.FromSeconds(10)).And.GreaterThan(TimeSpan.FromSeconds(5)));
    }

    [Test]
    public void A503AfterTheLastRetryIsARemoteVaeException()
    {
        var (vae, handler, waits) = Create(configure: o => o with { MaxRetries = 2 });
        for (int i = 0; i < 3; i++) handler.Then(() => Unavailable(null));
        var e = Assert.ThrowsAsync<RemoteVaeException>(() => vae.EncodeAsync(Image16()));
        Assert.That(e!.StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable));
        Assert.That(e.ServerMessage, Is.EqualTo("loading"));
        Assert.That(handler.Requests, Has.Count.EqualTo(3));
        Assert.That(waits, Is.EqualTo(new[] { TimeSpan.FromSeconds(0.5), TimeSpan.FromSeconds(1) }));
    }

    [Test]
    public void A400IsNeverRetriedAndCarriesTheServersMessage()
    {
        var (vae, handler, waits) = Create();
        handler.Then(() => Status(HttpStatusCode.BadRequest, "{\"error\": \"Expected `dtype` in query params.\"}"));
        var e = Assert.ThrowsAsync<RemoteVaeException>(() => vae.DecodeAsync(Seeded("remote.400", 1, 4, 1, 1)));
        Assert.That(e!.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(e.ServerMessage, Is.EqualTo("Expected `dtype` in query params."));
        Assert.That(e.Message, Does.Contain(Endpoint.AbsoluteUri).And.Contain("400").And.Contain("Expected `dtype` in query params."));
        Assert.That(handler.Requests, Has.Count.EqualTo(1));
        Assert.That(waits, Is.Empty);
    }

    [Test]
    public void AnErrorBodyThatIsNotJsonIsItsTextTruncated()
    {
        var (vae, handler, _) = Create();
        handler.Then(() => Status(HttpStatusCode.InternalServerError, new string('x', 5000), "text/html"));
        var e = Assert.ThrowsAsync<RemoteVaeException>(() => vae.EncodeAsync(Image16()));
        Assert.That(e!.StatusCode, Is.EqualTo(HttpStatusCode.InternalServerError));
        Assert.That(e.ServerMessage, Does.StartWith("xxxx").And.EndWith("..."));
        Assert.That(e.ServerMessage.Length, Is.LessThan(1100));
        Assert.That(handler.Requests, Has.Count.EqualTo(1), "a 500 is not retried");
    }

    [Test]
    public async Task AFailureToConnectIsRetriedAndAfterTheLastTryNamesTheEndpoint()
    {
        var (vae, handler, waits) = Create(configure: o => o with { MaxRetries = 1 });
        handler.Then(_ => throw new HttpRequestException("Connection refused")).Then(Latent());
        await vae.EncodeAsync(Image16());
        Assert.That(handler.Requests, Has.Count.EqualTo(2));
        Assert.That(waits, Is.EqualTo(new[] { TimeSpan.FromSeconds(0.5) }));

        handler.Then(_ => throw new HttpRequestException("Connection refused")).Then(_ => throw new HttpRequestException("Connection refused"));
        var e = Assert.ThrowsAsync<HttpRequestException>(() => vae.EncodeAsync(Image16()));
        Assert.That(e!.Message, Does.Contain(Endpoint.AbsoluteUri).And.Contain("2 attempt(s)").And.Contain("Connection refused"));
    }

    [Test]
    public void NoReplyWithinTheTimeoutIsATimeoutExceptionNamingEndpointAndTimeout()
    {
        var (vae, handler, _) = Create(configure: o => o with { Timeout = TimeSpan.FromMilliseconds(200) });
        handler.Then(async token =>
        {
            await Task.Delay(Timeout.InfiniteTimeSpan, token);
            return Latent()();
        });
        var e = Assert.ThrowsAsync<TimeoutException>(() => vae.EncodeAsync(Image16()));
        Assert.That(e!.Message, Does.Contain(Endpoint.AbsoluteUri).And.Contain("RemoteVaeOptions.Timeout of 0.2 s"));
    }

    [Test]
    public void TheCallersCancellationIsAnOperationCanceledException()
    {
        var (vae, handler, _) = Create();
        using var cancel = new CancellationTokenSource();
        handler.Then(async token =>
        {
            cancel.Cancel();
            await Task.Delay(Timeout.InfiniteTimeSpan, token);
            return Latent()();
        });
        Assert.CatchAsync<OperationCanceledException>(() => vae.EncodeAsync(Image16(), cancellation: cancel.Token));
        Assert.That(handler.Requests, Has.Count.EqualTo(1));
    }

    [Test]
    public async Task ABearerTokenIsSentAsAnAuthorizationHeader()
    {
        var (vae, handler, _) = Create(configure: o => o with { BearerToken = "hf_abc123" });
        handler.Then(Latent());
        await vae.EncodeAsync(Image16());
        Assert.That(handler.Requests.Single().Authorization, Is.EqualTo("Bearer hf_abc123"));
    }

    // ---- options and identity -------------------------------------------------------------------------------------

    private static IEnumerable<TestCaseData> BadOptions()
    {
        TestCaseData Case(Func<RemoteVaeOptions, RemoteVaeOptions> bad, string named) => new TestCaseData(bad, named).SetName($"Refuses_{named.Replace('.', '_')}");
        yield return Case(o => o with { Endpoint = new Uri("/vae", UriKind.Relative) }, "RemoteVaeOptions.Endpoint");
        yield return new TestCaseData((Func<RemoteVaeOptions, RemoteVaeOptions>)(o => o with { Endpoint = new Uri("ftp://host/") }), "RemoteVaeOptions.Endpoint").SetName("Refuses_FtpEndpoint");
        yield return new TestCaseData((Func<RemoteVaeOptions, RemoteVaeOptions>)(o => o with { Endpoint = new Uri("http://host/?a=1") }), "RemoteVaeOptions.Endpoint").SetName("Refuses_EndpointWithAQuery");
        yield return Case(o => o with { Family = (ModelFamily)99 }, "RemoteVaeOptions.Family");
        yield return Case(o => o with { BearerToken = "two words" }, "RemoteVaeOptions.BearerToken");
        yield return Case(o => o with { Timeout = TimeSpan.Zero }, "RemoteVaeOptions.Timeout");
        yield return Case(o => o with { MaxRetries = -1 }, "RemoteVaeOptions.MaxRetries");
        yield return Case(o => o with { RetryDelay = TimeSpan.FromSeconds(-1) }, "RemoteVaeOptions.RetryDelay");
        yield return Case(o => o with { LatentDType = WireDType.UInt8 }, "RemoteVaeOptions.LatentDType");
        yield return Case(o => o with { MaxImagePixels = 0 }, "RemoteVaeOptions.MaxImagePixels");
    }

    [TestCaseSource(nameof(BadOptions))]
    public void InvalidOptionsAreRefusedNamingTheOption(Func<RemoteVaeOptions, RemoteVaeOptions> bad, string named)
    {
        var options = bad(new RemoteVaeOptions { Endpoint = Endpoint, Family = ModelFamily.Sd });
        var e = Assert.Throws<ArgumentException>(() => new RemoteVae(options).Dispose());
        Assert.That(e!.Message, Does.StartWith(named));
    }

    [Test]
    public void TheFamilysPublishedFactsAreReported()
    {
        var (vae, _, _) = Create(ModelFamily.Flux);
        Assert.That((vae.Family, vae.LatentChannels, vae.DownsampleFactor), Is.EqualTo((ModelFamily.Flux, 16, 8)));
        Assert.That(vae.ScalingFactor, Is.EqualTo(0.3611f));
        Assert.That(vae.ShiftFactor, Is.EqualTo(0.1159f));
        var (sd, _, _) = Create();
        Assert.That((sd.LatentChannels, sd.ScalingFactor, sd.ShiftFactor), Is.EqualTo((4, (float?)0.18215f, (float?)null)));
    }

    [Test]
    public async Task DisposeLeavesTheCallersHttpClientOpen()
    {
        var handler = new FakeHandler().Then(() => Status(HttpStatusCode.OK));
        using var http = new HttpClient(handler);
        var vae = new RemoteVae(http, new RemoteVaeOptions { Endpoint = Endpoint, Family = ModelFamily.Sd });
        vae.Dispose();
        Assert.That(() => vae.EncodeAsync(Image16()), Throws.InstanceOf<ObjectDisposedException>());
        using var reply = await http.GetAsync(Endpoint);
        Assert.That(reply.StatusCode, Is.EqualTo(HttpStatusCode.OK), "the caller's client still sends");
    }

    [TestCase(0.18215f, "0.18215")]
    [TestCase(0.13025f, "0.13025")]
    [TestCase(0.3611f, "0.3611")]
    [TestCase(0.1159f, "0.1159")]
    [TestCase(0.476986f, "0.476986")]
    [TestCase(1f, "1.0")]
    [TestCase(100f, "100.0")]
    [TestCase(-0.5f, "-0.5")]
    [TestCase(0f, "0.0")]
    [TestCase(0.0001f, "0.0001")]
    [TestCase(1e-5f, "1e-05")]
    [TestCase(1.5e-7f, "1.5e-07")]
    [TestCase(1e15f, "1000000000000000.0")]
    [TestCase(1e16f, "1e+16")]
    [TestCase(123456.7f, "123456.7")]
    public void FloatsAreWrittenAsPythonsStr(float value, string python) =>
        Assert.That(PythonQuery.FormatFloat(value), Is.EqualTo(python));

    [Test]
    public void ThePublishedEndpointsAreKnownByFamily()
    {
        Assert.That(RemoteEndpoints.FamilyOf(new Uri(RemoteEndpoints.SdV1Decode)), Is.EqualTo(ModelFamily.Sd));
        Assert.That(RemoteEndpoints.FamilyOf(new Uri(RemoteEndpoints.SdV1Encode)), Is.EqualTo(ModelFamily.Sd));
        Assert.That(RemoteEndpoints.FamilyOf(new Uri(RemoteEndpoints.SdxlDecode)), Is.EqualTo(ModelFamily.Sdxl));
        Assert.That(RemoteEndpoints.FamilyOf(new Uri(RemoteEndpoints.SdxlEncode)), Is.EqualTo(ModelFamily.Sdxl));
        Assert.That(RemoteEndpoints.FamilyOf(new Uri(RemoteEndpoints.FluxDecode)), Is.EqualTo(ModelFamily.Flux));
        Assert.That(RemoteEndpoints.FamilyOf(new Uri(RemoteEndpoints.FluxEncode)), Is.EqualTo(ModelFamily.Flux));
        Assert.That(RemoteEndpoints.FamilyOf(new Uri("https://Q1BJ3BPQ6KZILNSU.us-east-1.aws.endpoints.huggingface.cloud")), Is.EqualTo(ModelFamily.Sd),
            "host case and a missing trailing slash do not matter");
        Assert.That(RemoteEndpoints.FamilyOf(new Uri(RemoteEndpoints.HunyuanVideoDecode)), Is.Null, "a video VAE NativeVae does not run");
        Assert.That(RemoteEndpoints.FamilyOf(Endpoint), Is.Null);
        Assert.That(RemoteEndpoints.SdV1Decode, Is.EqualTo("https://q1bj3bpq6kzilnsu.us-east-1.aws.endpoints.huggingface.cloud/"));
    }

    // ---- helpers --------------------------------------------------------------------------------------------------

    private static HttpResponseMessage File(byte[] bytes, string mediaType)
    {
        var reply = new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent(bytes) };
        reply.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(mediaType);
        return reply;
    }

    /// <summary>A small PNG whose pixels depend on <paramref name="seed"/>, so that two files differ.</summary>
    private static byte[] Png(int seed, int width = 8, int height = 8)
    {
        using var image = new Image<Rgb24>(width, height);
        for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++)
            image[x, y] = new Rgb24((byte)(x * 30 + seed), (byte)(y * 20), (byte)(seed * 40));
        using var memory = new MemoryStream();
        image.SaveAsPng(memory);
        return memory.ToArray();
    }
}
