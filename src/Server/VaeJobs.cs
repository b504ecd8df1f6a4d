namespace NativeVae.Server;

/// <summary>What a job sends back: a tensor (raw bytes with <c>shape</c>/<c>dtype</c>) or one encoded image.</summary>
internal abstract record Reply;

internal sealed record TensorReply(TensorShape Shape, WireDType DType, byte[] Body) : Reply;

internal sealed record ImageReply(ImageFormat Format, byte[] Body) : Reply;

/// <summary>A decoded video as MP4 bytes (<c>output_type=mp4</c>).</summary>
internal sealed record Mp4Reply(byte[] Body) : Reply;

/// <summary>
/// One request's work for a model's <see cref="ModelWorker"/>. Jobs with equal <see cref="BatchKey"/>s may run as one
/// batch (their tensors stacked along N); the first job of a batch runs it and each job gets its own slice.
/// </summary>
internal abstract class VaeJob(CancellationToken cancellation)
{
    private readonly TaskCompletionSource<Reply> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>The request's cancellation: its client went away, or its timeout passed.</summary>
    public CancellationToken Cancellation { get; } = cancellation;

    public Task<Reply> Reply => _done.Task;

    /// <summary>Batch items in the job's tensor (its N).</summary>
    public abstract int Items { get; }

    /// <summary>Jobs with equal keys may run as one batch; null runs alone.</summary>
    public abstract object? BatchKey { get; }

    /// <summary>Items in the run this job was part of (for the request log and the batch-size histogram).</summary>
    public int RanInBatchOf { get; set; }

    /// <summary>
    /// The job's plan and cost from a dry run, checked as the call would check it; null where the size is known only
    /// once the input is decoded (image files, bounded by the pixel limit).
    /// </summary>
    public abstract VaeCallPlan? Plan(Vae vae);

    /// <summary>The job's input, as its request's <c>shape</c> gave it (for messages).</summary>
    public abstract TensorShape InputShape { get; }

    /// <summary>Runs <paramref name="batch"/> (jobs of this job's key) and returns one reply per job, in order.</summary>
    public abstract Task<IReadOnlyList<Reply>> RunAsync(Vae vae, IReadOnlyList<VaeJob> batch, CancellationToken cancellation);

    public void Complete(Reply reply) => _done.TrySetResult(reply);

    public void Fail(Exception error) => _done.TrySetException(error);

    public void Cancel() => _done.TrySetCanceled(Cancellation);

    /// <summary>The batch's inputs stacked along N (no copy for a single job).</summary>
    protected static HostTensor<T> Stack<T>(IReadOnlyList<VaeJob> batch, Func<VaeJob, HostTensor<T>> input) where T : unmanaged =>
        batch.Count == 1 ? input(batch[0]) : BatchTensors.Concat(batch.Select(input).ToArray());

    /// <summary>Splits a batched output along N back into one reply per job.</summary>
    protected static IReadOnlyList<Reply> Split<T>(IReadOnlyList<VaeJob> batch, HostTensor<T> output, Func<HostTensor<T>, Reply> reply)
        where T : unmanaged
    {
        var replies = new Reply[batch.Count];
        int start = 0;
        for (int i = 0; i < batch.Count; i++)
        {
            replies[i] = reply(BatchTensors.Slice(output, start, batch[i].Items));
            start += batch[i].Items;
        }
        return replies;
    }
}

/// <summary>A decode: latents <c>[N, C, h, w]</c> or packed <c>[N, seq, 64]</c>, answered as a tensor or one image.</summary>
internal sealed class DecodeJob(HostTensor<float> latents, DecodeOptions options, WireDType floatReplyDType, CancellationToken cancellation)
    : VaeJob(cancellation)
{
    private sealed record Key(string ItemShape, DecodeOptions Options, WireDType FloatReplyDType);

    public HostTensor<float> Latents { get; } = latents;

    public override int Items => Latents.Shape[0];

    public override object BatchKey => new Key(BatchTensors.ItemShape(Latents.Shape), options, floatReplyDType);

    public override VaeCallPlan? Plan(Vae vae) => vae.PlanDecode(Latents.Shape, options);

    public override TensorShape InputShape => Latents.Shape;

    public override async Task<IReadOnlyList<Reply>> RunAsync(Vae vae, IReadOnlyList<VaeJob> batch, CancellationToken cancellation)
    {
        using var result = await vae.DecodeAsync(Stack(batch, j => ((DecodeJob)j).Latents), options, cancellation);
        return options.Output switch
        {
            DecodeOutput.FloatTensor => Split(batch, result.FloatTensor, t => new TensorReply(t.Shape, floatReplyDType, WireTensor.FromFloat(t, floatReplyDType))),
            DecodeOutput.UInt8Tensor => Split(batch, result.UInt8Tensor, t => new TensorReply(t.Shape, WireDType.UInt8, t.Data)),
            // An image reply holds one image: each job carries one item (the first of its request).
            DecodeOutput.EncodedImages => result.EncodedImages.Select(file => (Reply)new ImageReply(options.ImageFormat, file)).ToArray(),
            _ => throw new InvalidOperationException($"decode output {options.Output} is not one the protocol sends"),
        };
    }
}

/// <summary>An encode of an image tensor <c>[N, 3, H, W]</c> in [-1, 1]; the reply is float32 latents.</summary>
internal sealed class EncodeTensorJob(HostTensor<float> images, EncodeOptions options, CancellationToken cancellation) : VaeJob(cancellation)
{
    private sealed record Key(string ItemShape, EncodeOptions Options);

    public HostTensor<float> Images { get; } = images;

