using System.Net;
using System.Net.Http.Headers;
using NativeVae.Server;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using static NativeVae.Tests.Server.ServerHarness;

namespace NativeVae.Tests.Server;

/// <summary>
/// Every bad request gets its 4xx status and a JSON <c>{"error": ...}</c> that names the problem, never a 500; the
/// limits (body, pixels, queue, timeout, token) hold; cancelled and draining requests behave.
/// </summary>
[NonParallelizable]
public class ServerErrorTests
{
    private static readonly TensorShape Latent = TensorShape.Nchw(1, 4, 6, 5);
    private static readonly byte[] LatentBytes = new byte[Latent.ElementCount * sizeof(float)];
    private static readonly string Decode = $"/sd/?output_type=pt&partial_postprocess=False&{ShapeQuery(Latent)}";

    private ServerHarness _server = null!;

    [OneTimeSetUp]
    public async Task Start() => _server = await StartAsync(maxImagePixels: 64 * 64);

    [OneTimeTearDown]
    public async Task Stop() => await _server.DisposeAsync();

    private async Task<string> Refused(string pathAndQuery, byte[] body, int status, string? contentType = WireTensor.BinaryContentType) =>
        await ErrorOf(await _server.PostAsync(pathAndQuery, body, contentType), status);

    [Test]
    public async Task ABodyWhoseLengthIsNotShapeTimesDtype() =>
        Assert.That(await Refused(Decode + "&dtype=float16", LatentBytes, 400),
            Is.EqualTo("the body has 480 bytes; `shape` [1, 4, 6, 5] of `dtype` float16 needs 240 bytes"));

    [Test]
    public async Task AMissingOrUnknownDtype()
    {
        Assert.That(await Refused(Decode, LatentBytes, 400), Is.EqualTo("Expected `dtype` in query params."));
        Assert.That(await Refused(Decode + "&dtype=float64", LatentBytes, 400),
            Is.EqualTo("Supported `dtype`: ['float16', 'float32', 'bfloat16', 'uint8']. Got `float64`."));
        Assert.That(await Refused(Decode + "&dtype=uint8", LatentBytes, 400), Does.Contain("`dtype` uint8"));
        Assert.That(await Refused(Decode + "&dtype=float32&dtype=float16", LatentBytes, 400), Does.Contain("`dtype` is given 2 times"));
    }

    [Test]
    public async Task AMissingOrBadShape()
    {
        Assert.That(await Refused("/sd/?output_type=pt&dtype=float32", LatentBytes, 400), Is.EqualTo("Expected `shape` in query params."));
        Assert.That(await Refused("/sd/?output_type=pt&dtype=float32&shape=1&shape=-4&shape=6&shape=5", LatentBytes, 400),
            Does.Contain("`shape` dimension 1 is '-4'"));
        Assert.That(await Refused("/sd/?output_type=pt&dtype=float32&shape=120", LatentBytes, 400), Does.Contain("latents are [B, C, h, w]"));
        Assert.That(await Refused("/sd/?output_type=pt&dtype=float32&shape=1&shape=30&shape=4", LatentBytes, 400),
            Is.EqualTo("`height` and `width` required for packed latents."));
        Assert.That(await Refused("/sd/?output_type=pt&dtype=float32&shape=1&shape=4&shape=2&shape=6&shape=5", LatentBytes, 400),
            Does.Contain("video latents"));
    }

    [Test]
    public async Task AWrongChannelCount() =>
        Assert.That(await Refused($"/sd/?output_type=pt&{ShapeQuery(TensorShape.Nchw(1, 5, 6, 4))}&dtype=float32", LatentBytes, 400),
            Does.Contain("latents must be [N, 4, h, w]"));

    [Test]
    public async Task NaNOrInfInTheLatents()
    {
        var latents = RandomLatents(Latent, "server.nan");
        latents.Data[7] = float.NaN;
        latents.Data[9] = float.PositiveInfinity;
        Assert.That(await Refused(Decode + "&dtype=float32", WireTensor.FromFloat(latents, WireDType.Float32), 400),
            Does.Contain("2 value(s) are NaN or infinite"));
    }

