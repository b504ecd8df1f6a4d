using System.Net;
using Microsoft.Extensions.DependencyInjection;
using NativeVae.Server;
using NativeVae.Tests.Support;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using static NativeVae.Tests.Server.ServerHarness;

namespace NativeVae.Tests.Server;

/// <summary>
/// <see cref="RemoteVae"/> against the real server gives exactly what the local <see cref="Vae"/> gives for the same
/// inputs, in every output form; the server's errors arrive as <see cref="RemoteVaeException"/>s with its message;
/// <c>nativevae decode --endpoint</c> writes the local decode's pixels.
/// </summary>
[NonParallelizable]
public class RemoteVaeServerTests
{
    private static readonly TensorShape Latent = TensorShape.Nchw(2, 4, 3, 2);
    private ServerHarness _server = null!;
    private RemoteVae _remote = null!;

    [OneTimeSetUp]
    public async Task Start()
    {
        _server = await StartAsync(new VaeServerOptions { Token = "t0ken" }, withSd8: true, maxImagePixels: 64 * 64);
        _remote = new RemoteVae(new RemoteVaeOptions { Endpoint = new Uri(_server.Server.BaseAddress, Sd8 + "/"), Family = ModelFamily.Sd, BearerToken = "t0ken" });
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        _remote.Dispose();
        await _server.DisposeAsync();
    }

    [TestCase(DecodeOutput.FloatTensor)]
    [TestCase(DecodeOutput.UInt8Tensor)]
    public async Task DecodeTensorsEqualTheLocalDecode(DecodeOutput output)
    {
        var latents = RandomLatents(Latent, "remote.decode");
        var options = new DecodeOptions { Output = output, ScalingFactor = 0.18215f, ShiftFactor = 0.1f };
        using var remote = await _remote.DecodeAsync(latents, options);
        using var local = _server.LocalSd8.Decode(latents, options);
        if (output == DecodeOutput.FloatTensor) Assert.That(remote.FloatTensor.Data, Is.EqualTo(local.FloatTensor.Data));
        else Assert.That(remote.UInt8Tensor.Data, Is.EqualTo(local.UInt8Tensor.Data));
    }

    [Test]
    public async Task DecodeImagesEqualTheLocalDecode()
    {
        var latents = RandomLatents(Latent, "remote.images");
        using var remote = await _remote.DecodeAsync(latents, new DecodeOptions());
        using var local = _server.LocalSd8.Decode(latents, new DecodeOptions());
        Assert.That(remote.Images, Has.Count.EqualTo(2));
        for (int i = 0; i < 2; i++) Assert.That(Pixels(remote.Images[i]), Is.EqualTo(Pixels(local.Images[i])), $"image {i}");
    }

    [TestCase(ImageFormat.Png)]
    [TestCase(ImageFormat.Jpeg)]
    public async Task DecodeEncodedImagesEqualTheLocalFiles(ImageFormat format)
    {
        var latents = RandomLatents(Latent, "remote.files");
        var options = new DecodeOptions { Output = DecodeOutput.EncodedImages, ImageFormat = format, JpegQuality = 90 };
        using var remote = await _remote.DecodeAsync(latents, options);
        using var local = _server.LocalSd8.Decode(latents, options);
        Assert.That(remote.EncodedImages, Is.EqualTo(local.EncodedImages));
    }

