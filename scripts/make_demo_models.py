#!/usr/bin/env python3
"""Trains and exports the worked example's models (docs/demo.md) into demo/models/, with their held-out
metrics in demo/models/MANIFEST.json. The demo itself needs no Python: the models are committed.

The synthetic SaaS world (the same generative story `freshline demo` draws its data and traffic from, in
Sources/FreshlineRuntime/Demo/DemoWorld.swift):
  users     2,000: two favourite categories of 16; 10% risky (chargebacks, disputes, failed logins, countries)
  items     3,000: a category, a popularity, a log price
  accounts  5,000: seats, activity, tickets, NPS, last login, plan; 20% churning
  sessions  the categories of the last five clicks: half from the user's favourites, half from the current intent
  transactions  amount, hour, distance, merchant risk, velocity, new device; fraud more likely for risky users

Models (ONNX, opset 17, ai.onnx.ml 3):
  retrieval.onnx  two-tower: user_id -> Gather(user embeddings) x item embeddings^T -> TopK 200 candidates
                  (embeddings from a rank-32 SVD of simulated clicks)
  rerank.onnx     candidates [N,200] + session [N,16] -> an MLP per candidate (sklearn's MLPRegressor, its first
                  layer folded into per-item tables) -> TopK 10 -> GatherElements: the top 10 item ids, scores
  user_risk.onnx  GradientBoostingClassifier over six user-history features -> label, probabilities
  fraud.onnx      Scaler + MLPClassifier over seven transaction fields (tx) and the user's risk probabilities
                  (risk, composed from user_risk's snapshot) -> label, probabilities
  report.onnx     GradientBoostingClassifier over eight account-usage features -> churn label, probabilities
"""
import json
import math
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

OUT = Path(__file__).resolve().parent.parent / "demo" / "models"
rng = np.random.default_rng(20261129)
USERS, ITEMS, ACCOUNTS, CATEGORIES, DIM, CANDIDATES, TOP = 2000, 3000, 5000, 16, 32, 200, 10


# ---- the world -------------------------------------------------------------------------------------------

def users():
    fav1 = rng.integers(0, CATEGORIES, USERS)
    fav2 = (fav1 + 1 + rng.integers(0, CATEGORIES - 1, USERS)) % CATEGORIES
    pref = np.full((USERS, CATEGORIES), 0.1 / CATEGORIES)
    pref[np.arange(USERS), fav1] += 0.6
    pref[np.arange(USERS), fav2] += 0.3
    risky = rng.random(USERS) < 0.10
    return pref, risky, user_features(risky)


def user_features(risky):
    n = len(risky)
    tenure = np.where(risky, rng.uniform(1, 1200, n), rng.uniform(30, 2000, n))
    chargebacks = rng.poisson(np.where(risky, 0.8, 0.08))
    disputes = rng.poisson(np.where(risky, 0.6, 0.1))
    ticket = np.exp(3.5 + 0.6 * rng.standard_normal(n)) * np.where(risky, 1.3, 1.0)
    countries = 1 + rng.poisson(np.where(risky, 0.9, 0.3))
    failed = rng.poisson(np.where(risky, 2.0, 0.7))
    return np.stack([tenure, chargebacks, disputes, ticket, countries, failed], axis=1).astype(np.float32)


def items():
    category = np.arange(ITEMS) % CATEGORIES
    latent = np.eye(CATEGORIES, dtype=np.float32)[category]
    popularity = (rng.random(ITEMS) ** 2).astype(np.float32)
    price = (3 + 0.7 * rng.standard_normal(ITEMS)).astype(np.float32)
    return category, latent, popularity, price


def session(pref_row, intent):
    clicks = [rng.choice(CATEGORIES, p=pref_row) if rng.random() < 0.5 else intent for _ in range(5)]
    s = np.zeros(CATEGORIES, dtype=np.float32)
    for c in clicks:
        s[c] += 0.2
    return s


def click_probability(s, latent, popularity):
    return 1 / (1 + np.exp(-(4 * (latent @ s) + 0.8 * popularity - 2.5)))


def accounts(n):
    churning = rng.random(n) < 0.20
    seats = np.minimum(500, 1 + np.floor(np.exp(1.5 + rng.standard_normal(n))))
    active7 = np.where(churning, rng.uniform(0, 0.7, n), rng.uniform(0.25, 1, n))
    active30 = np.clip(active7 + rng.normal(0, 0.15, n), 0, 1)
    tickets = rng.poisson(np.where(churning, 4.0, 2.0))
    nps = np.where(churning, rng.uniform(-50, 50, n), rng.uniform(-10, 80, n))
    login = np.where(churning, rng.uniform(1, 30, n), rng.uniform(0, 12, n))
    tier = rng.integers(0, 3, n)
    mrr = np.log(seats * (20 + 30 * tier))
    x = np.stack([seats, active7, active30, tickets, nps, login, tier, mrr], axis=1).astype(np.float32)
    return x, churning


