using System.Text;
using System.Text.Json;
using NativeVae.Server;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using static NativeVae.Tests.Server.ServerHarness;

namespace NativeVae.Tests.Server;

/// <summary>
/// The server against requests byte for byte as the real clients send them (remote-protocol.md): diffusers'
/// remote_decode (pil, pt, partial postprocess) and remote_encode (PNG, tensor), ComfyUI-HFRemoteVae (binary and
/// base64), SD.Next (packed FLUX latents). Each reply must equal what the library gives in-process.
/// </summary>
[NonParallelizable]
public class ServerProtocolTests
{
    private static readonly TensorShape Latent = TensorShape.Nchw(1, 4, 6, 5);
    private ServerHarness _server = null!;

    [OneTimeSetUp]
    public async Task Start() => _server = await StartAsync(withFlux: true);

    [OneTimeTearDown]
    public async Task Stop() => await _server.DisposeAsync();

    /// <summary>The latents as the server sees them after the wire's rounding to <paramref name="dtype"/>.</summary>
    private static HostTensor<float> OnTheWire(HostTensor<float> tensor, WireDType dtype) =>
        WireTensor.ToFloat(WireTensor.FromFloat(tensor, dtype), tensor.Shape, dtype);

    [Test]
    public async Task DiffusersDecodePilGivesTheJpegOfTheFirstImage()
    {
        var latents = RandomLatents(TensorShape.Nchw(2, 4, 6, 5), "server.pil");
        string query = $"?image_format=jpg&output_type=pil&partial_postprocess=False&{ShapeQuery(latents.Shape)}&dtype=float16";
        using var response = await _server.PostAsync("/sd/" + query, WireTensor.FromFloat(latents, WireDType.Float16), accept: "image/jpeg");
        Assert.That(response.IsSuccessStatusCode, Is.True, await response.Content.ReadAsStringAsync());
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("image/jpeg"));
        using var expected = _server.LocalSd.Decode(OnTheWire(latents, WireDType.Float16),
            new DecodeOptions { Output = DecodeOutput.EncodedImages, ImageFormat = ImageFormat.Jpeg });
        Assert.That(await response.Content.ReadAsByteArrayAsync(), Is.EqualTo(expected.EncodedImages[0]));
    }

    [Test]
    public async Task DiffusersDecodePtRepliesInTheLatentsDtypeWithShapeAndDtypeHeaders()
    {
        var latents = RandomLatents(Latent, "server.pt");
        string query = $"?image_format=jpg&output_type=pt&partial_postprocess=False&{ShapeQuery(Latent)}&dtype=float16&scaling_factor=0.18215";
        using var response = await _server.PostAsync("/sd/" + query, WireTensor.FromFloat(latents, WireDType.Float16));
        var (shape, dtype, body) = await ReadTensorAsync(response);
        Assert.That(response.Headers.GetValues("shape").Single(), Is.EqualTo("[1, 3, 12, 10]"));
        Assert.That(dtype, Is.EqualTo(WireDType.Float16));
        using var expected = _server.LocalSd.Decode(OnTheWire(latents, WireDType.Float16),
            new DecodeOptions { Output = DecodeOutput.FloatTensor, ScalingFactor = 0.18215f });
        Assert.That(shape, Is.EqualTo(expected.FloatTensor.Shape));
        Assert.That(body, Is.EqualTo(WireTensor.FromFloat(expected.FloatTensor, WireDType.Float16)));
    }

    [Test]
    public async Task DiffusersPartialPostprocessGivesUint8Pixels()
    {
        var latents = RandomLatents(Latent, "server.partial");
        string query = $"?image_format=jpg&output_type=pt&partial_postprocess=True&{ShapeQuery(Latent)}&dtype=float32";
        using var response = await _server.PostAsync("/sd/" + query, WireTensor.FromFloat(latents, WireDType.Float32));
        var (shape, dtype, body) = await ReadTensorAsync(response);
        using var expected = _server.LocalSd.Decode(latents, new DecodeOptions { Output = DecodeOutput.UInt8Tensor });
        Assert.That((shape, dtype), Is.EqualTo((TensorShape.Nchw(1, 12, 10, 3), WireDType.UInt8)));
        Assert.That(body, Is.EqualTo(expected.UInt8Tensor.Data));
    }

    [Test]
    public async Task DoScalingAloneAppliesTheModelsFactorsAndNothingAppliesNone()
    {
        var latents = RandomLatents(Latent, "server.scaling");
        var bytes = WireTensor.FromFloat(latents, WireDType.Float32);
        string baseQuery = $"?output_type=pt&partial_postprocess=False&{ShapeQuery(Latent)}&dtype=float32";
        var (_, _, scaled) = await ReadTensorAsync(await _server.PostAsync("/sd/" + baseQuery + "&do_scaling=True", bytes));
        var (_, _, plain) = await ReadTensorAsync(await _server.PostAsync("/sd/" + baseQuery + "&do_scaling=False", bytes));
        using var expectedScaled = _server.LocalSd.Decode(latents,
            new DecodeOptions { Output = DecodeOutput.FloatTensor, ScalingFactor = ScalingFactor, ShiftFactor = ShiftFactor });
        using var expectedPlain = _server.LocalSd.Decode(latents, new DecodeOptions { Output = DecodeOutput.FloatTensor });
        Assert.That(scaled, Is.EqualTo(WireTensor.FromFloat(expectedScaled.FloatTensor, WireDType.Float32)));
        Assert.That(plain, Is.EqualTo(WireTensor.FromFloat(expectedPlain.FloatTensor, WireDType.Float32)));
        Assert.That(scaled, Is.Not.EqualTo(plain));
    }

    [Test]
    public async Task PilWithAnImageProcessorGetsTheBatchsUint8Pixels()
    {
        // diffusers with a processor asks for pil with Accept: tensor/binary and rebuilds images from the tensor.
        var latents = RandomLatents(TensorShape.Nchw(2, 4, 6, 5), "server.processor");
        string query = $"?image_format=png&output_type=pil&partial_postprocess=False&{ShapeQuery(latents.Shape)}&dtype=float32";
        var (shape, dtype, body) = await ReadTensorAsync(await _server.PostAsync("/sd/" + query, WireTensor.FromFloat(latents, WireDType.Float32)));
        using var expected = _server.LocalSd.Decode(latents, new DecodeOptions { Output = DecodeOutput.UInt8Tensor });
        Assert.That((shape, dtype), Is.EqualTo((TensorShape.Nchw(2, 12, 10, 3), WireDType.UInt8)));
        Assert.That(body, Is.EqualTo(expected.UInt8Tensor.Data));
    }

    [Test]
    public async Task DiffusersEncodeFromPngWithNoContentTypeGivesFloat32Latents()
    {
        using var image = new Image<Rgb24>(10, 12);
        var pixels = RandomImages(TensorShape.Nchw(1, 1, 12, 10 * 3), "server.png").Data;
        for (int y = 0; y < 12; y++)
        for (int x = 0; x < 10; x++)
        {
            int i = (y * 10 + x) * 3;
            image[x, y] = new Rgb24((byte)(pixels[i] * 255), (byte)(pixels[i + 1] * 255), (byte)(pixels[i + 2] * 255));
        }
        using var png = new MemoryStream();
        image.SaveAsPng(png);
        using var response = await _server.PostAsync("/sd/?scaling_factor=0.18215", png.ToArray(), contentType: null, accept: "*/*");
        var (shape, dtype, body) = await ReadTensorAsync(response);
        png.Position = 0;
        var expected = _server.LocalSd.Encode(png, new EncodeOptions { ScalingFactor = 0.18215f });
        Assert.That((shape, dtype), Is.EqualTo((TensorShape.Nchw(1, 4, 6, 5), WireDType.Float32)));
        Assert.That(body, Is.EqualTo(WireTensor.FromFloat(expected, WireDType.Float32)));
    }

    [Test]
    public async Task DiffusersEncodeFromATensorGivesFloat32Latents([Values(WireDType.Float32, WireDType.Float16, WireDType.BFloat16)] WireDType wire)
    {
        var images = RandomImages(TensorShape.Nchw(1, 3, 12, 10), "server.encode");
        using var response = await _server.PostAsync($"/sd/?{ShapeQuery(images.Shape)}&dtype={wire.Name()}&shift_factor=0.1&scaling_factor=2.0",
            WireTensor.FromFloat(images, wire), accept: "*/*");
        var (shape, dtype, body) = await ReadTensorAsync(response);
        var expected = _server.LocalSd.Encode(OnTheWire(images, wire), new EncodeOptions { ScalingFactor = 2f, ShiftFactor = 0.1f });
        Assert.That((shape, dtype), Is.EqualTo((expected.Shape, WireDType.Float32)));
        Assert.That(body, Is.EqualTo(WireTensor.FromFloat(expected, WireDType.Float32)));
    }

    [Test]
    public async Task ComfyUiBinaryModeWithHeightAndWidth()
    {
        var latents = RandomLatents(Latent, "server.comfy");
        string query = $"?do_scaling=False&output_type=pt&partial_postprocess=False&{ShapeQuery(Latent)}&dtype=float32&height=12&width=10";
        var (shape, dtype, body) = await ReadTensorAsync(await _server.PostAsync("/sd/" + query, WireTensor.FromFloat(latents, WireDType.Float32)));
        using var expected = _server.LocalSd.Decode(latents, new DecodeOptions { Output = DecodeOutput.FloatTensor });
        Assert.That((shape, dtype), Is.EqualTo((TensorShape.Nchw(1, 3, 12, 10), WireDType.Float32)));
        Assert.That(body, Is.EqualTo(WireTensor.FromFloat(expected.FloatTensor, WireDType.Float32)));
    }

    [Test]
    public async Task ComfyUiBase64ModeRepliesWithBase64AndParameters()
    {
        var latents = RandomLatents(Latent, "server.base64");
        var body = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new { inputs = Convert.ToBase64String(WireTensor.FromFloat(latents, WireDType.Float32)) }));
        string query = $"?do_scaling=False&output_type=pt&partial_postprocess=False&{ShapeQuery(Latent)}&dtype=float32&height=12&width=10";
        using var response = await _server.PostAsync("/sd/" + query, body, contentType: WireTensor.Base64ContentType);
        string text = await response.Content.ReadAsStringAsync();
        Assert.That(response.IsSuccessStatusCode, Is.True, text);
        using var json = JsonDocument.Parse(text);
        var parameters = json.RootElement.GetProperty("parameters");
        Assert.That(parameters.GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()), Is.EqualTo(new[] { 1, 3, 12, 10 }));
        Assert.That(parameters.GetProperty("dtype").GetString(), Is.EqualTo("float32"));
        using var expected = _server.LocalSd.Decode(latents, new DecodeOptions { Output = DecodeOutput.FloatTensor });
        Assert.That(json.RootElement.GetProperty("inputs").GetBytesFromBase64(), Is.EqualTo(WireTensor.FromFloat(expected.FloatTensor, WireDType.Float32)));
    }

    [Test]
    public async Task SdNextPackedFluxLatentsInBfloat16WithItsParameters()
    {
        // [1, (8/4)*(12/4), 64]: 2x3 tokens of 2x2 patches of 16 channels (this 2-level VAE's token is 4x4 pixels, a
        // published one's 16x16).
        var packed = RandomLatents(new TensorShape(1, 6, 64), "server.sdnext");
        string query = "?input_tensor_type=binary&output_tensor_type=binary&image_format=jpg&output_type=pt&partial_postprocess=False" +
            $"&{ShapeQuery(packed.Shape)}&dtype=bfloat16&scaling_factor=0.3611&shift_factor=0.1159&width=12&height=8";
        var (shape, dtype, body) = await ReadTensorAsync(await _server.PostAsync("/flux/" + query, WireTensor.FromFloat(packed, WireDType.BFloat16)));
        using var expected = _server.LocalFlux.Decode(OnTheWire(packed, WireDType.BFloat16), new DecodeOptions
        {
            Output = DecodeOutput.FloatTensor, ScalingFactor = 0.3611f, ShiftFactor = 0.1159f, Height = 8, Width = 12,
        });
        Assert.That((shape, dtype), Is.EqualTo((expected.FloatTensor.Shape, WireDType.BFloat16)));
        Assert.That(body, Is.EqualTo(WireTensor.FromFloat(expected.FloatTensor, WireDType.BFloat16)));
    }

    [Test]
    public async Task ExplicitEncodeAndDecodeRoutesAndPredict()
    {
        var latents = RandomLatents(Latent, "server.routes");
        var bytes = WireTensor.FromFloat(latents, WireDType.Float32);
        // No output_type: /decode says what the request is; /predict infers it from the latent shape.
        var (decoded, _, _) = await ReadTensorAsync(await _server.PostAsync($"/sd/decode?partial_postprocess=True&output_type=pt&{ShapeQuery(Latent)}&dtype=float32", bytes));
        var (predicted, _, _) = await ReadTensorAsync(await _server.PostAsync($"/sd/predict?output_type=pt&{ShapeQuery(Latent)}&dtype=float32", bytes));
        Assert.That(decoded, Is.EqualTo(TensorShape.Nchw(1, 12, 10, 3)));
        Assert.That(predicted, Is.EqualTo(TensorShape.Nchw(1, 3, 12, 10)));
        var images = RandomImages(TensorShape.Nchw(1, 3, 12, 10), "server.routes.images");
        var (encoded, _, _) = await ReadTensorAsync(await _server.PostAsync($"/sd/encode?{ShapeQuery(images.Shape)}&dtype=float32",
            WireTensor.FromFloat(images, WireDType.Float32)));
        Assert.That(encoded, Is.EqualTo(Latent));
    }

    [Test]
    public async Task HealthInfoAndMetricsAnswer()
    {
        foreach (string path in new[] { "/", "/health", "/sd/health", "/sd/", "/flux" })
        {
            using var health = await _server.Http.GetAsync(path);
            Assert.That(((int)health.StatusCode, await health.Content.ReadAsStringAsync()), Is.EqualTo((200, "Ok")), path);
        }
        using var info = JsonDocument.Parse(await _server.Http.GetStringAsync("/flux/info"));
        Assert.That(info.RootElement.GetProperty("latent_channels").GetInt32(), Is.EqualTo(16));
        Assert.That(info.RootElement.GetProperty("scaling_factor").GetSingle(), Is.EqualTo(ScalingFactor));

        var latents = RandomLatents(Latent, "server.metrics");
        using var _ = await _server.PostAsync($"/sd/?output_type=pt&{ShapeQuery(Latent)}&dtype=float32", WireTensor.FromFloat(latents, WireDType.Float32));
        string metrics = await _server.Http.GetStringAsync("/metrics");
        Assert.That(metrics, Does.Match(@"nativevae_requests_total\{model=""sd"",operation=""decode"",status=""200""\} [1-9]"));
        Assert.That(metrics, Does.Contain("nativevae_request_duration_seconds_bucket"));
        Assert.That(metrics, Does.Contain("nativevae_queue_depth{model=\"sd\"} 0"));
        Assert.That(metrics, Does.Match(@"nativevae_device_peak_bytes\{model=""sd""\} [1-9]"));
    }

    [Test]
    public async Task WithTwoModelsTheRootTakesNoWork()
    {
        using var response = await _server.PostAsync($"/?output_type=pt&{ShapeQuery(Latent)}&dtype=float32", new byte[Latent.ElementCount * 4]);
        string error = await ErrorOf(response, 405);
        Assert.That(error, Does.Contain("POST /sd/").And.Contain("POST /flux/"));
    }
}
