#!/usr/bin/env python3
"""Overload: does Freshline hold a 5 ms latency budget at 10x the saturating concurrency?

  bench/overload [--binary PATH] [--budget MS] [--seconds S] [--factor N] [--only v1,v2]

For each API (/v1 predict of a feature, /v2 infer of its model; one row of 16 floats, the zoo's gbc_binary):
  1. sweep wrk's concurrency (1, 2, 4, ..., 64; --seconds each) with `X-Freshline-Timeout: BUDGET` and find the
     saturating concurrency: the smallest whose answered-200 throughput is within 5% of the sweep's best;
  2. at FACTOR x that concurrency (default 10), run wrk again, and beside it a probe client (one keep-alive
     connection, sequential requests) that times each of its own requests: the probe's admitted (200) requests
     stand for the admitted requests at the client (wrk only reports latency over all answers, 503s included);
  3. read the server's own p99 of answered requests (GET /v1/features/NAME: live.latency.realtime.p99_seconds,
     an HDR histogram of arrival-to-answer time; /v2 calls have no feature histogram: the probe's is reported).
Prints a table: saturating concurrency and throughput, and at overload: admitted/s (ratio to saturating), refused
share (and whether every refusal carried Retry-After), p99 inside the server, the probe's p50/p99 of admitted
requests at the client, against the targets (inside <= budget, client <= 2x budget, admitted >= 0.9x).

Traffic goes to 127.0.0.1 only; every run is bounded by --seconds; the server started is stopped on exit.
Needs: wrk (installed with apt-get when missing), a release build of freshline (`make release`).
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROW = [0.5, -1.2, 0.3, 2.0, 0.0, 1.1, -0.4, 0.9, 0.2, -2.2, 1.5, 0.7, -0.1, 0.05, 1.9, -0.6]
TOKEN = "bench-secret"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lua_script(path, body, budget_ms):
    """A wrk script: POST body with the headers, and a count of 503s that carried Retry-After."""
    return f"""
wrk.method = "POST"
wrk.body = {json.dumps(json.dumps(body))}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {TOKEN}"
wrk.headers["X-Freshline-Timeout"] = "{budget_ms}ms"
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) refused = 0; retry_after = 0 end
function response(status, headers, body)
  if status == 503 then
    refused = refused + 1
    if headers["Retry-After"] ~= nil or headers["retry-after"] ~= nil then retry_after = retry_after + 1 end
  end
end
function done(summary, latency, requests)
  local r, a = 0, 0
  for _, t in ipairs(threads) do r = r + t:get("refused"); a = a + t:get("retry_after") end
  io.write(string.format("FRESHLINE refused=%d retry_after=%d\\n", r, a))
