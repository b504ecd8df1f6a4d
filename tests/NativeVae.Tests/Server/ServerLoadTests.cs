using System.Net;
using System.Text.RegularExpressions;
using NativeVae.Server;
using static NativeVae.Tests.Server.ServerHarness;

namespace NativeVae.Tests.Server;

/// <summary>
/// A bounded load: 8 concurrent clients, 200 requests of mixed operations. Every request is answered (200, or 503
/// when the queue is full), each reply equals the library's output for its own input, and the managed heap is flat
/// after warm-up. With dynamic batching, concurrent requests of one shape run as one batch and still get their own
/// results.
/// </summary>
[NonParallelizable]
public partial class ServerLoadTests
{
    private const int Clients = 8;
    private const int Requests = 200;
    private const int WarmUp = 40;
    private const int DistinctInputs = 16;

    /// <summary>Requests that may wait: fewer than the clients, so that some are turned away.</summary>
    private const int QueueCapacity = 6;

    private static readonly TimeSpan BusyPause = TimeSpan.FromMilliseconds(20);

    /// <summary>Heap growth allowed between warm-up and the end: a leak of one 16x16 reply per request would pass 3 MB.</summary>
    private const long FlatHeapBytes = 8L << 20;

    /// <summary>Working-set growth allowed over the same span: native buffers are pooled per shape, so warm-up made them all.</summary>
    private const long FlatWorkingSetBytes = 64L << 20;

    /// <summary>Batched convolutions sum in another order than single ones (VaeApiTests' batch tolerance).</summary>
    private const double BatchTolerance = 1e-5;

    private static readonly TensorShape Latent = TensorShape.Nchw(1, 4, 8, 8);
    private static readonly TensorShape Image = TensorShape.Nchw(1, 3, 16, 16);

    private sealed record Case(string PathAndQuery, byte[] Body, byte[] Expected, WireDType ReplyDType);

    /// <summary>Request i's case: decode as float, decode as uint8, or encode a tensor, each on one of 16 inputs.</summary>
    private static Case[] Cases(Vae local)
    {
        var cases = new List<Case>();
        for (int i = 0; i < DistinctInputs; i++)
        {
            var latents = RandomLatents(Latent, $"load.latent.{i}");
            var images = RandomImages(Image, $"load.image.{i}");
            var latentBytes = WireTensor.FromFloat(latents, WireDType.Float32);
            using var floats = local.Decode(latents, new DecodeOptions { Output = DecodeOutput.FloatTensor });
            using var pixels = local.Decode(latents, new DecodeOptions { Output = DecodeOutput.UInt8Tensor });
            cases.Add(new($"/sd/?output_type=pt&partial_postprocess=False&{ShapeQuery(Latent)}&dtype=float32", latentBytes,
                WireTensor.FromFloat(floats.FloatTensor, WireDType.Float32), WireDType.Float32));
            cases.Add(new($"/sd/?output_type=pt&partial_postprocess=True&{ShapeQuery(Latent)}&dtype=float32", latentBytes,
                pixels.UInt8Tensor.Data, WireDType.UInt8));
            cases.Add(new($"/sd/?{ShapeQuery(Image)}&dtype=float32", WireTensor.FromFloat(images, WireDType.Float32),
                WireTensor.FromFloat(local.Encode(images), WireDType.Float32), WireDType.Float32));
        }
        return cases.ToArray();
    }

    /// <summary>Runs requests <paramref name="from"/> to <paramref name="to"/> from 8 clients; returns (ok, busy) counts.</summary>
    private static async Task<(int Ok, int Busy)> RunAsync(ServerHarness server, Case[] cases, int from, int to, bool batched)
    {
        int next = from - 1, ok = 0, busy = 0;
        await Task.WhenAll(Enumerable.Range(0, Clients).Select(_ => Task.Run(async () =>
        {
            for (int i = Interlocked.Increment(ref next); i < to; i = Interlocked.Increment(ref next))
            {
                var c = cases[i % cases.Length];
                using var response = await server.PostAsync(c.PathAndQuery, c.Body);
                if (response.StatusCode == HttpStatusCode.ServiceUnavailable)
                {
                    Assert.That(await ErrorOf(response, 503), Does.Contain("requests waiting"));
                    Interlocked.Increment(ref busy);
                    // A client honouring Retry-After waits before its next request (briefly here, to keep the test short).
                    await Task.Delay(BusyPause);
                    continue;
                }
                var (_, dtype, body) = await ReadTensorAsync(response);
                Assert.That(dtype, Is.EqualTo(c.ReplyDType), $"request {i}");
                if (batched) CloseEnough(body, c, i);
                else Assert.That(body, Is.EqualTo(c.Expected), $"request {i}: {c.PathAndQuery}");
                Interlocked.Increment(ref ok);
            }
        })));
        return (ok, busy);
    }

