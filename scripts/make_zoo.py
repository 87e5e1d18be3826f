#!/usr/bin/env python3
"""Generate Freshline's model zoo: Tests/Fixtures/zoo/.

For every model NAME this writes
  NAME.onnx            the model
  NAME.inputs.jsonl    one JSON object per row: input name -> that row's value
                       (the tensor for one row, without the batch dimension)
  NAME.expected.jsonl  onnxruntime's outputs for the same rows, computed as ONE
                       batch (1 thread), split per row the same way
and MANIFEST.json describing every model (source, exporter options, opsets,
operators, inputs, outputs and how to compare each output).

Some tree models also get NAME.nan.inputs.jsonl / NAME.nan.expected.jsonl:
rows containing missing values, where a NaN input is written as JSON `null`
(strict JSON has no NaN). They exercise nodes_missing_value_tracks_true.

Deterministic: fixed seeds, single-threaded training, sorted JSON keys.
Run through the tooling venv:

    "$(scripts/venv.sh)" scripts/make_zoo.py [--out DIR] [--only NAME,...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

# Single-threaded BLAS/OpenMP before numpy loads: keeps training reproducible.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "Tests" / "Fixtures" / "zoo"

# Target opsets: by default the newest ai.onnx opset skl2onnx is tested with
# (latest_skl2onnx_opset); some variants ask for older ones (operator versions
# whose semantics differ: ReduceSum axes attribute vs input, Softmax, TopK k).
# skl2onnx writes the opset actually needed, so opset_import can be lower.
# skl2onnx/onnxmltools emit ai.onnx.ml ops at version 1 whatever the target;
# the *_ml3_* variants are rewritten to opset 3 `*_as_tensor` attributes.
ML_OPSET = 1
FLOAT = "float32"
DOUBLE = "float64"

warnings.filterwarnings("ignore")


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------

def versions() -> dict[str, str]:
    import lightgbm
    import onnx
    import onnxmltools
    import onnxruntime
    import sklearn
    import skl2onnx
    import xgboost

    return {
        "numpy": np.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "scikit-learn": sklearn.__version__,
        "skl2onnx": skl2onnx.__version__,
        "onnxmltools": onnxmltools.__version__,
        "xgboost": xgboost.__version__,
        "lightgbm": lightgbm.__version__,
        "python": sys.version.split()[0],
    }


def latest_skl2onnx_opset() -> int:
    import onnx
    from skl2onnx import get_latest_tested_opset_version

    return min(get_latest_tested_opset_version(), onnx.defs.onnx_opset_version())


def ort_session(model_bytes: bytes):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def elem_type_name(elem_type: int) -> str:
    import onnx

    np_names = {
        onnx.TensorProto.FLOAT: "float",
        onnx.TensorProto.DOUBLE: "double",
        onnx.TensorProto.FLOAT16: "float16",
        onnx.TensorProto.BFLOAT16: "bfloat16",
        onnx.TensorProto.INT64: "int64",
        onnx.TensorProto.INT32: "int32",
        onnx.TensorProto.INT16: "int16",
        onnx.TensorProto.INT8: "int8",
        onnx.TensorProto.UINT8: "uint8",
        onnx.TensorProto.BOOL: "bool",
        onnx.TensorProto.STRING: "string",
    }
    return np_names.get(elem_type, onnx.TensorProto.DataType.Name(elem_type).lower())


def type_string(tp) -> str:
    """tensor(float), seq(map(int64,tensor(float))), ..."""
    which = tp.WhichOneof("value")
    if which == "tensor_type":
        return f"tensor({elem_type_name(tp.tensor_type.elem_type)})"
    if which == "sequence_type":
        return f"seq({type_string(tp.sequence_type.elem_type)})"
    if which == "map_type":
        return (f"map({elem_type_name(tp.map_type.key_type)},"
                f"{type_string(tp.map_type.value_type)})")
    if which == "optional_type":
        return f"optional({type_string(tp.optional_type.elem_type)})"
    return str(which)


def shape_list(tp):
    """Declared shape: ints for fixed dims, the dim_param string, or null."""
    if tp.WhichOneof("value") != "tensor_type" or not tp.tensor_type.HasField("shape"):
        return None
    dims = []
    for d in tp.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return dims


def compare_kind(tp) -> str:
    kind = type_string(tp)
    if kind.startswith("seq(map("):
        return "map"
    if kind in ("tensor(float)", "tensor(double)", "tensor(float16)", "tensor(bfloat16)"):
        return "close"
    return "exact"


def ops_used(model) -> list[str]:
    found = set()

    def walk(graph):
        for n in graph.node:
            dom = n.domain if n.domain not in ("", "ai.onnx") else ""
            found.add(f"{dom}.{n.op_type}" if dom else n.op_type)
            for a in n.attribute:
                if a.g is not None and a.HasField("g"):
                    walk(a.g)
                for g in a.graphs:
                    walk(g)

    walk(model.graph)
    return sorted(found)


def opset_imports(model) -> dict[str, int]:
    out: dict[str, int] = {}
    for o in model.opset_import:
        dom = o.domain or "ai.onnx"
        out[dom] = max(out.get(dom, 0), int(o.version))
    return dict(sorted(out.items()))


def summarize_value(v):
    """Compact, JSON-able summary of an attribute value for the manifest."""
    import onnx

    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, onnx.TensorProto):
        return {"tensor": elem_type_name(v.data_type), "dims": list(v.dims)}
    if isinstance(v, (list, tuple)):
        vals = [x.decode() if isinstance(x, bytes) else x for x in v]
        distinct = sorted(set(vals), key=lambda x: (str(type(x)), x))
        if len(vals) <= 4:
            return vals
        if len(distinct) <= 6 and not any(isinstance(x, float) for x in distinct):
            return {"len": len(vals), "distinct": distinct}
        return {"len": len(vals)}
    return v


def node_summaries(model) -> list[dict]:
    """Attributes of every node (lists abbreviated), for the manifest."""
    import onnx

    out = []
    for n in model.graph.node:
        attrs = {}
        for a in n.attribute:
            attrs[a.name] = summarize_value(onnx.helper.get_attribute_value(a))
        entry = {"op": (f"{n.domain}." if n.domain not in ("", "ai.onnx") else "") + n.op_type}
        if attrs:
            entry["attrs"] = dict(sorted(attrs.items()))
        out.append(entry)
    return out


def to_jsonable(value):
    """A per-row value -> plain JSON types (floats keep full float64 repr)."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "fc":
            return value.astype(np.float64).tolist() if value.ndim else float(value)
        if value.dtype.kind in "iu":
            return value.astype(np.int64).tolist() if value.ndim else int(value)
        if value.dtype.kind == "b":
            return value.tolist() if value.ndim else bool(value)
        return [to_jsonable(x) for x in value] if value.ndim else to_jsonable(value.item())
    if isinstance(value, (np.floating, float)):
        return float(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, dict):  # ZipMap row: keys become strings
        return {str(to_jsonable(k)): to_jsonable(v) for k, v in value.items()}
    return value


def nan_to_null(obj):
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, list):
        return [nan_to_null(x) for x in obj]
    if isinstance(obj, dict):
        return {k: nan_to_null(v) for k, v in obj.items()}
    return obj


def dumps_row(obj, allow_null_nan=False) -> str:
    if allow_null_nan:
        obj = nan_to_null(obj)
    return json.dumps(obj, allow_nan=False, separators=(",", ":"), ensure_ascii=False)


def rows_of(value, n: int) -> list:
    """Split a batched ORT output (ndarray or ZipMap list) into n rows."""
    if isinstance(value, list):
        assert len(value) == n, (len(value), n)
        return [to_jsonable(v) for v in value]
    assert value.shape[0] == n, (value.shape, n)
    return [to_jsonable(value[i]) for i in range(n)]


def probas_matrix(value) -> np.ndarray:
    if isinstance(value, list):  # ZipMap
        keys = list(value[0].keys())
        return np.array([[d[k] for k in keys] for d in value], dtype=np.float64)
    return np.asarray(value, dtype=np.float64)


# --------------------------------------------------------------------------
# Data and edge rows
# --------------------------------------------------------------------------

