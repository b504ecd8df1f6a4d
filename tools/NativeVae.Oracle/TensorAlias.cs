// The oracle's tensors are libtorch's: NativeVae.Core has a Tensor of its own (the backends' device tensor), and a
// file that imports both namespaces would otherwise not compile (CS0104).
global using Tensor = TorchSharp.torch.Tensor;
