#!/usr/bin/env bash
# Builds a self-contained bundle for a GPU machine without the .NET SDK: the device-test runner, the CLI and
# KernelBench (framework-dependent), one copy of the .NET and ASP.NET Core runtimes, the fixtures and a NativeVae.sln marker (the
# tests find their fixtures beside it), as DEST/bundle.tar.xz, plus run.sh, torchref.py, torch_vae.py, torch_attention.py and summary.py beside it.
# Usage: tools/NativeVae.DeviceTests/device/bundle.sh DEST     (then on the device: bash DEST/run.sh)
set -euo pipefail
cd "$(dirname "$0")/../../.."
dest=$(mkdir -p "$1" && cd "$1" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
dotnet publish tools/NativeVae.DeviceTests -c Release -m:1 -nologo -v q -o "$stage/app"
dotnet publish tools/NativeVae.Cli -c Release -m:1 -nologo -v q -o "$stage/cli"
dotnet publish tools/NativeVae.KernelBench -c Release -m:1 -nologo -v q -o "$stage/kb"
rm -rf "$stage/app/fixtures"
mkdir -p "$stage/tests" && cp -r tests/fixtures "$stage/tests/" && touch "$stage/NativeVae.sln"
root=$(dirname "$(readlink -f "$(command -v dotnet)")")
fxr=$(ls "$root/host/fxr" | sort -V | tail -1)
mkdir -p "$stage/dotnet/host/fxr"
cp "$root/dotnet" "$stage/dotnet/"
cp -r "$root/host/fxr/$fxr" "$stage/dotnet/host/fxr/"
# The tests and the CLI reference the server library, so they need ASP.NET Core's shared framework beside .NET's.
for framework in Microsoft.NETCore.App Microsoft.AspNetCore.App; do
  version=$(ls "$root/shared/$framework" | sort -V | tail -1)
  mkdir -p "$stage/dotnet/shared/$framework"
  cp -r "$root/shared/$framework/$version" "$stage/dotnet/shared/$framework/"
done
tar -C "$stage" -cf - dotnet app cli kb tests NativeVae.sln | xz -9 -T2 > "$dest/bundle.tar.xz"
cp tools/NativeVae.DeviceTests/device/run.sh tools/NativeVae.DeviceTests/device/torchref.py \
  tools/NativeVae.DeviceTests/device/torch_vae.py tools/NativeVae.DeviceTests/device/torch_attention.py \
  tools/NativeVae.DeviceTests/device/summary.py "$dest/"
ls -la "$dest"
