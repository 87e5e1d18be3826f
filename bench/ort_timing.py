#!/usr/bin/env python3
"""onnxruntime side of bench/engine-vs-onnxruntime.

Subcommands (all paths are given by the bash driver):

  models DIR             build the bench models into DIR (cached: rebuilt only
                         when this file or the package versions change)
                           gbc_200x6.onnx   GradientBoostingClassifier, 200 trees,
                                            depth 6, 30 features, zipmap off
                           mlp_256x256.onnx MLPRegressor 30-256-256-1, relu
                           identity.onnx    one Identity node, float [N, 30]
  time DIR OUT.json      time onnxruntime on every model and batch size
                         (1 intra-op / 1 inter-op thread, sequential); per-call
                         median over --seconds of repeated calls
  report ORT.json FRESHLINE.jsonl
                         print the comparison table
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

MODELS = ("gbc_200x6", "mlp_256x256", "identity")
N_FEATURES = 30
SEED = 1234


def _versions() -> dict[str, str]:
    import numpy
    import onnx
    import onnxruntime
    import skl2onnx
    import sklearn

    return {"numpy": numpy.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "scikit-learn": sklearn.__version__,
            "skl2onnx": skl2onnx.__version__}


def _stamp() -> str:
    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update(json.dumps(_versions(), sort_keys=True).encode())
    return h.hexdigest()


def build_models(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stamp_file = out / ".stamp"
    want = _stamp()
    if (stamp_file.exists() and stamp_file.read_text().strip() == want
            and all((out / f"{m}.onnx").exists() for m in MODELS)):
        print(f"bench models up to date in {out}", file=sys.stderr)
        return

    import warnings

    import onnx
    from onnx import TensorProto, helper
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import make_classification, make_regression
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.neural_network import MLPRegressor

    warnings.filterwarnings("ignore")
    it = [("X", FloatTensorType([None, N_FEATURES]))]

    t0 = time.time()
    X, y = make_classification(n_samples=4000, n_features=N_FEATURES, n_informative=15,
                               random_state=SEED)
    gbc = GradientBoostingClassifier(n_estimators=200, max_depth=6, learning_rate=0.1,
                                     random_state=SEED).fit(X, y)
    m = convert_sklearn(gbc, initial_types=it, options={id(gbc): {"zipmap": False}})
    m.graph.name = "gbc_200x6"
    onnx.save(m, str(out / "gbc_200x6.onnx"))
    print(f"built gbc_200x6 ({time.time() - t0:.0f} s)", file=sys.stderr)

    t0 = time.time()
    Xr, yr = make_regression(n_samples=3000, n_features=N_FEATURES, noise=1.0,
                             random_state=SEED)
    mlp = MLPRegressor(hidden_layer_sizes=(256, 256), activation="relu", max_iter=30,
                       random_state=SEED).fit(Xr, yr)
    m = convert_sklearn(mlp, initial_types=it)
    m.graph.name = "mlp_256x256"
    onnx.save(m, str(out / "mlp_256x256.onnx"))
    print(f"built mlp_256x256 ({time.time() - t0:.0f} s)", file=sys.stderr)

    g = helper.make_graph(
        [helper.make_node("Identity", ["X"], ["Y"])], "identity",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", N_FEATURES])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", N_FEATURES])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, str(out / "identity.onnx"))

    for name in MODELS:
        onnx.checker.check_model(onnx.load(str(out / f"{name}.onnx")))
    stamp_file.write_text(want + "\n")


def _session(path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def time_calls(sess, feeds, seconds: float) -> dict:
    """Median per-call wall time of sess.run over ~seconds of calls."""
    run = sess.run
    for _ in range(3):  # warm-up
        run(None, feeds)
    # Calibrate a chunk size so each timed sample is >= ~20 µs, keeping
    # timer overhead negligible even for the tiny identity model.
    t0 = time.perf_counter_ns()
    run(None, feeds)
    one = max(time.perf_counter_ns() - t0, 1)
    chunk = max(1, int(20_000 / one))
    samples = []
    deadline = time.perf_counter() + seconds
    calls = 0
    while time.perf_counter() < deadline or len(samples) < 5:
        t0 = time.perf_counter_ns()
        for _ in range(chunk):
            run(None, feeds)
        samples.append((time.perf_counter_ns() - t0) / chunk)
        calls += chunk
    return {"per_call_ns": statistics.median(samples), "calls": calls,
            "samples": len(samples), "min_ns": min(samples)}


def time_all(models_dir: Path, out: Path, batches: list[int], seconds: float,
             models: list[str]) -> None:
    import numpy as np

    rng = np.random.default_rng(SEED)
    results = {"versions": _versions(), "seconds": seconds, "runs": []}
    for name in models:
        sess = _session(models_dir / f"{name}.onnx")
        inp = sess.get_inputs()[0]
        for n in batches:
            X = rng.standard_normal((n, N_FEATURES)).astype(np.float32)
            r = time_calls(sess, {inp.name: X}, seconds)
            r.update(model=name, batch_size=n, per_row_ns=r["per_call_ns"] / n)
            results["runs"].append(r)
            print(f"  onnxruntime {name:12s} batch {n:5d}: "
                  f"{r['per_call_ns'] / 1e3:10.2f} µs/call", file=sys.stderr, flush=True)
    out.write_text(json.dumps(results, indent=1) + "\n")


def report(ort_json: Path, freshline_jsonl: Path | None) -> int:
    ort = json.loads(ort_json.read_text())
    ours = {}
    if freshline_jsonl and freshline_jsonl.exists():
        for line in freshline_jsonl.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                ours[(r["model"], int(r["batch_size"]))] = r
    floor = next((r["per_call_ns"] for r in ort["runs"]
                  if r["model"] == "identity" and r["batch_size"] == 1), None)

    def us(ns):
        return f"{ns / 1e3:.3f}" if ns is not None else "-"

    hdr = ["model", "batch", "ORT µs/row", "Freshline µs/row", "ours/ORT",
           "ORT-floor µs/row", "ours/(ORT-floor)"]
    rows = []
    for r in ort["runs"]:
        key = (r["model"], r["batch_size"])
        mine = ours.get(key)
        our_row = float(mine["per_row_ns"]) if mine else None
        ratio = f"{our_row / r['per_row_ns']:.2f}" if mine else "-"
        net = net_ratio = "-"
        if r["batch_size"] == 1 and floor is not None and r["model"] != "identity":
            net_ns = r["per_call_ns"] - floor
            net = us(net_ns)
            if mine and net_ns > 0:
                net_ratio = f"{our_row / net_ns:.2f}"
        rows.append([r["model"], str(r["batch_size"]), us(r["per_row_ns"]), us(our_row),
                     ratio, net, net_ratio])
    widths = [max(len(x[i]) for x in rows + [hdr]) for i in range(len(hdr))]
    fmt = lambda cells: "  ".join(c.rjust(w) if i else c.ljust(w)
                                  for i, (c, w) in enumerate(zip(cells, widths)))
    v = ort["versions"]
    print(f"onnxruntime {v['onnxruntime']} (1 intra-op, 1 inter-op thread, sequential); "
          f"median per-call time over ~{ort['seconds']} s per configuration")
    if floor is not None:
        print(f"Python call floor (identity model, batch 1): {floor / 1e3:.3f} µs/call")
    print(fmt(hdr))
    print(fmt(["-" * w for w in widths]))
    for row in rows:
        print(fmt(row))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("models")
    p.add_argument("dir", type=Path)
    p = sub.add_parser("time")
    p.add_argument("dir", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--batches", default="1,64,1024")
    p.add_argument("--seconds", type=float, default=1.5)
    p.add_argument("--models", default=",".join(MODELS))
    p = sub.add_parser("report")
    p.add_argument("ort_json", type=Path)
    p.add_argument("freshline_jsonl", type=Path, nargs="?")
    args = ap.parse_args()

    if args.cmd == "models":
        build_models(args.dir)
        return 0
    if args.cmd == "time":
        time_all(args.dir, args.out, [int(b) for b in args.batches.split(",")],
                 args.seconds, args.models.split(","))
        return 0
    return report(args.ort_json, args.freshline_jsonl)


if __name__ == "__main__":
    sys.exit(main())
