using System.Text.Json;

namespace NativeVae.Core;

/// <summary>
/// Where a <see cref="JsonException"/> found the JSON malformed, in our words ("line 3, byte 17"): its own message
/// ("'}' is invalid after a value. Expected ... LineNumber: 2 | BytePositionInLine: 16.") never reaches the user.
/// </summary>
internal static class JsonErrorPosition
{
    /// <summary>The 1-based line and byte of the error, or "at the end" when the parser gives no position.</summary>
    public static string Of(JsonException e) =>
        e.LineNumber is long line && e.BytePositionInLine is long position
            ? $"line {line + 1}, byte {position + 1}" // JsonException counts from 0
            : "position unknown";
}