def tree_thresholds(model) -> dict[int, list[float]]:
    """feature index -> sorted distinct split thresholds used by any TreeEnsemble."""
    from onnx import helper, numpy_helper

    th: dict[int, set] = {}
    for n in model.graph.node:
        if not n.op_type.startswith("TreeEnsemble"):
            continue
        attrs = {a.name: a for a in n.attribute}
        feats = helper.get_attribute_value(attrs["nodes_featureids"])
        modes = [m.decode() for m in helper.get_attribute_value(attrs["nodes_modes"])]
        if "nodes_values" in attrs:
            vals = list(helper.get_attribute_value(attrs["nodes_values"]))
        else:
            vals = numpy_helper.to_array(attrs["nodes_values_as_tensor"].t).tolist()
        for f, m, v in zip(feats, modes, vals):
            if m != "LEAF":
                th.setdefault(int(f), set()).add(float(v))
    return {f: sorted(v) for f, v in th.items()}


def edge_rows(X_pool: np.ndarray, dtype: str,
              thresholds: dict[int, list[float]] | None = None,
              n_random: int = 20) -> dict:
    """Feeds rows of random held-out rows plus edge cases, and a
    "_tags" list naming the kind of each row (kept in the manifest)."""
    F = X_pool.shape[1]
    rows = [X_pool[i] for i in range(n_random)]
    tags = ["random"] * n_random
    base = X_pool[n_random]
    rows.append(np.zeros(F))                                  # all zeros
    rows.append(-np.abs(X_pool[n_random + 1]))                # all negative
    rows.append(np.full(F, -3.5))                             # constant negative
    rows.append(np.abs(X_pool[n_random + 2]) * 1000.0)        # large
    rows.append(np.where(np.arange(F) % 2 == 0, 1e6, -1e6))   # huge, alternating
    rows.append(X_pool[n_random + 3] * 1e-7)                  # tiny
    tags += ["zeros", "negative", "constant", "large", "huge", "tiny"]
    if thresholds:
        feats = sorted(thresholds)
        # Rows where every split feature sits exactly on one of its thresholds.
        for k in range(6):
            r = base.copy()
            for f in feats:
                ts = thresholds[f]
                r[f] = ts[(k * 7 + f * 3) % len(ts)]
            rows.append(r)
            tags.append("all_on_thresholds")
        # Random rows with a single feature moved exactly onto a threshold.
        for k in range(4):
            r = X_pool[n_random + 4 + k].copy()
            f = feats[(k * 5) % len(feats)]
            ts = thresholds[f]
            r[f] = ts[len(ts) // 2]
            rows.append(r)
            tags.append("one_on_threshold")
    X = np.vstack(rows).astype(np.float32 if dtype == FLOAT else np.float64)
    return {"X": X, "_tags": tags}


def classification_data(seed: int, n_classes: int, n_features: int = 16):
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=900, n_features=n_features, n_informative=min(8, n_features - 4),
        n_redundant=2, n_classes=n_classes, n_clusters_per_class=1,
        class_sep=1.2, random_state=seed)
    return X[:700], y[:700], X[700:]


def regression_data(seed: int, n_features: int = 16):
    from sklearn.datasets import make_regression

    X, y = make_regression(n_samples=900, n_features=n_features,
                           n_informative=min(10, n_features), noise=5.0,
                           random_state=seed)
    return X[:700], y[:700], X[700:]


# --------------------------------------------------------------------------
# Model specs
# --------------------------------------------------------------------------

@dataclass
class Built:
    model: object                 # onnx.ModelProto
    feeds: dict                   # input name -> batched np array
    source: dict                  # library, version, estimator, params
    exporter: dict                # name, version, options
    margin_output: str | list | None = None  # probabilities/scores: drop near-tie rows
    reference: Callable | None = None  # feeds -> {output: array} from the source lib
    nan_feeds: dict | None = None      # extra rows with missing values
    notes: list = field(default_factory=list)
    tags: list | None = None           # kind of each row (from edge_rows "_tags")

    def __post_init__(self):
        self.feeds = dict(self.feeds)
        if "_tags" in self.feeds:
            self.tags = self.feeds.pop("_tags")


SPECS: list[tuple[str, Callable[[], Built]]] = []


def spec(name):
    def deco(fn):
        SPECS.append((name, fn))
        return fn
    return deco


def skl_export(est, n_features, *, dtype=FLOAT, opset=None, ml_opset=ML_OPSET,
               zipmap=True):
    from skl2onnx import __version__ as skl2onnx_version, convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    opset = opset or latest_skl2onnx_opset()
    tt = FloatTensorType if dtype == FLOAT else DoubleTensorType
    options = {} if zipmap else {"zipmap": False}
    target = {"": opset, "ai.onnx.ml": ml_opset}
    onx = convert_sklearn(est, initial_types=[("X", tt([None, n_features]))],
                          target_opset=target,
                          options={id(est): options} if options else None)
    exporter = {"name": "skl2onnx", "version": skl2onnx_version,
                "target_opset": {"ai.onnx": opset, "ai.onnx.ml": ml_opset},
                "zipmap": zipmap, "dtype": dtype}
    return onx, exporter


def skl_source(est, estimator_name=None, **params):
    import sklearn

    return {"library": "scikit-learn", "version": sklearn.__version__,
            "estimator": estimator_name or type(est).__name__,
            "params": params}


def clf_reference(est, label_name, proba_name):
    def ref(feeds):
        X = feeds["X"]
        return {label_name: est.predict(X), proba_name: est.predict_proba(X)}
    return ref


def reg_reference(est, out_name="variable"):
    def ref(feeds):
        return {out_name: est.predict(feeds["X"]).reshape(-1, 1)}
    return ref


# ---- linear models -------------------------------------------------------

def _logreg(n_classes, seed, labels=None):
    from sklearn.linear_model import LogisticRegression

    X, y, Xt = classification_data(seed, n_classes)
    if labels is not None:
        y = np.array(labels)[y]
    est = LogisticRegression(C=0.5, max_iter=2000).fit(X, y)
    return est, Xt


def _logreg_built(name_seed, n_classes, *, zipmap, dtype=FLOAT, opset=None, labels=None):
    est, Xt = _logreg(n_classes, name_seed, labels)
    onx, exp = skl_export(est, Xt.shape[1], dtype=dtype, opset=opset, zipmap=zipmap)
    rows = edge_rows(Xt, dtype)
    lab, prob = ("output_label", "output_probability") if zipmap else ("label", "probabilities")
    return Built(onx, rows, skl_source(est, C=0.5, n_classes=n_classes), exp,
                 margin_output=prob, reference=clf_reference(est, lab, prob))


@spec("logreg_binary_zipmap")
def _():
    return _logreg_built(11, 2, zipmap=True)


@spec("logreg_binary")
def _():
    return _logreg_built(11, 2, zipmap=False)


@spec("logreg_multi_zipmap")
def _():
    return _logreg_built(12, 4, zipmap=True)


@spec("logreg_multi")
def _():
    return _logreg_built(12, 4, zipmap=False)


@spec("logreg_multi_strlabels_zipmap")
def _():
    return _logreg_built(13, 3, zipmap=True, labels=["cat", "dog", "fish"])


@spec("logreg_multi_strlabels")
def _():
    return _logreg_built(13, 3, zipmap=False, labels=["cat", "dog", "fish"])


@spec("logreg_multi_double")
def _():
    return _logreg_built(12, 4, zipmap=False, dtype=DOUBLE)


@spec("logreg_multi_double_op11")
def _():
    return _logreg_built(12, 4, zipmap=False, dtype=DOUBLE, opset=11)


@spec("logreg_binary_double")
def _():
    return _logreg_built(11, 2, zipmap=False, dtype=DOUBLE)


@spec("logreg_binary_double_op11")
def _():
    return _logreg_built(11, 2, zipmap=False, dtype=DOUBLE, opset=11)


@spec("linreg")
def _():
    from sklearn.linear_model import LinearRegression

    X, y, Xt = regression_data(21)
    est = LinearRegression().fit(X, y)
    onx, exp = skl_export(est, X.shape[1])
    return Built(onx, edge_rows(Xt, FLOAT), skl_source(est), exp,
                 reference=reg_reference(est))


