#!/usr/bin/env bash
# Builds the libFuzzer target over the HTTP API's request decoding (Fuzz/Sources/RequestFuzzer) and runs it for
# SECONDS (default 60), seeded with valid requests of every fuzzed route. A crash, or a 5xx other than 503/504 for
# a client's input, stops it with the input saved in Fuzz/artifacts-http/; reproduce one with
#   FRESHLINE_ZOO=Tests/Fixtures/zoo Fuzz/.build/release/RequestFuzzer Fuzz/artifacts-http/crash-…
# Usage: scripts/fuzz-http.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../Fuzz"
seconds=${1:-60}
# The build plan is planned again each time: a cached one (.build/release.yaml) can miss source files added to the
# main package since (a path dependency), and the build then fails on names those files define.
rm -f .build/release.yaml
swift build -c release --sanitize=fuzzer --product RequestFuzzer
mkdir -p corpus-http artifacts-http
x16='[0.5,-1.2,0.3,2.0,0.0,1.1,-0.4,0.9,0.2,-2.2,1.5,0.7,-0.1,0.05,1.9,-0.6]'
# One seed per route: a selector byte, four header values (X-Freshline-Timeout, Prefer, Idempotency-Key,
# Inference-Header-Content-Length) each ended by 0xFF, then the body.
seed() { printf "$2" > "corpus-http/seed-$1"; }
seed predict "\x00250ms\xff\xff\xff\xff{\"key\": \"a\", \"max_staleness\": \"6h\", \"inputs\": {\"X\": $x16}}"
seed rows "\x00\xff\xff\xff\xff{\"rows\": [{\"key\": 1, \"inputs\": {\"X\": $x16}}, {\"key\": \"b\"}], \"max_staleness\": 30}"
seed async "\x00\xffrespond-async, wait=1\xffk-1\xff\xff{\"key\": \"a\", \"inputs\": {\"X\": $x16}}"
seed recs "\x01\xff\xff\xff\xff{\"key\": 7}"
seed job "\x02\xff\xffk-2\xff\xff{\"rows\": [{\"key\": \"a\", \"inputs\": {\"X\": $x16}}]}"
seed v2json "\x03\xff\xff\xff\xff{\"id\": \"r\", \"inputs\": [{\"name\": \"user_id\", \"shape\": [2], \"datatype\": \"INT64\", \"data\": [3, 7]}]}"
seed v2binary "\x03\xff\xff\xff108\xff{\"inputs\": [{\"name\": \"user_id\", \"shape\": [2], \"datatype\": \"INT64\", \"parameters\": {\"binary_data_size\": 16}}]}\x03\x00\x00\x00\x00\x00\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00"
seed v2gbdt "\x04\xff\xff\xff\xff{\"inputs\": [{\"name\": \"X\", \"shape\": [1, 16], \"datatype\": \"FP32\", \"data\": $x16}], \"outputs\": [{\"name\": \"label\", \"parameters\": {\"binary_data\": true}}]}"
seed advice "\x05batch:6h,realtime\xff\xff\xff\xff"
seed jobs "\x0650\xff\xff\xff\xff"
FRESHLINE_ZOO=$(cd ../Tests/Fixtures/zoo && pwd) SWIFT_BACKTRACE=enable=no .build/release/RequestFuzzer corpus-http \
  -artifact_prefix=artifacts-http/ -max_total_time="$seconds" -max_len=4096 -timeout=20 -rss_limit_mb=4096 \
  -print_final_stats=1
