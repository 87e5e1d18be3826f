#!/usr/bin/env python3
"""Drives mixed traffic at a running Freshline server for the advisor's sample report (standard library only).

Four features over zoo models, each with a traffic shape the advisor should recognise:
  fraud        a new transaction per request, its fields in the request       -> rule 1, real time
  churn        200 accounts with fixed inputs, heavy traffic                  -> rule 3, batch
  recs         30 users whose session signals change on every request         -> rule 2, real time
  recs_hybrid  30 users: stable candidates (X), changing session clicks (Xi)  -> rule 2, hybrid
"""
import argparse
import json
import random
import threading
import time
import urllib.request


def post(port, token, feature, rows):
    body = json.dumps({"rows": rows}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/features/{feature}/predict", data=body, method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def vector(rng, n):
    return [round(rng.uniform(-2, 2), 3) for _ in range(n)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=18090)
    parser.add_argument("--token", default="demo-admin")
    parser.add_argument("--seconds", type=float, default=90)
    args = parser.parse_args()
    rng = random.Random(11)
    accounts = [vector(rng, 16) for _ in range(200)]
    candidates = [vector(rng, 12) for _ in range(30)]
    deadline = time.monotonic() + args.seconds
    counts = {"fraud": 0, "churn": 0, "recs": 0, "recs_hybrid": 0}

    def loop(feature, period, make_rows):
        local = random.Random(feature)
        while time.monotonic() < deadline:
            started = time.monotonic()
            rows = make_rows(local)
            post(args.port, args.token, feature, rows)
            counts[feature] += len(rows)
            time.sleep(max(0, period - (time.monotonic() - started)))

    tx = iter(range(10**9))
    threads = [
        threading.Thread(target=loop, args=("fraud", 0.5, lambda r: [
            {"key": f"tx-{next(tx)}", "inputs": {"X": vector(r, 16)}} for _ in range(20)])),
        threading.Thread(target=loop, args=("churn", 0.25, lambda r: [
            {"key": f"acct-{a}", "inputs": {"X": accounts[a]}} for a in (r.randrange(200) for _ in range(50))])),
        threading.Thread(target=loop, args=("recs", 1.0, lambda r: [
            {"key": f"user-{u}", "inputs": {"X": vector(r, 16)}} for u in range(30)])),
        threading.Thread(target=loop, args=("recs_hybrid", 1.0, lambda r: [
            {"key": f"user-{u}", "inputs": {"X": candidates[u], "Xi": [r.randrange(1000) for _ in range(3)]}}
            for u in range(30)])),
    ]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(10)
        print("traffic: " + ", ".join(f"{k} {v}" for k, v in counts.items()), flush=True)
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