@spec("linreg_double")
def _():
    from sklearn.linear_model import LinearRegression

    X, y, Xt = regression_data(21)
    est = LinearRegression().fit(X, y)
    onx, exp = skl_export(est, X.shape[1], dtype=DOUBLE)
    return Built(onx, edge_rows(Xt, DOUBLE), skl_source(est), exp,
                 reference=reg_reference(est))


@spec("scaler_logreg")
def _():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y, Xt = classification_data(31, 3)
    X = X * np.linspace(0.5, 40, X.shape[1]) + np.linspace(-10, 10, X.shape[1])
    Xt = Xt * np.linspace(0.5, 40, X.shape[1]) + np.linspace(-10, 10, X.shape[1])
    est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X, y)
    onx, exp = skl_export(est, X.shape[1], zipmap=False)
    return Built(onx, edge_rows(Xt, FLOAT),
                 skl_source(est, "Pipeline(StandardScaler, LogisticRegression)"), exp,
                 margin_output="probabilities",
                 reference=clf_reference(est, "label", "probabilities"))


def _scaler_ridge(dtype):
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y, Xt = regression_data(32)
    X = X * np.linspace(0.5, 40, X.shape[1]) + 3.0
    Xt = Xt * np.linspace(0.5, 40, X.shape[1]) + 3.0
    est = make_pipeline(StandardScaler(), Ridge(alpha=2.0)).fit(X, y)
    onx, exp = skl_export(est, X.shape[1], dtype=dtype)
    return Built(onx, edge_rows(Xt, dtype),
                 skl_source(est, "Pipeline(StandardScaler, Ridge)", alpha=2.0), exp,
                 reference=reg_reference(est))


@spec("scaler_ridge")
def _():
    return _scaler_ridge(FLOAT)


@spec("scaler_ridge_double")
def _():
    return _scaler_ridge(DOUBLE)


@spec("normalizer_linreg")
def _():
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer

    X, y, Xt = regression_data(33)
    est = make_pipeline(Normalizer(norm="l2"), LinearRegression()).fit(X, y)
    onx, exp = skl_export(est, X.shape[1])
    return Built(onx, edge_rows(Xt, FLOAT),
                 skl_source(est, "Pipeline(Normalizer(l2), LinearRegression)"), exp,
                 reference=reg_reference(est))


# ---- scikit-learn trees --------------------------------------------------

def _tree_rows(onx, Xt, dtype=FLOAT):
    return edge_rows(Xt, dtype, tree_thresholds(onx))


def _gbc(n_classes, seed, n_estimators):
    from sklearn.ensemble import GradientBoostingClassifier

    X, y, Xt = classification_data(seed, n_classes)
    est = GradientBoostingClassifier(n_estimators=n_estimators, max_depth=4,
                                     learning_rate=0.2, random_state=seed).fit(X, y)
    return est, Xt


@spec("gbc_binary")
def _():
    est, Xt = _gbc(2, 41, 50)
    onx, exp = skl_export(est, Xt.shape[1], zipmap=False)
    return Built(onx, _tree_rows(onx, Xt),
                 skl_source(est, n_estimators=50, max_depth=4, learning_rate=0.2), exp,
                 margin_output="probabilities",
                 reference=clf_reference(est, "label", "probabilities"))


@spec("gbc_multi")
def _():
    est, Xt = _gbc(3, 42, 30)
    onx, exp = skl_export(est, Xt.shape[1], zipmap=False)
    return Built(onx, _tree_rows(onx, Xt),
                 skl_source(est, n_estimators=30, max_depth=4, learning_rate=0.2, n_classes=3),
                 exp, margin_output="probabilities",
                 reference=clf_reference(est, "label", "probabilities"))


def _gbr(seed=43):
    from sklearn.ensemble import GradientBoostingRegressor

    X, y, Xt = regression_data(seed)
    est = GradientBoostingRegressor(n_estimators=50, max_depth=4, learning_rate=0.1,
                                    random_state=seed).fit(X, y)
    return est, Xt


@spec("gbr")
def _():
    est, Xt = _gbr()
    onx, exp = skl_export(est, Xt.shape[1])
    return Built(onx, _tree_rows(onx, Xt),
                 skl_source(est, n_estimators=50, max_depth=4, learning_rate=0.1), exp,
                 reference=reg_reference(est))


@spec("gbr_op13")
def _():
    est, Xt = _gbr()
    onx, exp = skl_export(est, Xt.shape[1], opset=13)
    return Built(onx, _tree_rows(onx, Xt),
                 skl_source(est, n_estimators=50, max_depth=4, learning_rate=0.1), exp,
                 reference=reg_reference(est))


def _rfc(seed=51):
    from sklearn.ensemble import RandomForestClassifier

    X, y, Xt = classification_data(seed, 3)
    est = RandomForestClassifier(n_estimators=50, max_depth=5, random_state=seed,
                                 n_jobs=1).fit(X, y)
    return est, Xt


@spec("rf_clf_zipmap")
def _():
    est, Xt = _rfc()
    onx, exp = skl_export(est, Xt.shape[1], zipmap=True)
    return Built(onx, _tree_rows(onx, Xt),
                 skl_source(est, n_estimators=50, max_depth=5, n_classes=3), exp,
                 margin_output="output_probability",
                 reference=clf_reference(est, "output_label", "output_probability"))


@spec("rf_clf")
def _():
    est, Xt = _rfc()
    onx, exp = skl_export(est, Xt.shape[1], zipmap=False)
    return Built(onx, _tree_rows(onx, Xt),
                 skl_source(est, n_estimators=50, max_depth=5, n_classes=3), exp,
                 margin_output="probabilities",
                 reference=clf_reference(est, "label", "probabilities"))


def _rfr(seed=52):
    from sklearn.ensemble import RandomForestRegressor

    X, y, Xt = regression_data(seed)
    est = RandomForestRegressor(n_estimators=50, max_depth=5, random_state=seed,
                                n_jobs=1).fit(X, y)
    return est, Xt


@spec("rf_reg")
def _():
    est, Xt = _rfr()
    onx, exp = skl_export(est, Xt.shape[1])
    return Built(onx, _tree_rows(onx, Xt),
                 skl_source(est, n_estimators=50, max_depth=5), exp,
                 reference=reg_reference(est))


# ---- TreeEnsemble rewritten to ai.onnx.ml opset 3 *_as_tensor attributes ----

_AS_TENSOR = ("nodes_values", "nodes_hitrates", "class_weights", "target_weights",
              "base_values")


def as_tensor_variant(onx, dtype, thresholds=None, weights=None, base_values=None):
    """Copy of a TreeEnsemble model using ai.onnx.ml opset 3 `*_as_tensor`
    attributes of the given dtype (and, for float64, a double input; the
    TreeEnsemble* outputs are tensor(float) in every opset).

    thresholds / weights / base_values optionally replace the float32
    attribute values by exact float64 values from the source estimator
    (thresholds: {(treeid, nodeid): value}, weights: {(treeid, nodeid): value}).
    """
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(onx)
    npdt = np.float32 if dtype == FLOAT else np.float64
    for n in m.graph.node:
        if not n.op_type.startswith("TreeEnsemble"):
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        keep = [a for a in n.attribute if a.name not in _AS_TENSOR]
        new = []
        for name in _AS_TENSOR:
            if name not in attrs:
                continue
            vals = np.array(attrs[name], dtype=np.float64)
            if name == "nodes_values" and thresholds is not None:
                keys = zip(attrs["nodes_treeids"], attrs["nodes_nodeids"])
                vals = np.array([thresholds.get((t, i), v) for (t, i), v in zip(keys, vals)])
            if name in ("target_weights", "class_weights") and weights is not None:
                pre = "target" if name == "target_weights" else "class"
                keys = zip(attrs[f"{pre}_treeids"], attrs[f"{pre}_nodeids"])
                vals = np.array([weights[(t, i)] for (t, i) in keys])
            if name == "base_values" and base_values is not None:
                vals = np.asarray(base_values, dtype=np.float64)
            if name == "nodes_hitrates":
                continue  # optional; drop rather than duplicate
            t = numpy_helper.from_array(vals.astype(npdt), name=f"{name}_as_tensor")
            new.append(helper.make_attribute(f"{name}_as_tensor", t))
        del n.attribute[:]
        n.attribute.extend(sorted(keep + new, key=lambda a: a.name))
    for o in m.opset_import:
        if o.domain == "ai.onnx.ml":
            o.version = 3
    if dtype == DOUBLE:
        # Only the input becomes double: TreeEnsemble* outputs are always float.
        for vi in m.graph.input:
            if vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT:
                vi.type.tensor_type.elem_type = onnx.TensorProto.DOUBLE
    return m