    public override int Items => Images.Shape[0];

    public override object BatchKey => new Key(BatchTensors.ItemShape(Images.Shape), options);

    public override VaeCallPlan? Plan(Vae vae) => vae.PlanEncode(Images.Shape, options);

    public override TensorShape InputShape => Images.Shape;

    public override async Task<IReadOnlyList<Reply>> RunAsync(Vae vae, IReadOnlyList<VaeJob> batch, CancellationToken cancellation)
    {
        var latents = await vae.EncodeAsync(Stack(batch, j => ((EncodeTensorJob)j).Images), options, cancellation);
        return Split(batch, latents, EncodeReply);
    }

    /// <summary>Encode replies are float32: a latent rounded to fp16 would lose more than the model's own error.</summary>
    public static Reply EncodeReply(HostTensor<float> latents) =>
        new TensorReply(latents.Shape, WireDType.Float32, WireTensor.FromFloat(latents, WireDType.Float32));
}

/// <summary>An encode of image file bytes (PNG, JPEG, WebP, BMP); runs alone, since its size is known only once decoded.</summary>
internal sealed class EncodeImageJob(byte[] file, EncodeOptions options, CancellationToken cancellation) : VaeJob(cancellation)
{
    public override int Items => 1;

    public override object? BatchKey => null;

    public override VaeCallPlan? Plan(Vae vae) => null;

    public override TensorShape InputShape => new(file.Length);

    public override async Task<IReadOnlyList<Reply>> RunAsync(Vae vae, IReadOnlyList<VaeJob> batch, CancellationToken cancellation)
    {
        using var stream = new MemoryStream(file, writable: false);
        return [EncodeTensorJob.EncodeReply(await vae.EncodeAsync(stream, options, "the request body", cancellation))];
    }
}

/// <summary>Stacking and slicing row-major tensors along their first axis.</summary>
internal static class BatchTensors
{
    /// <summary>The shape without its first axis, as a key: tensors with equal item shapes stack.</summary>
    public static string ItemShape(TensorShape shape) => new TensorShape(shape.Dims[1..].ToArray()).ToString();

    public static HostTensor<T> Concat<T>(IReadOnlyList<HostTensor<T>> parts) where T : unmanaged
    {
        var dims = parts[0].Shape.Dims.ToArray();
        dims[0] = parts.Sum(p => p.Shape[0]);
        var data = new T[parts.Sum(p => p.Data.LongLength)];
        long offset = 0;
        foreach (var part in parts)
        {
            part.Data.CopyTo(data, offset);
            offset += part.Data.LongLength;
        }
        return new HostTensor<T>(new TensorShape(dims), data);
    }

    public static HostTensor<T> Slice<T>(HostTensor<T> tensor, int start, int count) where T : unmanaged
    {
        if (start == 0 && count == tensor.Shape[0]) return tensor;
        var dims = tensor.Shape.Dims.ToArray();
        long itemElements = tensor.Data.LongLength / dims[0];
        dims[0] = count;
        var data = tensor.Data.AsSpan((int)(start * itemElements), (int)(count * itemElements)).ToArray();
        return new HostTensor<T>(new TensorShape(dims), data);
    }
}

/// <summary>
/// A video decode (a video family's 5-D latent <c>[N, C, T', h, w]</c>): with <paramref name="tensorReply"/> a float
/// dtype the float video <c>[N, 3, T, H, W]</c>, with uint8 its pixels <c>[N, T, H, W, 3]</c>; without, one video as
/// MP4 at <paramref name="fps"/>. Runs alone: its memory is that of one frame at a time.
/// </summary>
internal sealed class VideoDecodeJob(HostTensor<float> latents, DecodeOptions options, WireDType? tensorReply, double fps,
    CancellationToken cancellation) : VaeJob(cancellation)
{
    public override int Items => latents.Shape[0];

    public override object? BatchKey => null;

    public override VaeCallPlan? Plan(Vae vae) => vae.PlanDecodeVideo(latents.Shape, options);

    public override TensorShape InputShape => latents.Shape;

    public override async Task<IReadOnlyList<Reply>> RunAsync(Vae vae, IReadOnlyList<VaeJob> batch, CancellationToken cancellation)
    {
        var video = await vae.DecodeVideoAsync(latents, options, cancellation);
        Reply reply = tensorReply switch
        {
            null => new Mp4Reply(VideoFiles.EncodeMp4(video, fps)),
            WireDType.UInt8 => PixelsReply(VideoPixels.ToUInt8(video)),
            { } dtype => new TensorReply(video.Shape, dtype, WireTensor.FromFloat(video, dtype)),
        };
        return [reply];
    }

    private static TensorReply PixelsReply(HostTensor<byte> pixels) => new(pixels.Shape, WireDType.UInt8, pixels.Data);
}

/// <summary>A video encode of <c>[N, 3, T, H, W]</c> in [-1, 1] (a video family); the reply is the float32 5-D latent.</summary>
internal sealed class VideoEncodeJob(HostTensor<float> video, EncodeOptions options, CancellationToken cancellation) : VaeJob(cancellation)
{
    public override int Items => video.Shape[0];

    public override object? BatchKey => null;

    public override VaeCallPlan? Plan(Vae vae) => vae.PlanEncodeVideo(video.Shape, options);

    public override TensorShape InputShape => video.Shape;

    public override async Task<IReadOnlyList<Reply>> RunAsync(Vae vae, IReadOnlyList<VaeJob> batch, CancellationToken cancellation) =>
        [EncodeTensorJob.EncodeReply(await vae.EncodeVideoAsync(video, options, cancellation))];
}
