# Joins the device run's `nativevae bench --json` lines with torch_vae.py's lines per (op, size, dtype): one JSON line
# per case with NativeVae's and PyTorch's median times, their ratio and both peaks. NativeVae's fp16 is set beside
# PyTorch's bf16 (the reference times bf16 only); a case missing on either side is printed with what there is.
# With KernelBench's log and torch_attention.py's, it also joins the tensor-core attention with PyTorch's
# scaled_dot_product_attention per (tokens, dtype).
# Usage: python3 summary.py bench.log torch_vae.log [kernelbench.log torch_attention.log]
import json, re, sys


def json_lines(path, prefix=""):
    """The JSON objects of the lines of path that start with prefix followed by "{" (none if path is missing)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(prefix + "{"):
                    try:
                        yield json.loads(line[len(prefix):])
                    except json.JSONDecodeError:
                        pass
    except OSError:
        return


def attention(kernel_path, torch_path):
    torch_ms = {(t["tokens"], t["dtype"]): t for t in json_lines(torch_path) if t.get("op") == "attention"}
    for k in json_lines(kernel_path, "json "):
        m = re.match(r"attention N=(\d+) C=(\d+)", k["case"])
        if not m:
            continue
        ref = torch_ms.get((int(m.group(1)), k["format"]), {})
        print(json.dumps({
            "op": "attention", "tokens": int(m.group(1)), "channels": int(m.group(2)), "dtype": k["format"],
            "nativevae_ms": k["ms"], "nativevae_tflops": k["tflops"], "torch_sdpa_ms": ref.get("ms"),
            "ratio_to_torch": round(k["ms"] / ref["ms"], 3) if "ms" in ref else None,
        }))


def main(bench_path, torch_path):
    torch_ms = {(t["op"], t["size"], t["dtype"]): t for t in json_lines(torch_path) if "ms" in t}
    for b in json_lines(bench_path):
        ms = b["seconds_median"] * 1000
        ref = torch_ms.get((b["op"], b["size"], "fp32" if b["dtype"] == "fp32" else "bf16"))
        print(json.dumps({
            "op": b["op"], "size": b["size"], "dtype": b["dtype"], "device": b["device"],
            "nativevae_ms": round(ms, 3), "nativevae_peak_gib": round(b["peak_bytes"] / 2 ** 30, 3),
            "torch_dtype": ref and ref["dtype"], "torch_ms": ref and ref["ms"], "torch_peak_gib": ref and ref["peak_gib"],
            "ratio_to_torch": ref and round(ms / ref["ms"], 3),
        }))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
    if len(sys.argv) > 4:
        attention(sys.argv[3], sys.argv[4])
