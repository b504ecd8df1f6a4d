namespace NativeVae.Formats.SafeTensors;

/// <summary>One tensor's entry in a safetensors header; offsets are relative to the start of the data section.</summary>
internal sealed record SafeTensorInfo(string Name, DType DType, TensorShape Shape, long Begin, long End)
{
    public long ByteLength => End - Begin;
}
