#!/usr/bin/env bash
# Create or reuse the tooling virtualenv at <repo>/.venv-tools and print the
# path of its python on stdout (all progress messages go to stderr).
#
# Idempotent: packages are (re)installed only when scripts/requirements.txt or
# the base interpreter changed since the last successful install. The stamp
# (a sha256 of both) lives in .venv-tools/.requirements.sha256.
#
# Environment:
#   PYTHON          base interpreter used to create the venv (default: python3)
#   FRESHLINE_VENV  override the venv location (default: <repo>/.venv-tools)
#
# Usage:  PY="$(scripts/venv.sh)" && "$PY" scripts/make_zoo.py
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$script_dir/.." && pwd)"
venv="${FRESHLINE_VENV:-$repo_root/.venv-tools}"
requirements="$script_dir/requirements.txt"
base_python="${PYTHON:-python3}"
stamp="$venv/.requirements.sha256"

log() { printf 'venv.sh: %s\n' "$*" >&2; }

if ! command -v "$base_python" >/dev/null 2>&1; then
    log "base interpreter '$base_python' not found (set PYTHON=...)"
    exit 1
fi
if [[ ! -f "$requirements" ]]; then
    log "missing $requirements"
    exit 1
fi

setup() {
    local py="$venv/bin/python"

    # (Re)create the venv if it is missing or its interpreter is broken.
    if [[ ! -x "$py" ]] || ! "$py" -c 'import sys' >/dev/null 2>&1; then
        log "creating $venv with $("$base_python" --version 2>&1)"
        "$base_python" -m venv --clear "$venv" >&2
        rm -f "$stamp"
    fi

    local want
    want="$( { cat "$requirements"; "$py" -c 'import sys; print(sys.version)'; } \
             | sha256sum | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        return 0
    fi

    log "installing $requirements (this takes a minute)"
    rm -f "$stamp"
    "$py" -m pip install --disable-pip-version-check --no-input -q \
        -r "$requirements" >&2
    # Catch a broken install now rather than in the middle of a script.
    "$py" -c 'import numpy, onnx, onnxruntime, sklearn, skl2onnx, onnxmltools, xgboost, lightgbm' >&2
    printf '%s\n' "$want" >"$stamp"
    log "ready"
}

mkdir -p "$(dirname "$venv")"
if command -v flock >/dev/null 2>&1; then
    # Serialize concurrent invocations (e.g. two scripts started together).
    # Lock this script itself so no lock file is left behind.
    exec 9<"${BASH_SOURCE[0]}"
    flock 9
fi
setup
printf '%s\n' "$venv/bin/python"
