using System.Net;

namespace NativeVae;

/// <summary>
/// A hybrid-inference endpoint answered with an error status. The server's own words are in
/// <see cref="ServerMessage"/>: the <c>error</c> field of the protocol's JSON error body <c>{"error": "..."}</c>, or
/// the start of whatever else it sent.
/// </summary>
public sealed class RemoteVaeException : Exception
{
    /// <summary>An error reply of <paramref name="endpoint"/>; the message names the endpoint, the status and the server's message.</summary>
    /// <param name="endpoint">The endpoint called.</param>
    /// <param name="statusCode">The reply's status.</param>
    /// <param name="serverMessage">What the server said (may be empty).</param>
    public RemoteVaeException(Uri endpoint, HttpStatusCode statusCode, string serverMessage)
        : base($"{endpoint}: the server answered {(int)statusCode} {statusCode}" +
               (serverMessage.Length > 0 ? $": {serverMessage}" : " with no message"))
    {
        Endpoint = endpoint;
        StatusCode = statusCode;
        ServerMessage = serverMessage;
    }

    /// <summary>The endpoint that answered.</summary>
    public Uri Endpoint { get; }

    /// <summary>The reply's HTTP status (400 for every failure of the diffusers endpoints' handler).</summary>
    public HttpStatusCode StatusCode { get; }

    /// <summary>The server's message: the JSON body's <c>error</c> field, else the body's text, truncated.</summary>
    public string ServerMessage { get; }
}
