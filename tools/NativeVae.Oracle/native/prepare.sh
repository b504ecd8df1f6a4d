#!/usr/bin/env bash
# Makes TorchSharp 0.107's native shim loadable on a system whose libstdc++ predates GCC 13 (Debian 12: GCC 12).
#
# libLibTorchSharp.so requires GLIBCXX_3.4.32 for exactly one symbol, std::ios_base_library_init(). Without it,
# dlopen fails and TorchSharp reports a misleading "no reference to libtorch-cpu" error. This script, run by the
# generator's build (see NativeVae.Oracle.csproj), patches the COPY of the library in the build output:
#   1. builds build/libglibcxx_shim.so (defines the symbol) and build/weaken_version (a 60-line ELF editor);
#   2. patchelf --clear-symbol-version: the symbol no longer asks for GLIBCXX_3.4.32;
#   3. weaken_version: the file-level GLIBCXX_3.4.32 requirement becomes weak, so ld.so no longer refuses it;
#   4. patchelf --add-needed libglibcxx_shim.so, copied beside it (found through its RUNPATH $ORIGIN).
# Idempotent; does nothing when the system libstdc++ already has GLIBCXX_3.4.32. The NuGet cache is untouched.
#
# Usage: prepare.sh NATIVE_DIR   (the runtimes/linux-x64/native folder of the build output)
set -euo pipefail

readonly native_dir="$1"
readonly here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly build="$here/build"
readonly target="$native_dir/libLibTorchSharp.so"
readonly version="GLIBCXX_3.4.32"
readonly symbol="_ZSt21ios_base_library_initv"
readonly shim="libglibcxx_shim.so"

[[ -f "$target" ]] || { echo "prepare.sh: $target not found (has the project been restored?)" >&2; exit 1; }

system_libstdcxx="$(ldconfig -p | awk '/libstdc\+\+\.so\.6 .*x86-64/ { print $NF; exit }')"
if [[ -n "$system_libstdcxx" ]] && grep -qa "$version" "$system_libstdcxx"; then
    exit 0
fi

if readelf -d "$target" | grep -q "\[$shim\]"; then
    exit 0 # already patched (an incremental build left the patched copy in place)
fi

for tool in g++ gcc patchelf readelf; do
    command -v "$tool" >/dev/null || {
        echo "prepare.sh: '$tool' is required to patch $target for this libstdc++ (Debian: apt-get install -y patchelf g++)" >&2
        exit 1
    }
done

mkdir -p "$build"
if [[ ! -f "$build/$shim" || "$here/glibcxx_shim.cpp" -nt "$build/$shim" ]]; then
    g++ -shared -fPIC -O2 -o "$build/$shim" "$here/glibcxx_shim.cpp"
fi
if [[ ! -f "$build/weaken_version" || "$here/weaken_version.c" -nt "$build/weaken_version" ]]; then
    gcc -O2 -Wall -Wextra -o "$build/weaken_version" "$here/weaken_version.c"
fi

# Patch a temporary copy and move it into place, so a failure never leaves a half-patched library.
readonly temp="$target.patching"
cp "$target" "$temp"
patchelf --clear-symbol-version "$symbol" "$temp"
"$build/weaken_version" "$temp" "$version"
patchelf --add-needed "$shim" "$temp"
cp "$build/$shim" "$native_dir/$shim"
mv "$temp" "$target"
echo "prepare.sh: patched $target for a pre-GCC-13 libstdc++ (see tools/NativeVae.Oracle/README.md)"
