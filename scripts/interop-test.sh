#!/usr/bin/env bash
# Interop test: Freshline's Open Inference Protocol V2 (/v2) against the real Triton HTTP client
# (tritonclient[http] from PyPI).
#
#   scripts/interop-test.sh FRESHLINE_BINARY [extra pytest arguments]
#
# 1. Creates or reuses the venv .venv-interop/ (reinstalled only when Tests/Interop/requirements.txt
#    or the base interpreter changes: sha256 stamp in .venv-interop/.requirements.sha256).
# 2. Writes a temporary manifest over zoo models (Tests/Fixtures/zoo), starts
#    `FRESHLINE_BINARY serve MANIFEST --host 127.0.0.1 --port PORT` on a free loopback port and waits
#    (at most READY_TIMEOUT seconds, default 30) for GET /v2/health/ready to answer 200.
# 3. Runs Tests/Interop/oip_tritonclient_test.py with FRESHLINE_OIP_URL=127.0.0.1:PORT.
# 4. Always stops the server. Exits non-zero on any failure, error or skip, or if the server
#    could not start; the last line is `interop: N passed, M failed`.
#
# Environment: PYTHON (base interpreter for the venv, default python3), READY_TIMEOUT (seconds),
# INTEROP_VENV (venv location, default <repo>/.venv-interop).
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$script_dir/.." && pwd)"
requirements="$repo_root/Tests/Interop/requirements.txt"
test_file="$repo_root/Tests/Interop/oip_tritonclient_test.py"
zoo="$repo_root/Tests/Fixtures/zoo"
venv="${INTEROP_VENV:-$repo_root/.venv-interop}"
base_python="${PYTHON:-python3}"
ready_timeout="${READY_TIMEOUT:-30}"
models=(gbc_binary two_tower logreg_multi_strlabels mlp_clf_double ml_afe_scaler_normalizer)
max_body_bytes=1048576   # set explicitly: the tests send one body just under it and one well over it

log() { printf 'interop: %s\n' "$*" >&2; }
summary() { printf 'interop: %s passed, %s failed\n' "$1" "$2"; }
die() { log "$*"; summary 0 1; exit 1; }