def transactions(n, risky_users, risk_probs):
    user = rng.integers(0, USERS, n)
    fraud = rng.random(n) < np.where(risky_users[user], 0.15, 0.01)
    amount = 3.5 + rng.standard_normal(n) + np.where(fraud, 0.8, 0)
    hour = np.where(fraud & (rng.random(n) < 0.4), rng.integers(0, 6, n), rng.integers(0, 24, n))
    distance = np.where(fraud, rng.uniform(2, 7, n), rng.uniform(0, 5, n))
    merchant = np.where(fraud, rng.uniform(0.2, 1, n), rng.uniform(0, 0.8, n))
    velocity = rng.poisson(np.where(fraud, 3.0, 1.0))
    device = np.where(fraud, rng.random(n) < 0.5, rng.random(n) < 0.15).astype(float)
    tx = np.stack([amount, np.sin(hour * math.pi / 12), np.cos(hour * math.pi / 12), distance, merchant, velocity,
                   device], axis=1).astype(np.float32)
    return tx, risk_probs[user].astype(np.float32), fraud


# ---- export helpers --------------------------------------------------------------------------------------

def flush_denormals(model, floor=1e-20):
    """Sets float weights under `floor` in magnitude to zero: they do not change any score, and on x86 every
    multiplication that produces or reads a subnormal takes ~100 cycles (sklearn's L2 penalty leaves unused weights
    down there, some already subnormal)."""
    for i, t in enumerate(model.graph.initializer):
        a = numpy_helper.to_array(t)
        if a.dtype == np.float32 and np.any((a != 0) & (np.abs(a) < floor)):
            a = np.where(np.abs(a) < floor, np.float32(0), a).astype(np.float32)
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(a, t.name))
    return model


def save(model, name, metrics):
    model = flush_denormals(model)
    onnx.checker.check_model(model)
    path = OUT / f"{name}.onnx"
    onnx.save(model, path)
    outputs = [{"name": o.name, "compare": "exact" if o.type.tensor_type.elem_type == TensorProto.INT64 else "close"}
               for o in model.graph.output]
    # The same entry format as the zoo's MANIFEST.json, so that the engine's parity test reads both.
    return {"name": name, "file": path.name, "bytes": path.stat().st_size, "outputs": outputs,
            "inputs_file": f"{name}.inputs.jsonl", "expected_file": f"{name}.expected.jsonl", **metrics}


def skl(model, n_features, name="X"):
    return convert_sklearn(model, initial_types=[(name, FloatTensorType([None, n_features]))],
                           options={id(model): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})


def with_split_input(model, parts):
    """Replaces the model's single input X by several inputs concatenated along axis 1."""
    graph = model.graph
    old = graph.input[0]
    del graph.input[:]
    for name, width in parts:
        graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, width]))
    graph.node.insert(0, helper.make_node("Concat", [n for n, _ in parts], [old.name], axis=1))
    return model


def auc(y, p):
    return round(float(roc_auc_score(y, p)), 4)


def write_parity_fixtures(rows=16):
    """NAME.inputs.jsonl and onnxruntime's NAME.expected.jsonl for the engine's parity test."""
    import onnxruntime as ort
    draw = np.random.default_rng(7)
    cases = {
        "retrieval": {"user_id": draw.integers(0, USERS, rows)},
        "rerank": {"candidates": draw.integers(0, ITEMS, (rows, CANDIDATES)),
                   "session": (draw.random((rows, CATEGORIES)) / 2).astype(np.float32)},
        "user_risk": {"X": user_features(draw.random(rows) < 0.5)},
        "fraud": {"tx": (draw.random((rows, 7)) * 4).astype(np.float32), "risk": draw.random((rows, 2)).astype(np.float32)},
        "report": {"X": accounts(rows)[0]},
    }
    for name, feeds in cases.items():
        session = ort.InferenceSession(str(OUT / f"{name}.onnx"))
        outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
        with open(OUT / f"{name}.inputs.jsonl", "w") as f:
            for i in range(rows):
                f.write(json.dumps({k: v[i].tolist() for k, v in feeds.items()}) + "\n")
        with open(OUT / f"{name}.expected.jsonl", "w") as f:
            for i in range(rows):
                f.write(json.dumps({k: v[i].tolist() for k, v in outputs.items()}) + "\n")


