#!/usr/bin/env bash
# `make cluster-demo`: Freshline as several processes over one PostgreSQL database — two servers and two workers —
# with nothing else in between. Starts a throwaway PostgreSQL (scripts/pg.sh), writes a manifest and 200,000 users
# into $FRESHLINE_CLUSTER_DIR (default: ${TMPDIR:-/tmp}/freshline-cluster, outside the checkout), starts the four
# processes, then:
#   1. triggers the nightly batch run through server 1; its 20 ranges are leased by both workers;
#   2. while it runs, sends real-time traffic across both servers and submits async jobs to both;
#   3. shows which worker computed which ranges and jobs, and that server 2 serves the snapshot server 1's run
#      published (swapped within milliseconds of the publish, by LISTEN/NOTIFY).
# Everything stops at the end (or on Ctrl-C).
#
#   [FRESHLINE_CLUSTER_DIR=DIR] scripts/cluster-demo.sh [FRESHLINE_BINARY]
set -euo pipefail
# Generated: the manifest (machine-specific paths), a 200,000-row CSV and the processes' logs. Outside the checkout by
# default; the files of an earlier demo there are replaced, nothing else in the folder is touched.
dir=$(realpath -m "${FRESHLINE_CLUSTER_DIR:-${TMPDIR:-/tmp}/freshline-cluster}")
cd "$(dirname "$0")/.."
bin=$(realpath "${1:-.build/release/freshline}")
port_pg=${FRESHLINE_CLUSTER_PG_PORT:-55439}
s1=18091
s2=18092
users=${USERS:-200000}

for tool in jq curl; do
  if ! command -v $tool >/dev/null; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $tool
  fi
done

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  scripts/pg.sh stop "" "$port_pg" >/dev/null 2>&1 || true
}
trap cleanup EXIT

step "1/5 PostgreSQL: a throwaway server on 127.0.0.1:$port_pg (Debian's postgresql, its own data directory)"
url=$(scripts/pg.sh start "" "$port_pg")
echo "$url"

step "2/5 Data and manifest in $dir: $users users (16 features each), one batch, one real-time, one async feature"
mkdir -p "$dir"
rm -f "$dir/users.csv" "$dir/freshline.yaml" "$dir"/server-*.log "$dir"/worker-*.log
awk -v n="$users" 'BEGIN {
  printf "user_id"; for (j = 0; j < 16; j++) printf ",f%d", j; printf "\n";
  for (i = 0; i < n; i++) {
    printf "u%d", i;
    for (j = 0; j < 16; j++) printf ",%.4f", ((i * 31 + j * 17) % 97) / 24 - 2;
    printf "\n";
  } }' >"$dir/users.csv"
zoo=$PWD/Tests/Fixtures/zoo
cat >"$dir/freshline.yaml" <<EOF
version: 1
models:
  gbdt: $zoo/gbc_binary.onnx
features:
  churn:
    model: gbdt
    pattern: batch
    key: user_id
    max_staleness: 24h
    batch:
      schedule: "0 2 * * *"
      source: {csv: users.csv}
      columns:
        X: [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15]
      chunk_rows: 2000
      range_rows: 10000
      threads: 1
      catch_up: skip
  churn_live:
    model: gbdt
    pattern: realtime
  report:
    model: gbdt
    pattern: async
server:
  job_workers: 0
  max_body_bytes: 8388608
store: $url
EOF
echo "store: $url"

step "3/5 Two servers (:$s1, :$s2; they schedule and serve, no batch workers) and two workers"
export FRESHLINE_STORE="$url"
"$bin" serve "$dir/freshline.yaml" --port $s1 --batch-workers 0 >"$dir/server-1.log" 2>&1 & pids+=($!)
"$bin" serve "$dir/freshline.yaml" --port $s2 --batch-workers 0 >"$dir/server-2.log" 2>&1 & pids+=($!)
"$bin" worker "$dir/freshline.yaml" --concurrency 1 --batch-workers 1 >"$dir/worker-1.log" 2>&1 & w1=$!; pids+=($w1)
"$bin" worker "$dir/freshline.yaml" --concurrency 1 --batch-workers 1 >"$dir/worker-2.log" 2>&1 & w2=$!; pids+=($w2)
for port in $s1 $s2; do
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port/healthz/live" >/dev/null && break; sleep 0.1; done
done
echo "server-1 pid ${pids[0]}, server-2 pid ${pids[1]}, worker-1 pid $w1, worker-2 pid $w2 (logs in $dir)"

