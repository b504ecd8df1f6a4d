using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace NativeVae.Server;

/// <summary>
/// Gives Kestrel's own error replies a JSON <c>{"error": ...}</c> body like every other error of the server. Kestrel
/// refuses a malformed request line or headers (400), a request line or headers over its limits (414, 431) and slow
/// headers (408) before any middleware runs, with an empty body; diffusers' client calls <c>response.json()</c> on every
/// error and then fails on the empty body instead of showing what went wrong.
/// <para>
/// A connection middleware wraps the connection's output: a flush whose bytes begin with an error status line is
/// held until the flush, and when it is a bodiless head (<c>Content-Length: 0</c>: the server's own errors always
/// carry a body) it is rewritten with one. Everything else passes through without a copy.
/// </para>
/// </summary>
internal static class KestrelErrorReplies
{
    /// <summary>Wraps every connection of <paramref name="listen"/>.</summary>
    public static void Use(ListenOptions listen, KestrelServerLimits limits) => listen.Use(next => connection =>
    {
        connection.Transport = new Duplex(connection.Transport.Input, new ErrorBodyWriter(connection.Transport.Output, limits));
        return next(connection);
    });

    private sealed class Duplex(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }

    private static readonly byte[] ErrorStatusLine4 = "HTTP/1.1 4"u8.ToArray(), ErrorStatusLine5 = "HTTP/1.1 5"u8.ToArray();
    private static readonly byte[] HeadEnd = "\r\n\r\n"u8.ToArray();
    private const string EmptyLength = "\r\nContent-Length: 0\r\n";

    /// <summary>Digits of the status code, after "HTTP/1.1 ".</summary>
    private const int StatusStart = 9, StatusDigits = 3;

    /// <summary>
    /// The head with a JSON body for Kestrel's bodiless error head <paramref name="bytes"/>, or null when it is anything
    /// else (a reply of the server's own, a body, part of a head).
    /// </summary>
    internal static byte[]? WithJsonBody(ReadOnlySpan<byte> bytes, KestrelServerLimits limits)
    {
        int end = bytes.IndexOf(HeadEnd);
        if (end < 0 || end + HeadEnd.Length != bytes.Length) return null;
        string head = Encoding.ASCII.GetString(bytes[..end]) + "\r\n";
        int at = head.IndexOf(EmptyLength, StringComparison.OrdinalIgnoreCase);
        if (at < 0 || !int.TryParse(head.AsSpan(StatusStart, StatusDigits), out int status)) return null;
        byte[] body = ProtocolReplies.JsonError(MessageOf(status, limits));
        string rewritten = head[..at] + $"\r\nContent-Type: {ProtocolReplies.JsonContentType}\r\nContent-Length: {body.Length}\r\n" +
            head[(at + EmptyLength.Length)..] + "\r\n";
        return [.. Encoding.ASCII.GetBytes(rewritten), .. body];
    }

    private static string MessageOf(int status, KestrelServerLimits limits) => status switch
    {
        StatusCodes.Status400BadRequest =>
            "400: the request is malformed: its request line, a header or its body's framing (Content-Length, chunks) breaks HTTP/1.1",
        StatusCodes.Status408RequestTimeout => "408: the request's headers or body arrived too slowly; send it again",
        StatusCodes.Status413PayloadTooLarge => $"413: the body is over this server's limit of {limits.MaxRequestBodySize} bytes",
        StatusCodes.Status414RequestUriTooLong =>
            $"414: the request line (method, path and query) is over this server's limit of {limits.MaxRequestLineSize} bytes",
        StatusCodes.Status431RequestHeaderFieldsTooLarge =>
            $"431: the headers are over this server's limit of {limits.MaxRequestHeadersTotalSize} bytes or {limits.MaxRequestHeaderCount} headers",
        StatusCodes.Status505HttpVersionNotsupported => "505: the HTTP version is not supported; send HTTP/1.1",
        _ => $"{status}: the server refused the request before reading it",
    };

    /// <summary>
    /// Passes writes through to the connection, except a flush that starts with an error status line, which it holds
    /// (Kestrel writes a head with GetSpan/Advance, then flushes) so that <see cref="WithJsonBody"/> can rewrite it.
    /// </summary>
    private sealed class ErrorBodyWriter(PipeWriter inner, KestrelServerLimits limits) : PipeWriter
    {
        private readonly ArrayBufferWriter<byte> _held = new();

        /// <summary>
        /// The connection's memory last lent, and how much of it was advanced since: Kestrel may go on writing into
        /// the rest of a span after an Advance, without asking for memory again.
        /// </summary>
        private Memory<byte> _lent;
        private int _lentAdvanced;
        private bool _atFlushStart = true;
        private bool _holding;

        public override Memory<byte> GetMemory(int sizeHint = 0)
        {
            // While holding, the connection is never advanced, so it lends the same bytes again: they were copied.
            _lent = inner.GetMemory(sizeHint);
            _lentAdvanced = 0;
            return _lent;
        }

        public override Span<byte> GetSpan(int sizeHint = 0) => GetMemory(sizeHint).Span;

        public override void Advance(int bytes)
        {
            var written = _lent.Span.Slice(_lentAdvanced, bytes);
            _lentAdvanced += bytes;
            if (!_holding && _atFlushStart && bytes > 0)
            {
                _holding = written.StartsWith(ErrorStatusLine4) || written.StartsWith(ErrorStatusLine5);
                _atFlushStart = false;
            }
            if (_holding) _held.Write(written);
            else inner.Advance(bytes);
        }

        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
        {
            Release();
            _atFlushStart = true;
            return inner.FlushAsync(cancellationToken);
        }

        /// <summary>Writes the held bytes on, rewritten when they are Kestrel's bodiless error.</summary>
        private void Release()
        {
            if (!_holding) return;
            var held = _held.WrittenSpan;
            inner.Write(WithJsonBody(held, limits) ?? held);
            _held.Clear();
            _holding = false;
        }

        public override void CancelPendingFlush() => inner.CancelPendingFlush();

        public override void Complete(Exception? exception = null)
        {
            Release();
            inner.Complete(exception);
        }

        public override ValueTask CompleteAsync(Exception? exception = null)
        {
            Release();
            return inner.CompleteAsync(exception);
        }

        public override bool CanGetUnflushedBytes => inner.CanGetUnflushedBytes;

        public override long UnflushedBytes => inner.UnflushedBytes + _held.WrittenCount;
    }
}
