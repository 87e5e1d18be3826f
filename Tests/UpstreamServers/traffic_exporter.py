#!/usr/bin/python3
"""A stand-in for a feature served elsewhere, for the advisor's Prometheus test (PrometheusAdviceTests).

Exposes, on 127.0.0.1 at a free port (written to --port-file), with Debian's python3-prometheus-client:
  shop_requests_total{handler, status}          counter of requests (status 200 or 500)
  shop_request_duration_seconds{handler}        histogram of latencies (buckets 5ms … 2.5s)
  process_cpu_seconds_total …                   the client's default process metrics
Once --go-file exists it "serves" requests on a fixed schedule, forever (until killed):
  /score   50 per second; every 20th fails (5%); latencies 90% 20ms, 5% 80ms, 5% 300ms
  /search  20 per second; every 100th fails (1%); latencies all 20ms
and appends to --stats-file, every second, one JSON line with the time and the totals so far, so that the test
knows exactly what was generated. No randomness: the same schedule every run.
"""

import argparse
import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
REQUESTS = Counter("shop_requests", "Requests served.", ["handler", "status"])
LATENCY = Histogram("shop_request_duration_seconds", "Request latency.", ["handler"], buckets=BUCKETS)
HANDLERS = {
    # handler: (requests per second, every Nth fails, latency of the i-th request)
    "/score": (50, 20, lambda i: 0.3 if i % 20 == 7 else (0.08 if i % 20 == 13 else 0.02)),
    "/search": (20, 100, lambda i: 0.02),
}


class Metrics(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        body = generate_latest(REGISTRY)
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE_LATEST)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--go-file", required=True)
    parser.add_argument("--stats-file", required=True)
    args = parser.parse_args()
    # Stop on SIGTERM even when started with it ignored (a test runner's children can inherit that).
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))

    # Every series exists from the first scrape, at 0.
    for handler in HANDLERS:
        for status in ("200", "500"):
            REQUESTS.labels(handler=handler, status=status)
        LATENCY.labels(handler=handler)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(args.port_file + ".tmp", args.port_file)

    while not os.path.exists(args.go_file):
        time.sleep(0.05)

    start = time.time()
    done = {h: 0 for h in HANDLERS}
    failed = {h: 0 for h in HANDLERS}
    next_stats = start + 1
    while True:
        now = time.time()
        for handler, (rate, every, latency) in HANDLERS.items():
            due = int((now - start) * rate)
            while done[handler] < due:
                i = done[handler]
                status = "500" if i % every == 0 else "200"
                REQUESTS.labels(handler=handler, status=status).inc()
                LATENCY.labels(handler=handler).observe(latency(i))
                done[handler] += 1
                failed[handler] += status == "500"
        if now >= next_stats:
            with open(args.stats_file, "a") as f:
                f.write(json.dumps({"time": now, "requests": done, "errors": failed}) + "\n")
            next_stats += 1
        time.sleep(0.005)


if __name__ == "__main__":
    main()
