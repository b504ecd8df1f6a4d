#!/usr/bin/env bash
# NativeVae against libtorch on the same seeded AutoencoderKL; one JSON line per case. See README.md.
#
#   tools/NativeVae.PeerBench/run.sh [--family sd|sdxl] [--sizes 512] [--ops encode,decode] [--runs 3] [--rounds 1]
#
# The build patches TorchSharp's native shim for pre-GCC-13 libstdc++ with the oracle's native/prepare.sh (needs
# g++ and patchelf; on Debian, as root, a missing patchelf is installed here). The allocator settings below are the
# ones the program also gives each child process (ChildProcess.AllocatorEnvironment); exporting them here means
# they hold from the very first process on.
set -euo pipefail

readonly here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly repo="$(cd "$here/../.." && pwd)"

if ! command -v patchelf >/dev/null && command -v apt-get >/dev/null && [[ "$(id -u)" == 0 ]]; then
    echo "run.sh: installing patchelf (needed to patch TorchSharp's native library on this libstdc++)" >&2
    apt-get install -y patchelf >/dev/null || { apt-get update >/dev/null && apt-get install -y patchelf >/dev/null; }
fi

export THP_MEM_ALLOC_ENABLE=1               # libtorch: huge-page aligned blocks for large tensors
export MALLOC_MMAP_MAX_=0                   # glibc: large blocks from the heap, not a fresh mmap (page faults) each time
export MALLOC_TRIM_THRESHOLD_=68719476736   # glibc: keep freed memory for the next pass instead of returning it

cd "$repo"
exec dotnet run --project "$here/NativeVae.PeerBench.csproj" -c Release -- "$@"
