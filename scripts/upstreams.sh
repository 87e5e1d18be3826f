#!/usr/bin/env bash
# Real upstream model servers for the "upstream models" tests, on loopback: MLServer (Open Inference Protocol V2,
# a scikit-learn binary classifier) and llama-cpp-python's OpenAI-compatible server (chat completions and
# embeddings over a tiny random-weight GGUF model made here).
#
#   scripts/upstreams.sh setup                 installs what is missing (Debian packages, the venv), makes the
#                                              models; idempotent: a second run takes well under a second
#   scripts/upstreams.sh start-mlserver PORT   MLServer on http://127.0.0.1:PORT, model sk_binary; prints the URL
#   scripts/upstreams.sh start-llama PORT      llama-cpp-python server on http://127.0.0.1:PORT, models tiny-chat
#                                              (chat) and tiny-embed (embeddings); prints the URL
#   scripts/upstreams.sh stop PORT             stops the server started on PORT and waits until it has exited
#
# start-* run setup first (a no-op once done), start the server in the background (it outlives this script),
# wait until it is ready (MLServer: GET /v2/health/ready 200; llama: GET /v1/models 200; at most READY_TIMEOUT
# seconds, default 120), then print the base URL alone on stdout. PID in .build/upstreams/KIND-PORT.pid, log in
# .build/upstreams/KIND-PORT.log (KIND = mlserver or llama). Everything else goes to stderr. Any failure (a
# package that cannot be installed, a port in use, a server that exits or is not ready in time) exits non-zero
# with a message saying what, and the server log's tail; nothing is ever skipped.
#
# setup, in detail:
# 1. Debian packages, with apt-get install -y when missing (as root; sudo otherwise): cmake (>= 3.21),
#    ninja-build, g++/make (build-essential), and python3-venv if the base interpreter lacks venv/ensurepip.
# 2. The venv .venv-upstreams/ at the repository root from Tests/UpstreamServers/requirements.txt (every package
#    pinned), re-installed only when that file, the base interpreter or LLAMA_CMAKE_ARGS change (sha256 stamp in
#    .venv-upstreams/.requirements.sha256). PyPI has only an sdist of llama-cpp-python: pip compiles
#    llama.cpp, CPU only, with these CMake flags (LLAMA_CMAKE_ARGS overrides them):
#      -DCMAKE_C_FLAGS_RELEASE=-O1 -DCMAKE_CXX_FLAGS_RELEASE=-O1   to compile faster than Release's -O3 (not
#                                    measured against -O3 here); the tiny model does not need the speed
#      -DLLAVA_BUILD=OFF            no libmtmd (multimodal; llama_cpp only loads it for image chat handlers)
#      -DGGML_LLAMAFILE=OFF -DGGML_CPU_REPACK=OFF   drops sgemm.cpp and repack.cpp, the two slowest files to
#                                                   compile (fast paths for big quantized models)
#      -DGGML_NATIVE=OFF            portable x86-64 AVX2 build: a wheel cached by pip works on any machine of
#                                   the kind (GGML_NATIVE=ON compiles no faster)
#      -DGGML_OPENMP=OFF -DLLAMA_OPENSSL=OFF, and every GPU backend, BLAS, tests, tools, examples and the C++
#      server off (llama-cpp-python already builds none of these by default; said explicitly).
#    llama-cpp-python forces llama.cpp's "common" library on (FORCE in its CMakeLists), so that is built too.
#    The compile runs with CMAKE_BUILD_PARALLEL_LEVEL jobs (default: nproc). pip caches the built wheel
#    (~/.cache/pip): a new venv on the same machine installs it in seconds. That cache ignores
#    LLAMA_CMAKE_ARGS: after changing them, run with PIP_NO_CACHE_DIR=1 once.
# 3. The models, into .build/upstreams/ (re-made only when their generator, or the venv, changes):
#    mlserver/sk_binary/{model.joblib,model-settings.json}  (Tests/UpstreamServers/make_sk_binary.py)
#    tiny-llama.gguf                                        (Tests/UpstreamServers/make_tiny_gguf.py)
#    llama-server.json  the llama_cpp.server --config_file: two entries on the same GGUF, tiny-chat and
#                       tiny-embed (embedding: true, mean pooling through kv_overrides llama.pooling_type=int:1,
#                       so /v1/embeddings answers one vector per input instead of one per token)
#
# MLServer runs with MLSERVER_HOST=127.0.0.1, MLSERVER_HTTP_PORT=PORT, MLSERVER_GRPC_PORT=a free port picked at
# start (MLServer always starts its gRPC server; it cannot be turned off), MLSERVER_METRICS_ENDPOINT= (empty:
# no metrics server, so no metrics port), MLSERVER_PARALLEL_WORKERS=0 (inference in the main process: no
# worker processes to leak) and MLSERVER_DEBUG=false (errors answer {"error": ...}, not a traceback page).
# Adaptive batching is off (MLServer's default); model-settings.json would turn it on with max_batch_size (> 1)
# and max_batch_time (seconds).
#
# What was observed here (Debian 12, 2 cores shared with another job, MLServer 1.7.1, mlserver-sklearn 1.7.1,
# llama-cpp-python 0.3.36; the JSON itself is in Tests/UpstreamServers/README.md):
#   Timings. `time scripts/upstreams.sh setup` from an empty venv and an empty pip cache (cmake, ninja-build and
#   build-essential already installed; apt-get install of them takes ~20 s more), under nice -n 19 with
#   CMAKE_BUILD_PARALLEL_LEVEL=1 on the shared machine: 7 min 24 s (user 5 min 16 s), of which the llama.cpp
#   compile (139 ninja steps, unity build) is ~5 min; `pip wheel` of llama-cpp-python alone, same flags:
#   5 min 56 s. With the wheel in pip's cache, a new venv takes 1 min 9 s. A second `setup`: 0.12 s.
#   Ready: start-mlserver 3.0 s, start-llama 1.0 s (model load 0.15 s). stop: 0.2-0.8 s.
#   tiny-llama.gguf: 492,448 bytes (F32; 364 tokens). One 64-token chat completion answers in 30-60 ms, an
#   embedding in 10-25 ms (both including the model swap between the two aliases), an MLServer infer in ~5 ms.
#   MLServer (details and JSON in Tests/UpstreamServers/README.md):
#   - GET /v2/models/sk_binary: {"name","versions":[],"platform":"","inputs":[X FP32 [-1,16]],"outputs":[predict
#     INT64 [-1,1], predict_proba FP32 [-1,2]],"parameters":{}} (the declared settings; "versions" stays empty
#     although the model has version "1").
#   - POST /v2/models/sk_binary/infer (also /versions/1/infer) with 3x16 FP32 rows answers model_name, model_version
#     "1", the request's id (or a generated UUID), parameters {}, outputs with parameters {"content_type":"np"}.
#     Without "outputs" it answers predict only; "outputs":[{"name":"predict"},{"name":"predict_proba"}] answers
#     both (predict [3,1] INT64, predict_proba [3,2] FP32). An unknown output name: 400 {"error": "..."}; a
#     data/shape mismatch: 500 text/plain "Internal Server Error"; a body without inputs: 422 {"detail": [...]};
#     unknown model or version: 404 {"error": "Model ... not found"}. FP64 input data is accepted as well.
#   llama-cpp-python server:
#   - POST /v1/chat/completions: {"id":"chatcmpl-<uuid>","object":"chat.completion","created","model":<the
#     request's model, echoed>,"choices":[{"index":0,"message":{"content","role":"assistant"},"logprobs":null,
#     "finish_reason":"length"|"stop"}],"usage":{"prompt_tokens","completion_tokens","total_tokens"}}. No
#     system_fingerprint. An unknown model name is NOT refused: the loaded model answers and the name is echoed.
#     Always send max_tokens: without it generation runs until the context (2048) is full. "n" is ignored (one
#     choice); "stop" works (finish_reason "stop").
#   - stream: true: text/event-stream, "data: {...}" chunks ("object":"chat.completion.chunk"): first delta
#     {"role":"assistant"}, then one {"content": "<char>"} per token, then delta {} with finish_reason, then
#     "data: [DONE]". No usage in any chunk, also with stream_options {"include_usage": true} (accepted, ignored).
#   - response_format {"type":"json_schema",...}: NOT supported by 0.3.36: HTTP 500 {"error":{"message":"[{'type':
#     'literal_error', ... Input should be 'text' or 'json_object'...","type":"internal_server_error"}}. What works:
#     {"type":"json_object","schema":{...}}: grammar-constrained, e.g. content "{ \"label\": \"flag\", \"score\" :
#     612} " (valid JSON matching {"label": enum ["ok","flag"], "score": number}, trailing space), finish_reason
#     "stop". json_object without a schema is unconstrained enough that the random model runs to max_tokens
#     (truncated, invalid JSON).
#   - POST /v1/embeddings (model tiny-embed, input string or list): {"object":"list","data":[{"object":"embedding",
#     "embedding":[64 floats],"index":i}],"model":"tiny-embed","usage":{"prompt_tokens","total_tokens"}}; vectors
#     are mean-pooled and NOT L2-normalized (norms ~5); encoding_format "base64" is ignored (floats). Embeddings
#     from tiny-chat: 500 "Llama model must be created with embedding=True to call this method".
#   - GET /v1/models: {"object":"list","data":[{"id":"tiny-chat","object":"model","owned_by":"me","permissions":[]},
#     {"id":"tiny-embed",...}]}. The server keeps one model
#     loaded and reloads it when a request names the other alias (a few ms for this model).
#
# Environment: PYTHON (base interpreter, default python3), UPSTREAMS_VENV (default <repo>/.venv-upstreams),
# UPSTREAMS_DIR (default <repo>/.build/upstreams), READY_TIMEOUT (seconds, default 120), LLAMA_CMAKE_ARGS,
# CMAKE_BUILD_PARALLEL_LEVEL (compile jobs, default nproc).
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$script_dir/.." && pwd)"
here="$repo_root/Tests/UpstreamServers"
requirements="$here/requirements.txt"
venv="${UPSTREAMS_VENV:-$repo_root/.venv-upstreams}"
work="${UPSTREAMS_DIR:-$repo_root/.build/upstreams}"
base_python="${PYTHON:-python3}"
ready_timeout="${READY_TIMEOUT:-120}"
default_cmake_args="-DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS_RELEASE=-O1 -DCMAKE_CXX_FLAGS_RELEASE=-O1 \
-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_LLAMAFILE=OFF -DGGML_CPU_REPACK=OFF -DGGML_OPENMP=OFF \
-DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF \
-DLLAMA_BUILD_SERVER=OFF -DGGML_BLAS=OFF -DGGML_CUDA=OFF -DGGML_HIP=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF \
-DGGML_OPENCL=OFF -DGGML_SYCL=OFF -DGGML_RPC=OFF"
llama_cmake_args="${LLAMA_CMAKE_ARGS:-$default_cmake_args}"
py="$venv/bin/python"

