#!/usr/bin/env python3
"""Freshline in front of an OIP model server: what does the hop cost, and what does micro-batching buy?

  bench/upstream-oip [--binary PATH] [--seconds S] [--connections C]

Starts MLServer with the sklearn model of Tests/UpstreamServers (scripts/upstreams.sh: `sk_binary`, 16 FP32 inputs,
MLServer's adaptive batching off, its default) and `freshline serve` with an `oip` model over it, then sends the
same one-row requests with wrk (one thread, C connections, S seconds each), one after the other:
  1. direct:   POST MLServer /v2/models/sk_binary/infer
  2. via /v2:  POST Freshline /v2/models/sk/infer (one upstream call per request, no micro-batching)
  3. via /v1:  POST Freshline /v1/features/live/predict (rows micro-batched into one tensor request per batch)
and a sequential probe (one connection, 300 requests) for each, for p50 at low load.
Prints answered/s, the ratio to direct, and p50/p99 (wrk's, under load; the probe's, unloaded).
Issue 19's targets: Freshline adds <= 1 ms at p50 and keeps >= 0.9x the direct throughput (/v2), and
micro-batching raises throughput over direct calls (/v1, reported as a ratio).
Everything listens on 127.0.0.1 and is stopped on exit. Needs wrk (apt) and a release build (`make release`).
"""
import argparse
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROW = [0.5, -1.2, 0.3, 2.0, 0.0, 1.1, -0.4, 0.9, 0.2, -2.2, 1.5, 0.7, -0.1, 0.05, 1.9, -0.6]
TOKEN = "bench-secret"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wrk(url, body, connections, seconds, work):
    script = os.path.join(work, f"wrk-{abs(hash(url))}.lua")
    with open(script, "w") as f:
        f.write(f"""wrk.method = "POST"
wrk.body = {json.dumps(json.dumps(body))}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {TOKEN}"
""")
    out = subprocess.run(["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency", "-s", script,
                          url], capture_output=True, text=True, timeout=seconds + 30).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    non2xx = int(non2xx.group(1)) if non2xx else 0

    def latency(q):
        m = re.search(rf"^\s+{q}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return {"ok_per_s": (total - non2xx) / seconds, "non2xx": non2xx, "p50": latency(50), "p99": latency(99)}


def probe(port, path, body, count=300):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    text = json.dumps(body)
    times = []
    for _ in range(count):
        start = time.perf_counter()
        conn.request("POST", path, text, headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            sys.exit(f"upstream-oip: {path} answered {response.status}")
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return times[len(times) // 2]


def wait_for(port, path, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"upstream-oip: 127.0.0.1:{port}{path} did not become ready")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.environ.get("FRESHLINE", f"{ROOT}/.build/release/freshline"))
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if not (1 <= args.seconds <= 120 and 1 <= args.connections <= 512):
        sys.exit("upstream-oip: --seconds 1..120, --connections 1..512")
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"upstream-oip: no freshline binary at {args.binary} (make release)")
    if shutil.which("wrk") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)

    work = tempfile.mkdtemp(prefix="freshline-upstream-oip-")
    upstreams = os.path.join(ROOT, "scripts", "upstreams.sh")
    ml_port, port = free_port(), free_port()
    ml_url = subprocess.run([upstreams, "start-mlserver", str(ml_port)], check=True, capture_output=True,
                            text=True).stdout.strip()
    server = None
    try:
        with open(f"{work}/freshline.yaml", "w") as f:
            f.write(f"""version: 1
models:
  sk:
    kind: oip
    url: {ml_url}
    model: sk_binary
    limits: {{max_connections: {args.connections}, max_batch_rows: 64}}
features:
  live:
    model: sk
    latency_budget: 1s
    batching: {{max_batch_size: 64, max_queue_delay: 2ms}}
server:
  port: {port}
  request_log_sample_rate: 0.01
store: {work}/state.sqlite
tokens:
  - {{name: bench, token: {TOKEN}, scopes: [predict, admin]}}
""")
        server = subprocess.Popen([args.binary, "serve", f"{work}/freshline.yaml"], stdout=subprocess.DEVNULL,
                                  stderr=open(f"{work}/server.log", "w"))
        wait_for(port, "/healthz/ready")
        v2 = {"inputs": [{"name": "X", "shape": [1, 16], "datatype": "FP32", "data": ROW}]}
        # The same work on both sides: Freshline asks the upstream for every output of its metadata, and MLServer
        # computes predict_proba only when asked.
        direct = dict(v2, outputs=[{"name": "predict"}, {"name": "predict_proba"}])
        cases = [
            ("direct", ml_port, "/v2/models/sk_binary/infer", direct),
            ("via /v2", port, "/v2/models/sk/infer", v2),
            ("via /v1 (micro-batched)", port, "/v1/features/live/predict", {"inputs": {"X": ROW}}),
        ]
        rows = []
        for name, p, path, body in cases:
            unloaded = probe(p, path, body)
            loaded = wrk(f"http://127.0.0.1:{p}{path}", body, args.connections, args.seconds, work)
            rows.append((name, unloaded, loaded))
            print(f"{name}: {loaded}", file=sys.stderr)
        direct = rows[0][2]["ok_per_s"]
        print(f"\n| path | answered/s at c={args.connections} | ratio to direct | p50 / p99 under load (ms) "
              f"| p50 unloaded (ms) | added p50 unloaded (ms) | non-2xx |")
        print("|---|---|---|---|---|---|---|")
        for name, unloaded, loaded in rows:
            print(f"| {name} | {loaded['ok_per_s']:.0f} | {loaded['ok_per_s'] / direct:.2f}x "
                  f"| {loaded['p50']:.2f} / {loaded['p99']:.2f} | {unloaded:.2f} "
                  f"| {unloaded - rows[0][1]:+.2f} | {loaded['non2xx']} |")
    finally:
        if server:
            server.terminate()
            server.wait(timeout=30)
        subprocess.run([upstreams, "stop", str(ml_port)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