    [Test]
    public async Task EncodeTensorAndFilesEqualTheLocalEncode()
    {
        var images = RandomImages(TensorShape.Nchw(2, 3, 24, 16), "remote.encode");
        var options = new EncodeOptions { ScalingFactor = 0.13025f, SampleSeed = 7 };
        Assert.That((await _remote.EncodeAsync(images, options)).Data, Is.EqualTo(_server.LocalSd8.Encode(images, options).Data));

        string folder = Path.Combine(Path.GetTempPath(), "nativevae-remote-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        try
        {
            using var image = new Image<Rgb24>(16, 24);
            for (int y = 0; y < 24; y++)
            for (int x = 0; x < 16; x++)
                image[x, y] = new Rgb24((byte)(x * 15), (byte)(y * 10), (byte)((x + y) * 6));
            foreach (string name in new[] { "in.png", "in.jpg" })
            {
                string path = Path.Combine(folder, name);
                image.Save(path);
                var remote = await _remote.EncodeAsync(path);
                Assert.That(remote.Data, Is.EqualTo(_server.LocalSd8.Encode(path).Data), name);
            }
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Test]
    public async Task TheServersErrorArrivesWithItsMessage()
    {
        // 16x16 latents decode to 128x128, over the server's cap of 64x64 (the client's own cap is larger).
        var latents = RandomLatents(TensorShape.Nchw(1, 4, 16, 16), "remote.error");
        var error = Assert.ThrowsAsync<RemoteVaeException>(() => _remote.DecodeAsync(latents));
        Assert.That(error!.StatusCode, Is.EqualTo(HttpStatusCode.RequestEntityTooLarge));
        Assert.That(error.ServerMessage, Does.Contain("over this server's limit of 4096 pixels"));

        using var anonymous = new RemoteVae(new RemoteVaeOptions { Endpoint = _remote.Endpoint, Family = ModelFamily.Sd });
        var refused = Assert.ThrowsAsync<RemoteVaeException>(() => anonymous.DecodeAsync(RandomLatents(Latent, "remote.token")));
        Assert.That(refused!.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        Assert.That(refused.ServerMessage, Does.Contain("bearer token"));
    }

    [Test]
    public async Task ATypedClientFromIHttpClientFactoryWorks()
    {
        // The typed-client registration: the factory hands RemoteVae an HttpClient it does not own.
        var services = new ServiceCollection()
            .AddSingleton(new RemoteVaeOptions { Endpoint = _remote.Endpoint, Family = ModelFamily.Sd, BearerToken = "t0ken" });
        services.AddHttpClient<RemoteVae>();
        await using var provider = services.BuildServiceProvider();
        var typed = provider.GetRequiredService<RemoteVae>();
        var latents = RandomLatents(Latent, "remote.factory");
        using var remote = await typed.DecodeAsync(latents, new DecodeOptions { Output = DecodeOutput.UInt8Tensor });
        using var local = _server.LocalSd8.Decode(latents, new DecodeOptions { Output = DecodeOutput.UInt8Tensor });
        Assert.That(remote.UInt8Tensor.Data, Is.EqualTo(local.UInt8Tensor.Data));
    }

    [Test]
    public async Task CliDecodeWithEndpointWritesTheLocalDecodesPixels()
    {
        var latent = RandomLatents(TensorShape.Nchw(1, 4, 3, 2), "remote.cli");
        string folder = Path.Combine(Path.GetTempPath(), "nativevae-remote-cli-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        try
        {
            string latentPath = Path.Combine(folder, "latent.safetensors"), output = Path.Combine(folder, "out.png");
            LatentFile.Write(latentPath, latent);
            var stdout = new StringWriter();
            var stderr = new StringWriter();
            int code = await Task.Run(() => NativeVae.Cli.Program.Run(["decode", latentPath, "--endpoint", _remote.Endpoint.ToString(), "--family", "sd",
                "--token", "t0ken", "-o", output], stdout, stderr));
            Assert.That(code, Is.EqualTo(0), stderr.ToString());
            using var written = Image.Load<Rgb24>(output);
            using var local = _server.LocalSd8.Decode(latent);
            Assert.That(Pixels(written), Is.EqualTo(Pixels(local.Images[0])));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private static byte[] Pixels(Image<Rgb24> image)
    {
        var bytes = new byte[image.Width * image.Height * 3];
        image.CopyPixelDataTo(bytes);
        return bytes;
    }
}