    [Test]
    public async Task BadParameterValues()
    {
        Assert.That(await Refused($"/sd/?output_type=pt&{ShapeQuery(Latent)}&dtype=float32&partial_postprocess=yes", LatentBytes, 400),
            Is.EqualTo("`partial_postprocess` is 'yes'; it must be True or False"));
        Assert.That(await Refused(Decode + "&dtype=float32&scaling_factor=nan", LatentBytes, 400), Does.Contain("`scaling_factor` is 'nan'"));
        Assert.That(await Refused(Decode + "&dtype=float32&image_format=gif", LatentBytes, 400), Does.Contain("`image_format` is 'gif'"));
        Assert.That(await Refused("/sd/?output_type=mp4&dtype=float32&" + ShapeQuery(Latent), LatentBytes, 400), Does.Contain("video VAEs"));
        Assert.That(await Refused(Decode + "&dtype=float32&height=12", LatentBytes, 400), Does.Contain("`height` and `width` go together"));
        Assert.That(await Refused(Decode + "&dtype=float32&tiling=sometimes", LatentBytes, 400), Does.Contain("`tiling` is 'sometimes'"));
    }

    [Test]
    public async Task AnImageOverThePixelCapIsRefusedBeforeItsBodyIsRead()
    {
        // The server's cap is 64x64 pixels: a 40x40 latent decodes to 80x80 at factor 2.
        Assert.That(await Refused($"/sd/?output_type=pt&{ShapeQuery(TensorShape.Nchw(1, 4, 40, 40))}&dtype=float32", [], 413),
            Does.Contain("over this server's limit of 4096 pixels"));
        // A hostile claim does not overflow anything, and needs no body to be refused.
        Assert.That(await Refused($"/sd/?output_type=pt&{ShapeQuery(TensorShape.Nchw(1, 4, int.MaxValue, int.MaxValue))}&dtype=float32", [], 413),
            Does.Contain("over this server's limit"));
        Assert.That(await Refused($"/sd/?{ShapeQuery(TensorShape.Nchw(1, 3, 80, 80))}&dtype=float32", [], 413), Does.Contain("limit of 4096 pixels"));
        Assert.That(await Refused($"/sd/?output_type=pt&{ShapeQuery(TensorShape.Nchw(17, 4, 6, 5))}&dtype=float32", [], 413),
            Does.Contain("holds 17 items"));
    }

    [Test]
    public async Task EncodeImagesThatAreTooLargeOrBroken()
    {
        using var big = new Image<Rgb24>(80, 80);
        using var png = new MemoryStream();
        big.SaveAsPng(png);
        Assert.That(await Refused("/sd/", png.ToArray(), 400, contentType: null), Does.Contain("80x80").And.Contain("4096"));
        var truncated = png.ToArray()[..(int)(png.Length / 2)];
        Assert.That(await Refused("/sd/", truncated, 400, contentType: null), Does.Contain("the request body"));
        Assert.That(await Refused("/sd/", [], 400, contentType: null), Does.Contain("the body is empty"));
        Assert.That(await Refused("/sd/", "not an image"u8.ToArray(), 400, contentType: null), Does.Contain("the request body"));
    }

    [Test]
    public async Task Base64BodiesThatAreNotTheLegacyJson()
    {
        Assert.That(await Refused(Decode + "&dtype=float32", "{\"input\": 1}"u8.ToArray(), 400, WireTensor.Base64ContentType),
            Does.Contain("{\"inputs\""));
        Assert.That(await Refused(Decode + "&dtype=float32", "{\"inputs\": \"***\"}"u8.ToArray(), 400, WireTensor.Base64ContentType),
            Does.Contain("not valid base64"));
        Assert.That(await Refused(Decode + "&dtype=float32", "{nope"u8.ToArray(), 400, WireTensor.Base64ContentType), Is.Not.Empty);
    }

