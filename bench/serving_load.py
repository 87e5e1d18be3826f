#!/usr/bin/env python3
"""Python side of bench/serving-load (standard library only, except `models`).

Subcommands (paths and ports come from the bash driver):

  models DIR                 train the two reference models (fixed seed) and write into DIR, cached:
                               gbdt.joblib / gbdt.onnx  GradientBoostingClassifier, 200 trees, depth 6, 30 features
                               mlp.joblib  / mlp.onnx   MLPClassifier 30-256-256 (relu)
                               row.json                 one input row (30 floats) used by every request
                             ONNX by skl2onnx with zipmap off; needs scikit-learn, skl2onnx, onnxruntime
                             (the .venv-tools venv of scripts/venv.sh)
  bodies DIR                 write the request bodies and wrk Lua scripts for every target into DIR/targets/
  mlserver-repo DIR MODELS HTTP GRPC METRICS
                             write an MLServer folder: settings.json and one folder per model
                             (gbdt, mlp, and gbdt_batched, mlp_batched with adaptive batching 32 / 5 ms)
  check URL BODY KIND        send BODY once and check the answer is a real prediction (KIND: bare, v1, v2)
  wait URL SECONDS           wait until GET URL answers 200
  quiet MAX_SECONDS          wait (at most MAX_SECONDS) until the machine is idle (< 15% CPU busy over 2 s, i.e.
                             no build running); print the last busy percentage on stdout
  run-wrk OUT PID TIMEOUT -- WRK ARGS...
                             run wrk (output to OUT) and account for the CPU during the run: the server's (all
                             processes in the session of PID), wrk's, and everything else's; JSON on stdout
  parse-wrk FILE             wrk --latency output -> one JSON object on stdout
  batch-sizes URL OUT        scrape Freshline's /metrics; print the freshline_batch_size histogram per feature
  table RESULTS.jsonl...     print the comparison table (rows of every file given that exists)
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

N_FEATURES = 30
SEED = 1234
BATCHED = {"max_batch_size": 32, "max_batch_time": 0.005}
# What the cached models depend on (with the package versions): change it to retrain.
TRAINING = ("make_classification(n_samples=4000, n_features=30, n_informative=15, random_state=1234) float32; "
            "GradientBoostingClassifier(n_estimators=200, max_depth=6, learning_rate=0.1, random_state=1234); "
            "MLPClassifier(hidden_layer_sizes=(256, 256), activation=relu, max_iter=30, random_state=1234); "
            "skl2onnx zipmap off; row = X[0]")


# --- models ---------------------------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    import numpy
    import onnx
    import skl2onnx
    import sklearn

    return {"numpy": numpy.__version__, "onnx": onnx.__version__, "scikit-learn": sklearn.__version__,
            "skl2onnx": skl2onnx.__version__}


def cmd_models(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stamp_file = out / ".stamp"
    h = hashlib.sha256(TRAINING.encode())
    h.update(json.dumps(_versions(), sort_keys=True).encode())
    want = h.hexdigest()
    files = ["gbdt.joblib", "gbdt.onnx", "mlp.joblib", "mlp.onnx", "row.json"]
    if stamp_file.exists() and stamp_file.read_text().strip() == want and all((out / f).exists() for f in files):
        print(f"serving-load: models up to date in {out}", file=sys.stderr)
        return

    import warnings

    import joblib
    import numpy as np
    import onnx
    import onnxruntime as ort
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import make_classification
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.neural_network import MLPClassifier

    warnings.filterwarnings("ignore")
    X, y = make_classification(n_samples=4000, n_features=N_FEATURES, n_informative=15, random_state=SEED)
    X = X.astype(np.float32)
    initial = [("X", FloatTensorType([None, N_FEATURES]))]

    models = {
        "gbdt": GradientBoostingClassifier(n_estimators=200, max_depth=6, learning_rate=0.1, random_state=SEED),
        "mlp": MLPClassifier(hidden_layer_sizes=(256, 256), activation="relu", max_iter=30, random_state=SEED),
    }
    for name, est in models.items():
        t0 = time.time()
        est.fit(X, y)
        joblib.dump(est, out / f"{name}.joblib")
        m = convert_sklearn(est, initial_types=initial, options={id(est): {"zipmap": False}})
        m.graph.name = name
        onnx.checker.check_model(m)
        onnx.save(m, str(out / f"{name}.onnx"))
        # The ONNX file must agree with the estimator MLServer serves.
        sess = ort.InferenceSession(str(out / f"{name}.onnx"), providers=["CPUExecutionProvider"])
        probe = X[:256]
        label, proba = sess.run(None, {"X": probe})
        np.testing.assert_allclose(proba, est.predict_proba(probe), rtol=1e-3, atol=1e-4)
        agree = float(np.mean(label == est.predict(probe)))
        print(f"serving-load: trained {name} in {time.time() - t0:.0f} s (onnx/sklearn label agreement {agree:.3f})",
              file=sys.stderr)
    row = [round(float(v), 6) for v in X[0]]
    (out / "row.json").write_text(json.dumps(row) + "\n")
    stamp_file.write_text(want + "\n")


# --- request bodies and wrk scripts ---------------------------------------------------------------------------

# target name -> (kind, path, body builder); the driver picks targets per server.
def _bodies(row: list[float]) -> dict[str, tuple[str, str, dict]]:
    v1 = {"key": "bench-user-1", "inputs": {"X": row}}
    fl_v2 = {"inputs": [{"name": "X", "shape": [1, N_FEATURES], "datatype": "FP32", "data": row}],
             "outputs": [{"name": "probabilities"}]}
    mls = {"inputs": [{"name": "X", "shape": [1, N_FEATURES], "datatype": "FP32", "data": row}],
           "outputs": [{"name": "predict_proba"}]}
    return {
        "bare": ("bare", "/", v1),
        "freshline_v1_gbdt": ("v1", "/v1/features/gbdt/predict", v1),
        "freshline_v1_mlp": ("v1", "/v1/features/mlp/predict", v1),
        "freshline_v2_gbdt": ("v2", "/v2/models/gbdt/infer", fl_v2),
        "freshline_v2_mlp": ("v2", "/v2/models/mlp/infer", fl_v2),
        "mlserver_gbdt": ("v2", "/v2/models/gbdt/infer", mls),
        "mlserver_mlp": ("v2", "/v2/models/mlp/infer", mls),
        "mlserver_gbdt_batched": ("v2", "/v2/models/gbdt_batched/infer", mls),
        "mlserver_mlp_batched": ("v2", "/v2/models/mlp_batched/infer", mls),
    }


def _lua_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def cmd_bodies(work: Path) -> None:
    row = json.loads((work / "models" / "row.json").read_text())
    targets = work / "targets"
    targets.mkdir(parents=True, exist_ok=True)
    for name, (kind, path, body) in _bodies(row).items():
        text = json.dumps(body, separators=(",", ":"))
        (targets / f"{name}.json").write_text(text)
        (targets / f"{name}.path").write_text(path + "\n")
        (targets / f"{name}.kind").write_text(kind + "\n")
        (targets / f"{name}.lua").write_text(
            "-- written by bench/serving_load.py: one fixed POST body for every request\n"
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = {_lua_string(text)}\n"
        )


# --- MLServer -------------------------------------------------------------------------------------------------


def cmd_mlserver_repo(repo: Path, models: Path, http_port: int, grpc_port: int, metrics_port: int) -> None:
    repo.mkdir(parents=True, exist_ok=True)
    settings = {
        "debug": False,
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
        "load_models_at_startup": True,
        # Defaults otherwise: parallel_workers 1 (inference in one worker process), no access log (debug off).
    }
    (repo / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    for name in ("gbdt", "mlp"):
        for suffix, extra in (("", {}), ("_batched", BATCHED)):
            d = repo / f"{name}{suffix}"
            d.mkdir(exist_ok=True)
            target = d / "model.joblib"
            if target.exists() or target.is_symlink():
                target.unlink()
            target.symlink_to((models / f"{name}.joblib").resolve())
            ms = {"name": f"{name}{suffix}", "implementation": "mlserver_sklearn.SKLearnModel",
                  "parameters": {"uri": "./model.joblib"}, **extra}
            (d / "model-settings.json").write_text(json.dumps(ms, indent=2) + "\n")


# --- checks ---------------------------------------------------------------------------------------------------


def _post(url: str, body: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def cmd_check(url: str, body_file: Path, kind: str) -> None:
    status, raw = _post(url, body_file.read_bytes())
    text = raw.decode("utf-8", "replace")
    if status != 200:
        sys.exit(f"serving-load: {url} answered {status}: {text[:500]}")
    answer = json.loads(raw)
    if kind == "bare":
        ok = answer == {"ok": True}
    elif kind == "v1":
        ok = isinstance(answer.get("outputs"), dict) and answer.get("source") == "realtime"
    else:
        outs = answer.get("outputs") or []
        ok = bool(outs) and all(o.get("data") for o in outs)
    if not ok:
        sys.exit(f"serving-load: {url}: unexpected answer: {text[:500]}")
    print(f"serving-load: checked {url}: {text[:160]}", file=sys.stderr)


def cmd_wait(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
                last = f"status {r.status}"
        except urllib.error.HTTPError as e:
            last = f"status {e.code}"
        except OSError as e:
            last = str(e)
        time.sleep(0.25)
    sys.exit(f"serving-load: {url} not ready after {seconds:g} s ({last})")


def _cpu_busy(seconds: float) -> float:
    """Share of all cores busy over `seconds`, from /proc/stat."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields[:8]), idle

    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    dt = max(total1 - total0, 1)
    return 100.0 * (1.0 - (idle1 - idle0) / dt)


