"""End-to-end async jobs per second (submit -> result), Freshline against Celery + Redis, for bench/async-jobs.

  python bench/async_jobs.py freshline URL FEATURE N CONCURRENCY
  python bench/async_jobs.py celery REDIS_URL N CONCURRENCY        (needs the celery worker of celery_noop.py)
  python bench/async_jobs.py table FILE...

Each of CONCURRENCY threads submits jobs one after the other and waits for each result before the next: for
Freshline, POST /v1/features/FEATURE/jobs with `Prefer: wait=30` (answered when the job is done); for Celery,
noop.delay() then .get(). Prints one JSON line: jobs, seconds, jobs_per_second, p50/p99 latency (ms).
"""

import http.client
import json
import sys
import threading
import time
from urllib.parse import urlparse


def _run(n: int, concurrency: int, one) -> dict:
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(n))
    errors = [0]

    def worker(state):
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            start = time.perf_counter()
            try:
                ok = one(state, i)
            except Exception as e:  # counted, and the first one is shown
                if errors[0] == 0:
                    print(f"async_jobs: {type(e).__name__}: {e}", file=sys.stderr)
                ok = False
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                if not ok:
                    errors[0] += 1

    states = [dict() for _ in range(concurrency)]
    threads = [threading.Thread(target=worker, args=(s,)) for s in states]
    begin = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - begin
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else 0
    if errors[0]:
        print(f"async_jobs: {errors[0]} of {n} jobs failed", file=sys.stderr)
    return {"jobs": n, "seconds": round(seconds, 3), "jobs_per_second": round(n / seconds, 1),
            "p50_ms": round(pick(0.5), 2), "p99_ms": round(pick(0.99), 2), "errors": errors[0],
            "concurrency": concurrency}


def freshline(url: str, feature: str, n: int, concurrency: int) -> dict:
    parsed = urlparse(url)
    body = json.dumps({"inputs": {"X": [0.5] * 30}}).encode()

    def one(state, i):
        conn = state.get("conn")
        if conn is None:
            conn = state["conn"] = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
        conn.request("POST", f"/v1/features/{feature}/jobs", body=body,
                     headers={"Content-Type": "application/json", "Prefer": "wait=30"})
        response = conn.getresponse()
        data = response.read()
        return response.status == 200 and b'"source":"async"' in data

    return _run(n, concurrency, one)


def celery(redis_url: str, n: int, concurrency: int) -> dict:
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    import celery_noop  # noqa: E402

    app = celery_noop.make_app(redis_url)
    noop = app.tasks["celery_noop.noop"]

    def one(state, i):
        return noop.delay(i).get(timeout=60) == i

    return _run(n, concurrency, one)


def table(paths: list[str]) -> None:
    rows = [json.loads(open(p).read()) for p in paths]
    by = {r["system"]: r for r in rows}
    for r in rows:
        print(f"{r['system']:28s} {r['jobs_per_second']:>9,.0f} jobs/s  p50 {r['p50_ms']:.2f} ms  "
              f"p99 {r['p99_ms']:.2f} ms  errors {r['errors']}  ({r['jobs']} jobs, {r['concurrency']} clients)")
    if "freshline" in by and "celery" in by:
        print(f"freshline / celery: {by['freshline']['jobs_per_second'] / by['celery']['jobs_per_second']:.2f}x")


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "freshline":
        print(json.dumps(freshline(args[0], args[1], int(args[2]), int(args[3]))))
    elif command == "celery":
        print(json.dumps(celery(args[0], int(args[1]), int(args[2]))))
    elif command == "table":
        table(args)
    else:
        sys.exit(f"unknown command {command}")