@spec("rf_reg_ml3_tensor")
def _():
    est, Xt = _rfr()
    onx, exp = skl_export(est, Xt.shape[1])
    onx = as_tensor_variant(onx, FLOAT)
    exp.update(target_opset={"ai.onnx": exp["target_opset"]["ai.onnx"], "ai.onnx.ml": 3},
               rewrite="TreeEnsemble attributes moved to *_as_tensor (float32), ai.onnx.ml opset 3")
    return Built(onx, _tree_rows(onx, Xt),
                 skl_source(est, n_estimators=50, max_depth=5), exp,
                 reference=reg_reference(est))


@spec("gbc_multi_ml3_tensor")
def _():
    est, Xt = _gbc(3, 42, 30)
    onx, exp = skl_export(est, Xt.shape[1], zipmap=False)
    onx = as_tensor_variant(onx, FLOAT)
    exp.update(target_opset={"ai.onnx": exp["target_opset"]["ai.onnx"], "ai.onnx.ml": 3},
               rewrite="TreeEnsemble attributes moved to *_as_tensor (float32), ai.onnx.ml opset 3")
    return Built(onx, _tree_rows(onx, Xt),
                 skl_source(est, n_estimators=30, max_depth=4, learning_rate=0.2, n_classes=3),
                 exp, margin_output="probabilities",
                 reference=clf_reference(est, "label", "probabilities"))


@spec("gbr_double_ml3")
def _():
    """GBR with double input: thresholds/weights/base value as float64 tensors.

    skl2onnx cannot export float64 trees runnable by onnxruntime (it declares a
    double output for ai.onnx.ml v1 TreeEnsembleRegressor), so the float export is
    rewritten using the estimator's exact float64 thresholds and leaf values.
    """
    est, Xt = _gbr()
    onx, exp = skl_export(est, Xt.shape[1])
    thresholds, weights = {}, {}
    for t, tree in enumerate(est.estimators_[:, 0]):
        tr = tree.tree_
        for i in range(tr.node_count):
            if tr.children_left[i] != -1:
                thresholds[(t, i)] = float(tr.threshold[i])
            else:
                weights[(t, i)] = float(tr.value[i, 0, 0]) * est.learning_rate
    base = [float(np.ravel(est._raw_predict_init(Xt[:1]))[0])]
    onx = as_tensor_variant(onx, DOUBLE, thresholds=thresholds, weights=weights,
                            base_values=base)
    exp.update(dtype=DOUBLE,
               target_opset={"ai.onnx": exp["target_opset"]["ai.onnx"], "ai.onnx.ml": 3},
               rewrite=("float32 skl2onnx export rewritten: double input (output stays float), "
                        "*_as_tensor float64 attributes with the estimator's exact "
                        "thresholds, leaf values and base value; ai.onnx.ml opset 3"))
    X = Xt.astype(np.float64)
    ths = {}
    for (t, i), v in thresholds.items():
        f = int(est.estimators_[t, 0].tree_.feature[i])
        ths.setdefault(f, set()).add(v)
    rows = edge_rows(X, DOUBLE, {f: sorted(v) for f, v in ths.items()})

    def ref(feeds):
        # sklearn casts X to float32 before comparing; only exact-threshold rows
        # can differ from the float64 graph, so the check is loose.
        return {"variable": est.predict(feeds["X"]).reshape(-1, 1)}

    return Built(onx, rows, skl_source(est, n_estimators=50, max_depth=4,
                                              learning_rate=0.1),
                 exp, reference=ref,
                 notes=["sklearn compares float32(x) to float64 thresholds; this graph "
                        "compares float64 x, so threshold rows may differ from sklearn"])


# ---- XGBoost / LightGBM via onnxmltools ----------------------------------

def _mltools_export(kind, est, n_features, zipmap=None, opset=15):
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    it = [("X", FloatTensorType([None, n_features]))]
    kwargs = {}
    if kind == "xgboost":
        onx = onnxmltools.convert_xgboost(est, initial_types=it, target_opset=opset)
    else:
        kwargs["zipmap"] = bool(zipmap)
        onx = onnxmltools.convert_lightgbm(est, initial_types=it, target_opset=opset,
                                           zipmap=bool(zipmap))
    exp = {"name": "onnxmltools", "version": onnxmltools.__version__,
           "target_opset": {"ai.onnx": opset}, "dtype": FLOAT,
           "zipmap": bool(zipmap) if kind == "lightgbm" else False}
    return onx, exp


def _xgb_source(est, **params):
    import xgboost

    return {"library": "xgboost", "version": xgboost.__version__,
            "estimator": type(est).__name__, "params": params}


def _lgb_source(est, **params):
    import lightgbm

    return {"library": "lightgbm", "version": lightgbm.__version__,
            "estimator": type(est).__name__, "params": params}


