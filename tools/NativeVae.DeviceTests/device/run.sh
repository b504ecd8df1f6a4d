#!/usr/bin/env bash
# Device check of NativeVae's ILGPU kernels on CUDA: device tests, bench, kernel bench, torch reference.
# Usage on the device machine: bash DEST/run.sh (DEST as made by bundle.sh beside it); logs go to $OUT (or /tmp/out).
# TESTS_ONLY=1 stops after the tests; SKIP_KB=1 / SKIP_TORCH=1 leave out the kernel bench (with the tensor-core
# convs) / the PyTorch references (cuDNN convs in fp32, TF32 and bf16 channels-last; the SD AutoencoderKL in fp32 and
# bf16 channels-last; scaled_dot_product_attention at 4k/16k/64k tokens beside the tensor-core attention). Every step has its own timeout, so one hang costs its step only (the timeouts sum to about 12 minutes, past a 10-minute device command: most steps end well inside theirs, and SKIP_KB / SKIP_TORCH shorten it);
# summary.jsonl joins the bench with PyTorch per (op, size): both times and their ratio. exact.log has the exact-tiled
# decodes at 2048 and 4096 (fp32 against untiled, fp32 under a 4 GB budget, bf16) with their peak device memory.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
here=$(cd "$(dirname "$0")" && pwd)
T0=$(date +%s)
stamp() { echo "=== $* (t=$(( $(date +%s) - T0 ))s)"; }
{
stamp env
nvidia-smi || true
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || true
uname -a; nproc
echo "--- ldconfig libcuda:"; ldconfig -p | grep -i libcuda || echo "(none in ldconfig)"
ls -la /usr/local/nvidia/lib64/libcuda* /usr/lib/x86_64-linux-gnu/libcuda* 2>/dev/null || true
} > "$OUT/env.log" 2>&1

stamp extract | tee -a "$OUT/env.log"
B=/tmp/nvb; rm -rf $B; mkdir -p $B
tar -xJf "$here/bundle.tar.xz" -C $B || { echo "extract failed" | tee -a "$OUT/env.log"; exit 9; }
export DOTNET_ROOT=$B/dotnet PATH=$B/dotnet:$PATH DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_gcServer=0
stamp extracted | tee -a "$OUT/env.log"

# Does ILGPU find the GPU as the system is (DllImport "cuda")? If not, offer libcuda.so beside libcuda.so.1.
{
stamp probe-plain
timeout 60 dotnet $B/app/NativeVae.DeviceTests.dll --require-cuda --list | head -40; rc=${PIPESTATUS[0]}
echo "probe rc=$rc"
if [ "$rc" = 3 ]; then
  so1=$(ldconfig -p | awk '/libcuda\.so\.1 .*x86-64/ {print $NF; exit}')
  [ -z "$so1" ] && so1=$(ls /usr/local/nvidia/lib64/libcuda.so.1 /usr/lib/x86_64-linux-gnu/libcuda.so.1 2>/dev/null | head -1)
  echo "no CUDA device through DllImport(cuda); linking libcuda.so -> $so1"
  mkdir -p /tmp/cudalink && ln -sf "$so1" /tmp/cudalink/libcuda.so
  export LD_LIBRARY_PATH=/tmp/cudalink:${LD_LIBRARY_PATH:-}
  stamp probe-linked
  timeout 60 dotnet $B/app/NativeVae.DeviceTests.dll --require-cuda --list | head -5; echo "probe rc=${PIPESTATUS[0]}"
fi
} >> "$OUT/env.log" 2>&1
echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}" >> "$OUT/env.log"
tail -3 "$OUT/env.log"

stamp tests
timeout ${TESTS_TIMEOUT:-150} dotnet $B/app/NativeVae.DeviceTests.dll --require-cuda > "$OUT/tests.log" 2>&1; echo "tests rc=$?" >> "$OUT/tests.log"
tail -25 "$OUT/tests.log"

[ -n "${TESTS_ONLY:-}" ] && { stamp done; exit 0; }

