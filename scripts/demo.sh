#!/usr/bin/env bash
# `make demo`: what Freshline can do today, on the committed model zoo — inspect a model, run rows through it,
# and time it. Usage: scripts/demo.sh PATH-TO-freshline
set -euo pipefail
bin=${1:-.build/release/freshline}
zoo=Tests/Fixtures/zoo
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "A gradient-boosting classifier exported by skl2onnx"
"$bin" model inspect "$zoo/gbc_binary.onnx"

step "Three rows through it (one JSON object per line in and out)"
head -n 3 "$zoo/gbc_binary.inputs.jsonl" | "$bin" model run "$zoo/gbc_binary.onnx" --input -

step "A two-tower retrieval graph: top 10 items for two users"
head -n 2 "$zoo/two_tower.inputs.jsonl" | "$bin" model run "$zoo/two_tower.onnx" --input -

step "Cost per row at batch 1 and 1024 (one thread)"
for model in gbc_binary mlp_clf two_tower; do
  for batch in 1 1024; do
    "$bin" model bench "$zoo/$model.onnx" --batch-size "$batch" --seconds 0.5 --integer-range 500
  done
done

step "Serving: a manifest with three features over the zoo"
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/freshline.yaml" <<YAML
version: 1
models:
  churn_gbdt: $PWD/$zoo/gbc_binary.onnx
  fraud_mlp: $PWD/$zoo/mlp_clf.onnx
  towers: $PWD/$zoo/two_tower.onnx
features:
  churn:
    model: churn_gbdt
    key: account_id
    latency_budget: 200ms
    max_staleness: 24h
  fraud:
    model: fraud_mlp
    latency_budget: 20ms
    outputs: [label]
    on_failure:
      default: {label: 0}
  recommendations:
    model: towers
    key: user_id
    batching: {max_batch_size: 32, max_queue_delay: 1ms}
store: $work/freshline.sqlite
YAML
cat "$work/freshline.yaml"
"$bin" check "$work/freshline.yaml"
"$bin" serve "$work/freshline.yaml" --port "$port" > "$work/server.log" 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz/ready" >/dev/null && break; sleep 0.1; done
row=$(head -n 1 "$zoo/gbc_binary.inputs.jsonl")

step "POST /v1/features/churn/predict — the answer says where it came from and how old it is"
curl -s -D - -H 'Content-Type: application/json' -d "{\"key\": \"acct-42\", \"inputs\": $row}" "http://127.0.0.1:$port/v1/features/churn/predict"; echo

step "The same for the recommendation feature: the key fills the model's user_id input"
curl -s -H 'Content-Type: application/json' -d '{"key": "17"}' "http://127.0.0.1:$port/v1/features/recommendations/predict"; echo

step "A deadline nobody can meet: fraud answers its configured default, churn sheds with 503 + Retry-After"
curl -s -H 'X-Freshline-Timeout: 1us' -H 'Content-Type: application/json' -d "{\"inputs\": $row}" "http://127.0.0.1:$port/v1/features/fraud/predict"; echo
curl -s -i -H 'X-Freshline-Timeout: 1us' -H 'Content-Type: application/json' -d "{\"inputs\": $row}" "http://127.0.0.1:$port/v1/features/churn/predict" | grep -iE '^HTTP|^retry-after|error'; echo

step "Bad input gets a 4xx with a code and a message"
curl -s -H 'Content-Type: application/json' -d '{"inputs": {"X": [1, 2, 3]}}' "http://127.0.0.1:$port/v1/features/churn/predict"; echo

step "200 concurrent requests, then the live figures and metrics"
for i in $(seq 1 200); do
  curl -s -o /dev/null -H 'Content-Type: application/json' -d "{\"key\": \"a$i\", \"inputs\": $row}" "http://127.0.0.1:$port/v1/features/churn/predict" &
done
wait $(jobs -p | grep -v "^$server\$") 2>/dev/null || true
curl -s "http://127.0.0.1:$port/v1/features/churn" | python3 -m json.tool | sed -n '/"live"/,/^    }/p'
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^freshline_(requests_total|shed_total|fallback_total|batch_size_(count|sum))' | head -12

step "Open Inference Protocol V2: the same model for Triton and KServe clients"
curl -s -H 'Content-Type: application/json' -d '{"inputs": [{"name": "user_id", "shape": [1], "datatype": "INT64", "data": [17]}], "outputs": [{"name": "items"}]}' "http://127.0.0.1:$port/v2/models/towers/infer"; echo

step "SIGTERM: the server drains and exits"
kill -TERM $server
wait $server && echo "server exited cleanly"
tail -n 3 "$work/server.log"
