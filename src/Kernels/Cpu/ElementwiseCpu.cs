using System.Runtime.CompilerServices;

namespace NativeVae.Kernels.Cpu;

// Elementwise ops on fp32 arrays: the math of each op is a small struct with one generic Invoke over the vector
// width; one driver loops, and handles the tail with one last full vector anchored at the end (recomputing a
// few lanes) instead of a scalar loop. Also the interleaved-RGB <-> NCHW conversions at the model's ends.

/// <summary>An elementwise function of one value, written once for every vector width.</summary>
internal interface IUnaryFunction
{
    TVec Invoke<TVec, TOps>(TVec x) where TVec : unmanaged where TOps : IVectorOps<TVec>;
}

/// <summary><c>x * sigmoid(x) = x / (1 + exp(-x))</c>.</summary>
internal readonly struct SiluFunction : IUnaryFunction
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TVec Invoke<TVec, TOps>(TVec x) where TVec : unmanaged where TOps : IVectorOps<TVec> =>
        TOps.Divide(x, TOps.Add(TOps.Broadcast(1f), TOps.Exp(TOps.Subtract(TOps.Zero, x))));
}

/// <summary><c>max(x, 0)</c>.</summary>
internal readonly struct ReluFunction : IUnaryFunction
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TVec Invoke<TVec, TOps>(TVec x) where TVec : unmanaged where TOps : IVectorOps<TVec> => TOps.Max(x, TOps.Zero);
}

/// <summary>
/// TAESD's soft clamp <c>3 tanh(x / 3) = 3 - 6 / (exp(2x / 3) + 1)</c>; the argument is clamped so exp stays
/// finite (tanh is +-1 to fp32 precision well before |x / 3| = 20).
/// </summary>
internal readonly struct TanhClamp3Function : IUnaryFunction
{
    private const float Limit = 3f;
    private const float Saturation = 60f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TVec Invoke<TVec, TOps>(TVec x) where TVec : unmanaged where TOps : IVectorOps<TVec>
    {
        var clamped = TOps.Min(TOps.Max(x, TOps.Broadcast(-Saturation)), TOps.Broadcast(Saturation));
        var e = TOps.Exp(TOps.Multiply(clamped, TOps.Broadcast(2f / Limit)));
        return TOps.Subtract(TOps.Broadcast(Limit), TOps.Divide(TOps.Broadcast(2f * Limit), TOps.Add(e, TOps.Broadcast(1f))));
    }
}

/// <summary><c>clamp(x, -1, 1)</c>.</summary>
internal readonly struct ClampUnitFunction : IUnaryFunction
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TVec Invoke<TVec, TOps>(TVec x) where TVec : unmanaged where TOps : IVectorOps<TVec> =>
        TOps.Min(TOps.Max(x, TOps.Broadcast(-1f)), TOps.Broadcast(1f));
}

/// <summary><c>x * Scale + Shift</c>, optionally followed by SiLU (GroupNorm's normalisation step).</summary>
internal readonly struct AffineFunction(float scale, float shift, bool silu) : IUnaryFunction
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TVec Invoke<TVec, TOps>(TVec x) where TVec : unmanaged where TOps : IVectorOps<TVec>
    {
        var y = TOps.MulAdd(x, TOps.Broadcast(scale), TOps.Broadcast(shift));
        return silu ? default(SiluFunction).Invoke<TVec, TOps>(y) : y;
    }
}

internal static unsafe class ElementwiseCpu
{
    /// <summary>Elements per parallel item: large enough to amortise the hand-off, small enough to balance.</summary>
    private const int ItemElements = 1 << 16;

    /// <summary>Per worker, for 16-bit tensors: an item's operands widened (two runs of <see cref="ItemElements"/>).</summary>
    private const int WidenSlot = 0;

    /// <summary>Per-worker scratch for items over 16-bit tensors, or null when every tensor is fp32.</summary>
    private static float** WidenScratch(CpuWorkers workers, StoredElements a, StoredElements b, StoredElements y) =>
        a.IsF32 && (b.IsNull || b.IsF32) && (y.IsNull || y.IsF32) ? null : workers.ScratchTable(WidenSlot, 2L * ItemElements);

