namespace NativeVae.Tests.Fuzz;

/// <summary>
/// Seeded byte mutations as an attacker tries them: random bytes, boundary integers written over length fields,
/// truncation, duplicated and inserted runs. Half the offsets fall in the first bytes, where the headers are.
/// </summary>
internal sealed class Mutator(int seed)
{
    private const int HeaderBytes = 64;
    private const int MaxFlips = 8;

    private static readonly long[] Boundaries = [0, 1, -1, 255, 65535, int.MaxValue, int.MinValue, uint.MaxValue, 1L << 31, 1L << 40, long.MaxValue];

    private readonly Random _random = new(seed);

    /// <summary>A mutated copy of <paramref name="input"/> and a word on what was done.</summary>
    public (byte[] Bytes, string What) Mutate(byte[] input)
    {
        var bytes = (byte[])input.Clone();
        if (bytes.Length == 0) return ([0], "empty -> one zero byte");
        switch (_random.Next(6))
        {
            case 0:
            {
                int flips = 1 + _random.Next(MaxFlips);
                for (int i = 0; i < flips; i++) bytes[Offset(bytes.Length)] = (byte)_random.Next(256);
                return (bytes, $"{flips} random byte(s)");
            }
            case 1:
            {
                long value = Boundaries[_random.Next(Boundaries.Length)];
                int width = _random.Next(2) == 0 ? 4 : 8;
                int at = Math.Min(Offset(bytes.Length), Math.Max(0, bytes.Length - width));
                for (int i = 0; i < width && at + i < bytes.Length; i++) bytes[at + i] = (byte)(value >> (8 * i));
                return (bytes, $"{width}-byte {value} at {at}");
            }
            case 2:
            {
                int keep = _random.Next(bytes.Length);
                return (bytes[..keep], $"truncated to {keep} of {bytes.Length}");
            }
            case 3:
            {
                int start = Offset(bytes.Length), length = 1 + _random.Next(Math.Min(4096, bytes.Length - start));
                return ([.. bytes[..(start + length)], .. bytes[start..(start + length)], .. bytes[(start + length)..]], $"{length} bytes at {start} repeated");
            }
            case 4:
            {
                int at = Offset(bytes.Length), length = 1 + _random.Next(64);
                var noise = new byte[length];
                _random.NextBytes(noise);
                return ([.. bytes[..at], .. noise, .. bytes[at..]], $"{length} random bytes inserted at {at}");
            }
            default:
            {
                // A digit run in a text header (safetensors' JSON, a config) becomes a boundary number.
                string[] numbers = ["0", "-1", "2147483648", "99999999999999999999", "1e308", "NaN"];
                int at = Offset(bytes.Length);
                while (at < bytes.Length && !char.IsAsciiDigit((char)bytes[at])) at++;
                if (at == bytes.Length) return (bytes[..Math.Max(0, bytes.Length - 1)], "no digit found: last byte dropped");
                int end = at;
                while (end < bytes.Length && char.IsAsciiDigit((char)bytes[end])) end++;
                string number = numbers[_random.Next(numbers.Length)];
                return ([.. bytes[..at], .. System.Text.Encoding.ASCII.GetBytes(number), .. bytes[end..]], $"number at {at} -> {number}");
            }
        }
    }

    private int Offset(int length) => _random.Next(2) == 0 ? _random.Next(Math.Min(length, HeaderBytes)) : _random.Next(length);
}
