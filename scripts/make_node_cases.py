#!/usr/bin/env python3
"""Generate ONNX backend node-test cases for the operators Freshline supports.

The cases come from the installed `onnx` wheel
(onnx.backend.test.case.node.collect_testcases), written the way
`backend-test-tools generate-data` writes them:

    <case>/model.onnx
    <case>/test_data_set_0/input_<i>.pb    (TensorProto, graph input order)
    <case>/test_data_set_0/output_<i>.pb   (TensorProto, graph output order)

into a temporary directory, and only the cases whose graph uses nothing but
the supported operators (and plain tensors, no sequences/maps/optionals) are
copied to Tests/Fixtures/onnx-node/<case>/. Tests/Fixtures/onnx-node/CASES.tsv
lists every case with its operators, default-domain opset, input and output
element types, and the tolerances the onnx test suite uses for it.

    "$(scripts/venv.sh)" scripts/make_node_cases.py [--out DIR]
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "Tests" / "Fixtures" / "onnx-node"

DEFAULT_DOMAIN_OPS = frozenset("""
    Gemm MatMul Add Sub Mul Div Relu Sigmoid Tanh Softmax ArgMax TopK Gather GatherElements
    Concat Reshape Flatten Cast Identity Transpose Unsqueeze Squeeze ReduceSum
    ReduceMean
""".split())
ML_OPS = frozenset("""
    ArrayFeatureExtractor Scaler Normalizer LinearClassifier LinearRegressor
    TreeEnsembleClassifier TreeEnsembleRegressor ZipMap
""".split())

warnings.filterwarnings("ignore")


def graph_ops(graph) -> list[tuple[str, str]]:
    """(domain, op_type) of every node, including nested subgraphs."""
    found = []
    for n in graph.node:
        found.append((n.domain or "", n.op_type))
        for a in n.attribute:
            if a.HasField("g"):
                found.extend(graph_ops(a.g))
            for g in a.graphs:
                found.extend(graph_ops(g))
    return found


def supported(ops) -> bool:
    for domain, op in ops:
        if domain in ("", "ai.onnx"):
            if op not in DEFAULT_DOMAIN_OPS:
                return False
        elif domain == "ai.onnx.ml":
            if op not in ML_OPS:
                return False
        else:
            return False
    return True


def elem_name(elem_type: int) -> str:
    from onnx import TensorProto

    return TensorProto.DataType.Name(elem_type).lower()


def value_types(values) -> list[str] | None:
    """Element type names of graph inputs/outputs, or None if any is not a
    plain tensor."""
    out = []
    for v in values:
        if v.type.WhichOneof("value") != "tensor_type":
            return None
        out.append(elem_name(v.type.tensor_type.elem_type))
    return out


def default_opset(model) -> str:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return str(o.version)
    return "-"


def write_case(case, root: Path) -> None:
    """Write one case like onnx's `backend-test-tools generate-data`."""
    from onnx import TensorProto, numpy_helper

    d = root / case.name
    d.mkdir(parents=True)
    (d / "model.onnx").write_bytes(case.model.SerializeToString())
    for k, (inputs, outputs) in enumerate(case.data_sets):
        ds = d / f"test_data_set_{k}"
        ds.mkdir()
        for prefix, values, infos in (("input", inputs, case.model.graph.input),
                                      ("output", outputs, case.model.graph.output)):
            for j, value in enumerate(values):
                if isinstance(value, TensorProto):
                    t = value
                else:
                    t = numpy_helper.from_array(value, infos[j].name)
                (ds / f"{prefix}_{j}.pb").write_bytes(t.SerializeToString())


_PLAIN_NUMPY = frozenset("float32 float64 float16 int64 int32 int16 int8 uint64 uint32 "
                         "uint16 uint8 bool".split())


def _raw_bytes(t) -> bytes:
    """Packed little-endian bytes of a TensorProto, as onnxruntime lays them out
    (4-bit and 2-bit types packed, low bits first)."""
    from onnx import numpy_helper

    if t.HasField("raw_data"):
        return t.raw_data
    return numpy_helper.from_array(numpy_helper.to_array(t)).raw_data


