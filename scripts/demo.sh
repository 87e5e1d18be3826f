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
