#!/usr/bin/env bash
# Builds the libFuzzer target and fuzzes the model loader, seeded with the zoo. Usage: scripts/fuzz.sh [SECONDS]
# Crashes land in Fuzz/artifacts/ as crash-* files; reproduce one with
#   Fuzz/.build/release/ModelLoaderFuzzer Fuzz/artifacts/crash-…
set -euo pipefail
cd "$(dirname "$0")/../Fuzz"
seconds=${1:-300}
swift build -c release --sanitize=fuzzer --product ModelLoaderFuzzer
mkdir -p corpus artifacts
cp -n ../Tests/Fixtures/zoo/*.onnx corpus/ 2>/dev/null || true
SWIFT_BACKTRACE=enable=no .build/release/ModelLoaderFuzzer corpus -artifact_prefix=artifacts/ \
  -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=4096 -timeout=10 -print_final_stats=1