    /// <summary>y[i] = f(x[i]) for i in [0, count). <paramref name="y"/> may equal <paramref name="x"/>.</summary>
    public static void Map<TFunction>(CpuWorkers workers, SimdWidth width, TFunction f, float* x, float* y, long count)
        where TFunction : unmanaged, IUnaryFunction =>
        Map(workers, width, f, new StoredElements(x, StorageType.F32), new StoredElements(y, StorageType.F32), count);

    /// <summary>The map on tensors of any storage type (16-bit ones widened and narrowed an item at a time).</summary>
    public static void Map<TFunction>(CpuWorkers workers, SimdWidth width, TFunction f, StoredElements x, StoredElements y, long count)
        where TFunction : unmanaged, IUnaryFunction
    {
        var job = new MapJob<TFunction> { F = f, X = x, Y = y, Count = count, Width = width, Scratch = WidenScratch(workers, x, default, y) };
        workers.Run(ItemsFor(count), ref job);
    }

    /// <summary>y[i] = a[i] + b[i].</summary>
    public static void Add(CpuWorkers workers, SimdWidth width, float* a, float* b, float* y, long count) =>
        Add(workers, width, new StoredElements(a, StorageType.F32), new StoredElements(b, StorageType.F32),
            new StoredElements(y, StorageType.F32), count);

    /// <summary>The sum on tensors of any storage type.</summary>
    public static void Add(CpuWorkers workers, SimdWidth width, StoredElements a, StoredElements b, StoredElements y, long count)
    {
        var job = new AddJob { A = a, B = b, Y = y, Count = count, Width = width, Scratch = WidenScratch(workers, a, b, y) };
        workers.Run(ItemsFor(count), ref job);
    }

    /// <summary>How many of x[0, count) are NaN or infinite (a model output that must not become black pixels).</summary>
    public static long CountNonFinite(CpuWorkers workers, float* x, long count) =>
        CountNonFinite(workers, new StoredElements(x, StorageType.F32), count);

    /// <summary>The count on a tensor of any storage type.</summary>
    public static long CountNonFinite(CpuWorkers workers, StoredElements x, long count)
    {
        int items = ItemsFor(count);
        if (items == 0) return 0;
        var counts = new long[items];
        fixed (long* c = counts)
        {
            var job = new CountNonFiniteJob { X = x, Count = count, Counts = c, Scratch = WidenScratch(workers, x, default, default) };
            workers.Run(items, ref job);
        }
        return counts.Sum();
    }

    // Per item a count of its own: no shared counter, no atomics. Scalar: one compare per element of a read pass.
    private struct CountNonFiniteJob : IWorkItem
    {
        public StoredElements X;
        public long Count;
        public long* Counts;
        public float** Scratch;

        public void Execute(int item, int worker)
        {
            long start = (long)item * ItemElements;
            int n = (int)Math.Min(ItemElements, Count - start);
            float* x = X.ReadOrPoint(start, Scratch == null ? null : Scratch[worker], n);
            long found = 0;
            for (int i = 0; i < n; i++)
                if (!float.IsFinite(x[i])) found++;
            Counts[item] = found;
        }
    }

    /// <summary>
    /// y[offset + i] = f(x[offset + i]) for i in [0, count), single-threaded, on tensors of any storage type: fp32
    /// ones read and written in place, 16-bit ones widened or narrowed <paramref name="chunk"/> values at a time
    /// through <paramref name="scratch"/> (<paramref name="chunk"/> floats; unused when both are fp32).
    /// </summary>
    public static void MapStored<TFunction>(SimdWidth width, TFunction f, StoredElements x, StoredElements y, long offset, long count,
        float* scratch, int chunk) where TFunction : unmanaged, IUnaryFunction
    {
        long step = x.IsF32 && y.IsF32 ? count : chunk; // fp32: one run, nothing to stage
        for (long s = 0; s < count; s += step)
        {
            int n = (int)Math.Min(step, count - s);
            float* dst = y.IsF32 ? y.F32 + offset + s : scratch;
            MapSpan(width, f, x.ReadOrPoint(offset + s, scratch, n), dst, n);
            if (!y.IsF32) y.Write(offset + s, dst, n);
        }
    }

