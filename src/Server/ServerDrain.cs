using Microsoft.Extensions.Hosting;

namespace NativeVae.Server;

/// <summary>
/// The drain on SIGTERM (or <see cref="VaeServer.StopAsync"/>), before Kestrel stops: Kestrel stays up, so health and
/// new requests on new and open connections answer 503; queued and running requests get up to
/// <see cref="VaeServerOptions.DrainTimeout"/> to finish; those left are then cancelled and answered 503 with
/// Retry-After, never reset. Runs in <see cref="IHostedLifecycleService.StoppingAsync"/>, which the host calls before
/// it stops any hosted service (Kestrel's among them).
/// </summary>
internal sealed class ServerDrain(VaeServer server) : IHostedLifecycleService
{
    /// <summary>Time the cancelled requests have to write their 503 once the drain time ends.</summary>
    public static readonly TimeSpan ReplyGrace = TimeSpan.FromSeconds(5);

    /// <summary>How often the drain looks at the requests in flight.</summary>
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(50);

    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        server.BeginDrain();
        await WaitForIdleAsync(server.DrainTimeout, cancellationToken);
        if (server.InFlight == 0) return;
        server.EndDrain();
        await WaitForIdleAsync(ReplyGrace, cancellationToken);
    }

    private async Task WaitForIdleAsync(TimeSpan limit, CancellationToken cancellationToken)
    {
        var until = DateTime.UtcNow + limit;
        while (server.InFlight > 0 && DateTime.UtcNow < until && !cancellationToken.IsCancellationRequested)
            await Task.Delay(PollInterval, CancellationToken.None);
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
