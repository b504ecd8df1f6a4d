using Microsoft.AspNetCore.Http;

namespace NativeVae.Server;

/// <summary>A request the server refuses, with the status to answer and a message that names the field.</summary>
internal sealed class ProtocolException(int status, string message) : Exception(message)
{
    public int Status { get; } = status;

    public static ProtocolException BadRequest(string message) => new(StatusCodes.Status400BadRequest, message);
}

/// <summary>Maps what a request's handling threw to the status the client gets; nothing but a bug is a 500.</summary>
internal static class ProtocolError
{
    public static int StatusOf(Exception error) => error switch
    {
        ProtocolException p => p.Status,
        BadHttpRequestException b => b.StatusCode,
        // The model's own checks of shapes, options, image bytes and finiteness: the request is at fault.
        ArgumentException or InvalidDataException or FormatException or NotSupportedException
            or System.Text.Json.JsonException => StatusCodes.Status400BadRequest,
        // The memory planner refused the size before starting: the request is too large for this server.
        InsufficientMemoryException => StatusCodes.Status413PayloadTooLarge,
        _ => StatusCodes.Status500InternalServerError,
    };

    /// <summary>
    /// The client reset or closed the connection (mid-body, or while its work waited or ran): whatever the read, the
    /// wait or the write then threw is the client's doing, not a fault of the request or the server.
    /// </summary>
    public static bool ClientWentAway(HttpContext context, Exception error) =>
        context.RequestAborted.IsCancellationRequested || error is Microsoft.AspNetCore.Connections.ConnectionResetException;

    /// <summary>The message the client sees: the exception's own for its errors, never a stack trace or an internal one.</summary>
    public static string MessageOf(Exception error, int status) => status == StatusCodes.Status500InternalServerError
        ? "internal server error; the server's log has the details"
        : error.Message;
}