log() { printf 'upstreams: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() {
    echo "usage: scripts/upstreams.sh setup | start-mlserver PORT | start-llama PORT | stop PORT" >&2
    exit 2
}

export PYTHONDONTWRITEBYTECODE=1
export PIP_DISABLE_PIP_VERSION_CHECK=1

# --- setup: Debian packages -----------------------------------------------------------------------------------
cmake_ok() {
    local v
    v="$(cmake --version 2>/dev/null | sed -n 's/^cmake version \([0-9]*\.[0-9]*\).*/\1/p')" || return 1
    [[ -n "$v" ]] || return 1
    local major="${v%%.*}" minor="${v#*.}"
    ((major > 3 || (major == 3 && minor >= 21)))
}

install_debian_packages() {
    local missing=()
    cmake_ok || missing+=(cmake)
    command -v ninja >/dev/null 2>&1 || missing+=(ninja-build)
    { command -v g++ >/dev/null 2>&1 && command -v gcc >/dev/null 2>&1 && command -v make >/dev/null 2>&1; } ||
        missing+=(build-essential)
    "$base_python" -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
    ((${#missing[@]} == 0)) && return 0
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them"
    local sudo=""
    if [[ "$(id -u)" != 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "missing ${missing[*]}: need root or sudo to apt-get install them"
        sudo=sudo
    fi
    log "installing Debian packages: ${missing[*]}"
    $sudo apt-get update -qq >&2 || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2 ||
        die "apt-get install ${missing[*]} failed"
    cmake_ok || die "cmake >= 3.21 is needed to build llama-cpp-python (found: $(cmake --version 2>&1 | head -1))"
    "$base_python" -c 'import venv, ensurepip' >/dev/null 2>&1 ||
        die "'$base_python' cannot make a venv (no venv/ensurepip) even after installing python3-venv"
}

# --- setup: the venv -------------------------------------------------------------------------------------------
setup_venv() {
    local stamp="$venv/.requirements.sha256" want
    if [[ ! -x "$py" ]] || ! "$py" -c 'import sys' >/dev/null 2>&1; then
        log "creating $venv with $("$base_python" --version 2>&1)"
        "$base_python" -m venv --clear "$venv" >&2 || die "could not create the venv $venv"
        rm -f "$stamp"
    fi
    want="$( { cat "$requirements"; "$py" -c 'import sys; print(sys.version)'; echo "$llama_cmake_args"; } |
        sha256sum | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        return 0
    fi
    install_debian_packages
    log "installing $requirements into $venv (compiles llama.cpp unless pip has the wheel cached: minutes)"
    rm -f "$stamp"
    local started=$SECONDS
    CMAKE_ARGS="$llama_cmake_args" \
        CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
        "$py" -m pip install --no-input -q -r "$requirements" >&2 ||
        die "pip install -r $requirements failed (see above)"
    "$py" -c 'import numpy, sklearn, joblib, gguf, mlserver, mlserver_sklearn, llama_cpp, llama_cpp.server.app' >&2 ||
        die "the venv $venv does not import its packages"
    log "venv ready in $((SECONDS - started)) s"
    printf '%s\n' "$want" >"$stamp"
}

# --- setup: the models -----------------------------------------------------------------------------------------
# Re-made when a generator or the venv changes; written beside the target and moved into place.
setup_models() {
    local stamp="$work/.models.sha256" want
    want="$( { cat "$here/make_sk_binary.py" "$here/make_tiny_gguf.py" "$venv/.requirements.sha256"; } |
        sha256sum | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -f "$work/mlserver/sk_binary/model.joblib" &&
        -f "$work/mlserver/sk_binary/model-settings.json" && -f "$work/tiny-llama.gguf" &&
        -f "$work/llama-server.json" ]]; then
        return 0
    fi
    log "making the models in $work"
    rm -f "$stamp"
    rm -rf "$work/mlserver.tmp" "$work/tiny-llama.gguf.tmp"
    "$py" "$here/make_sk_binary.py" "$work/mlserver.tmp/sk_binary" || die "make_sk_binary.py failed"
    rm -rf "$work/mlserver"
    mv "$work/mlserver.tmp" "$work/mlserver"
    "$py" "$here/make_tiny_gguf.py" "$work/tiny-llama.gguf.tmp" || die "make_tiny_gguf.py failed"
    mv "$work/tiny-llama.gguf.tmp" "$work/tiny-llama.gguf"
    # Host and port come from the HOST and PORT environment variables at start (llama_cpp.server reads them).
    cat >"$work/llama-server.json" <<EOF
{
  "host": "127.0.0.1",
  "port": 8000,
  "models": [
    {
      "model": "$work/tiny-llama.gguf",
      "model_alias": "tiny-chat",
      "n_ctx": 2048,
      "n_threads": 1,
      "n_threads_batch": 1,
      "seed": 1
    },
    {
      "model": "$work/tiny-llama.gguf",
      "model_alias": "tiny-embed",
      "embedding": true,
      "kv_overrides": ["llama.pooling_type=int:1"],
      "n_ctx": 2048,
      "n_threads": 1,
      "n_threads_batch": 1
    }
  ]
}
EOF
    printf '%s\n' "$want" >"$stamp"
}

setup() {
    [[ -f "$requirements" ]] || die "missing $requirements"
    command -v "$base_python" >/dev/null 2>&1 || die "base interpreter '$base_python' not found (set PYTHON=...)"
    mkdir -p "$work" "$(dirname "$venv")"
    # Two runs at once (parallel tests) set up one after the other, not over each other. The lock's descriptor
    # is closed again before any server starts, so no server holds it.
    exec 9>"$work/.setup.lock"
    if command -v flock >/dev/null 2>&1; then flock 9; fi
    setup_venv
    setup_models
    exec 9>&-
}

# --- servers ---------------------------------------------------------------------------------------------------
check_port() {
    [[ "$1" =~ ^[0-9]+$ ]] && (($1 >= 1 && $1 <= 65535)) || die "not a port: '$1'"
}

# Alive and not a zombie (a server that exited while still this script's child stays one until the script ends).
pid_alive() {
    [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null || return 1
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
    stat="${stat##*) }"
    [[ "${stat:0:1}" != Z ]]
}

# Refuses a PORT that already has a server of ours or on which something listens.
claim_port() {
    local port="$1" kind
    for kind in mlserver llama; do
        local f="$work/$kind-$port.pid"
        if [[ -f "$f" ]]; then
            if pid_alive "$(cat "$f")"; then
                die "a $kind server (pid $(cat "$f")) already runs on port $port: scripts/upstreams.sh stop $port"
            fi
            rm -f "$f"
        fi
    done
    "$py" - "$port" <<'EOF' || die "port $1 on 127.0.0.1 is in use"
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
EOF
}

free_port() {
    "$py" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# Polls URL until it answers 200 while PID lives; returns 1 if the server exited, 2 on timeout.
wait_ready() {
    "$py" - "$1" "$2" "$ready_timeout" <<'EOF'
import os, sys, time, urllib.request
url, pid, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(") ", 1)[1].startswith("Z"):
                sys.exit(1)   # exited, not yet reaped
    except (ProcessLookupError, FileNotFoundError):
        sys.exit(1)
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except Exception:
        pass
    time.sleep(0.1)
sys.exit(2)
EOF
}

# start KIND PORT READY_PATH COMMAND... : the server in the background, PID file, wait, URL on stdout.
start_server() {
    local kind="$1" port="$2" ready_path="$3"
    shift 3
    local pidfile="$work/$kind-$port.pid" logfile="$work/$kind-$port.log" url="http://127.0.0.1:$port" pid rc
    : >"$logfile"
    rm -f "$pidfile"
    local started=$SECONDS i
    # Its own session (setsid): it outlives this script and a signal to the caller's process group. setsid
    # forks when it is a process group leader (a caller with job control), so the server writes its own PID
    # (sh's $$, then exec) rather than this script trusting $!. Standard streams go to the log, so a caller
    # reading this script's stdout gets EOF when the script ends.
    (cd "$work" && exec setsid sh -c 'echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' "$pidfile" "$@" \
        </dev/null >>"$logfile" 2>&1) &
    for i in $(seq 1 100); do
        [[ -s "$pidfile" ]] && break
        sleep 0.05
    done
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    if [[ -z "$pid" ]]; then
        log "error: the $kind server did not start (no PID in $pidfile); last lines of $logfile:"
        tail -n 40 "$logfile" >&2 || true
        exit 1
    fi
    rc=0
    wait_ready "$url$ready_path" "$pid" || rc=$?
    if ((rc != 0)); then
        if ((rc == 1)); then
            log "error: the $kind server exited before it was ready; last lines of $logfile:"
        else
            log "error: the $kind server was not ready (GET $ready_path 200) within $ready_timeout s; last lines of $logfile:"
        fi
        tail -n 40 "$logfile" >&2 || true
        stop_pid "$pid" "$kind"
        rm -f "$pidfile"
        exit 1
    fi
    log "$kind ready on $url in $((SECONDS - started)) s (pid $pid, log $logfile)"
    printf '%s\n' "$url"
}

start_mlserver() {
    local port="$1" grpc_port
    [[ -x "$venv/bin/mlserver" ]] || die "$venv/bin/mlserver missing (setup failed?)"
    claim_port "$port"
    grpc_port="$(free_port)"
    [[ "$grpc_port" != "$port" ]] || grpc_port="$(free_port)"
    MLSERVER_HOST=127.0.0.1 MLSERVER_HTTP_PORT="$port" MLSERVER_GRPC_PORT="$grpc_port" \
        MLSERVER_METRICS_ENDPOINT= MLSERVER_PARALLEL_WORKERS=0 MLSERVER_DEBUG=false \
        start_server mlserver "$port" /v2/health/ready "$venv/bin/mlserver" start "$work/mlserver"
}

start_llama() {
    local port="$1"
    claim_port "$port"
    HOST=127.0.0.1 PORT="$port" \
        start_server llama "$port" /v1/models "$py" -m llama_cpp.server --config_file "$work/llama-server.json"
}

# SIGTERM, up to 15 s, then SIGKILL; waits until the process is gone.
stop_pid() {
    local pid="$1" kind="$2" i
    pid_alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 150); do
        pid_alive "$pid" || return 0
        sleep 0.1
    done
    log "$kind server $pid did not stop on SIGTERM within 15 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
        pid_alive "$pid" || return 0
        sleep 0.1
    done
    die "$kind server $pid did not exit after SIGKILL"
}

stop_port() {
    local port="$1" kind found=0
    for kind in mlserver llama; do
        local f="$work/$kind-$port.pid" pid
        [[ -f "$f" ]] || continue
        found=1
        pid="$(cat "$f")"
        # Only a process that is still the server we started (a PID can be reused once it has exited).
        if pid_alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -Eq 'mlserver|llama_cpp\.server'; then
            stop_pid "$pid" "$kind"
            log "stopped the $kind server on port $port (pid $pid)"
        else
            log "the $kind server on port $port (pid $pid) had already exited"
        fi
        rm -f "$f"
    done
    ((found)) || log "no server started by this script on port $port (no PID file in $work)"
}

case "${1:-}" in
    setup)
        (($# == 1)) || usage
        setup
        log "ready: venv $venv, models in $work"
        ;;
    start-mlserver)
        (($# == 2)) || usage
        check_port "$2"
        setup
        start_mlserver "$2"
        ;;
    start-llama)
        (($# == 2)) || usage
        check_port "$2"
        setup
        start_llama "$2"
        ;;
    stop)
        (($# == 2)) || usage
        check_port "$2"
        stop_port "$2"
        ;;
    *) usage ;;
esac
