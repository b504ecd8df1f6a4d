# The PyTorch reference for the tensor-core attention: torch.nn.functional.scaled_dot_product_attention, one head of
# C = 512 at 4k, 16k and 64k tokens (the mid-block of a 512, 1024 and 2048 image), bf16 and fp16, as [1, 1, N, C].
# PyTorch picks its own backend (flash attention stops at head size 256; the others serve 512). CUDA events, median
# of RUNS after WARMUP; one JSON line per case: {"ref":"torch","op":"attention","tokens","channels","dtype","ms","tflops"}.
import json, statistics
import torch
import torch.nn.functional as F

CHANNELS, TOKENS, WARMUP, RUNS = 512, (4096, 16384, 65536), 2, 5
dev = torch.device("cuda")
torch.manual_seed(0)
print("torch", torch.__version__, torch.cuda.get_device_name(0), flush=True)
for tokens in TOKENS:
    for name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        q, k, v = (torch.randn(1, 1, tokens, CHANNELS, device=dev, dtype=dtype) for _ in range(3))
        try:
            for _ in range(WARMUP):
                F.scaled_dot_product_attention(q, k, v)
            torch.cuda.synchronize()
            times = []
            for _ in range(RUNS):
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                F.scaled_dot_product_attention(q, k, v)
                b.record()
                torch.cuda.synchronize()
                times.append(a.elapsed_time(b))
            ms = statistics.median(times)
            print(json.dumps({"ref": "torch", "op": "attention", "tokens": tokens, "channels": CHANNELS, "dtype": name,
                              "ms": round(ms, 4), "tflops": round(4.0 * tokens * tokens * CHANNELS / ms / 1e9, 2)}), flush=True)
        except RuntimeError as e:  # out of memory on a small card: say so and go on
            print(json.dumps({"ref": "torch", "op": "attention", "tokens": tokens, "dtype": name, "error": str(e)[:200]}), flush=True)
        del q, k, v
        torch.cuda.empty_cache()
