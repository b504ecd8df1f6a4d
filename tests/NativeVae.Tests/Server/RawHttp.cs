using System.Net.Sockets;
using System.Text;

namespace NativeVae.Tests.Server;

/// <summary>
/// HTTP/1.1 over a raw socket, for what HttpClient will not send (a malformed request line, an overflowing chunk size,
/// a reset mid-body) and for keeping one connection open across requests.
/// </summary>
internal sealed class RawHttp : IDisposable
{
    private readonly TcpClient _client = new();
    private NetworkStream _stream = null!;

    public static async Task<RawHttp> ConnectAsync(Uri server)
    {
        var raw = new RawHttp();
        await raw._client.ConnectAsync(server.Host, server.Port);
        raw._stream = raw._client.GetStream();
        raw._stream.ReadTimeout = (int)TimeSpan.FromSeconds(60).TotalMilliseconds;
        return raw;
    }

    public Task SendAsync(string text) => SendAsync(Encoding.ASCII.GetBytes(text));

    public async Task SendAsync(byte[] bytes) => await _stream.WriteAsync(bytes);

    /// <summary>Closes the connection with a TCP reset (linger 0), as a client that dies does.</summary>
    public void Reset()
    {
        _client.Client.LingerState = new LingerOption(true, 0);
        _client.Client.Close();
    }

    /// <summary>Reads one response: its status, headers (lower-case names) and body (by Content-Length, else to the close).</summary>
    public async Task<(int Status, Dictionary<string, string> Headers, string Body)> ReadResponseAsync()
    {
        var head = new List<byte>();
        var one = new byte[1];
        while (!EndsWithBlankLine(head))
        {
            if (await _stream.ReadAsync(one) == 0) throw new EndOfStreamException($"the connection closed inside a response head: '{Encoding.ASCII.GetString(head.ToArray())}'");
            head.Add(one[0]);
        }
        var lines = Encoding.ASCII.GetString(head.ToArray()).Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        int status = int.Parse(lines[0].Split(' ')[1]);
        var headers = lines.Skip(1).Select(l => l.Split(':', 2)).ToDictionary(p => p[0].Trim().ToLowerInvariant(), p => p[1].Trim());
        byte[] body;
        if (headers.TryGetValue("content-length", out var length))
        {
            body = new byte[int.Parse(length)];
            await _stream.ReadExactlyAsync(body);
        }
        else
        {
            using var rest = new MemoryStream();
            await _stream.CopyToAsync(rest);
            body = rest.ToArray();
        }
        return (status, headers, Encoding.UTF8.GetString(body));
    }

    private static bool EndsWithBlankLine(List<byte> bytes) =>
        bytes.Count >= 4 && bytes[^4] == '\r' && bytes[^3] == '\n' && bytes[^2] == '\r' && bytes[^1] == '\n';

    public void Dispose() => _client.Dispose();
}
