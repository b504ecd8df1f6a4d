using System.Net;
using System.Net.Sockets;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using static NativeVae.Tests.Support.SyntheticVae;
using static NativeVae.Tests.Cli.CliRun;

namespace NativeVae.Tests.Cli;

/// <summary>
/// <c>encode</c> and <c>decode</c> with <c>--endpoint</c>: the usage errors that keep local and remote options apart,
/// refused before anything is opened or connected, and one decode against a canned loopback endpoint.
/// </summary>
public class CliRemoteTests
{
    private const string Unknown = "http://127.0.0.1:9/";

    /// <summary>A usage error: exit 2, nothing on stdout, the first line "nativevae command: error: ...".</summary>
    private static string UsageError((int Code, string Out, string Err) result, string command)
    {
        Assert.That(result.Code, Is.EqualTo(NativeVae.Cli.ExitCodes.Usage), result.Err);
        Assert.That(result.Out, Is.Empty);
        string first = result.Err.Split('\n')[0];
        Assert.That(first, Does.StartWith($"nativevae {command}: error: "));
        return first;
    }

    private static string Input(string command) => command == "encode" ? "in.png" : "in.safetensors";

    [TestCase("encode")]
    [TestCase("decode")]
    public void BothModelAndEndpointAreRefused(string command)
    {
        string first = UsageError(Run(command, Input(command), "--model", "/no/such/model", "--endpoint", Unknown), command);
        Assert.That(first, Does.Contain("exactly one of --model").And.Contain("--endpoint").And.EndWith("gives both"));
    }

    [TestCase("encode")]
    [TestCase("decode")]
    public void NeitherModelNorEndpointIsRefused(string command)
    {
        string first = UsageError(Run(command, Input(command)), command);
        Assert.That(first, Does.Contain("exactly one of --model").And.Contain("--endpoint").And.EndWith("gives neither"));
    }

    [TestCase("encode")]
    [TestCase("decode")]
    public void AnEndpointThatIsNotPublishedNeedsFamily(string command)
    {
        string first = UsageError(Run(command, Input(command), "--endpoint", Unknown), command);
        Assert.That(first, Does.Contain($"--endpoint {Unknown} is not one of the published endpoints").And.Contain("give --family"));
    }

    [Test]
    public void AFamilyThatContradictsAPublishedEndpointIsRefused()
    {
        // Refused before any connection: the published endpoint is never called.
        string first = UsageError(Run("decode", "in.safetensors", "--endpoint", RemoteEndpoints.SdxlDecode, "--family", "sd"), "decode");
        Assert.That(first, Does.Contain("--family sd does not fit").And.Contain("which serves sdxl"));
    }

    [Test]
    public void LocalAndRemoteOptionsDoNotMix()
    {
        string first = UsageError(Run("encode", "in.png", "--endpoint", Unknown, "--family", "sd", "--device", "cpu"), "encode");
        Assert.That(first, Does.Contain("--device applies to --model only"));
        first = UsageError(Run("encode", "in.png", "--model", "/no/such/model", "--token", "t"), "encode");
        Assert.That(first, Does.Contain("--token and --timeout apply to --endpoint only"));
    }

    [TestCase("ftp://host/")]
    [TestCase("not a url")]
    public void AnEndpointThatIsNotAnHttpUrlIsNamed(string url)
    {
        string first = UsageError(Run("decode", "in.safetensors", "--endpoint", url, "--family", "sd"), "decode");
        Assert.That(first, Does.Contain($"--endpoint '{url}' must be an absolute http:// or https:// URL"));
    }

    [TestCase("encode")]
    [TestCase("decode")]
    public void HelpDocumentsTheRemoteOptions(string command)
    {
        var (code, stdout, _) = Run(command, "--help");
        Assert.That(code, Is.Zero);
        Assert.That(stdout, Does.Contain("--endpoint <URL>").And.Contain("--token <T>").And.Contain("NATIVEVAE_TOKEN")
            .And.Contain("--timeout <SECONDS>").And.Contain("[default: 300]").And.Contain("give this or --endpoint"));
        Assert.That(Run("roundtrip", "--help").Out, Does.Not.Contain("--endpoint"), "roundtrip stays local");
    }

    /// <summary>A canned endpoint on loopback: the CLI sends diffusers' uint8 decode request and writes the pixels it gets.</summary>
    [Test]
    public async Task DecodeOnALoopbackEndpointWritesTheImageOfTheReturnedPixels()
    {
        const int Size = 16;
        string folder = TempFolder();
        string latent = Path.Combine(folder, "latent.safetensors");
        NativeVae.LatentFile.Write(latent, new HostTensor<float>(TensorShape.Nchw(1, 4, Size / 8, Size / 8)));
        var rgb = Enumerable.Range(0, Size * Size * 3).Select(i => (byte)(i * 11 % 256)).ToArray();

        using var listener = new HttpListener();
        string url = $"http://127.0.0.1:{FreePort()}/vae/";
        listener.Prefixes.Add(url);
        listener.Start();
        var served = Task.Run(async () =>
        {
            var context = await listener.GetContextAsync();
            var request = (Query: context.Request.Url!.Query, Authorization: context.Request.Headers["Authorization"]);
            context.Response.Headers["shape"] = $"[1, {Size}, {Size}, 3]";
            context.Response.Headers["dtype"] = "uint8";
            await context.Response.OutputStream.WriteAsync(rgb);
            context.Response.Close();
            return request;
        });

        string output = Path.Combine(folder, "out.png");
        var (code, stdout, stderr) = Run("decode", latent, "--endpoint", url, "--family", "sd", "--token", "secret", "--timeout", "30", "-o", output);

        Assert.That(code, Is.Zero, stderr);
        var (query, authorization) = await served;
        Assert.That(query, Is.EqualTo("?image_format=jpg&output_type=pt&partial_postprocess=True&shape=1&shape=4&shape=2&shape=2&dtype=float32"));
        Assert.That(authorization, Is.EqualTo("Bearer secret"));
        Assert.That(stdout, Does.Contain($"{output}: {Size}x{Size}"));
        using var image = Image.Load<Rgb24>(output);
        Assert.That(image[5, 3], Is.EqualTo(new Rgb24(rgb[(3 * Size + 5) * 3], rgb[(3 * Size + 5) * 3 + 1], rgb[(3 * Size + 5) * 3 + 2])));
    }

    private static int FreePort()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return port;
    }
}
