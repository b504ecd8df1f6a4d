using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace NativeVae.Remote;

/// <summary>
/// The HTTP side of <see cref="RemoteVae"/>: one call's deadline, retries with backoff on 503 and on failures to
/// connect (never on 4xx), error replies as <see cref="RemoteVaeException"/>, and reply bodies read with a cap, since
/// the server is not trusted to send what it should.
/// </summary>
internal sealed class RemoteTransport(HttpClient http, RemoteVaeOptions options)
{
    /// <summary>Most of an error body read: enough for any message, little for a hostile server to fill memory with.</summary>
    private const int MaxErrorBodyBytes = 64 * 1024;

    /// <summary>Longest server message kept in a <see cref="RemoteVaeException"/> (a stray HTML page can be long).</summary>
    private const int MaxServerMessageChars = 1000;

    private const int ReadBufferBytes = 81920;

    /// <summary>Caps the doubling so that the backoff of a large <see cref="RemoteVaeOptions.MaxRetries"/> cannot overflow.</summary>
    private const int MaxBackoffDoublings = 30;

    /// <summary>Task.Delay's longest wait; a server's Retry-After or a doubled delay past it is cut to it.</summary>
    private const double MaxWaitMilliseconds = int.MaxValue - 1;

    private Uri Endpoint => options.Endpoint;

    /// <summary>How a retry waits; the tests replace it to record the waits instead of sleeping.</summary>
    internal Func<TimeSpan, CancellationToken, Task> Delay { get; set; } = Task.Delay;

    /// <summary>
    /// Runs one API call's requests under <see cref="RemoteVaeOptions.Timeout"/>: the deadline's cancellation becomes a
    /// <see cref="TimeoutException"/>, the caller's stays an <see cref="OperationCanceledException"/>.
    /// </summary>
    public async Task<T> RunAsync<T>(Func<Call, Task<T>> work, CancellationToken cancellation)
    {
        cancellation.ThrowIfCancellationRequested();
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        if (options.Timeout != Timeout.InfiniteTimeSpan) deadline.CancelAfter(options.Timeout);
        var call = new Call(deadline.Token, Stopwatch.StartNew(), options.Timeout);
        try
        {
            return await work(call).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellation.IsCancellationRequested)
        {
            // Not the caller: our deadline, or the caller's own HttpClient.Timeout when it is shorter.
            string whose = deadline.IsCancellationRequested
                ? $"RemoteVaeOptions.Timeout of {options.Timeout.TotalSeconds:0.###} s"
                : $"the HttpClient's Timeout of {http.Timeout.TotalSeconds:0.###} s";
            throw new TimeoutException($"{Endpoint}: no complete reply within {whose}");
        }
    }