    [Test]
    public async Task UnknownRoutesAndMethodsGetJsonToo()
    {
        Assert.That(await ErrorOf(await _server.Http.GetAsync("/nothing"), 404), Does.Contain("POST /sd/"));
        Assert.That(await ErrorOf(await _server.Http.GetAsync("/sd/predict"), 405), Does.Contain("GET /sd/predict"));
    }

    [Test]
    public async Task BodiesOverTheLimitGet413()
    {
        await using var server = await StartAsync(new VaeServerOptions { MaxBodyBytes = 1000 });
        // Declared too large: refused from Content-Length, before reading.
        Assert.That(await ErrorOf(await server.PostAsync("/sd/", new byte[5000], contentType: null), 413), Does.Contain("body limit of 1000 bytes"));
        // Claimed too large by its shape.
        Assert.That(await ErrorOf(await server.PostAsync($"/sd/?output_type=pt&{ShapeQuery(TensorShape.Nchw(1, 4, 20, 20))}&dtype=float32", [], null), 413),
            Does.Contain("needs 6400 bytes, over this server's body limit of 1000 bytes"));
        // Sent without a length (chunked): Kestrel stops it at the limit.
        var request = new HttpRequestMessage(HttpMethod.Post, "/sd/") { Content = new StreamContent(new MemoryStream(new byte[5000])) };
        request.Headers.TransferEncodingChunked = true;
        using var chunked = await server.Http.SendAsync(request);
        Assert.That(await ErrorOf(chunked, 413), Is.Not.Empty);
    }

    [Test]
    public void ANonLoopbackAddressNeedsATokenOrInsecure()
    {
        var error = Assert.Throws<ArgumentException>(() => VaeServer.Create([new ServedModel("sd", CreateVae(NativeVae.Models.AutoencoderKl.AutoencoderKlConfig.Small))],
            new VaeServerOptions { Host = "0.0.0.0" }));
        Assert.That(error!.Message, Does.Contain("bearer token").And.Contain("--insecure"));
        Assert.Throws<ArgumentException>(() => VaeServer.Create([], new VaeServerOptions()));
        Assert.That(Assert.Throws<ArgumentException>(() => VaeServer.Create([new ServedModel("a/b", _server.LocalSd)]))!.Message, Does.Contain("'a/b'"));
    }