if [[ $# -lt 1 ]]; then
    echo "usage: scripts/interop-test.sh FRESHLINE_BINARY [pytest arguments]" >&2
    summary 0 1
    exit 2
fi
binary="$1"
shift
[[ -x "$binary" && -f "$binary" ]] || die "Freshline binary not found or not executable: '$binary' (build it: swift build --product freshline)"
binary="$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")"
[[ -f "$requirements" ]] || die "missing $requirements"
[[ -f "$test_file" ]] || die "missing $test_file"
command -v "$base_python" >/dev/null 2>&1 || die "base interpreter '$base_python' not found (set PYTHON=...)"
for m in "${models[@]}"; do
    [[ -f "$zoo/$m.onnx" ]] || die "zoo model missing: $zoo/$m.onnx"
done

export PYTHONDONTWRITEBYTECODE=1
export PIP_DISABLE_PIP_VERSION_CHECK=1

# --- the venv -------------------------------------------------------------------------------------------------
setup_venv() {
    local py="$venv/bin/python" stamp="$venv/.requirements.sha256" want
    if [[ ! -x "$py" ]] || ! "$py" -c 'import sys' >/dev/null 2>&1; then
        log "creating $venv with $("$base_python" --version 2>&1)"
        "$base_python" -m venv --clear "$venv" >&2
        rm -f "$stamp"
    fi
    want="$( { cat "$requirements"; "$py" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        return 0
    fi
    log "installing $requirements into $venv"
    rm -f "$stamp"
    "$py" -m pip install --no-input -q -r "$requirements" >&2
    "$py" -c 'import numpy, pytest, tritonclient.http, tritonclient.http.aio' >&2
    printf '%s\n' "$want" >"$stamp"
}

mkdir -p "$(dirname "$venv")"
if command -v flock >/dev/null 2>&1; then
    # Two runs at once (make -j) install one after the other, not over each other.
    exec 9<"${BASH_SOURCE[0]}"
    flock 9
fi
setup_venv || die "could not set up $venv"
if command -v flock >/dev/null 2>&1; then exec 9<&-; fi
py="$venv/bin/python"

# --- the server -----------------------------------------------------------------------------------------------
work="$(mktemp -d "${TMPDIR:-/tmp}/freshline-interop.XXXXXX")"
server_pid=""
stop_server() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$server_pid" 2>/dev/null; then
            log "server $server_pid did not stop on SIGTERM within 5 s; killing it"
            kill -KILL "$server_pid" 2>/dev/null || true
        fi
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=""
}
cleanup() {
    stop_server
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

manifest="$work/manifest.yaml"
{
    echo "# Written by scripts/interop-test.sh"
    echo "version: 1"
    echo "models:"
    for m in "${models[@]}"; do echo "  $m: $zoo/$m.onnx"; done
    echo "features: {}"
    echo "server:"
    echo "  max_body_bytes: $max_body_bytes"
    echo "store: $work/freshline.sqlite"
} >"$manifest"

free_port() {
    "$py" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# Waits for 200 from /v2/health/ready; returns 1 if the server exited, 2 on timeout.
wait_ready() {
    local url="$1" deadline=$((SECONDS + ready_timeout))
    while ((SECONDS < deadline)); do
        kill -0 "$server_pid" 2>/dev/null || return 1
        if "$py" - "$url" <<'EOF' >/dev/null 2>&1; then return 0; fi
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "/v2/health/ready", timeout=2) as r:
    sys.exit(0 if r.status == 200 else 1)
EOF
        sleep 0.2
    done
    return 2
}

started=0
for attempt in 1 2 3; do
    port="$(free_port)"
    "$binary" serve "$manifest" --host 127.0.0.1 --port "$port" >"$work/server.log" 2>&1 &
    server_pid=$!
    rc=0
    wait_ready "http://127.0.0.1:$port" || rc=$?
    if [[ $rc -eq 0 ]]; then
        started=1
        break
    fi
    if [[ $rc -eq 2 ]]; then
        log "server not ready within ${ready_timeout}s on 127.0.0.1:$port; its log:"
        sed 's/^/  | /' "$work/server.log" >&2
        stop_server
        break
    fi
    # Exited early: a port taken between the probe and the bind is worth another try, anything else is not.
    log "server exited during start-up (attempt $attempt, port $port); its log:"
    sed 's/^/  | /' "$work/server.log" >&2
    stop_server
    grep -qiE 'address already in use|EADDRINUSE' "$work/server.log" || break
done
[[ $started -eq 1 ]] || die "the server did not start"
log "server $server_pid ready on 127.0.0.1:$port ($binary)"

# --- the tests ------------------------------------------------------------------------------------------------
junit="$work/junit.xml"
pytest_rc=0
(
    cd "$repo_root"
    FRESHLINE_OIP_URL="127.0.0.1:$port" \
    FRESHLINE_ZOO="$zoo" \
    FRESHLINE_OIP_MODELS="$(IFS=,; echo "${models[*]}")" \
    FRESHLINE_OIP_MAX_BODY_BYTES="$max_body_bytes" \
        timeout 600 "$py" -m pytest -p no:cacheprovider -q -rfEs \
        --junitxml="$junit" "$test_file" "$@"
) || pytest_rc=$?

server_alive=1
kill -0 "$server_pid" 2>/dev/null || server_alive=0

counts="$("$py" - "$junit" <<'EOF' 2>/dev/null || true
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
t = sum(int(s.get("tests", 0)) for s in suites)
f = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
k = sum(int(s.get("skipped", 0)) for s in suites)
print(t - f - k, f, k)
EOF
)"
read -r passed failed skipped <<<"${counts:-0 0 0}"
passed="${passed:-0}"; failed="${failed:-0}"; skipped="${skipped:-0}"

status=0
if [[ $pytest_rc -ne 0 ]]; then
    status=1
    [[ $pytest_rc -eq 124 ]] && log "pytest timed out after 600 s"
    # pytest failed without reporting a failing test (collection error, crash, no tests): still a failure.
    [[ "$failed" -eq 0 ]] && failed=1
fi
if [[ "$skipped" -ne 0 ]]; then
    log "$skipped test(s) skipped: the interop test must not skip; counted as failed"
    failed=$((failed + skipped))
    status=1
fi
if [[ "$passed" -eq 0 ]]; then
    log "no test passed"
    status=1
fi
if [[ $server_alive -eq 0 ]]; then
    log "the server exited during the tests; its log:"
    sed 's/^/  | /' "$work/server.log" >&2
    [[ "$failed" -eq 0 ]] && failed=1
    status=1
elif [[ $status -ne 0 ]]; then
    log "server log (last 40 lines):"
    tail -n 40 "$work/server.log" | sed 's/^/  | /' >&2
fi
stop_server
summary "$passed" "$failed"
exit "$status"