    /// <summary>Single-threaded map over one contiguous run (the building block of the jobs and of GroupNorm).</summary>
    public static void MapSpan<TFunction>(SimdWidth width, TFunction f, float* x, float* y, long count)
        where TFunction : unmanaged, IUnaryFunction
    {
        var body = new MapSpanBody<TFunction> { F = f, X = x, Y = y, Count = count };
        SimdDispatch.Run(width, ref body);
    }

    private struct MapSpanBody<TFunction> : ISimdBody where TFunction : unmanaged, IUnaryFunction
    {
        public TFunction F;
        public float* X;
        public float* Y;
        public long Count;

        public void Invoke<TVec, TOps>() where TVec : unmanaged where TOps : IVectorOps<TVec> =>
            MapSpan<TVec, TOps, TFunction>(F, X, Y, Count);
    }

    /// <summary>The map at one width, for kernels that are already specialised on it.</summary>
    public static void MapSpan<TVec, TOps, TFunction>(TFunction f, float* x, float* y, long count)
        where TVec : unmanaged where TOps : IVectorOps<TVec> where TFunction : unmanaged, IUnaryFunction
    {
        int lanes = TOps.Lanes;
        if (count < lanes)
        {
            // Shorter than one vector: nothing to anchor a vector on.
            for (long i = 0; i < count; i++) y[i] = f.Invoke<float, ScalarOps>(x[i]);
            return;
        }
        long last = count - lanes;
        // When y aliases x, the anchored tail must read x before the main loop overwrites it.
        TVec tail = f.Invoke<TVec, TOps>(TOps.Load(x + last));
        for (long i = 0; i < last; i += lanes) TOps.Store(y + i, f.Invoke<TVec, TOps>(TOps.Load(x + i)));
        TOps.Store(y + last, tail);
    }

    private static void AddSpan<TVec, TOps>(float* a, float* b, float* y, long count)
        where TVec : unmanaged where TOps : IVectorOps<TVec>
    {
        int lanes = TOps.Lanes;
        if (count < lanes)
        {
            for (long i = 0; i < count; i++) y[i] = a[i] + b[i];
            return;
        }
        long last = count - lanes;
        TVec tail = TOps.Add(TOps.Load(a + last), TOps.Load(b + last));
        for (long i = 0; i < last; i += lanes) TOps.Store(y + i, TOps.Add(TOps.Load(a + i), TOps.Load(b + i)));
        TOps.Store(y + last, tail);
    }

    private static int ItemsFor(long count) => checked((int)((count + ItemElements - 1) / ItemElements));

    // Over 16-bit tensors an item's operands are widened into the worker's scratch, computed there in fp32 and
    // narrowed into the output; fp32 tensors are read and written in place.
    private struct MapJob<TFunction> : IWorkItem where TFunction : unmanaged, IUnaryFunction
    {
        public TFunction F;
        public StoredElements X;
        public StoredElements Y;
        public long Count;
        public SimdWidth Width;
        public float** Scratch;

        public void Execute(int item, int worker)
        {
            long start = (long)item * ItemElements;
            MapStored(Width, F, X, Y, start, Math.Min(ItemElements, Count - start), Scratch == null ? null : Scratch[worker], ItemElements);
        }
    }

    private struct AddJob : IWorkItem
    {
        public StoredElements A;
        public StoredElements B;
        public StoredElements Y;
        public long Count;
        public SimdWidth Width;
        public float** Scratch;

        public void Execute(int item, int worker)
        {
            long start = (long)item * ItemElements;
            int n = (int)Math.Min(ItemElements, Count - start);
            float* scratch = Scratch == null ? null : Scratch[worker];
            float* y = Y.IsF32 ? Y.F32 + start : scratch;
            var body = new AddSpanBody
            {
                A = A.ReadOrPoint(start, scratch, n), B = B.ReadOrPoint(start, scratch + ItemElements, n), Y = y, Count = n,
            };
            SimdDispatch.Run(Width, ref body);
            if (!Y.IsF32) Y.Write(start, y, n);
        }
    }