# ---- models ----------------------------------------------------------------------------------------------

def main():
    OUT.mkdir(parents=True, exist_ok=True)
    pref, risky, ufeat = users()
    category, latent, popularity, price = items()
    entries = []

    # Retrieval: simulated clicks -> rank-32 SVD -> two towers.
    weights = pref[:, category] * (0.2 + popularity)[None, :]
    weights /= weights.sum(axis=1, keepdims=True)
    clicks = np.zeros((USERS, ITEMS), dtype=np.float32)
    for u in range(USERS):
        clicks[u, rng.choice(ITEMS, size=40, replace=False, p=weights[u])] = 1
    left, sigma, right = np.linalg.svd(clicks, full_matrices=False)
    user_emb = (left[:, :DIM] * np.sqrt(sigma[:DIM])).astype(np.float32)
    item_emb_t = (np.sqrt(sigma[:DIM])[:, None] * right[:DIM]).astype(np.float32)
    scores = user_emb @ item_emb_t
    top = np.argsort(-scores, axis=1)[:, :CANDIDATES]
    favourite_share = float(np.mean(np.isin(category[top], np.argsort(-pref, axis=1)[:, :2])))
    k = numpy_helper.from_array(np.array([CANDIDATES], dtype=np.int64), "k")
    graph = helper.make_graph(
        [helper.make_node("Gather", ["user_emb", "user_id"], ["u"], axis=0),
         helper.make_node("MatMul", ["u", "item_emb_t"], ["all_scores"]),
         helper.make_node("TopK", ["all_scores", "k"], ["scores", "candidates"], axis=1)],
        "retrieval",
        [helper.make_tensor_value_info("user_id", TensorProto.INT64, [None])],
        [helper.make_tensor_value_info("candidates", TensorProto.INT64, [None, CANDIDATES]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, CANDIDATES])],
        [numpy_helper.from_array(user_emb, "user_emb"), numpy_helper.from_array(item_emb_t, "item_emb_t"), k])
    entries.append(save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8),
                        "retrieval", {"candidates_in_favourite_categories": round(favourite_share, 4)}))

    # Rerank: MLP over [item latent, popularity, price, session * latent] -> click probability.
    rows, targets = [], []
    for _ in range(60000):
        u = rng.integers(0, USERS)
        s = session(pref[u], rng.integers(0, CATEGORIES))
        i = rng.integers(0, ITEMS)
        p = click_probability(s, latent[i], popularity[i])
        rows.append(np.concatenate([latent[i], [popularity[i], price[i]], s * latent[i]]))
        targets.append(p)
    x, y = np.array(rows, dtype=np.float32), np.array(targets, dtype=np.float32)
    mlp = MLPRegressor(hidden_layer_sizes=(32,), max_iter=60, random_state=0).fit(x[:50000], y[:50000])
    held_out_r2 = round(float(mlp.score(x[50000:], y[50000:])), 4)
    w1, w2 = mlp.coefs_
    b1, b2 = mlp.intercepts_
    item_table = np.concatenate([latent, popularity[:, None], price[:, None]], axis=1).astype(np.float32)
    w_item, w_cross = w1[:18].astype(np.float32), w1[18:].astype(np.float32)
    # Constant folding of the first layer, exact because an item's latent vector is its category's one-hot:
    #   item part:  item_table[i] @ w_item + b1                      -> a per-item table (3000 x 32)
    #   cross part: (latent[i] * s) @ w_cross = s[c_i] * w_cross[c_i] -> a per-item row times one session entry
    # so the request does two gathers, one GatherElements, one multiply-add and the 32 -> 1 layer.
    item_hidden = (item_table @ w_item + b1).astype(np.float32)
    item_cross = w_cross[category].astype(np.float32)
    nodes = [
        helper.make_node("Gather", ["item_hidden", "candidates"], ["h_item"], axis=0),        # [N,200,32]
        helper.make_node("Gather", ["item_cross", "candidates"], ["w_c"], axis=0),            # [N,200,32]
        helper.make_node("Gather", ["item_category", "candidates"], ["c"], axis=0),           # [N,200]
        helper.make_node("GatherElements", ["session", "c"], ["s_c"], axis=1),                # [N,200]
        helper.make_node("Unsqueeze", ["s_c", "axis2"], ["s_c3"]),                            # [N,200,1]
        helper.make_node("Mul", ["w_c", "s_c3"], ["h_cross"]),
        helper.make_node("Add", ["h_item", "h_cross"], ["h_pre"]),
        helper.make_node("Relu", ["h_pre"], ["h"]),
        helper.make_node("MatMul", ["h", "w2"], ["o"]),                                       # [N,200,1]
        helper.make_node("Reshape", ["o", "flat"], ["all_scores"]),                           # [N,200]
        helper.make_node("TopK", ["all_scores", "k"], ["top", "positions"], axis=1),
        helper.make_node("Add", ["top", "b2"], ["scores"]),
        helper.make_node("GatherElements", ["candidates", "positions"], ["items"], axis=1),
    ]
    inits = [
        numpy_helper.from_array(item_hidden, "item_hidden"), numpy_helper.from_array(item_cross, "item_cross"),
        numpy_helper.from_array(category.astype(np.int64), "item_category"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
        numpy_helper.from_array(w2.astype(np.float32), "w2"), numpy_helper.from_array(b2.astype(np.float32), "b2"),
        numpy_helper.from_array(np.array([0, -1], dtype=np.int64), "flat"),
        numpy_helper.from_array(np.array([TOP], dtype=np.int64), "k"),
    ]
    graph = helper.make_graph(
        nodes, "rerank",
        [helper.make_tensor_value_info("candidates", TensorProto.INT64, [None, CANDIDATES]),
         helper.make_tensor_value_info("session", TensorProto.FLOAT, [None, CATEGORIES])],
        [helper.make_tensor_value_info("items", TensorProto.INT64, [None, TOP]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, TOP])], inits)
    # The folded graph must score exactly like the trained MLP.
    probe = rng.integers(0, ITEMS, 50)
    probe_s = session(pref[0], 3)
    x_probe = np.concatenate([latent[probe], popularity[probe, None], price[probe, None], probe_s * latent[probe]],
                             axis=1).astype(np.float32)
    folded = np.maximum(item_hidden[probe] + probe_s[category[probe], None] * item_cross[probe], 0) @ w2 + b2
    assert np.allclose(folded[:, 0], mlp.predict(x_probe), atol=1e-4), "constant folding changed the scores"
    entries.append(save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8),
                        "rerank", {"held_out_r2": held_out_r2}))

    # User risk: GBDT over user history.
    risky_train = rng.random(20000) < 0.10
    x = user_features(risky_train)
    risk_model = GradientBoostingClassifier(n_estimators=60, max_depth=3, random_state=0)
    risk_model.fit(x[:16000], risky_train[:16000])
    risk_auc = auc(risky_train[16000:], risk_model.predict_proba(x[16000:])[:, 1])
    entries.append(save(skl(risk_model, 6), "user_risk", {"held_out_auc": risk_auc}))

    # Fraud: transaction fields + the user's risk probabilities (as the snapshot will hold them).
    risk_probs = risk_model.predict_proba(ufeat)
    tx, risk, fraud = transactions(60000, risky, risk_probs)
    fraud_model = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(32, 16), max_iter=80,
                                                                random_state=0))
    xf = np.concatenate([tx, risk], axis=1)
    fraud_model.fit(xf[:50000], fraud[:50000])
    fraud_auc = auc(fraud[50000:], fraud_model.predict_proba(xf[50000:])[:, 1])
    without = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(32, 16), max_iter=80,
                                                            random_state=0)).fit(tx[:50000], fraud[:50000])
    fraud_auc_without_risk = auc(fraud[50000:], without.predict_proba(tx[50000:])[:, 1])
    exported = with_split_input(skl(fraud_model, 9), [("tx", 7), ("risk", 2)])
    entries.append(save(exported, "fraud", {"held_out_auc": fraud_auc,
                                            "held_out_auc_without_risk_input": fraud_auc_without_risk,
                                            "fraud_rate": round(float(fraud.mean()), 4)}))

    # Report: churn score per account.
    xa, churning = accounts(30000)
    report_model = GradientBoostingClassifier(n_estimators=60, max_depth=3, random_state=0)
    report_model.fit(xa[:25000], churning[:25000])
    report_auc = auc(churning[25000:], report_model.predict_proba(xa[25000:])[:, 1])
    entries.append(save(skl(report_model, 8), "report", {"held_out_auc": report_auc}))

    write_parity_fixtures()
    (OUT / "MANIFEST.json").write_text(json.dumps({
        "generator": "scripts/make_demo_models.py", "seed": 20261129,
        "world": {"users": USERS, "items": ITEMS, "accounts": ACCOUNTS, "categories": CATEGORIES},
        "models": entries}, indent=2) + "\n")
    for e in entries:
        print(json.dumps(e))


if __name__ == "__main__":
    main()
