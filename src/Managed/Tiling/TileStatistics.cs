using NativeVae.Core;

namespace NativeVae.Tiling;

/// <summary>
/// The per-channel moments of a tensor written or read tile by tile, from the conv's epilogue where the device gives
/// them so, else from a statistics pass over each tile on the device. On a pinned space each tile's (mean, M2) rows are queued out beside the activations and merged when a
/// GroupNorm asks for them (<see cref="Merged"/>): one host wait then, none per tile. Elsewhere each tile's are
/// downloaded and merged as they come.
/// </summary>
internal sealed class TileStatistics : IDisposable
{
    /// <summary>(mean, M2) per channel.</summary>
    private const int ValuesPerChannel = 2;

    private readonly ActivationSpace _space;
    private readonly int _channels;
    private readonly SpaceTensor? _queued;
    private readonly List<(int Image, long Count)> _tiles = [];
    private readonly ChannelMoments _merged;

    /// <param name="tiles">how many tiles at most are added.</param>
    public TileStatistics(ActivationSpace space, int batch, int tiles, int channels)
    {
        _space = space;
        _channels = channels;
        _merged = new ChannelMoments(batch, channels);
        // fp32 whatever the space keeps feature maps in: statistics must not be rounded.
        if (space.IsPinned) _queued = space.New(TensorShape.Nchw(tiles, channels, 1, ValuesPerChannel), DType.F32);
    }

    /// <summary>Whether tiles' statistics are queued to the space (rather than downloaded as they come).</summary>
    public bool Queued => _queued is not null;

    /// <summary>
    /// Adds device tile <paramref name="y"/> [1, C, h, w] of image <paramref name="n"/>, with the (mean, M2) per channel
    /// its conv's epilogue left on the device (<paramref name="epilogue"/> [1, C, 2], disposed here), if any: else a
    /// statistics pass over the tile gives them.
    /// </summary>
    public void Add(IBackend device, Tensor y, int n, Tensor? epilogue = null)
    {
        if (_queued is null)
        {
            using (epilogue)
                _merged.Merge(n, ChannelMoments.Measure(device, y), 0);
            return;
        }
        using var statistics = epilogue ?? device.GroupNormStatistics(y, _channels);
        int row = ValuesPerChannel * _channels;
        _space.CopyOut(statistics, _queued, ElementRuns.Flat((long)_tiles.Count * row, row));
        _tiles.Add((n, (long)y.Shape.H * y.Shape.W));
    }

    /// <summary>The moments of every tile added (one host wait on a pinned space); call once.</summary>
    public ChannelMoments Merged()
    {
        if (_queued is null) return _merged;
        int row = ValuesPerChannel * _channels;
        var values = new float[_tiles.Count * row];
        _space.Read(_queued, 0, values);
        var meanM2 = new double[row];
        for (int i = 0; i < _tiles.Count; i++)
        {
            for (int j = 0; j < row; j++) meanM2[j] = values[i * row + j];
            _merged.Merge(_tiles[i].Image, meanM2, _tiles[i].Count);
        }
        return _merged;
    }

    public void Dispose() => _queued?.Dispose();
}
