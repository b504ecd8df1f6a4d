// The public types the CLI names that still live in sub-namespaces of the library (DType, TensorShape,
// HostTensor<T>, ModelFamily, ImageFormat, DevicePreference). Once they move into namespace NativeVae, which
// the CLI's namespaces see already, these lines go.
global using NativeVae.Backends;
global using NativeVae.Models;
global using NativeVae.Tensors;
