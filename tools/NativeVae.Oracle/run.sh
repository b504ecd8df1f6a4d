#!/usr/bin/env bash
# Regenerates the committed oracle fixtures (tests/fixtures) with libtorch.
#
#   tools/NativeVae.Oracle/run.sh [--out DIR] [--shared DIR] [models] [ops] [taef2]
#
# The build patches TorchSharp's native shim for pre-GCC-13 libstdc++ (native/prepare.sh), which needs g++ and
# patchelf; on Debian, as root, a missing patchelf is installed here.
set -euo pipefail

readonly here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly repo="$(cd "$here/../.." && pwd)"

if ! command -v patchelf >/dev/null && command -v apt-get >/dev/null && [[ "$(id -u)" == 0 ]]; then
    echo "run.sh: installing patchelf (needed to patch TorchSharp's native library on this libstdc++)" >&2
    apt-get install -y patchelf >/dev/null || { apt-get update >/dev/null && apt-get install -y patchelf >/dev/null; }
fi

cd "$repo"
exec dotnet run --project "$here/NativeVae.Oracle.csproj" -- "$@"
