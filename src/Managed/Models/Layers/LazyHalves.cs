using NativeVae.Core;

namespace NativeVae.Models.Layers;

/// <summary>
/// A VAE's encoder and decoder halves, each uploaded on its first use: a decode-only caller (diffusers'
/// <c>remote_decode</c>, a server that only decodes) never holds the encoder's weights. The weight source stays open
/// until both halves are uploaded, then <c>owner</c> (what keeps it readable: a mapped file) is disposed.
/// Thread-safe: a half is built once.
/// </summary>
internal sealed class LazyHalves<TEncoder, TDecoder> : IDisposable where TEncoder : class where TDecoder : class
{
    private readonly object _gate = new();
    private readonly IBackend _backend;
    private readonly IReadOnlyList<(string Name, TensorShape Shape)> _encoderParameters;
    private readonly IReadOnlyList<(string Name, TensorShape Shape)> _decoderParameters;
    private readonly Func<DeviceParameters, TEncoder> _buildEncoder;
    private readonly Func<DeviceParameters, TDecoder> _buildDecoder;
    private IWeightSource? _weights;
    private IDisposable? _owner;
    private (DeviceParameters Parameters, TEncoder Half)? _encoder;
    private (DeviceParameters Parameters, TDecoder Half)? _decoder;

    /// <param name="weights">already checked against every parameter the halves declare.</param>
    /// <param name="isEncoderParameter">which declared parameters the encoder half uploads; the rest are the decoder's.</param>
    public LazyHalves(IBackend backend, IWeightSource weights, IDisposable? owner, IEnumerable<(string Name, TensorShape Shape)> declared,
        Func<string, bool> isEncoderParameter, Func<DeviceParameters, TEncoder> buildEncoder, Func<DeviceParameters, TDecoder> buildDecoder)
    {
        _backend = backend;
        _weights = weights;
        _owner = owner;
        var all = declared.ToArray();
        _encoderParameters = all.Where(p => isEncoderParameter(p.Name)).ToArray();
        _decoderParameters = all.Where(p => !isEncoderParameter(p.Name)).ToArray();
        _buildEncoder = buildEncoder;
        _buildDecoder = buildDecoder;
    }

    public TEncoder Encoder
    {
        get
        {
            lock (_gate) return (_encoder ??= Load(_encoderParameters, _buildEncoder)).Half;
        }
    }

    public TDecoder Decoder
    {
        get
        {
            lock (_gate) return (_decoder ??= Load(_decoderParameters, _buildDecoder)).Half;
        }
    }

    /// <summary>Bytes of device memory held by the halves uploaded so far.</summary>
    public long ParameterBytes => (_encoder?.Parameters.TotalBytes ?? 0) + (_decoder?.Parameters.TotalBytes ?? 0);

    private (DeviceParameters, T) Load<T>(IReadOnlyList<(string Name, TensorShape Shape)> declared, Func<DeviceParameters, T> build)
    {
        var source = _weights ?? throw new ObjectDisposedException(GetType().Name);
        var parameters = new DeviceParameters(_backend, source, declared);
        T half;
        try
        {
            half = build(parameters);
        }
        catch
        {
            parameters.Dispose();
            throw;
        }
        if (_encoder is not null || _decoder is not null) ReleaseWeights(); // this was the second half
        return (parameters, half);
    }

    private void ReleaseWeights()
    {
        _owner?.Dispose();
        _owner = null;
        _weights = null;
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _encoder?.Parameters.Dispose();
            _decoder?.Parameters.Dispose();
            _encoder = null;
            _decoder = null;
            ReleaseWeights();
        }
    }
}