stamp bench
# SD encode/decode untiled in each storage dtype: fp32 on CUDA cores, bf16/fp16 on tensor cores (NHWC). A case the
# rate measured so far puts over --max-seconds is skipped, so 2048 runs only where it is fast.
for dtype in fp32 bf16 fp16; do
  timeout ${BENCH_TIMEOUT:-60} dotnet $B/cli/nativevae.dll bench --device cuda --family sd --sizes 512,1024,2048 --ops encode,decode \
    --tiling none --runs 3 --max-seconds 10 --dtype $dtype --json; echo "bench $dtype rc=$?"
done > "$OUT/bench.log" 2>&1
grep '^{' "$OUT/bench.log"; grep 'rc=' "$OUT/bench.log"

stamp exact-tiled
# Exact tiling on the device, its activations in pinned host memory: SD decode in fp32 at 2048 beside untiled in the
# same process (the bench's "x untiled" ratio and max abs), then at 2048 and 4096 under a forced 4 GB device budget,
# where the planner picks the largest tile that fits and untiled is refused; then bf16 with 512-pixel tiles. Peak
# device memory is in each JSON line. A case over --max-seconds is skipped.
{
timeout ${EXACT_TIMEOUT:-45} dotnet $B/cli/nativevae.dll bench --device cuda --family sd --sizes 2048 --ops decode \
  --tiling exact --tile 1024 --runs 1 --max-seconds 45 --dtype fp32 --json; echo "exact fp32 rc=$?"
timeout ${EXACT_TIMEOUT:-45} dotnet $B/cli/nativevae.dll bench --device cuda --family sd --sizes 2048,4096 --ops decode \
  --tiling exact --memory-limit-mb 4096 --runs 1 --max-seconds 45 --dtype fp32 --json; echo "exact fp32 4GB rc=$?"
timeout ${EXACT_TIMEOUT:-45} dotnet $B/cli/nativevae.dll bench --device cuda --family sd --sizes 2048,4096 --ops decode \
  --tiling exact --tile 512 --runs 1 --max-seconds 45 --dtype bf16 --json; echo "exact bf16 rc=$?"
} > "$OUT/exact.log" 2>&1
grep '^{' "$OUT/exact.log"; grep 'rc=' "$OUT/exact.log"

stamp kernelbench
[ -n "${SKIP_KB:-}" ] || timeout 90 dotnet $B/kb/NativeVae.KernelBench.dll --device cuda --runs 5 > "$OUT/kernelbench.log" 2>&1; echo "kb rc=$?" >> "$OUT/kernelbench.log"
[ -f "$OUT/kernelbench.log" ] && grep -v '^json ' "$OUT/kernelbench.log" | tail -60

stamp torch
[ -n "${SKIP_TORCH:-}" ] || PYTHONUNBUFFERED=1 timeout 35 python3 "$here/torchref.py" > "$OUT/torch.log" 2>&1; echo "torch rc=$?" >> "$OUT/torch.log"
[ -f "$OUT/torch.log" ] && cat "$OUT/torch.log"

stamp torch-vae
[ -n "${SKIP_TORCH:-}" ] || PYTHONUNBUFFERED=1 timeout 60 python3 "$here/torch_vae.py" 512 1024 > "$OUT/torch_vae.log" 2>&1; echo "torch_vae rc=$?" >> "$OUT/torch_vae.log"
[ -f "$OUT/torch_vae.log" ] && cat "$OUT/torch_vae.log"

stamp torch-attention
[ -n "${SKIP_TORCH:-}" ] || PYTHONUNBUFFERED=1 timeout 60 python3 "$here/torch_attention.py" > "$OUT/torch_attention.log" 2>&1; echo "torch_attention rc=$?" >> "$OUT/torch_attention.log"
[ -f "$OUT/torch_attention.log" ] && cat "$OUT/torch_attention.log"

stamp summary
python3 "$here/summary.py" "$OUT/bench.log" "$OUT/torch_vae.log" "$OUT/kernelbench.log" "$OUT/torch_attention.log" > "$OUT/summary.jsonl" 2>&1; cat "$OUT/summary.jsonl"

nvidia-smi --query-gpu=memory.used,temperature.gpu,clocks.sm --format=csv >> "$OUT/env.log" 2>&1
stamp done
