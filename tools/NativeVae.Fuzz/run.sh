#!/usr/bin/env bash
# The long mutation fuzz run (issue 12): the suite's MutationFuzzTests with many cases per reader.
#   tools/NativeVae.Fuzz/run.sh [CASES_PER_READER] [FIRST_SEED]      e.g. run.sh 1200 1  (9 readers: 10,800 cases)
# Prints, per reader, the cases read, refused cleanly and wrong, and the first wrong ones with their seeds; a wrong
# case is replayed with NATIVEVAE_FUZZ_SEED=<seed> NATIVEVAE_FUZZ_CASES=1.
set -euo pipefail
cd "$(dirname "$0")/../.."
export NATIVEVAE_FUZZ_CASES="${1:-1200}" NATIVEVAE_FUZZ_SEED="${2:-1}"
dotnet test tests/NativeVae.Tests/NativeVae.Tests.csproj -c Release --filter "FullyQualifiedName~MutationFuzzTests" \
  --logger "console;verbosity=detailed" 2>&1 | grep -E "cases from seed|seed [0-9]+ \(|Passed!|Failed!" | sed 's/^ //' | awk '!seen[$0]++'
