using System.Diagnostics;
using NativeVae;
using NativeVae.Server;

// The hybrid-inference protocol's cost: one decode in-process against the same decode through a NativeVae server on
// loopback (RemoteVae as the client), and the server's throughput with and without dynamic batching.
//   dotnet run --project tools/NativeVae.ServerBench -c Release -- MODEL [--size 512] [--runs 10] [--clients 4] [--requests 32]
// MODEL is any model Vae.Load reads (e.g. ../shared/models/taef2). Prints one JSON object per line.

const int DefaultSize = 512, DefaultRuns = 10, DefaultClients = 4, DefaultRequests = 32, BatchWindowMs = 10, MaxBatch = 8;

if (args.Length == 0 || args[0].StartsWith('-'))
{
    Console.Error.WriteLine("usage: ServerBench MODEL [--size N] [--runs N] [--clients N] [--requests N]");
    return 2;
}
string modelPath = args[0];
int size = Flag("--size", DefaultSize), runs = Flag("--runs", DefaultRuns), clients = Flag("--clients", DefaultClients);
int requests = Flag("--requests", DefaultRequests);

var local = Vae.Load(modelPath, new VaeOptions { Device = DevicePreference.Cpu });
var family = local.Family;
int latentSide = size / local.DownsampleFactor;
var latent = new HostTensor<float>(TensorShape.Nchw(1, local.LatentChannels, latentSide, latentSide));
var random = new Random(1);
for (int i = 0; i < latent.Data.Length; i++) latent.Data[i] = (float)(random.NextDouble() * 2 - 1);
var options = new DecodeOptions { Output = DecodeOutput.FloatTensor };

foreach (bool batching in new[] { false, true })
{
    var served = new ServedModel("m", Vae.Load(modelPath, new VaeOptions { Device = DevicePreference.Cpu }));
    await using var server = VaeServer.Create([served], new VaeServerOptions
    {
        Port = 0,
        QueueCapacity = Math.Max(clients * 2, 16),
        BatchWindow = batching ? TimeSpan.FromMilliseconds(BatchWindowMs) : TimeSpan.Zero,
        MaxBatch = MaxBatch,
    });
    await server.StartAsync();
    using var remote = new RemoteVae(new RemoteVaeOptions { Endpoint = new Uri(server.BaseAddress, "m/"), Family = family });
    if (!batching)
    {
        // The same decode in-process and over HTTP, alternately, so that the machine's drift falls on both alike.
        var paired = Paired(runs,
            () => { using var _ = local.Decode(latent, options); },
            () => { using var _ = remote.DecodeAsync(latent, options).GetAwaiter().GetResult(); });
        Console.WriteLine($"{{\"case\": \"decode_overhead\", \"family\": \"{family.Name()}\", \"size\": {size}, \"runs\": {runs}, " +
            $"\"in_process_ms\": {paired.A:F1}, \"over_http_ms\": {paired.B:F1}, \"overhead_ms\": {paired.Difference:F1}, " +
            $"\"overhead_ratio\": {paired.B / paired.A:F3}}}");
    }
    // Throughput: clients x (requests / clients) decodes, all at once.
    using (var _ = await remote.DecodeAsync(latent, options)) { }
    var clock = Stopwatch.StartNew();
    await Task.WhenAll(Enumerable.Range(0, clients).Select(_ => Task.Run(async () =>
    {
        for (int r = 0; r < requests / clients; r++)
        {
            using var result = await remote.DecodeAsync(latent, options);
        }
    })));
    double seconds = clock.Elapsed.TotalSeconds;
    int done = requests / clients * clients;
    Console.WriteLine($"{{\"case\": \"throughput\", \"batching\": {(batching ? "true" : "false")}, \"family\": \"{family.Name()}\", \"size\": {size}, " +
        $"\"clients\": {clients}, \"requests\": {done}, \"seconds\": {seconds:F2}, \"requests_per_s\": {done / seconds:F2}}}");
}
local.Dispose();
return 0;

int Flag(string name, int fallback)
{
    int at = Array.IndexOf(args, name);
    return at >= 0 && at + 1 < args.Length && int.TryParse(args[at + 1], out int value) && value > 0 ? value : fallback;
}

/// <summary>Medians of A and of B, and the median of the paired differences B - A, after one warm-up of each.</summary>
static (double A, double B, double Difference) Paired(int runs, Action a, Action b)
{
    a();
    b();
    var timesA = new double[runs];
    var timesB = new double[runs];
    var differences = new double[runs];
    for (int i = 0; i < runs; i++)
    {
        timesA[i] = Time(a);
        timesB[i] = Time(b);
        differences[i] = timesB[i] - timesA[i];
    }
    return (Median(timesA), Median(timesB), Median(differences));
}

static double Time(Action work)
{
    var clock = Stopwatch.StartNew();
    work();
    return clock.Elapsed.TotalMilliseconds;
}

static double Median(double[] values)
{
    Array.Sort(values);
    return values[values.Length / 2];
}