def _with_nans(X: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    Xn = X[:8].copy()
    for i in range(8):
        cols = rng.choice(X.shape[1], size=1 + i % 4, replace=False)
        Xn[i, cols] = np.nan
    Xn[7, :] = np.nan
    return Xn


def _xgb_clf(n_classes, seed):
    import xgboost

    X, y, Xt = classification_data(seed, n_classes, n_features=20)
    params = dict(n_estimators=50 if n_classes == 2 else 30, max_depth=4,
                  learning_rate=0.2)
    est = xgboost.XGBClassifier(n_estimators=params["n_estimators"], max_depth=4,
                                learning_rate=0.2, n_jobs=1, random_state=seed,
                                tree_method="hist").fit(X, y)
    return est, Xt, params


@spec("xgb_binary")
def _():
    est, Xt, params = _xgb_clf(2, 61)
    onx, exp = _mltools_export("xgboost", est, Xt.shape[1])
    rows = _tree_rows(onx, Xt)
    return Built(onx, rows, _xgb_source(est, **params), exp,
                 margin_output="probabilities",
                 reference=clf_reference(est, "label", "probabilities"),
                 nan_feeds={"X": _with_nans(rows["X"], 61)})


@spec("xgb_multi")
def _():
    est, Xt, params = _xgb_clf(3, 62)
    onx, exp = _mltools_export("xgboost", est, Xt.shape[1])
    rows = _tree_rows(onx, Xt)
    return Built(onx, rows, _xgb_source(est, **params), exp,
                 margin_output="probabilities",
                 reference=clf_reference(est, "label", "probabilities"),
                 nan_feeds={"X": _with_nans(rows["X"], 62)})


@spec("xgb_reg")
def _():
    import xgboost

    X, y, Xt = regression_data(63, n_features=20)
    est = xgboost.XGBRegressor(n_estimators=50, max_depth=4, learning_rate=0.2,
                               n_jobs=1, random_state=63, tree_method="hist").fit(X, y)
    onx, exp = _mltools_export("xgboost", est, Xt.shape[1])
    rows = _tree_rows(onx, Xt)
    return Built(onx, rows,
                 _xgb_source(est, n_estimators=50, max_depth=4, learning_rate=0.2), exp,
                 reference=reg_reference(est), nan_feeds={"X": _with_nans(rows["X"], 63)})


def _lgb_clf(n_classes, seed):
    import lightgbm

    X, y, Xt = classification_data(seed, n_classes, n_features=20)
    n = 50 if n_classes == 2 else 30
    est = lightgbm.LGBMClassifier(n_estimators=n, max_depth=5, num_leaves=16,
                                  learning_rate=0.2, n_jobs=1, random_state=seed,
                                  deterministic=True, verbose=-1).fit(X, y)
    return est, Xt, dict(n_estimators=n, max_depth=5, num_leaves=16, learning_rate=0.2)


@spec("lgbm_binary")
def _():
    est, Xt, params = _lgb_clf(2, 71)
    onx, exp = _mltools_export("lightgbm", est, Xt.shape[1], zipmap=False)
    rows = _tree_rows(onx, Xt)
    return Built(onx, rows, _lgb_source(est, **params), exp,
                 margin_output="probabilities",
                 reference=clf_reference(est, "label", "probabilities"),
                 nan_feeds={"X": _with_nans(rows["X"], 71)})


@spec("lgbm_multi_zipmap")
def _():
    est, Xt, params = _lgb_clf(3, 72)
    onx, exp = _mltools_export("lightgbm", est, Xt.shape[1], zipmap=True)
    rows = _tree_rows(onx, Xt)
    return Built(onx, rows, _lgb_source(est, **params), exp,
                 margin_output="probabilities",
                 reference=clf_reference(est, "label", "probabilities"),
                 nan_feeds={"X": _with_nans(rows["X"], 72)})


@spec("lgbm_reg")
def _():
    import lightgbm

    X, y, Xt = regression_data(73, n_features=20)
    est = lightgbm.LGBMRegressor(n_estimators=50, max_depth=5, num_leaves=16,
                                 learning_rate=0.2, n_jobs=1, random_state=73,
                                 deterministic=True, verbose=-1).fit(X, y)
    onx, exp = _mltools_export("lightgbm", est, Xt.shape[1])
    rows = _tree_rows(onx, Xt)
    return Built(onx, rows,
                 _lgb_source(est, n_estimators=50, max_depth=5, num_leaves=16,
                             learning_rate=0.2), exp,
                 reference=reg_reference(est), nan_feeds={"X": _with_nans(rows["X"], 73)})


# ---- MLP -----------------------------------------------------------------

def _mlp():
    from sklearn.neural_network import MLPClassifier

    X, y, Xt = classification_data(81, 3)
    est = MLPClassifier(hidden_layer_sizes=(32, 16), activation="relu", max_iter=400,
                        random_state=81).fit(X, y)
    return est, Xt


def _mlp_built(dtype=FLOAT, opset=None):
    est, Xt = _mlp()
    onx, exp = skl_export(est, Xt.shape[1], zipmap=False, dtype=dtype, opset=opset)
    return Built(onx, edge_rows(Xt, dtype),
                 skl_source(est, hidden_layer_sizes=[32, 16], activation="relu"), exp,
                 margin_output="probabilities",
                 reference=clf_reference(est, "label", "probabilities"))


@spec("mlp_clf")
def _():
    return _mlp_built()


@spec("mlp_clf_op11")
def _():
    return _mlp_built(opset=11)


@spec("mlp_clf_double")
def _():
    return _mlp_built(dtype=DOUBLE)


# ---- graphs built with onnx.helper ----------------------------------------

def _helper_exporter(opsets, **extra):
    import onnx

    d = {"name": "onnx.helper", "version": onnx.__version__,
         "target_opset": opsets, "dtype": FLOAT, "zipmap": False}
    d.update(extra)
    return d


def _helper_model(graph, opsets: dict[str, int]):
    from onnx import helper

    imports = [helper.make_opsetid("" if d == "ai.onnx" else d, v) for d, v in opsets.items()]
    m = helper.make_model(graph, opset_imports=imports, producer_name="freshline-make_zoo")
    m.ir_version = 8
    return m


def two_tower_tables(seed=91, users=500, items=2000, dim=32, k=10, min_gap=1e-3):
    """Random embeddings where every user's top k+1 scores are separated by
    at least min_gap (no ties, robust to summation order)."""
    rng = np.random.default_rng(seed)
    user = (rng.standard_normal((users, dim)) / np.sqrt(dim)).astype(np.float32)
    item = rng.standard_normal((items, dim)).astype(np.float32)
    for u in range(users):
        for _attempt in range(1000):
            s = np.sort(item.astype(np.float64) @ user[u].astype(np.float64))[::-1][: k + 1]
            if np.all(np.diff(-s) >= min_gap):
                break
            user[u] = (rng.standard_normal(dim) / np.sqrt(dim)).astype(np.float32)
        else:
            raise RuntimeError(f"could not separate top scores for user {u}")
    return user, item


@spec("two_tower")
def _():
    from onnx import TensorProto, helper, numpy_helper

    user, item = two_tower_tables()
    k = 10
    inits = [numpy_helper.from_array(user, "user_table"),
             numpy_helper.from_array(item, "item_table"),
             numpy_helper.from_array(np.array([k], dtype=np.int64), "k")]
    nodes = [
        helper.make_node("Gather", ["user_table", "user_id"], ["user_vec"], axis=0),
        helper.make_node("Transpose", ["item_table"], ["item_table_t"], perm=[1, 0]),
        helper.make_node("MatMul", ["user_vec", "item_table_t"], ["all_scores"]),
        helper.make_node("TopK", ["all_scores", "k"], ["scores", "items"],
                         axis=-1, largest=1, sorted=1),
    ]
    graph = helper.make_graph(
        nodes, "two_tower",
        [helper.make_tensor_value_info("user_id", TensorProto.INT64, ["N"])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", k]),
         helper.make_tensor_value_info("items", TensorProto.INT64, ["N", k])],
        initializer=inits)
    m = _helper_model(graph, {"ai.onnx": 13})
    ids = np.array([0, 1, 2, 3, 499, 498, 250, 17, 17, 42, 123, 321, 77, 400, 5,
                    -1, -500, 0, 499, 314, 271, 161, 88, 499, 256, 128, 64, 32],
                   dtype=np.int64)
    return Built(m, {"user_id": ids}, {"library": "numpy", "version": np.__version__,
                                       "estimator": "random embeddings",
                                       "params": {"seed": 91, "users": 500, "items": 2000,
                                                  "dim": 32, "k": k}},
                 _helper_exporter({"ai.onnx": 13}),
                 notes=["user_id includes negative indices (-1, -500): Gather wraps them",
                        "every user's top-11 scores differ by >= 1e-3 (no ties)"])


@spec("topk_op9")
def _():
    """TopK-1..9 form: k is an attribute, not an input."""
    from onnx import TensorProto, helper

    nodes = [helper.make_node("TopK", ["X"], ["values", "indices"], axis=1, k=5)]
    graph = helper.make_graph(
        nodes, "topk_op9",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 24])],
        [helper.make_tensor_value_info("values", TensorProto.FLOAT, ["N", 5]),
         helper.make_tensor_value_info("indices", TensorProto.INT64, ["N", 5])])
    m = _helper_model(graph, {"ai.onnx": 9})
    rng = np.random.default_rng(92)
    # Distinct values per row (a permutation scaled), so order is unambiguous.
    X = np.stack([rng.permutation(24).astype(np.float32) * 0.25 - 3.0 for _ in range(24)])
    X[3] *= -1.0
    X[4] *= 1e5
    return Built(m, {"X": X}, {"library": "numpy", "version": np.__version__,
                               "estimator": "random permutations", "params": {"seed": 92}},
                 _helper_exporter({"ai.onnx": 9}))


