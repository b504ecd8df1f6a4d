using NativeVae.Backends.Cpu;
using NativeVae.Models.AutoencoderKl;
using NativeVae.Server;
using NativeVae.Weights;
using static NativeVae.Tests.Server.ServerHarness;

namespace NativeVae.Tests.Server;

/// <summary>
/// FLUX.2's latent forms over the protocol: <c>latent_form</c> on encode (the reply's <c>shape</c> header is the
/// form's), every form recognised on decode from <c>shape</c>, and the refusals as 400s naming the field.
/// </summary>
public class ServerLatentFormTests
{
    private const string Name = "flux2";

    /// <summary>A 2-level FLUX.2-shaped VAE: 4 latent channels, 16 patched; a 16x16 image is 4x4 tokens.</summary>
    private static readonly AutoencoderKlConfig SmallFlux2 = AutoencoderKlConfig.Small with { LatentBatchNorm = true };

    private static Vae CreateFlux2()
    {
        var weights = InMemoryWeights.Seeded(SeededWeights.DefaultSeed, AutoencoderKlParameters.Enumerate(SmallFlux2));
        return new Vae(new AutoencoderKlModel(new CpuBackend(), SmallFlux2, weights), new VaeOptions(), null, null) { Family = ModelFamily.Flux2 };
    }

    [Test]
    public async Task EncodeGivesTheRequestedFormAndDecodeTakesIt()
    {
        await using var server = VaeServer.Create([new ServedModel(Name, CreateFlux2())], new VaeServerOptions { Port = 0 });
        await server.StartAsync();
        using var http = new HttpClient { BaseAddress = server.BaseAddress };
        using var local = CreateFlux2();
        var images = RandomImages(TensorShape.Nchw(1, 3, 16, 16), "server.flux2");

        using var encoded = await http.PostAsync($"/{Name}/encode?{ShapeQuery(images.Shape)}&dtype=float32&latent_form=packed",
            new ByteArrayContent(WireTensor.FromFloat(images, WireDType.Float32)));
        var (shape, _, body) = await ReadTensorAsync(encoded);
        var expected = local.Encode(images, new EncodeOptions { Form = LatentForm.Packed });
        Assert.That(shape, Is.EqualTo(new TensorShape(1, 16, 16)), "[N, (H/4)(W/4), 4C] tokens for this 2-level VAE");
        Assert.That(body, Is.EqualTo(WireTensor.FromFloat(expected, WireDType.Float32)));

        using var decoded = await http.PostAsync($"/{Name}/decode?output_type=pt&{ShapeQuery(shape)}&dtype=float32&height=16&width=16",
            new ByteArrayContent(body));
        var (imageShape, _, pixels) = await ReadTensorAsync(decoded);
        using var expectedImage = local.Decode(expected, new DecodeOptions { Output = DecodeOutput.FloatTensor, Height = 16, Width = 16 });
        Assert.That(imageShape, Is.EqualTo(TensorShape.Nchw(1, 3, 16, 16)));
        Assert.That(pixels, Is.EqualTo(WireTensor.FromFloat(expectedImage.FloatTensor, WireDType.Float32)));

        using var info = await http.GetAsync($"/{Name}/info");
        Assert.That(await info.Content.ReadAsStringAsync(), Does.Contain("\"latent_forms\":[\"raw\",\"patchified\",\"packed\"]"));
    }

    [Test]
    public async Task QwenImageTakesFiveDimensionalLatentsAndRefusesFrames()
    {
        var config = NativeVae.Models.QwenImage.QwenImageConfig.Small;
        Vae Create() => new(new NativeVae.Models.QwenImage.QwenImageModel(new CpuBackend(), config,
            InMemoryWeights.Seeded(SeededWeights.DefaultSeed, NativeVae.Models.QwenImage.QwenImageParameters.Enumerate(config))),
            new VaeOptions(), null, null) { Family = ModelFamily.QwenImage };
        await using var server = VaeServer.Create([new ServedModel("qwen", Create())], new VaeServerOptions { Port = 0 });
        await server.StartAsync();
        using var http = new HttpClient { BaseAddress = server.BaseAddress };
        using var local = Create();
        var latents = RandomLatents(new TensorShape(1, 4, 1, 4, 6), "server.qwen");
        using var decoded = await http.PostAsync($"/qwen/decode?output_type=pt&{ShapeQuery(latents.Shape)}&dtype=float32",
            new ByteArrayContent(WireTensor.FromFloat(latents, WireDType.Float32)));
        var (shape, _, body) = await ReadTensorAsync(decoded);
        using var expected = local.Decode(latents, new DecodeOptions { Output = DecodeOutput.FloatTensor });
        Assert.That(shape, Is.EqualTo(TensorShape.Nchw(1, 3, 8, 12)));
        Assert.That(body, Is.EqualTo(WireTensor.FromFloat(expected.FloatTensor, WireDType.Float32)));

        var video = RandomLatents(new TensorShape(1, 4, 3, 4, 6), "server.qwen.video");
        using var refused = await http.PostAsync($"/qwen/decode?output_type=pt&{ShapeQuery(video.Shape)}&dtype=float32",
            new ByteArrayContent(WireTensor.FromFloat(video, WireDType.Float32)));
        Assert.That(await ErrorOf(refused, 400), Does.Contain("3 frames"));
    }