    private struct AddSpanBody : ISimdBody
    {
        public float* A;
        public float* B;
        public float* Y;
        public long Count;

        public void Invoke<TVec, TOps>() where TVec : unmanaged where TOps : IVectorOps<TVec> => AddSpan<TVec, TOps>(A, B, Y, Count);
    }

    private const int RgbChannels = 3;
    private const float ByteMax = 255f;

    /// <summary>Interleaved RGB bytes [N, H, W, 3] to fp32 [N, 3, H, W], <c>value = byte / 255 * scale + shift</c>.</summary>
    public static void ImageToTensor(CpuWorkers workers, byte* rgb, float* y, int batch, int height, int width, float scale, float shift) =>
        ImageToTensor(workers, rgb, new StoredElements(y, StorageType.F32), batch, height, width, scale, shift);

    /// <summary>The same into a tensor of any storage type.</summary>
    public static void ImageToTensor(CpuWorkers workers, byte* rgb, StoredElements y, int batch, int height, int width, float scale, float shift)
    {
        var job = new ImageJob { Rgb = rgb, Tensor = y, Height = height, Width = width, Scale = scale, Shift = shift, ToTensor = true };
        if (!y.IsF32) job.Rows = workers.ScratchTable(WidenSlot, width);
        workers.Run(checked(batch * height), ref job);
    }

    /// <summary>fp32 [N, 3, H, W] to RGB bytes [N, H, W, 3], <c>byte = round(clamp(value * scale + shift, 0, 1) * 255)</c>.</summary>
    public static void TensorToImage(CpuWorkers workers, float* x, byte* rgb, int batch, int height, int width, float scale, float shift) =>
        TensorToImage(workers, new StoredElements(x, StorageType.F32), rgb, batch, height, width, scale, shift);

    /// <summary>The same from a tensor of any storage type.</summary>
    public static void TensorToImage(CpuWorkers workers, StoredElements x, byte* rgb, int batch, int height, int width, float scale, float shift)
    {
        var job = new ImageJob { Rgb = rgb, Tensor = x, Height = height, Width = width, Scale = scale, Shift = shift, ToTensor = false };
        if (!x.IsF32) job.Rows = workers.ScratchTable(WidenSlot, width);
        workers.Run(checked(batch * height), ref job);
    }

    // One image row per item. Interleaving is a shuffle, not arithmetic; a scalar loop is memory-bound anyway.
    private struct ImageJob : IWorkItem
    {
        public byte* Rgb;
        public StoredElements Tensor;
        /// <summary>Per worker, for a 16-bit tensor: one channel row in fp32.</summary>
        public float** Rows;
        public int Height;
        public int Width;
        public float Scale;
        public float Shift;
        public bool ToTensor;

        public void Execute(int item, int worker)
        {
            int n = item / Height, row = item % Height;
            long plane = (long)Height * Width;
            byte* pixels = Rgb + ((long)n * Height + row) * Width * RgbChannels;
            long planes = (long)n * RgbChannels * plane + (long)row * Width;
            float* scratch = Rows == null ? null : Rows[worker];
            for (int c = 0; c < RgbChannels; c++)
            {
                long at = planes + c * plane;
                if (ToTensor)
                {
                    float* channel = Tensor.IsF32 ? Tensor.F32 + at : scratch;
                    float scale = Scale / ByteMax;
                    for (int x = 0; x < Width; x++) channel[x] = pixels[x * RgbChannels + c] * scale + Shift;
                    if (!Tensor.IsF32) Tensor.Write(at, channel, Width);
                }
                else
                {
                    float* channel = Tensor.ReadOrPoint(at, scratch, Width);
                    for (int x = 0; x < Width; x++)
                        pixels[x * RgbChannels + c] = (byte)MathF.Round(Math.Clamp(channel[x] * Scale + Shift, 0f, 1f) * ByteMax);
                }
            }
        }
    }
}
