namespace NativeVae.Kernels.Cpu;

// The pixel shuffles of Wan 2.2 (patchify, unpatchify, and its residual blocks' average-down and duplicate-up
// shortcuts) on NCHW: an item is one output row; each value is gathered from where PixelShuffleIndex (shared with the
// GPU kernel) says, summed over the channel group, into a per-worker row that is then written (narrowed for 16-bit
// storage) in one call. A gather with a stride of the factor does not vectorise; these passes are memory-bound and
// small beside the convolutions around them.

internal static unsafe class PixelShuffleCpu
{
    /// <summary>Per worker: one output row in fp32.</summary>
    private const int ScratchSlot = 0;

    /// <summary>Space to depth (<see cref="PixelShuffleParams"/>); <paramref name="previous"/> is read only when <c>HasPrevious</c> is set.</summary>
    public static void SpaceToDepth(CpuWorkers workers, in PixelShuffleParams p, StoredElements previous, StoredElements current, StoredElements y)
    {
        var job = new ShuffleJob { P = p, Previous = previous, Current = current, Y = y, ToDepth = true, Rows = workers.ScratchTable(ScratchSlot, p.OutWidth) };
        workers.Run(checked(p.Batch * p.OutChannels * p.OutHeight), ref job);
    }

    /// <summary>Depth to space (<see cref="PixelShuffleParams"/>).</summary>
    public static void DepthToSpace(CpuWorkers workers, in PixelShuffleParams p, StoredElements x, StoredElements y)
    {
        var job = new ShuffleJob { P = p, Current = x, Y = y, ToDepth = false, Rows = workers.ScratchTable(ScratchSlot, p.OutWidth) };
        workers.Run(checked(p.Batch * p.OutChannels * p.OutHeight), ref job);
    }

    private struct ShuffleJob : IWorkItem
    {
        public PixelShuffleParams P;
        public StoredElements Previous;
        public StoredElements Current;
        public StoredElements Y;
        public bool ToDepth;
        public float** Rows;

        public void Execute(int item, int worker)
        {
            int row = item % P.OutHeight, rest = item / P.OutHeight;
            int o = rest % P.OutChannels, n = rest / P.OutChannels;
            float* values = Rows[worker];
            for (int column = 0; column < P.OutWidth; column++)
                values[column] = ToDepth ? Mean(n, o, row, column) : Current[PixelShuffleIndex.DepthSource(P, n, o, row, column)];
            Y.Write((long)item * P.OutWidth, values, P.OutWidth);
        }

        private readonly float Mean(int n, int o, int y, int x)
        {
            float sum = 0f;
            for (int q = 0; q < P.Group; q++)
            {
                int j = o * P.Group + q;
                int at = PixelShuffleIndex.SourceIndex(P, n, j, y, x);
                if (PixelShuffleIndex.SourceFrame(P, j) == P.Frames - 1) sum += Current[at];
                else if (P.HasPrevious != 0) sum += Previous[at];
            }
            return sum / P.Group;
        }
    }
}