step "4/5 The nightly run through server 1, real-time traffic and async jobs across both servers meanwhile"
run=$(curl -sf -X POST "http://127.0.0.1:$s1/v1/features/churn/runs" -d '{}' | jq -r .id)
echo "run $run started"
row() { awk -v i="$1" 'BEGIN { printf "["; for (j = 0; j < 16; j++) printf "%s%.4f", (j ? "," : ""), ((i * 31 + j * 17) % 97) / 24 - 2; printf "]" }'; }
jobs=()
for i in $(seq 0 19); do
  port=$([ $((i % 2)) = 0 ] && echo $s1 || echo $s2)
  body="{\"rows\":[$(for k in $(seq 0 49); do printf '%s{"key":"u%d","inputs":{"X":%s}}' "$([ $k = 0 ] || echo ,)" $((i * 50 + k)) "$(row $((i * 50 + k)))"; done)]}"
  jobs+=("$(curl -sf -X POST "http://127.0.0.1:$port/v1/features/report/jobs" -H 'Content-Type: application/json' -d "$body" | jq -r .id)")
done
echo "${#jobs[@]} jobs submitted (50 rows each), alternating server 1 and server 2"
ok1=0; ok2=0
start=$(date +%s.%N)
for i in $(seq 0 399); do
  port=$([ $((i % 2)) = 0 ] && echo $s1 || echo $s2)
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$port/v1/features/churn_live/predict" \
    -H 'Content-Type: application/json' -d "{\"key\":\"u$i\",\"inputs\":{\"X\":$(row $i)}}")
  if [ "$code" = 200 ]; then if [ $port = $s1 ]; then ok1=$((ok1 + 1)); else ok2=$((ok2 + 1)); fi; fi
done
echo "real-time: $ok1 answers from server 1, $ok2 from server 2 (400 requests, one curl each)"

for _ in $(seq 600); do
  state=$(curl -sf "http://127.0.0.1:$s1/v1/runs/$run" | jq -r .state)
  [ "$state" != running ] && break
  sleep 0.5
done
echo "run $run: $state"

step "5/5 Who did what"
curl -sf "http://127.0.0.1:$s1/v1/runs/$run" | jq -r --arg w1 "$w1" --arg w2 "$w2" '
  "run: \(.rows_written) rows in \(.duration_seconds | . * 10 | round / 10) s, \(.ranges | length) ranges",
  (.ranges | group_by(.owner) | map("  ranges on \(.[0].owner | if endswith(":" + $w1) then "worker-1" elif endswith(":" + $w2) then "worker-2" else . end) (\(.[0].owner)): \(length) — \(map(.index) | join(", "))") | .[])'
declare -A per=()
for id in "${jobs[@]}"; do
  for _ in $(seq 100); do
    job=$(curl -sf "http://127.0.0.1:$s2/v1/jobs/$id")
    [ "$(jq -r .state <<<"$job")" = succeeded ] && break
    sleep 0.2
  done
  worker=$(jq -r '.result.worker // "unfinished"' <<<"$job" | cut -d/ -f1)
  per[$worker]=$(( ${per[$worker]:-0} + 1 ))
done
for worker in "${!per[@]}"; do
  name=$worker
  [[ $worker == *":$w1" ]] && name="worker-1 ($worker)"
  [[ $worker == *":$w2" ]] && name="worker-2 ($worker)"
  echo "  jobs computed by $name: ${per[$worker]}"
done
for port in $s1 $s2; do
  curl -sf -X POST "http://127.0.0.1:$port/v1/features/churn/predict" -H 'Content-Type: application/json' \
    -d '{"key":"u12345"}' | jq -c --arg p "$port" '{server: $p, source, snapshot, computed_at, outputs}'
done
grep -h "serving churn snapshot" "$dir"/server-*.log | sed 's/^/  /' || true
echo
echo "Done. Logs: $dir/*.log. Tests of the same (kill -9 included): swift test --filter Cluster (make test runs them)."