@spec("ml_afe_scaler_normalizer")
def _():
    """ai.onnx.ml ArrayFeatureExtractor, Scaler and Normalizer used directly."""
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.array([7, 0, 3, 3, 11], dtype=np.int64), "idx")]
    ml = "ai.onnx.ml"
    nodes = [
        helper.make_node("ArrayFeatureExtractor", ["X", "idx"], ["picked"], domain=ml),
        helper.make_node("Scaler", ["picked"], ["picked_scaled"], domain=ml,
                         offset=[0.5, -1.0, 2.0, 0.0, 10.0], scale=[2.0, 0.5, -1.0, 3.0, 0.1]),
        # One-element offset/scale apply to every column; int64 input -> float output.
        helper.make_node("Scaler", ["Xi"], ["xi_scaled"], domain=ml, offset=[1.5], scale=[0.25]),
        helper.make_node("ArrayFeatureExtractor", ["Xi", "idx_i"], ["xi_picked"], domain=ml),
        helper.make_node("Normalizer", ["X"], ["norm_max"], domain=ml, norm="MAX"),
        helper.make_node("Normalizer", ["X"], ["norm_l1"], domain=ml, norm="L1"),
        helper.make_node("Normalizer", ["X"], ["norm_l2"], domain=ml, norm="L2"),
    ]
    inits.append(numpy_helper.from_array(np.array([2, 0], dtype=np.int64), "idx_i"))
    graph = helper.make_graph(
        nodes, "ml_afe_scaler_normalizer",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 12]),
         helper.make_tensor_value_info("Xi", TensorProto.INT64, ["N", 3])],
        [helper.make_tensor_value_info("picked_scaled", TensorProto.FLOAT, ["N", 5]),
         helper.make_tensor_value_info("xi_scaled", TensorProto.FLOAT, ["N", 3]),
         helper.make_tensor_value_info("xi_picked", TensorProto.INT64, ["N", 2]),
         helper.make_tensor_value_info("norm_max", TensorProto.FLOAT, ["N", 12]),
         helper.make_tensor_value_info("norm_l1", TensorProto.FLOAT, ["N", 12]),
         helper.make_tensor_value_info("norm_l2", TensorProto.FLOAT, ["N", 12])],
        initializer=inits)
    m = _helper_model(graph, {"ai.onnx": 13, "ai.onnx.ml": 1})
    rng = np.random.default_rng(93)
    X = rng.standard_normal((24, 12)).astype(np.float32) * 3
    X[1] = -np.abs(X[1])          # all negative: MAX norm divides by a negative max
    X[2] *= 1e4
    X[3] = 0.0
    X[3, 5] = 2.0                 # mostly zeros
    Xi = rng.integers(-50, 50, size=(24, 3)).astype(np.int64)
    Xi[0] = [0, 0, 0]
    Xi[1] = [-(2 ** 40), 2 ** 40, 7]
    return Built(m, {"X": X, "Xi": Xi}, {"library": "numpy", "version": np.__version__,
                                        "estimator": "hand-built", "params": {"seed": 93}},
                 _helper_exporter({"ai.onnx": 13, "ai.onnx.ml": 1}),
                 notes=["all-zero rows are avoided: Normalizer on a zero row divides by 0"])


# ---- attribute-variant models (same operators, other attribute values) ----
# No exporter above emits these attribute values, but they are part of the
# operators' semantics (and onnxruntime has special cases for some of them).

def _vi(name, elem, dims):
    from onnx import helper

    return helper.make_tensor_value_info(name, elem, dims)


@spec("linear_clf_variants")
def _():
    """LinearClassifier / LinearRegressor with every post_transform (except
    PROBIT, which maps raw scores outside (0,1) to NaN), the binary form with a
    single coefficient row, string labels, and multi-target regression."""
    from onnx import TensorProto as TP, helper

    ml = "ai.onnx.ml"
    rng = np.random.default_rng(95)
    F = 6
    W = np.round(rng.standard_normal((3, F)), 3)
    inter3 = [0.0, 0.25, -0.5]          # class 0 scores exactly 0 on the zero row
    nodes, outs = [], []

    def clf(tag, coefs, inter, labels, pt, multi_class=0, string=False):
        kw = {"classlabels_strings": labels} if string else {"classlabels_ints": labels}
        nodes.append(helper.make_node(
            "LinearClassifier", ["X"], [f"{tag}_label", f"{tag}_scores"], domain=ml,
            coefficients=np.ravel(coefs).tolist(), intercepts=list(inter),
            post_transform=pt, multi_class=multi_class, **kw))
        outs.append(_vi(f"{tag}_label", TP.STRING if string else TP.INT64, ["N"]))
        outs.append(_vi(f"{tag}_scores", TP.FLOAT, ["N", len(labels)]))

    for pt in ("NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO"):
        clf(f"c3_{pt.lower()}", W, inter3, [0, 1, 2], pt)
    clf("c3_ovr_logistic", W, inter3, [10, 20, 30], "LOGISTIC", multi_class=1)
    for pt in ("NONE", "LOGISTIC", "SOFTMAX"):
        clf(f"c2_onerow_{pt.lower()}", W[0], [0.125], [0, 1], pt)
    for pt in ("NONE", "LOGISTIC", "SOFTMAX_ZERO"):
        clf(f"c2_tworows_{pt.lower()}", W[:2], inter3[:2], [0, 1], pt)
    clf("c2_onerow_str", W[1], [-0.25], ["no", "yes"], "LOGISTIC", string=True)

    nodes.append(helper.make_node("LinearRegressor", ["X"], ["r2_none"], domain=ml,
                                  coefficients=np.ravel(W[:2]).tolist(),
                                  intercepts=[1.5, -2.0], targets=2))
    nodes.append(helper.make_node("LinearRegressor", ["X"], ["r1_nointercept"], domain=ml,
                                  coefficients=W[2].tolist(), targets=1))
    nodes.append(helper.make_node("LinearRegressor", ["X"], ["r3_softmax"], domain=ml,
                                  coefficients=np.ravel(W).tolist(), intercepts=inter3,
                                  targets=3, post_transform="SOFTMAX"))
    outs += [_vi("r2_none", TP.FLOAT, ["N", 2]), _vi("r1_nointercept", TP.FLOAT, ["N", 1]),
             _vi("r3_softmax", TP.FLOAT, ["N", 3])]
    graph = helper.make_graph(nodes, "linear_clf_variants", [_vi("X", TP.FLOAT, ["N", F])], outs)
    m = _helper_model(graph, {"ai.onnx": 13, "ai.onnx.ml": 1})
    X = rng.standard_normal((40, F)) * 2
    feeds = edge_rows(X, FLOAT)
    return Built(m, feeds, {"library": "numpy", "version": np.__version__,
                            "estimator": "hand-built", "params": {"seed": 95}},
                 _helper_exporter({"ai.onnx": 13, "ai.onnx.ml": 1}),
                 margin_output=[o.name for o in outs if o.name.endswith("_scores")],
                 notes=["onnxruntime: a binary LinearClassifier with one coefficient row "
                        "outputs [1-s, s] (s = transformed score) and ignores SOFTMAX there",
                        "onnxruntime ignores multi_class"])


def _tree_node_attrs(onx):
    from onnx import helper

    for n in onx.graph.node:
        if n.op_type.startswith("TreeEnsemble"):
            return {a.name: helper.get_attribute_value(a) for a in n.attribute}
    raise ValueError("no TreeEnsemble node")


def _mixed_modes(attrs):
    """Rewrite branch modes cyclically: LEQ, LT, GT (children swapped: same
    function as LEQ), GTE (swapped), EQ, NEQ."""
    a = dict(attrs)
    modes = [m.decode() if isinstance(m, bytes) else m for m in a["nodes_modes"]]
    t, f = list(a["nodes_truenodeids"]), list(a["nodes_falsenodeids"])
    k = 0
    for i, m in enumerate(modes):
        if m == "LEAF":
            continue
        new = ("BRANCH_LEQ", "BRANCH_LT", "BRANCH_GT", "BRANCH_GTE", "BRANCH_EQ",
               "BRANCH_NEQ")[k % 6]
        if new in ("BRANCH_GT", "BRANCH_GTE"):
            t[i], f[i] = f[i], t[i]
        modes[i] = new
        k += 1
    a["nodes_modes"] = modes
    a["nodes_truenodeids"], a["nodes_falsenodeids"] = t, f
    return a


