# The PyTorch reference for the device run: SD's AutoencoderKL (diffusers' architecture: block_out_channels
# 128/256/512/512, two resnets per down block and three per up block, GroupNorm(32, eps 1e-6), one-head mid-block
# attention, 4 latent channels) written in plain PyTorch, since the device image has torch but no diffusers.
# Weights are seeded (torch.manual_seed) and scaled so that activations stay O(1) in bf16. Times eager encode and
# decode in fp32 and in bf16 channels-last with CUDA events (median of RUNS after WARMUP), and prints one JSON line
# per case: {"ref":"torch","op","size","dtype","ms","peak_gib"}.
import json, statistics, sys
import torch
import torch.nn as nn
import torch.nn.functional as F

GROUPS, EPS, WARMUP, RUNS = 32, 1e-6, 2, 5
CHANNELS = (128, 256, 512, 512)


def conv(cin, cout, k=3, stride=1, pad=1):
    return nn.Conv2d(cin, cout, k, stride, pad)


class Resnet(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(GROUPS, cin, EPS), conv(cin, cout)
        self.norm2, self.conv2 = nn.GroupNorm(GROUPS, cout, EPS), conv(cout, cout)
        self.shortcut = conv(cin, cout, 1, 1, 0) if cin != cout else nn.Identity()

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.shortcut(x) + h


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm = nn.GroupNorm(GROUPS, c, EPS)
        self.q, self.k, self.v, self.out = (nn.Linear(c, c) for _ in range(4))

    def forward(self, x):
        b, c, h, w = x.shape
        t = self.norm(x).flatten(2).transpose(1, 2)  # [B, HW, C]
        q, k, v = (m(t).unsqueeze(1) for m in (self.q, self.k, self.v))
        y = F.scaled_dot_product_attention(q, k, v).squeeze(1)
        return x + self.out(y).transpose(1, 2).reshape(b, c, h, w)


class Mid(nn.Sequential):
    def __init__(self, c):
        super().__init__(Resnet(c, c), Attention(c), Resnet(c, c))


class Downsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = conv(c, c, 3, 2, 0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = conv(c, c)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        layers, cin = [conv(3, CHANNELS[0])], CHANNELS[0]
        for i, cout in enumerate(CHANNELS):
            layers += [Resnet(cin, cout), Resnet(cout, cout)]
            if i < len(CHANNELS) - 1:
                layers.append(Downsample(cout))
            cin = cout
        layers += [Mid(cin), nn.GroupNorm(GROUPS, cin, EPS), nn.SiLU(), conv(cin, 8), conv(8, 8, 1, 1, 0)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)[:, :4]  # the posterior's mean


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        rev = tuple(reversed(CHANNELS))
        layers, cin = [conv(4, 4, 1, 1, 0), conv(4, rev[0]), Mid(rev[0])], rev[0]
        for i, cout in enumerate(rev):
            layers += [Resnet(cin, cout), Resnet(cout, cout), Resnet(cout, cout)]
            if i < len(rev) - 1:
                layers.append(Upsample(cout))
            cin = cout
        layers += [nn.GroupNorm(GROUPS, cin, EPS), nn.SiLU(), conv(cin, 3)]
        self.layers = nn.Sequential(*layers)

    def forward(self, z):
        return self.layers(z)


def seeded(module):
    torch.manual_seed(0)
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_uniform_(m.weight, a=5 ** 0.5)
            nn.init.zeros_(m.bias)
    return module


def time_ms(fn):
    for _ in range(WARMUP):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(RUNS):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); fn(); b.record(); torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def main(sizes):
    dev = torch.device("cuda")
    print("torch", torch.__version__, torch.cuda.get_device_name(0), file=sys.stderr)
    encoder, decoder = seeded(Encoder()).to(dev).eval(), seeded(Decoder()).to(dev).eval()
    for dtype, name, layout in ((torch.float32, "fp32", torch.contiguous_format), (torch.bfloat16, "bf16", torch.channels_last)):
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        enc, dec = encoder.to(dtype=dtype, memory_format=layout), decoder.to(dtype=dtype, memory_format=layout)
        for size in sizes:
            for op, model, shape in (("encode", enc, (1, 3, size, size)), ("decode", dec, (1, 4, size // 8, size // 8))):
                try:
                    x = torch.randn(shape, device=dev, dtype=dtype).contiguous(memory_format=layout)
                    torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
                    with torch.inference_mode():
                        ms = time_ms(lambda: model(x))
                    peak = torch.cuda.max_memory_allocated() / 2 ** 30
                    print(json.dumps({"ref": "torch", "op": op, "size": size, "dtype": name, "ms": round(ms, 3), "peak_gib": round(peak, 2)}), flush=True)
                except torch.OutOfMemoryError:
                    print(json.dumps({"ref": "torch", "op": op, "size": size, "dtype": name, "error": "out of memory"}), flush=True)


if __name__ == "__main__":
    main([int(s) for s in (sys.argv[1:] or ["512", "1024"])])