    [Test]
    public async Task ATokenGuardsEverythingButTheHealthProbes()
    {
        await using var server = await StartAsync(new VaeServerOptions { Token = "s3cret" });
        Assert.That(await server.Http.GetStringAsync("/health"), Is.EqualTo("Ok"));
        using var missing = await server.PostAsync(Decode + "&dtype=float32", LatentBytes);
        Assert.That(await ErrorOf(missing, 401), Does.Contain("Authorization: Bearer"));
        Assert.That(missing.Headers.WwwAuthenticate.ToString(), Is.EqualTo("Bearer"));
        server.Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "wrong");
        Assert.That(await ErrorOf(await server.PostAsync(Decode + "&dtype=float32", LatentBytes), 401), Is.Not.Empty);
        Assert.That(await ErrorOf(await server.Http.GetAsync("/metrics"), 401), Is.Not.Empty);
        server.Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "s3cret");
        using var allowed = await server.PostAsync(Decode + "&dtype=float32", LatentBytes);
        Assert.That(allowed.StatusCode, Is.EqualTo(HttpStatusCode.OK));
    }

    [Test]
    public async Task AFullQueueAnswers503WithRetryAfter()
    {
        await using var server = await StartAsync(new VaeServerOptions { QueueCapacity = 1 });
        var big = TensorShape.Nchw(1, 4, 64, 64);
        var body = WireTensor.FromFloat(RandomLatents(big, "server.queue"), WireDType.Float32);
        var responses = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ =>
            server.PostAsync($"/sd/?output_type=pt&{ShapeQuery(big)}&dtype=float32", body)));
        var busy = responses.Where(r => r.StatusCode == HttpStatusCode.ServiceUnavailable).ToList();
        Assert.That(responses.All(r => r.StatusCode is HttpStatusCode.OK or HttpStatusCode.ServiceUnavailable), Is.True);
        Assert.That(busy, Is.Not.Empty, "8 concurrent requests on a queue of 1: some must be turned away");
        Assert.That(busy[0].Headers.RetryAfter?.Delta, Is.EqualTo(TimeSpan.FromSeconds(1)));
        Assert.That(await ErrorOf(busy[0], 503), Does.Contain("requests waiting"));
        foreach (var response in responses) response.Dispose();
    }

    [Test]
    public async Task ARequestPastTheTimeoutGets504()
    {
        // A 256x256 decode takes far longer than 5 ms on any CPU.
        await using var server = await StartAsync(new VaeServerOptions { RequestTimeout = TimeSpan.FromMilliseconds(5) });
        var big = TensorShape.Nchw(1, 4, 128, 128);
        var body = WireTensor.FromFloat(RandomLatents(big, "server.timeout"), WireDType.Float32);
        Assert.That(await ErrorOf(await server.PostAsync($"/sd/?output_type=pt&{ShapeQuery(big)}&dtype=float32", body), 504),
            Does.Contain("timeout of"));
    }

    [Test]
    public async Task AClientThatGoesAwayHasItsWorkCancelledAndLogged()
    {
        await using var server = await StartAsync();
        var big = TensorShape.Nchw(1, 4, 128, 128);
        var body = WireTensor.FromFloat(RandomLatents(big, "server.abort"), WireDType.Float32);
        // A client that sends its request and closes the connection (a raw socket: the close is certain).
        using (var client = new System.Net.Sockets.TcpClient())
        {
            await client.ConnectAsync(server.Server.BaseAddress.Host, server.Server.BaseAddress.Port);
            var stream = client.GetStream();
            string head = $"POST /sd/?output_type=pt&{ShapeQuery(big)}&dtype=float32 HTTP/1.1\r\nHost: test\r\n" +
                $"Content-Type: tensor/binary\r\nContent-Length: {body.Length}\r\n\r\n";
            await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes(head));
            await stream.WriteAsync(body);
            var wait = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            // Kestrel notices a close that comes after the body was read; one during the body read, only on reply.
            while (server.Server.RunsStarted(Sd) == 0 && DateTime.UtcNow < wait) await Task.Delay(5);
        }
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!server.Logs.Lines.Any(l => l.Contains(" 499 ")) && DateTime.UtcNow < deadline) await Task.Delay(50);
        Assert.That(server.Logs.Lines, Has.Some.Contains(" 499 decode"));
        // The server is free again: the next request is answered.
        using var next = await server.PostAsync(Decode + "&dtype=float32", LatentBytes);
        Assert.That(next.StatusCode, Is.EqualTo(HttpStatusCode.OK));
    }

    [Test]
    public async Task StoppingDrainsTheRequestInFlight()
    {
        var server = await StartAsync();
        var big = TensorShape.Nchw(1, 4, 64, 64);
        var body = WireTensor.FromFloat(RandomLatents(big, "server.drain"), WireDType.Float32);
        var inFlight = server.PostAsync($"/sd/?output_type=pt&{ShapeQuery(big)}&dtype=float32", body);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        // Wait until the model runs it: counted in flight, a request may not yet have passed the draining check, and
        // a stop then (rightly) answers it 503.
        while (server.Server.RunsStarted(Sd) == 0 && DateTime.UtcNow < deadline) await Task.Delay(5);
        var stopping = server.Server.StopAsync();
        using var response = await inFlight;
        await stopping;
        var (shape, _, reply) = await ReadTensorAsync(response);
        Assert.That(shape, Is.EqualTo(TensorShape.Nchw(1, 3, 128, 128)));
        Assert.That(reply, Has.Length.EqualTo(3 * 128 * 128 * sizeof(float)));
        await server.DisposeAsync();
    }
}
