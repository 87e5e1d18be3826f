#!/usr/bin/env bash
# Regenerates docs/advice-sample.html (and docs/advice-sample.md): a server over four zoo features on a wall
# clock running 120× faster (90 s of traffic = 3 simulated hours), the traffic of scripts/advice_traffic.py,
# then `freshline advise`. Usage: scripts/advice-sample.sh [path/to/freshline]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${1:-$root/.build/debug/freshline}"
port="${PORT:-18090}"
work="$(mktemp -d)"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
cat >"$work/freshline.yaml" <<YAML
version: 1
models:
  gbdt: $root/Tests/Fixtures/zoo/gbc_binary.onnx
  mlp: $root/Tests/Fixtures/zoo/mlp_clf.onnx
  afe: $root/Tests/Fixtures/zoo/ml_afe_scaler_normalizer.onnx
features:
  fraud:
    model: mlp
    key: transaction_id
    latency_budget: 50ms
  churn:
    model: gbdt
    key: account_id
    max_staleness: 5m
    latency_budget: 200ms
    on_failure:
      default: {label: 0}
  recs:
    model: mlp
    key: user_id
    max_staleness: 24h
  recs_hybrid:
    model: afe
    key: user_id
    advice:
      decision: {output: xi_picked, kind: ranking, top_k: 2}
tokens:
  - {name: demo, token: demo-admin, scopes: [admin, predict]}
server:
  port: $port
  request_log_sample_rate: 0.5
YAML
"$bin" serve "$work/freshline.yaml" --clock-speed 120 >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/healthz/ready" >/dev/null 2>&1 && break; sleep 0.1; done
python3 "$root/scripts/advice_traffic.py" --port "$port" --seconds "${SECONDS_OF_TRAFFIC:-90}"
sleep 1.5  # the request log is written once a second
curl -fsS -H "Authorization: Bearer demo-admin" "http://127.0.0.1:$port/v1/advice?format=html" \
  >"$root/docs/advice-sample.html"
curl -fsS -H "Authorization: Bearer demo-admin" "http://127.0.0.1:$port/v1/advice?format=markdown" \
  >"$root/docs/advice-sample.md"
curl -fsS -H "Authorization: Bearer demo-admin" "http://127.0.0.1:$port/v1/advice?format=table"
echo "wrote docs/advice-sample.html and docs/advice-sample.md"
