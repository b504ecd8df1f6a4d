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

/// <summary>A dict or <c>collections.OrderedDict</c>, in insertion order.</summary>
internal sealed class PickleDict
{
    public List<KeyValuePair<object, object?>> Items { get; } = [];

    public void Set(object key, object? value)
    {
        for (int i = 0; i < Items.Count; i++)
        {
            if (Equals(Items[i].Key, key))
            {
                Items[i] = new(key, value);
                return;
            }
        }
        Items.Add(new(key, value));
    }

    public object? Get(string key) => Items.FirstOrDefault(kv => kv.Key is string s && s == key).Value;
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
