using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace NativeVae.Server;

/// <summary>Writes replies as the real clients read them, and errors as JSON <c>{"error": "..."}</c>.</summary>
internal static class ProtocolReplies
{
    public const string JsonContentType = "application/json";

    /// <summary>Messages quote parameters in backticks as the toolkit does; the default encoder would write them as \u0060.</summary>
    private static readonly JsonWriterOptions Readable = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Writes a reply; returns the body's length.</summary>
    public static async Task<long> WriteAsync(HttpResponse response, Reply reply, bool base64, CancellationToken cancellation)
    {
        var (body, contentType) = reply switch
        {
            TensorReply t => (t.Body, WireTensor.BinaryContentType),
            ImageReply i => (i.Body, i.Format == ImageFormat.Png ? "image/png" : "image/jpeg"),
            Mp4Reply m => (m.Body, "video/mp4"),
            _ => throw new InvalidOperationException($"unknown reply {reply.GetType().Name}"),
        };
        if (reply is TensorReply tensor)
        {
            // The client rebuilds the tensor from these two headers alone.
            response.Headers["shape"] = WireTensor.FormatShape(tensor.Shape);
            response.Headers["dtype"] = tensor.DType.Name();
        }
        if (base64) (body, contentType) = (Base64Reply(reply, body), JsonContentType);
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = contentType;
        response.ContentLength = body.Length;
        await response.Body.WriteAsync(body, cancellation);
        return body.Length;
    }

    /// <summary>The legacy mode's <c>{"inputs": "&lt;base64&gt;", "parameters": {"shape": [...], "dtype": "..."}}</c>.</summary>
    private static byte[] Base64Reply(Reply reply, byte[] body)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, Readable))
        {
            json.WriteStartObject();
            json.WriteBase64String("inputs", body);
            json.WriteStartObject("parameters");
            if (reply is TensorReply tensor)
            {
                json.WriteStartArray("shape");
                foreach (int dim in tensor.Shape.Dims) json.WriteNumberValue(dim);
                json.WriteEndArray();
                json.WriteString("dtype", tensor.DType.Name());
            }
            else if (reply is ImageReply image)
            {
                json.WriteString("image_format", image.Format == ImageFormat.Png ? "png" : "jpg");
            }
            json.WriteEndObject();
            json.WriteEndObject();
        }
        return buffer.ToArray();
    }

    /// <param name="closeConnection">Ends the connection after the reply (a draining server).</param>
    public static async Task WriteErrorAsync(HttpResponse response, int status, string message, int? retryAfterSeconds = null,
        bool closeConnection = false)
    {
        if (response.HasStarted) return;
        await DrainUnreadBodyAsync(response.HttpContext);
        bool close = closeConnection || response.Headers.Connection == "close";
        response.Clear();
        response.StatusCode = status;
        if (close) response.Headers.Connection = "close";
        if (retryAfterSeconds is int seconds) response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (status == StatusCodes.Status401Unauthorized) response.Headers.WWWAuthenticate = "Bearer";
        await WriteJsonAsync(response, "error", message);
    }

    /// <summary>Largest unread body a refused request's connection reads and drops before the error goes out.</summary>
    private const long DrainLimitBytes = 16L << 20;

    /// <summary>How long reading a refused request's unread body may take.</summary>
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Reads and drops the body of a request refused before its body was read (401, 413 from its length, a bad
    /// query). A server that closes a connection with unread bytes resets it, and the reset can destroy the error
    /// reply before the client, still sending, reads it. Larger bodies are not read: the connection is closed.
    /// </summary>
    private static async Task DrainUnreadBodyAsync(HttpContext context)
    {
        long? length = context.Request.ContentLength;
        var limit = context.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (length is null || length > DrainLimitBytes || limit is not { IsReadOnly: false })
        {
            // Chunked, too large, or partly read already: drain nothing, and say the connection ends here.
            if (length is not 0) context.Response.Headers.Connection = "close";
            return;
        }
        limit.MaxRequestBodySize = length;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        timeout.CancelAfter(DrainTimeout);
        try
        {
            await context.Request.Body.CopyToAsync(Stream.Null, timeout.Token);
        }
        catch (Exception error) when (error is IOException or OperationCanceledException or BadHttpRequestException)
        {
            context.Response.Headers.Connection = "close";
        }
    }

    public static async Task WriteJsonAsync(HttpResponse response, string key, string value)
    {
        response.ContentType = JsonContentType;
        var body = JsonObject(key, value);
        response.ContentLength = body.Length;
        await response.Body.WriteAsync(body);
    }

    /// <summary>The bytes of <c>{"error": message}</c>.</summary>
    public static byte[] JsonError(string message) => JsonObject("error", message);

    private static byte[] JsonObject(string key, string value)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, Readable))
        {
            json.WriteStartObject();
            json.WriteString(key, value);
            json.WriteEndObject();
        }
        return buffer.ToArray();
    }
}
