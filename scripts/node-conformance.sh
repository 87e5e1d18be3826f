#!/usr/bin/env bash
# Reports the engine's pass rate over every committed ONNX backend node case of the claimed operators
# (Tests/Fixtures/onnx-node), with the reason for each case that does not pass. `make test` runs the same
# suite and fails if any case in MUST_PASS.txt fails. With --update, rewrites MUST_PASS.txt to the cases
# passing now (review the diff: a case should leave the list only with a reason).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --build-tests >/dev/null
out=$(swift test --skip-build --filter NodeConformanceTests 2>&1 || true)
echo "$out" | grep -E 'onnx node conformance:|not passing:|recorded an issue' | sed 's/^ *//'
if [ "${1:-}" = "--update" ]; then
  failing=$(echo "$out" | grep -oE 'not passing: [A-Za-z0-9_]+' | awk '{print $3}' | sort -u)
  {
    echo "# ONNX backend node cases that must pass in make test (scripts/node-conformance.sh --update)."
    ls Tests/Fixtures/onnx-node | grep '^test_' | sort | while read -r c; do
      grep -qx "$c" <<<"$failing" || echo "$c"
    done
  } > Tests/Fixtures/onnx-node/MUST_PASS.txt
  echo "MUST_PASS.txt: $(grep -vc '^#' Tests/Fixtures/onnx-node/MUST_PASS.txt) cases"
fi