    private static void CloseEnough(byte[] body, Case c, int i)
    {
        Assert.That(body, Has.Length.EqualTo(c.Expected.Length), $"request {i}");
        if (c.ReplyDType == WireDType.UInt8)
        {
            // A value within the float tolerance of a rounding boundary may round to the neighbour.
            for (int k = 0; k < body.Length; k++) Assert.That(Math.Abs(body[k] - c.Expected[k]), Is.LessThanOrEqualTo(1), $"request {i} byte {k}");
            return;
        }
        var shape = new TensorShape(c.Expected.Length / sizeof(float));
        var got = WireTensor.ToFloat(body, shape, WireDType.Float32).Data;
        var expected = WireTensor.ToFloat(c.Expected, shape, WireDType.Float32).Data;
        for (int k = 0; k < got.Length; k++) Assert.That(got[k], Is.EqualTo(expected[k]).Within(BatchTolerance), $"request {i} element {k}");
    }

    [Test]
    public async Task EightClientsTwoHundredRequestsAllAnsweredAndCorrectWithAFlatHeap()
    {
        await using var server = await StartAsync(new VaeServerOptions { QueueCapacity = QueueCapacity });
        var cases = Cases(server.LocalSd);
        var warm = await RunAsync(server, cases, 0, WarmUp, batched: false);
        long heapAfterWarmUp = GC.GetTotalMemory(forceFullCollection: true);
        long workingSetAfterWarmUp = CurrentWorkingSet();
        var rest = await RunAsync(server, cases, WarmUp, Requests, batched: false);
        long heapAtEnd = GC.GetTotalMemory(forceFullCollection: true);
        long workingSetAtEnd = CurrentWorkingSet();

        Assert.That(warm.Ok + warm.Busy + rest.Ok + rest.Busy, Is.EqualTo(Requests), "every request answered");
        Assert.That(rest.Ok, Is.GreaterThan(0));
        Assert.That(heapAtEnd - heapAfterWarmUp, Is.LessThan(FlatHeapBytes),
            $"heap after warm-up {heapAfterWarmUp >> 10} KiB, at the end {heapAtEnd >> 10} KiB");
        Assert.That(workingSetAtEnd - workingSetAfterWarmUp, Is.LessThan(FlatWorkingSetBytes),
            $"working set after warm-up {workingSetAfterWarmUp >> 20} MiB, at the end {workingSetAtEnd >> 20} MiB");
        TestContext.Out.WriteLine($"200 requests: {warm.Ok + rest.Ok} answered 200, {warm.Busy + rest.Busy} answered 503; " +
            $"heap {heapAfterWarmUp >> 10} -> {heapAtEnd >> 10} KiB, working set {workingSetAfterWarmUp >> 20} -> {workingSetAtEnd >> 20} MiB");
    }

    [Test]
    public async Task WithBatchingConcurrentRequestsShareARunAndKeepTheirOwnResults()
    {
        await using var server = await StartAsync(new VaeServerOptions { BatchWindow = TimeSpan.FromMilliseconds(20), QueueCapacity = 64 });
        var cases = Cases(server.LocalSd);
        var result = await RunAsync(server, cases, 0, Requests, batched: true);
        Assert.That(result.Ok, Is.EqualTo(Requests), "a queue of 64 holds 8 clients' requests");
    }

    [Test]
    public async Task RequestsArrivingInsideTheWindowRunAsOneBatch()
    {
        // A window far longer than four requests take to arrive: they are one run of 4 items.
        await using var server = await StartAsync(new VaeServerOptions { BatchWindow = TimeSpan.FromMilliseconds(500) });
        var cases = Cases(server.LocalSd);
        var replies = await Task.WhenAll(Enumerable.Range(0, 4).Select(i => server.PostAsync(cases[3 * i].PathAndQuery, cases[3 * i].Body)));
        for (int i = 0; i < 4; i++)
        {
            var (_, _, body) = await ReadTensorAsync(replies[i]);
            CloseEnough(body, cases[3 * i], i);
        }
        string metrics = await server.Http.GetStringAsync("/metrics");
        Assert.That(BatchMetric(metrics, "count"), Is.EqualTo(1), metrics);
        Assert.That(BatchMetric(metrics, "sum"), Is.EqualTo(4), metrics);
    }

    private static long CurrentWorkingSet()
    {
        using var process = System.Diagnostics.Process.GetCurrentProcess();
        return process.WorkingSet64;
    }

    private static double BatchMetric(string metrics, string suffix) =>
        double.Parse(BatchSize().Matches(metrics).Single(m => m.Groups[1].Value == suffix).Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture);

    [GeneratedRegex(@"^nativevae_batch_size_(sum|count)\{model=""sd""\} (\S+)$", RegexOptions.Multiline)]
    private static partial Regex BatchSize();
}