def cmd_quiet(max_seconds: float) -> None:
    deadline = time.monotonic() + max_seconds
    busy = _cpu_busy(2.0)
    warned = False
    while busy >= 15.0 and time.monotonic() < deadline:
        if not warned:
            print(f"serving-load: the machine is {busy:.0f}% busy (a build?); waiting up to {max_seconds:g} s for it "
                  "to go quiet", file=sys.stderr)
            warned = True
        busy = _cpu_busy(2.0)
    if busy >= 15.0:
        print(f"serving-load: WARNING: still {busy:.0f}% busy before measuring: numbers will be low and noisy",
              file=sys.stderr)
    print(f"{busy:.0f}")


def _busy_ticks() -> int:
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return sum(fields[:8]) - fields[3] - (fields[4] if len(fields) > 4 else 0)


def _session_ticks(sid: int) -> int:
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command (which may hold spaces) start at state: session is 6th, utime 14th, stime 15th.
        rest = raw[raw.rindex(")") + 2:].split()
        if int(rest[3]) == sid:
            total += int(rest[11]) + int(rest[12])
    return total


def cmd_run_wrk(out: Path, sid: int, timeout: float, wrk: list[str]) -> None:
    import os
    import resource
    import subprocess

    raw = Path(f"/proc/{sid}/stat").read_text()  # the server's pid: account for its whole session
    sid = int(raw[raw.rindex(")") + 2:].split()[3])
    hz = os.sysconf("SC_CLK_TCK")
    cores = os.cpu_count() or 1
    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0, server0, t0 = _busy_ticks(), _session_ticks(sid), time.monotonic()
    with out.open("w") as f:
        try:
            rc = subprocess.run(wrk, stdout=f, stderr=subprocess.STDOUT, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            sys.exit(f"serving-load: wrk did not finish within {timeout:g} s")
    elapsed = time.monotonic() - t0
    busy1, server1 = _busy_ticks(), _session_ticks(sid)
    after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    if rc != 0:
        sys.exit(f"serving-load: wrk exited with {rc} (see {out})")
    wrk_s = (after_children.ru_utime + after_children.ru_stime) - (before_children.ru_utime + before_children.ru_stime)
    server_s = (server1 - server0) / hz
    busy_s = (busy1 - busy0) / hz
    other_s = max(0.0, busy_s - server_s - wrk_s)
    print(json.dumps({
        "server_cores": round(server_s / elapsed, 2),
        "wrk_cores": round(wrk_s / elapsed, 2),
        "other_busy_pct": round(100.0 * other_s / (elapsed * cores), 1),
    }))


# --- wrk output -----------------------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(text: str) -> dict:
    out: dict = {"non2xx": 0, "socket_errors": 0}
    m = re.search(r"Requests/sec:\s+([0-9.]+)", text)
    if not m:
        raise ValueError("no Requests/sec line in wrk output")
    out["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in ([0-9.]+\w+)", text)
    if m:
        out["requests"] = int(m.group(1))
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}(?:\.0+)?%\s+([0-9.]+\w+)", text, re.MULTILINE)
        if m:
            out[f"p{pct}_ms"] = _ms(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if m:
        out["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        out["socket_errors"] = sum(int(g) for g in m.groups())
    return out


def cmd_parse_wrk(path: Path) -> None:
    print(json.dumps(parse_wrk(path.read_text())))


# --- Freshline's batch sizes ----------------------------------------------------------------------------------


def _labels(text: str) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', text))


def cmd_batch_sizes(url: str, out: Path) -> None:
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode("utf-8", "replace")
    out.write_text(text)
    buckets: dict[str, list[tuple[float, float]]] = {}
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r"freshline_batch_size_(bucket|sum|count)(?:\{(.*)\})?\s+(\S+)", line)
        if not m:
            continue
        part, labels, value = m.group(1), _labels(m.group(2) or ""), float(m.group(3))
        key = labels.get("feature") or labels.get("model") or ",".join(
            f"{k}={v}" for k, v in sorted(labels.items()) if k != "le") or "-"
        if part == "bucket":
            le = labels.get("le", "+Inf")
            buckets.setdefault(key, []).append((float("inf") if le == "+Inf" else float(le), value))
        elif part == "sum":
            sums[key] = value
        else:
            counts[key] = value
    if not buckets:
        print("  (no freshline_batch_size histogram in /metrics)")
        return
    for key in sorted(buckets):
        rows = sorted(buckets[key])
        total = counts.get(key, rows[-1][1] if rows else 0)
        mean = sums.get(key, 0) / total if total else 0.0
        print(f"  {key}: {int(total)} batches, mean size {mean:.2f}")
        previous = 0.0
        lower = 0.0
        for le, cumulative in rows:
            n = cumulative - previous
            previous = cumulative
            label = f"> {lower:g}" if le == float("inf") else (f"<= {le:g}" if lower == 0 else f"{lower:g} < s <= {le:g}")
            lower = le
            if n <= 0:
                continue
            share = n / total if total else 0.0
            bar = "#" * max(1, round(share * 40))
            print(f"    {label:>16}  {int(n):>8}  {share * 100:5.1f}%  {bar}")


# --- the table ------------------------------------------------------------------------------------------------


def cmd_table(paths: list[Path]) -> None:
    rows = []
    runs = []
    for path in paths:
        if not path.exists():
            continue
        part = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        rows += part
        if part:
            runs.append(f"{path.stem.removeprefix('results-')} {time.strftime('%Y-%m-%d %H:%M', time.localtime(path.stat().st_mtime))}")
    if not rows:
        sys.exit("serving-load: no results")
    bare = next((r for r in rows if r["target"] == "bare"), None)
    mls = {r["model"]: r for r in rows if r["target"] in ("mlserver_gbdt", "mlserver_mlp")}

    def ratio(a: float | None, b: float | None) -> str:
        return f"{a / b:.2f}x" if a and b else "-"

    header = ["server / path", "model", "req/s", "p50 ms", "p99 ms", "vs MLServer", "vs bare", "errors",
              "server cores", "other CPU"]
    table = []
    for r in rows:
        ref = mls.get(r["model"])
        errors = r.get("non2xx", 0) + r.get("socket_errors", 0)
        table.append([
            r["label"], r["model"], f"{r['rps']:,.0f}",
            f"{r.get('p50_ms', float('nan')):.2f}", f"{r.get('p99_ms', float('nan')):.2f}",
            "-" if r["target"] in ("mlserver_gbdt", "mlserver_mlp") else ratio(r["rps"], ref["rps"] if ref else None),
            "-" if r["target"] == "bare" else ratio(r["rps"], bare["rps"] if bare else None),
            str(errors),
            f"{r['server_cores']:.2f}" if "server_cores" in r else "-",
            f"{r['other_busy_pct']:.0f}%" if "other_busy_pct" in r else "-",
        ])
    widths = [max(len(header[i]), *(len(t[i]) for t in table)) for i in range(len(header))]
    right = {2, 3, 4, 5, 6, 7, 8, 9}

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(cells))

    print("runs: " + ", ".join(runs))
    print(fmt(header))
    print("  ".join("-" * w for w in widths))
    for t in table:
        print(fmt(t))
    print()
    print("vs MLServer: requests/s over MLServer's unbatched requests/s on the same model; vs bare: over the bare "
          "endpoint's requests/s (the HTTP floor). errors: non-2xx answers + socket errors during the measured run.\n"
          "server cores: CPU time of the server's processes / wall time during the measured run (wrk takes most "
          "of the rest).\nother CPU: the machine's CPU used by anything but the server and wrk during the run, "
          "as a share of all cores (well above 0% = a build or other work competed; numbers then read low).")


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return
    cmd, args = argv[1], argv[2:]
    if cmd == "models" and len(args) == 1:
        cmd_models(Path(args[0]))
    elif cmd == "bodies" and len(args) == 1:
        cmd_bodies(Path(args[0]))
    elif cmd == "mlserver-repo" and len(args) == 5:
        cmd_mlserver_repo(Path(args[0]), Path(args[1]), int(args[2]), int(args[3]), int(args[4]))
    elif cmd == "check" and len(args) == 3:
        cmd_check(args[0], Path(args[1]), args[2])
    elif cmd == "wait" and len(args) == 2:
        cmd_wait(args[0], float(args[1]))
    elif cmd == "quiet" and len(args) == 1:
        cmd_quiet(float(args[0]))
    elif cmd == "run-wrk" and len(args) >= 5 and args[3] == "--":
        cmd_run_wrk(Path(args[0]), int(args[1]), float(args[2]), args[4:])
    elif cmd == "parse-wrk" and len(args) == 1:
        cmd_parse_wrk(Path(args[0]))
    elif cmd == "batch-sizes" and len(args) == 2:
        cmd_batch_sizes(args[0], Path(args[1]))
    elif cmd == "table" and args:
        cmd_table([Path(a) for a in args])
    else:
        sys.exit(f"serving_load.py: bad arguments: {' '.join(argv[1:])} (see --help)")


if __name__ == "__main__":
    main(sys.argv)