end
"""


def run_wrk(url_path, port, script, connections, seconds):
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency", "-s", script,
         f"http://127.0.0.1:{port}{url_path}"],
        capture_output=True, text=True, timeout=seconds + 30)
    text = out.stdout
    total = int(re.search(r"(\d+) requests in", text).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    non2xx = int(non2xx.group(1)) if non2xx else 0
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    m = re.search(r"FRESHLINE refused=(\d+) retry_after=(\d+)", text)
    refused, retry_after = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    return {"total": total, "ok": total - non2xx, "non2xx": non2xx, "refused": refused,
            "retry_after": retry_after, "ok_per_s": (total - non2xx) / seconds,
            "socket_errors": errors.group(0) if errors else ""}


class Probe(threading.Thread):
    """One keep-alive connection, sequential requests, each timed; runs until stopped."""

    def __init__(self, port, path, body, budget_ms):
        super().__init__(daemon=True)
        self.port, self.path, self.body, self.budget_ms = port, path, json.dumps(body), budget_ms
        self.ok, self.statuses, self.stop = [], {}, threading.Event()

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}",
                   "X-Freshline-Timeout": f"{self.budget_ms}ms"}
        while not self.stop.is_set():
            start = time.perf_counter()
            try:
                conn.request("POST", self.path, self.body, headers)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                continue
            elapsed = time.perf_counter() - start
            self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
            if response.status == 200:
                self.ok.append(elapsed)
            time.sleep(0.002)


def percentile(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def duration_buckets(port, feature):
    """freshline_request_duration_seconds of answered (source realtime) requests: {le: cumulative count}."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    buckets = {}
    pattern = re.compile(r'freshline_request_duration_seconds_bucket\{(.*?)\} (\S+)')
    for labels, value in pattern.findall(text):
        if f'feature="{feature}"' in labels and 'source="realtime"' in labels:
            le = re.search(r'le="([^"]+)"', labels).group(1)
            buckets[float(le)] = float(value)
    return buckets


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.environ.get("FRESHLINE", f"{ROOT}/.build/release/freshline"))
    parser.add_argument("--budget", type=int, default=5, help="latency budget in ms (default 5)")
    parser.add_argument("--seconds", type=int, default=10, help="seconds per measurement (default 10)")
    parser.add_argument("--factor", type=int, default=10, help="overload factor over the saturating concurrency")
    parser.add_argument("--only", default="v1,v2")
    args = parser.parse_args()
    if not (1 <= args.budget <= 1000 and 1 <= args.seconds <= 120 and 1 <= args.factor <= 100):
        sys.exit("overload: --budget 1..1000, --seconds 1..120, --factor 1..100")
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"overload: no freshline binary at {args.binary} (make release)")
    if shutil.which("wrk") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)

    work = tempfile.mkdtemp(prefix="freshline-overload-")
    port = free_port()
    manifest = f"""version: 1
models:
  gbdt: {ROOT}/Tests/Fixtures/zoo/gbc_binary.onnx
features:
  score:
    model: gbdt
    latency_budget: {args.budget}ms
server:
  port: {port}
  request_log_sample_rate: 0.01
store: {work}/state.sqlite
tokens:
  - {{name: bench, token: {TOKEN}, scopes: [predict, admin]}}
"""
    with open(f"{work}/freshline.yaml", "w") as f:
        f.write(manifest)
    server = subprocess.Popen([args.binary, "serve", f"{work}/freshline.yaml"], stdout=subprocess.DEVNULL,
                              stderr=open(f"{work}/server.log", "w"))
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            sys.exit("overload: the server did not start (see server.log)")
        apis = {
            "v1": ("/v1/features/score/predict", {"inputs": {"X": ROW}}),
            "v2": ("/v2/models/gbdt/infer",
                   {"inputs": [{"name": "X", "shape": [1, 16], "datatype": "FP32", "data": ROW}]}),
        }
        rows = []
        print(f"server RSS after start: {rss_mb(server.pid):.0f} MB")
        for name in args.only.split(","):
            path, body = apis[name]
            script = f"{work}/{name}.lua"
            with open(script, "w") as f:
                f.write(lua_script(path, body, args.budget))
            run_wrk(path, port, script, 4, 2)  # warm-up
            sweep = {c: run_wrk(path, port, script, c, args.seconds) for c in (1, 2, 4, 8, 16, 32, 64)}
            best = max(r["ok_per_s"] for r in sweep.values())
            saturating = min(c for c, r in sweep.items() if r["ok_per_s"] >= 0.95 * best)
            probe = Probe(port, path, body, args.budget)
            before = duration_buckets(port, "score") if name == "v1" else {}
            probe.start()
            over = run_wrk(path, port, script, saturating * args.factor, args.seconds)
            probe.stop.set()
            probe.join(timeout=15)
            inside = float("nan")
            if name == "v1":
                # The share of the overload run's answers the server gave within the budget, from the histogram's
                # deltas (its bucket bounds include 5 ms): p99 <= budget when that share is >= 99%.
                after = duration_buckets(port, "score")
                bound = max([le for le in after if le <= args.budget / 1000] or [float("nan")])
                total = after.get(float("inf"), 0) - before.get(float("inf"), 0)
                within = after.get(bound, 0) - before.get(bound, 0)
                inside = within / total if total else float("nan")
                print(f"v1 overload: {total:.0f} answered, {within:.0f} within {bound * 1000:g} ms inside the server")
            rows.append((name, saturating, sweep[saturating]["ok_per_s"], best, over, inside, probe))
            for c, r in sweep.items():
                print(f"{name} sweep c={c:3d}: {r['ok_per_s']:9.0f} answered/s, {r['non2xx']} non-2xx "
                      f"{r['socket_errors']}")
            requests_so_far = sum(r["total"] for r in sweep.values()) + over["total"]
            print(f"{name}: {requests_so_far} requests; server RSS now {rss_mb(server.pid):.0f} MB")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=40)
        except subprocess.TimeoutExpired:
            server.kill()

    budget = args.budget / 1000
    print()
    print(f"| API | saturating c | answered/s there | overload c | admitted/s (ratio) | refused (with "
          f"Retry-After) | answered within budget inside server | probe p50 / p99 of admitted | targets |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, c, sat, best, over, inside, probe in rows:
        ratio = over["ok_per_s"] / sat if sat else float("nan")
        refused_share = over["refused"] / over["total"] if over["total"] else float("nan")
        other_share = (over["non2xx"] - over["refused"]) / over["total"] if over["total"] else float("nan")
        p50, p99 = percentile(probe.ok, 0.5), percentile(probe.ok, 0.99)
        met = []
        met.append("inside " + ("ok" if inside >= 0.99 else "MISSED" if inside == inside else "n/a"))
        met.append("client " + ("ok" if p99 <= 2 * budget else "MISSED"))
        met.append("throughput " + ("ok" if ratio >= 0.9 else "MISSED"))
        print(f"| {name} | {c} | {sat:.0f} | {c * args.factor} | {over['ok_per_s']:.0f} ({ratio:.2f}x) | "
              f"503 {refused_share:.1%} ({over['retry_after']}/{over['refused']} with Retry-After), other non-2xx "
              f"{other_share:.1%} | "
              f"{inside:.2%} | {p50 * 1000:.2f} / {p99 * 1000:.2f} ms ({len(probe.ok)} admitted, "
              f"statuses {probe.statuses}) | {', '.join(met)} |")


if __name__ == "__main__":
    main()
