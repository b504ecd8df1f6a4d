namespace NativeVae.Formats.Pickle;

// The only values a state-dict pickle may build. Plain values are long, double, string, bool, byte[] and
// PickleNone; tuples are object?[], lists List<object?>, dicts PickleDict.

/// <summary>Python's None (a distinct value, so that a missing entry and None are not confused).</summary>
internal sealed class PickleNone
{
    public static readonly PickleNone Value = new();
    private PickleNone() { }
    public override string ToString() => "None";
}

/// <summary>
/// A dict or <c>collections.OrderedDict</c>, in insertion order. Keys are hashed (a state dict of 100,000 tensors
/// was quadratic as a scanned list); keys are strings, integers and booleans, compared as .NET values.
/// </summary>
internal sealed class PickleDict
{
    private readonly List<KeyValuePair<object, object?>> _items = [];
    private readonly Dictionary<object, int> _index = [];

    /// <summary>The entries in insertion order; a key set again keeps its first place, as in Python.</summary>
    public IReadOnlyList<KeyValuePair<object, object?>> Items => _items;

    public int Count => _items.Count;

    public void Set(object key, object? value)
    {
        if (_index.TryGetValue(key, out int at))
        {
            _items[at] = new(key, value);
            return;
        }
        _index[key] = _items.Count;
        _items.Add(new(key, value));
    }

    public object? Get(string key) => _index.TryGetValue(key, out int at) ? _items[at].Value : null;
}

/// <summary>The globals a state dict needs; anything else in a pickle is refused.</summary>
internal enum PickleGlobal
{
    OrderedDict,
    RebuildTensorV2,
    RebuildParameter,
    FloatStorage,
    HalfStorage,
    BFloat16Storage,
}

/// <summary>A storage named by a persistent id <c>('storage', type, key, location, numel)</c>.</summary>
internal sealed record TorchStorageRef(DType DType, string Key, long ElementCount);

/// <summary>
/// A tensor view of a storage as <c>torch._utils._rebuild_tensor_v2</c> describes it; offset and strides in
/// elements. Only contiguous row-major views are accepted (checked when built).
/// </summary>
internal sealed record TorchTensorRef(TorchStorageRef Storage, long StorageOffset, TensorShape Shape);
