#!/usr/bin/env bash
# Reads `swift test` output and prints the plain "N passed, N failed" line that CI reads (tests counted as
# Swift Testing reports them; a parameterized test counts once). Fails unless every run finished and passed.
set -euo pipefail
out=${1:?usage: test-summary.sh OUTPUT}
passed=$(grep -cE '^✔ Test .* passed after' "$out" || true)
failed=$(grep -cE '^✘ Test .* failed after' "$out" || true)
echo "swift-testing: $passed passed, $failed failed"
# A run with no tests is a filter that matched nothing (a renamed suite): a failure, not a pass.
if grep -qE '^✔ Test run with 0 tests' "$out"; then
  echo "a test run ran no tests: its --filter matched nothing"
  exit 1
fi
# Every run that started (make test has four) must have finished with its passing summary.
started=$(grep -cE '^◇ Test run started' "$out" || true)
finished=$(grep -cE '^✔ Test run with [0-9]+ tests? .*passed after' "$out" || true)
if [ "$started" -gt 0 ] && [ "$finished" = "$started" ] && [ "$failed" = 0 ] && [ "$passed" -gt 0 ]; then
  exit 0
fi
grep -E 'Test run with' "$out" || echo "no Swift Testing summary found: the test run did not complete"
exit 1