@spec("tree_variants")
def _():
    """TreeEnsembleRegressor with n_targets=2 and every aggregate_function,
    base_values, all six branch modes; TreeEnsembleClassifier (3-class, binary
    with one class_id, binary with weights for both classes) with each
    post_transform but PROBIT."""
    from onnx import TensorProto as TP, helper
    from sklearn.datasets import make_classification, make_regression
    from sklearn.ensemble import (GradientBoostingClassifier, RandomForestClassifier,
                                  RandomForestRegressor)

    ml = "ai.onnx.ml"
    F = 8
    Xr, yr = make_regression(400, F, n_targets=2, noise=2.0, random_state=96)
    rfr = RandomForestRegressor(n_estimators=4, max_depth=3, random_state=96).fit(Xr, yr)
    reg, _ = skl_export(rfr, F)
    Xc, yc = make_classification(400, F, n_informative=5, n_classes=3,
                                 n_clusters_per_class=1, random_state=97)
    gbc3 = GradientBoostingClassifier(n_estimators=4, max_depth=2, random_state=97).fit(Xc, yc)
    c3, _ = skl_export(gbc3, F, zipmap=False)
    gbc2 = GradientBoostingClassifier(n_estimators=4, max_depth=2, random_state=98).fit(
        Xc, (yc == 1).astype(int))
    c2, _ = skl_export(gbc2, F, zipmap=False)
    rfc2 = RandomForestClassifier(n_estimators=3, max_depth=3, random_state=99).fit(
        Xc, (yc == 2).astype(int))
    r2, _ = skl_export(rfc2, F, zipmap=False)

    nodes, outs = [], []
    ra = _tree_node_attrs(reg)
    ra.pop("name", None)
    for agg in ("SUM", "AVERAGE", "MIN", "MAX"):
        nodes.append(helper.make_node("TreeEnsembleRegressor", ["X"], [f"reg_{agg.lower()}"],
                                      domain=ml, **{**ra, "aggregate_function": agg}))
        outs.append(_vi(f"reg_{agg.lower()}", TP.FLOAT, ["N", 2]))
    nodes.append(helper.make_node("TreeEnsembleRegressor", ["X"], ["reg_base_values"], domain=ml,
                                  **{**ra, "base_values": [100.0, -0.5]}))
    nodes.append(helper.make_node("TreeEnsembleRegressor", ["X"], ["reg_mixed_modes"], domain=ml,
                                  **_mixed_modes(ra)))
    outs += [_vi("reg_base_values", TP.FLOAT, ["N", 2]), _vi("reg_mixed_modes", TP.FLOAT, ["N", 2])]

    def clf(tag, attrs, pt, n_cls):
        a = {k: v for k, v in attrs.items() if k != "name"}
        a["post_transform"] = pt
        nodes.append(helper.make_node("TreeEnsembleClassifier", ["X"],
                                      [f"{tag}_label", f"{tag}_scores"], domain=ml, **a))
        outs.extend([_vi(f"{tag}_label", TP.INT64, ["N"]),
                     _vi(f"{tag}_scores", TP.FLOAT, ["N", n_cls])])

    for pt in ("NONE", "SOFTMAX", "SOFTMAX_ZERO", "LOGISTIC"):
        clf(f"c3_{pt.lower()}", _tree_node_attrs(c3), pt, 3)
    for pt in ("NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO"):
        clf(f"c2_oneclass_{pt.lower()}", _tree_node_attrs(c2), pt, 2)
    clf("c2_bothclasses_none", _tree_node_attrs(r2), "NONE", 2)
    clf("c2_bothclasses_logistic", _tree_node_attrs(r2), "LOGISTIC", 2)

    graph = helper.make_graph(nodes, "tree_variants", [_vi("X", TP.FLOAT, ["N", F])], outs)
    m = _helper_model(graph, {"ai.onnx": 13, "ai.onnx.ml": 1})
    ths = tree_thresholds(m)
    X = np.vstack([Xr[300:340], Xc[300:340]])[::2]
    feeds = edge_rows(X, FLOAT, ths)
    return Built(m, feeds, skl_source(rfr, "RandomForestRegressor / GradientBoostingClassifier "
                                           "/ RandomForestClassifier (small)"),
                 _helper_exporter({"ai.onnx": 13, "ai.onnx.ml": 1},
                                  rewrite="attributes of skl2onnx exports, varied"),
                 margin_output=[o.name for o in outs if o.name.endswith("_scores")])


@spec("identity")
def _():
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["X"], ["Y"])], "identity",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 30])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 30])])
    m = _helper_model(graph, {"ai.onnx": 13})
    X = np.random.default_rng(94).standard_normal((20, 30)).astype(np.float32)
    return Built(m, {"X": X}, {"library": "numpy", "version": np.__version__,
                               "estimator": "identity", "params": {}},
                 _helper_exporter({"ai.onnx": 13}))


# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------

def drop_near_ties(sess, built, min_gap=1e-4):
    """Keep rows whose best class beats the runner-up by >= min_gap, so the
    expected label does not hinge on float summation order."""
    res = run_rows(sess, built.feeds)
    names = built.margin_output
    names = [names] if isinstance(names, str) else names
    keep = np.ones(len(next(iter(built.feeds.values()))), dtype=bool)
    for name in names:
        P = probas_matrix(res[name])
        top2 = -np.sort(-P, axis=1)[:, :2]
        keep &= (top2[:, 0] - top2[:, 1]) >= min_gap
    built.feeds = {k: v[keep] for k, v in built.feeds.items()}
    if built.tags is not None:
        built.tags = [t for t, k in zip(built.tags, keep) if k]
    return int((~keep).sum())


def run_rows(sess, feeds):
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds)))


def write_jsonl(path: Path, feeds_or_outputs: dict, n: int, allow_null_nan=False):
    per_name = {k: rows_of(v, n) for k, v in feeds_or_outputs.items()}
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for i in range(n):
            obj = {k: per_name[k][i] for k in sorted(per_name)}
            f.write(dumps_row(obj, allow_null_nan) + "\n")


def check_reference(built, outputs) -> str:
    """Compare onnxruntime with the source library: the worst relative error
    on random rows, and the tags of any rows that disagree by more than 1e-3
    (expected only for edge rows, e.g. inputs exactly on a float64 threshold
    that the float32 graph rounds)."""
    if built.reference is None:
        return "-"
    ref = built.reference(built.feeds)
    n = len(next(iter(built.feeds.values())))
    tags = built.tags or ["random"] * n
    row_err = np.zeros(n)
    for name, want in ref.items():
        got = outputs[name]
        if isinstance(got, list):
            got = probas_matrix(got)
        want = np.asarray(want)
        if want.dtype.kind in "fc":
            w = want.astype(np.float64).reshape(n, -1)
            d = np.abs(np.asarray(got, np.float64).reshape(n, -1) - w)
            row_err = np.maximum(row_err, (d / np.maximum(1.0, np.abs(w))).max(axis=1))
        else:
            bad = np.asarray(got).reshape(want.shape) != want
            row_err = np.maximum(row_err, np.where(bad.reshape(n, -1).any(axis=1), np.inf, 0.0))
    rand = [e for e, t in zip(row_err, tags) if t == "random"]
    text = f"{max(rand):.0e}" if rand else "-"
    off = sorted({t for e, t in zip(row_err, tags) if e > 1e-3})
    if off:
        text += " differs:" + "/".join(off)
    return text