    [Test]
    public async Task RemoteVaeDecodesQwenImageLatentsInEveryFormThroughTheServer()
    {
        // 8x like every published VAE (what RemoteVae expects), 16 latent channels like Qwen-Image, narrow so fast.
        var config = NativeVae.Models.QwenImage.QwenImageConfig.QwenImage with { BaseDim = 4, DimMult = [1, 1, 1, 1], NumResBlocks = 1 };
        Vae Create() => new(new NativeVae.Models.QwenImage.QwenImageModel(new CpuBackend(), config,
            InMemoryWeights.Seeded(SeededWeights.DefaultSeed, NativeVae.Models.QwenImage.QwenImageParameters.Enumerate(config))),
            new VaeOptions(), null, null) { Family = ModelFamily.QwenImage };
        await using var server = VaeServer.Create([new ServedModel("qwen", Create())], new VaeServerOptions { Port = 0 });
        await server.StartAsync();
        using var local = Create();
        using var remote = new RemoteVae(new RemoteVaeOptions { Endpoint = new Uri(server.BaseAddress, "qwen/"), Family = ModelFamily.QwenImage });
        var asTensor = new DecodeOptions { Output = DecodeOutput.FloatTensor };

        var raw = RandomLatents(new TensorShape(1, 16, 1, 2, 4), "remote.qwen");
        using (var fromRemote = await remote.DecodeAsync(raw, asTensor))
        using (var fromLocal = local.Decode(raw, asTensor))
            Assert.That(fromRemote.FloatTensor.Data, Is.EqualTo(fromLocal.FloatTensor.Data), "[N, 16, 1, h, w]");

        var packed = RandomLatents(new TensorShape(1, 2, 64), "remote.qwen.packed");
        var sized = asTensor with { Height = 16, Width = 32 };
        using (var fromRemote = await remote.DecodeAsync(packed, sized))
        using (var fromLocal = local.Decode(packed, sized))
            Assert.That(fromRemote.FloatTensor.Data, Is.EqualTo(fromLocal.FloatTensor.Data), "packed tokens");
        Assert.That(() => remote.DecodeAsync(new HostTensor<float>(new TensorShape(1, 16, 2, 2, 4))),
            Throws.ArgumentException.With.Message.Contains("2 frames"), "refused before sending");
    }

    [Test]
    public async Task FormsAModelHasNotAndHalfGivenSizesAre400s()
    {
        await using var harness = await StartAsync();
        var images = RandomImages(TensorShape.Nchw(1, 3, 8, 8), "server.flux2.refused");
        using var wrongForm = await harness.PostAsync($"/sd/encode?{ShapeQuery(images.Shape)}&dtype=float32&latent_form=packed",
            WireTensor.FromFloat(images, WireDType.Float32));
        Assert.That(await ErrorOf(wrongForm, 400), Does.StartWith("`latent_form` 'packed'"));
        // 4 latent channels patchified are 16: the sd model has no statistics to take them back.
        var patchified = RandomLatents(TensorShape.Nchw(1, 16, 2, 2), "server.flux2.patchified");
        using var noStatistics = await harness.PostAsync($"/sd/decode?output_type=pt&{ShapeQuery(patchified.Shape)}&dtype=float32",
            WireTensor.FromFloat(patchified, WireDType.Float32));
        Assert.That(await ErrorOf(noStatistics, 400), Does.Contain("2x2-patchified 4-channel latents"));
    }
}
