# Reference: PyTorch (cuDNN) timings of the SD VAE's heavy conv shapes (the same as NativeVae.KernelBench's): plain
# fp32 (TF32 off), TF32, and bf16 channels-last (what the tensor-core conv is held against; the two 1024 / 128 and
# 128 / 512 shapes are the tensor-core issue's). Median of 10 after 3 warm-ups, CUDA events.
import torch, statistics
torch.manual_seed(0)
dev = torch.device("cuda")
print("torch", torch.__version__, torch.cuda.get_device_name(0), "cudnn", torch.backends.cudnn.version())
torch.backends.cudnn.benchmark = True
shapes = [  # label, cin, cout, size, k, stride, pad, upsample
    ("conv 3x3 128->128 @512", 128, 128, 512, 3, 1, 1, False),
    ("conv 3x3 256->256 @256", 256, 256, 256, 3, 1, 1, False),
    ("conv 3x3 512->512 @128", 512, 512, 128, 3, 1, 1, False),
    ("conv 3x3 512->512 @64", 512, 512, 64, 3, 1, 1, False),
    ("upsample2x+conv 3x3 512->512 @64", 512, 512, 64, 3, 1, 1, True),
    ("conv 1x1 256->128 @512", 256, 128, 512, 1, 1, 0, False),
    ("conv 3x3 128->128 @1024", 128, 128, 1024, 3, 1, 1, False),
]
def bench(fn, n=10):
    for _ in range(3): fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(n):
        a = torch.cuda.Event(enable_timing=True); b = torch.cuda.Event(enable_timing=True)
        a.record(); fn(); b.record(); torch.cuda.synchronize()
        ts.append(a.elapsed_time(b))
    return statistics.median(ts)
for mode in ("fp32", "tf32", "bf16-cl"):
    tf32 = mode == "tf32"
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    dtype = torch.bfloat16 if mode == "bf16-cl" else torch.float32
    layout = torch.channels_last if mode == "bf16-cl" else torch.contiguous_format
    for label, cin, cout, size, k, s, p, up in shapes:
        x = torch.randn(1, cin, size, size, device=dev, dtype=dtype).contiguous(memory_format=layout)
        w = (torch.randn(cout, cin, k, k, device=dev) * 0.02).to(dtype).contiguous(memory_format=layout)
        bias = torch.randn(cout, device=dev, dtype=dtype)
        def fn():
            xx = torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest") if up else x
            return torch.nn.functional.conv2d(xx, w, bias, stride=s, padding=p)
        out_size = size * (2 if up else 1)
        flops = 2.0 * cin * cout * k * k * out_size * out_size
        ms = bench(fn)
        print(f"torch {mode:7s} {label:36s} {ms:9.3f} ms {flops / ms / 1e6:9.0f} GFLOP/s")
# whole-VAE-like scale: peak fp32 matmul for context
torch.backends.cuda.matmul.allow_tf32 = False
a = torch.randn(8192, 8192, device=dev); b = torch.randn(8192, 8192, device=dev)
ms = bench(lambda: a @ b, 5)
print(f"torch fp32 matmul 8192^3 {ms:.2f} ms {2 * 8192**3 / ms / 1e6:.0f} GFLOP/s")