def build_all(out: Path, only: set[str] | None):
    import onnx

    out.mkdir(parents=True, exist_ok=True)
    vers = versions()
    entries = []
    table = []
    for name, fn in SPECS:
        if only and name not in only:
            continue
        built = fn()
        model = built.model
        model.graph.name = name  # exporters put a random uuid here
        # Exporters list opset_import in set order (varies with PYTHONHASHSEED);
        # sort it (duplicates, which skl2onnx writes, are kept on purpose).
        imports = sorted((o.domain, o.version) for o in model.opset_import)
        del model.opset_import[:]
        for domain, version in imports:
            model.opset_import.add(domain=domain, version=version)
        try:
            onnx.checker.check_model(model, full_check=True)
        except Exception as e:  # noqa: BLE001
            raise SystemExit(f"{name}: onnx.checker failed: {e}")
        data = model.SerializeToString()
        sess = ort_session(data)

        dropped = drop_near_ties(sess, built) if built.margin_output else 0
        feeds = built.feeds
        n = len(next(iter(feeds.values())))
        outputs = run_rows(sess, feeds)
        for k, v in outputs.items():
            if not isinstance(v, list) and v.dtype.kind == "f" and not np.all(np.isfinite(v)):
                raise SystemExit(f"{name}: non-finite values in output {k}")

        (out / f"{name}.onnx").write_bytes(data)
        write_jsonl(out / f"{name}.inputs.jsonl", feeds, n)
        write_jsonl(out / f"{name}.expected.jsonl", outputs, n)
        files = [f"{name}.onnx", f"{name}.inputs.jsonl", f"{name}.expected.jsonl"]

        extra = {}
        if built.nan_feeds is not None:
            nf = built.nan_feeds
            nn = len(next(iter(nf.values())))
            nouts = run_rows(sess, nf)
            write_jsonl(out / f"{name}.nan.inputs.jsonl", nf, nn, allow_null_nan=True)
            write_jsonl(out / f"{name}.nan.expected.jsonl", nouts, nn)
            files += [f"{name}.nan.inputs.jsonl", f"{name}.nan.expected.jsonl"]
            extra = {"nan_rows": {"inputs": f"{name}.nan.inputs.jsonl",
                                  "expected": f"{name}.nan.expected.jsonl",
                                  "rows": nn, "nan_encoding": "null"}}

        g = model.graph
        init_names = {i.name for i in g.initializer}
        entry = {
            "name": name,
            "file": f"{name}.onnx",
            "sha256": hashlib.sha256(data).hexdigest(),
            "size_bytes": len(data),
            "source": built.source,
            "exporter": built.exporter,
            "opset_import": opset_imports(model),
            "ir_version": int(model.ir_version),
            "ops": ops_used(model),
            "inputs": [{"name": i.name, "type": type_string(i.type), "shape": shape_list(i.type)}
                       for i in g.input if i.name not in init_names],
            "outputs": [{"name": o.name, "type": type_string(o.type),
                         "shape": shape_list(o.type), "compare": compare_kind(o.type)}
                        for o in g.output],
            "rows": n,
            "inputs_file": f"{name}.inputs.jsonl",
            "expected_file": f"{name}.expected.jsonl",
            "nodes": node_summaries(model),
        }
        if built.tags:
            entry["row_tags"] = built.tags
        if dropped:
            entry["rows_dropped_near_ties"] = dropped
        if built.notes:
            entry["notes"] = built.notes
        entry.update(extra)
        entries.append(entry)
        size = sum((out / f).stat().st_size for f in files)
        table.append((name, ",".join(entry["ops"]),
                      ",".join(f"{k.replace('ai.onnx', 'onnx')}={v}"
                               for k, v in entry["opset_import"].items()),
                      len(data), size, n, dropped, check_reference(built, outputs)))
        print(f"  built {name}", file=sys.stderr, flush=True)

    manifest = {
        "description": ("Freshline model zoo. For each model: NAME.onnx, NAME.inputs.jsonl "
                        "(one object per row: input -> value without the batch dim), "
                        "NAME.expected.jsonl (onnxruntime outputs for all rows run as one "
                        "batch, split per row; ZipMap rows are {\"label\": prob} objects). "
                        "compare: exact = integers/strings/labels, close = floating point, "
                        "map = ZipMap (keys exact, values close). Declared shapes: null = "
                        "unnamed dynamic dim. Generated by scripts/make_zoo.py."),
        "generator": "scripts/make_zoo.py",
        "versions": vers,
        "onnxruntime_session": {"intra_op_num_threads": 1, "inter_op_num_threads": 1,
                                "execution_mode": "sequential",
                                "providers": ["CPUExecutionProvider"]},
        "suggested_tolerance": {"float": {"rtol": 1e-4, "atol": 1e-5},
                                "double": {"rtol": 1e-9, "atol": 1e-12}},
        "models": entries,
    }
    if only:
        old = out / "MANIFEST.json"
        if old.exists():
            prev = json.loads(old.read_text())
            keep = [m for m in prev["models"] if m["name"] not in only]
            order = {n: i for i, (n, _) in enumerate(SPECS)}
            manifest["models"] = sorted(keep + entries,
                                        key=lambda e: order.get(e["name"], len(order)))
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=1, sort_keys=False) + "\n")
    return table



# --------------------------------------------------------------------------
# Verification of written fixtures (--verify)
# --------------------------------------------------------------------------

_NP_OF_TYPE = {"tensor(float)": np.float32, "tensor(double)": np.float64,
               "tensor(int64)": np.int64, "tensor(int32)": np.int32,
               "tensor(string)": object, "tensor(bool)": np.bool_}


def _load_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _feeds_from_rows(rows, inputs):
    feeds = {}
    for i in inputs:
        vals = [np.nan if r[i["name"]] is None else r[i["name"]] for r in rows]
        if i["type"] in ("tensor(float)", "tensor(double)"):
            vals = [[np.nan if x is None else x for x in v] if isinstance(v, list) else v
                    for v in vals]
        feeds[i["name"]] = np.array(vals, dtype=_NP_OF_TYPE[i["type"]])
    return feeds


def _close(a, b, rtol, atol):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], rtol, atol) for k in a)
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= atol + rtol * np.abs(b)))


def verify(out: Path) -> int:
    """Reload every model and fixture, rerun onnxruntime (whole batch and one
    row at a time) and compare with the expected files."""
    manifest = json.loads((out / "MANIFEST.json").read_text())
    tol = manifest["suggested_tolerance"]
    problems = 0
    for m in manifest["models"]:
        sess = ort_session((out / m["file"]).read_bytes())
        assert hashlib.sha256((out / m["file"]).read_bytes()).hexdigest() == m["sha256"]
        cases = [(m["inputs_file"], m["expected_file"])]
        if "nan_rows" in m:
            cases.append((m["nan_rows"]["inputs"], m["nan_rows"]["expected"]))
        for inp, exp in cases:
            rows, expected = _load_jsonl(out / inp), _load_jsonl(out / exp)
            if len(rows) != len(expected) or (inp == m["inputs_file"] and len(rows) != m["rows"]):
                print(f"FAIL {m['name']}: row counts differ ({len(rows)} vs {len(expected)})")
                problems += 1
                continue
            feeds = _feeds_from_rows(rows, m["inputs"])
            batch = run_rows(sess, feeds)
            n = len(rows)
            for o in m["outputs"]:
                got_rows = rows_of(batch[o["name"]], n)
                t = tol["double" if o["type"] == "tensor(double)" else "float"]
                for i in range(n):
                    single = rows_of(run_rows(sess, {k: v[i:i + 1] for k, v in feeds.items()})[o["name"]], 1)[0]
                    want = expected[i][o["name"]]
                    for label, got in (("batch", got_rows[i]), ("single-row", single)):
                        ok = (got == want) if o["compare"] == "exact" else (
                            _close(got, want, t["rtol"], t["atol"]) if o["compare"] == "close"
                            else (got.keys() == want.keys()
                                  and _close(got, want, t["rtol"], t["atol"])))
                        if label == "batch" and got != want:
                            ok = False  # same batch must reproduce the file exactly
                        if not ok:
                            problems += 1
                            print(f"FAIL {m['name']} {exp} row {i} {o['name']} ({label}): "
                                  f"{str(got)[:120]} != {str(want)[:120]}")
    print(f"verified {len(manifest['models'])} models: {problems} problem(s)")
    return problems


def print_table(table):
    hdr = ("name", "opsets", "onnx B", "all B", "rows", "drop", "vs src", "ops")
    rows = [(t[0], t[2], str(t[3]), str(t[4]), str(t[5]), str(t[6]), t[7], t[1]) for t in table]
    widths = [max(len(r[i]) for r in rows + [hdr]) for i in range(len(hdr) - 1)]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1]
    print(line(hdr))
    for r in rows:
        print(line(r))
    total = sum(t[4] for t in table)
    print(f"{len(table)} models, {total / 1e6:.2f} MB of fixtures "
          f"(onnx {sum(t[3] for t in table) / 1e6:.2f} MB)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--only", help="comma-separated model names to (re)build")
    ap.add_argument("--list", action="store_true", help="list model names and exit")
    ap.add_argument("--verify", action="store_true",
                    help="only re-check the written fixtures with onnxruntime")
    args = ap.parse_args()
    if args.list:
        print("\n".join(n for n, _ in SPECS))
        return
    if args.verify:
        sys.exit(1 if verify(args.out) else 0)
    only = set(args.only.split(",")) if args.only else None
    if only:
        unknown = only - {n for n, _ in SPECS}
        if unknown:
            raise SystemExit(f"unknown models: {sorted(unknown)}")
    else:
        # Full rebuild: remove stale files from models that no longer exist.
        if args.out.exists():
            for p in args.out.iterdir():
                if p.suffix in (".onnx", ".jsonl") or p.name == "MANIFEST.json":
                    p.unlink()
    print_table(build_all(args.out, only))
    if verify(args.out):
        sys.exit(1)


if __name__ == "__main__":
    main()