def check_with_onnxruntime(case_dir: Path, rtol: float, atol: float) -> str:
    """Run one written case with onnxruntime: "ok", "mismatch" or "error"
    (onnxruntime cannot load/run it). Informational only. Tensors whose type
    numpy lacks (bfloat16, float8*, int4, ...) go through raw OrtValue memory
    and are compared bit for bit."""
    import ctypes

    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    def load(p):
        t = onnx.TensorProto()
        t.ParseFromString(p.read_bytes())
        return t

    try:
        model = onnx.load(str(case_dir / "model.onnx"))
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.log_severity_level = 4
        sess = ort.InferenceSession(model.SerializeToString(), so,
                                    providers=["CPUExecutionProvider"])
        ds = case_dir / "test_data_set_0"
        feeds = {}
        for j, info in enumerate(model.graph.input):
            t = load(ds / f"input_{j}.pb")
            arr = numpy_helper.to_array(t)
            if str(arr.dtype) in _PLAIN_NUMPY:
                feeds[info.name] = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(arr))
            else:
                ov = ort.OrtValue.ortvalue_from_shape_and_type(list(t.dims), t.data_type)
                raw = _raw_bytes(t)
                ctypes.memmove(ov.data_ptr(), raw, len(raw))
                feeds[info.name] = ov
        names = [o.name for o in model.graph.output]
        got = sess.run_with_ort_values(names, feeds)
        for j, ov in enumerate(got):
            t = load(ds / f"output_{j}.pb")
            want = numpy_helper.to_array(t)
            if list(ov.shape()) != list(want.shape):
                return "mismatch"
            if str(want.dtype) in _PLAIN_NUMPY:
                g = ov.numpy()
                if want.dtype.kind in "fc":
                    ok = np.allclose(g.astype(np.float64), want.astype(np.float64),
                                     rtol=rtol, atol=atol, equal_nan=True)
                else:
                    ok = np.array_equal(g, want)
            else:
                raw = _raw_bytes(t)
                got_raw = ctypes.string_at(ov.data_ptr(), len(raw))
                ok = got_raw == raw
                if not ok and "float" in str(want.dtype):
                    # Different NaN bit patterns are still both NaN.
                    g_t = onnx.TensorProto()
                    g_t.CopyFrom(t)
                    g_t.ClearField("int32_data")
                    g_t.raw_data = got_raw
                    g = numpy_helper.to_array(g_t).astype(np.float32)
                    ok = np.array_equal(g, want.astype(np.float32), equal_nan=True)
            if not ok:
                return "mismatch"
        return "ok"
    except Exception:  # noqa: BLE001
        return "error"


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--no-ort-check", action="store_true",
                    help="skip running each case with onnxruntime (CASES.tsv column)")
    args = ap.parse_args()

    import onnx
    from onnx.backend.test.case import node as node_cases

    cases = node_cases.collect_testcases()
    cases = sorted(cases, key=lambda c: c.name)
    rows = []
    skipped_types = []
    selected = []
    for c in cases:
        if c.kind != "node" or c.model is None:
            continue
        ops = graph_ops(c.model.graph)
        if not ops or not supported(ops):
            continue
        in_types = value_types(c.model.graph.input)
        out_types = value_types(c.model.graph.output)
        if in_types is None or out_types is None:
            skipped_types.append(c.name)
            continue
        if len(c.data_sets) == 0:
            continue
        op_names = sorted({(f"{d}." if d not in ("", "ai.onnx") else "") + o for d, o in ops})
        selected.append(c)
        rows.append((c.name, ",".join(op_names), default_opset(c.model),
                     ",".join(in_types) or "-", ",".join(out_types) or "-",
                     repr(float(c.rtol)), repr(float(c.atol))))

    tmp = Path(tempfile.mkdtemp(prefix="onnx-node-"))
    try:
        for c in selected:
            write_case(c, tmp)
        # Every written model must still load and check.
        for c in selected:
            onnx.checker.check_model(onnx.load(str(tmp / c.name / "model.onnx")))

        out = args.out
        out.mkdir(parents=True, exist_ok=True)
        for p in out.iterdir():  # replace previous cases wholesale
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
        for c in selected:
            shutil.copytree(tmp / c.name, out / c.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    ort_status = {}
    if not args.no_ort_check:
        import onnxruntime

        for r in rows:
            ort_status[r[0]] = check_with_onnxruntime(out / r[0], float(r[5]), float(r[6]))
        bad = {k: v for k, v in ort_status.items() if v != "ok"}
        print(f"onnxruntime {onnxruntime.__version__}: "
              f"{len(ort_status) - len(bad)} ok, "
              f"{sum(v == 'mismatch' for v in bad.values())} mismatch, "
              f"{sum(v == 'error' for v in bad.values())} cannot run")
        for k, v in sorted(bad.items()):
            print(f"  {v:9s} {k}")

    with (out / "CASES.tsv").open("w", encoding="utf-8", newline="\n") as f:
        f.write("# case\toperators\tai.onnx_opset\tinput_types\toutput_types\trtol\tatol"
                "\tonnxruntime\n")
        for r in rows:
            f.write("\t".join(r + (ort_status.get(r[0], "-"),)) + "\n")

    per_op = collections.Counter()
    for r in rows:
        for op in r[1].split(","):
            per_op[op] += 1
    wanted = sorted(DEFAULT_DOMAIN_OPS) + [f"ai.onnx.ml.{o}" for o in sorted(ML_OPS)]
    print(f"onnx {onnx.__version__}: {len(cases)} node cases, {len(rows)} selected, "
          f"{len(skipped_types)} skipped for non-tensor inputs/outputs")
    print("cases per operator (a case using several operators counts for each):")
    for op in wanted + sorted(set(per_op) - set(wanted)):
        print(f"  {op:32s} {per_op.get(op, 0)}")
    types = collections.Counter(t for r in rows for t in (r[3] + "," + r[4]).split(",") if t != "-")
    print("element types:", ", ".join(f"{t}={n}" for t, n in sorted(types.items())))
    print(f"total size: {dir_size(out) / 1e6:.2f} MB in {out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
