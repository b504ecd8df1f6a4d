#!/usr/bin/env bash
# Fetches NVIDIA's offline PTX tools (ptxas, cuobjdump, nvdisasm from CUDA 11.8) out of Debian bookworm's non-free
# component into a cache folder outside the repository, and prints the folder holding the binaries.
#
# The tools are NVIDIA's, under NVIDIA's licence: they are build and check tools only. They are fetched at build
# time, never committed and never packaged. Nothing is installed system-wide: a private sources list and apt state
# live in the cache, and the .deb is unpacked with dpkg -x.
#
# Usage: tools/cuda-offline/fetch-toolchain.sh   (prints e.g. /root/.cache/nativevae/cuda-11.8/root/usr/bin)
# Cache: $NATIVEVAE_CUDA_TOOLS, default ~/.cache/nativevae/cuda-11.8; reused when ptxas is already there.
set -euo pipefail

cache=${NATIVEVAE_CUDA_TOOLS:-$HOME/.cache/nativevae/cuda-11.8}
bin="$cache/root/usr/bin"
if [ -x "$bin/ptxas" ] && [ -x "$bin/cuobjdump" ]; then
  echo "$bin"
  exit 0
fi

mirror=${NATIVEVAE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
package=nvidia-cuda-toolkit
mkdir -p "$cache/apt/lists/partial" "$cache/apt/archives/partial" "$cache/debs"
cat > "$cache/apt/sources.list" <<SOURCES
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bookworm main contrib non-free
SOURCES
apt_options=(
  -o "Dir::Etc::SourceList=$cache/apt/sources.list"
  -o "Dir::Etc::SourceParts=-"
  -o "Dir::State::Lists=$cache/apt/lists"
  -o "Dir::Cache=$cache/apt"
  -o "Debug::NoLocking=1"
  -o "APT::Sandbox::User=$(id -un)"
)
apt-get "${apt_options[@]}" -qq update >&2
(cd "$cache/debs" && apt-get "${apt_options[@]}" -qq download "$package" >&2)
deb=$(ls "$cache/debs/${package}"_*.deb | head -n 1)
rm -rf "$cache/root"
dpkg -x "$deb" "$cache/root"
for tool in ptxas cuobjdump nvdisasm; do
  [ -x "$bin/$tool" ] || { echo "fetch-toolchain: $deb has no usr/bin/$tool" >&2; exit 1; }
done
rm -rf "$cache/debs" "$cache/apt/archives"
echo "$bin"