    /// <summary>
    /// Sends the request <paramref name="create"/> builds (anew for each try) and returns the successful reply, its
    /// body not yet read; the caller disposes it.
    /// </summary>
    /// <exception cref="RemoteVaeException">an error status (after the retries, for 503).</exception>
    /// <exception cref="HttpRequestException">no connection after the retries.</exception>
    public async Task<HttpResponseMessage> SendAsync(Func<HttpRequestMessage> create, Call call)
    {
        for (int attempt = 0; ; attempt++)
        {
            HttpResponseMessage response;
            try
            {
                using var request = create();
                if (options.BearerToken is { } token) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
                response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, call.Token).ConfigureAwait(false);
            }
            catch (HttpRequestException e) when (e.StatusCode is null)
            {
                // No response at all (refused, reset, DNS): the server may be restarting, worth another try.
                if (attempt >= options.MaxRetries)
                    throw new HttpRequestException($"{Endpoint}: no reply after {attempt + 1} attempt(s): {e.Message}", e);
                await WaitAsync(Backoff(attempt), call).ConfigureAwait(false);
                continue;
            }
            if (response.IsSuccessStatusCode) return response;
            using (response)
            {
                if (response.StatusCode == HttpStatusCode.ServiceUnavailable && attempt < options.MaxRetries)
                {
                    await WaitAsync(RetryAfter(response) ?? Backoff(attempt), call).ConfigureAwait(false);
                    continue;
                }
                var (body, _) = await ReadAtMostAsync(response, MaxErrorBodyBytes, call).ConfigureAwait(false);
                throw new RemoteVaeException(Endpoint, response.StatusCode, ServerMessage(body));
            }
        }
    }

    /// <summary>The body, refused when longer than <paramref name="maxBytes"/> (checked while reading, not after).</summary>
    /// <exception cref="InvalidDataException">the body is longer; <paramref name="what"/> names what was expected.</exception>
    public async Task<byte[]> ReadBodyAsync(HttpResponseMessage response, long maxBytes, string what, Call call)
    {
        if (response.Content.Headers.ContentLength is long announced && announced > maxBytes)
            throw new InvalidDataException($"{Endpoint}: the reply's body has {announced} bytes; {what} allows at most {maxBytes}");
        var (body, complete) = await ReadAtMostAsync(response, maxBytes, call).ConfigureAwait(false);
        if (!complete) throw new InvalidDataException($"{Endpoint}: the reply's body is longer than the {maxBytes} bytes {what} allows");
        return body;
    }

    /// <summary>A header of the reply (or of its content), or null.</summary>
    public static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) || response.Content.Headers.TryGetValues(name, out values)
            ? string.Join(",", values)
            : null;

    /// <summary>Up to <paramref name="maxBytes"/> bytes of the body, and whether that was all of it.</summary>
    private static async Task<(byte[] Body, bool Complete)> ReadAtMostAsync(HttpResponseMessage response, long maxBytes, Call call)
    {
        await using var stream = await response.Content.ReadAsStreamAsync(call.Token).ConfigureAwait(false);
        using var memory = new MemoryStream();
        var buffer = new byte[ReadBufferBytes];
        while (true)
        {
            int want = (int)Math.Min(buffer.Length, maxBytes - memory.Length + 1);
            int read = await stream.ReadAsync(buffer.AsMemory(0, want), call.Token).ConfigureAwait(false);
            if (read == 0) return (memory.ToArray(), true);
            if (memory.Length + read > maxBytes)
            {
                memory.Write(buffer, 0, (int)(maxBytes - memory.Length));
                return (memory.ToArray(), false);
            }
            memory.Write(buffer, 0, read);
        }
    }

    /// <summary>The toolkit's <c>{"error": "..."}</c>, else the body's text, truncated either way.</summary>
    private static string ServerMessage(byte[] body)
    {
        string text = Encoding.UTF8.GetString(body).Trim();
        try
        {
            using var json = JsonDocument.Parse(body);
            if (json.RootElement.ValueKind == JsonValueKind.Object
                && json.RootElement.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.String)
                text = error.GetString()!;
        }
        catch (JsonException)
        {
            // Not JSON (a proxy's HTML page, plain text): the text itself is the message.
        }
        return text.Length <= MaxServerMessageChars ? text : text[..MaxServerMessageChars] + "...";
    }

    /// <summary>A 503's <c>Retry-After</c>, as seconds or a date.</summary>
    private static TimeSpan? RetryAfter(HttpResponseMessage response) => response.Headers.RetryAfter switch
    {
        { Delta: { } delta } => delta,
        { Date: { } date } => date - DateTimeOffset.UtcNow is var wait && wait > TimeSpan.Zero ? wait : TimeSpan.Zero,
        _ => null,
    };

    private TimeSpan Backoff(int attempt) =>
        TimeSpan.FromMilliseconds(Math.Min(options.RetryDelay.TotalMilliseconds * Math.Pow(2, Math.Min(attempt, MaxBackoffDoublings)), MaxWaitMilliseconds));

    /// <summary>Waits, but never past the call's deadline (the wait is then cut, and the deadline ends the call).</summary>
    private Task WaitAsync(TimeSpan wait, Call call)
    {
        if (wait.TotalMilliseconds > MaxWaitMilliseconds) wait = TimeSpan.FromMilliseconds(MaxWaitMilliseconds);
        var left = call.Remaining;
        return Delay(left is { } l && l < wait ? l : wait, call.Token);
    }

    /// <summary>One API call: its cancellation (caller's and deadline's) and the time it has left.</summary>
    internal readonly record struct Call(CancellationToken Token, Stopwatch Clock, TimeSpan Timeout)
    {
        /// <summary>Time left before the deadline, or null without one.</summary>
        public TimeSpan? Remaining => Timeout == System.Threading.Timeout.InfiniteTimeSpan
            ? null
            : Timeout - Clock.Elapsed is var left && left > TimeSpan.Zero ? left : TimeSpan.Zero;
    }
}
