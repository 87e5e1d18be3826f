"""Writes the MLServer model repository entry `sk_binary` (scripts/upstreams.sh setup).

    python make_sk_binary.py MODEL_DIR

MODEL_DIR/model.joblib: a scikit-learn LogisticRegression, a binary classifier over 16 float32 features,
trained on a synthetic dataset drawn from a fixed seed (2000 rows; the label is the sign of a fixed
linear function of the features plus a little noise), so every run trains the same model.
MODEL_DIR/model-settings.json: implementation mlserver_sklearn.SKLearnModel, name sk_binary, version 1,
input X (FP32, [-1, 16]) and outputs predict (INT64, [-1, 1]) and predict_proba (FP32, [-1, 2]): what the server really answers
(scikit-learn keeps float32 through predict_proba; mlserver-sklearn answers predict as a column).

mlserver-sklearn answers `predict` unless the request lists outputs: {"outputs": [{"name": "predict"},
{"name": "predict_proba"}]} returns both (any of predict, predict_proba, transform; a model-wide default can
be set with parameters.extra.predict_fn). Adaptive batching is off (MLServer's default); it would be turned on
in model-settings.json with "max_batch_size": N (> 1) and "max_batch_time": SECONDS.
"""
import json
import os
import sys

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression

SEED = 16
N_FEATURES = 16


def main(model_dir):
    rng = np.random.default_rng(SEED)
    X = rng.standard_normal((2000, N_FEATURES)).astype(np.float32)
    coef = np.linspace(-1.0, 1.0, N_FEATURES, dtype=np.float32)
    y = ((X @ coef + 0.1 * rng.standard_normal(2000)) > 0).astype(np.int64)
    model = LogisticRegression(max_iter=1000).fit(X, y)

    os.makedirs(model_dir, exist_ok=True)
    joblib.dump(model, os.path.join(model_dir, "model.joblib"))
    settings = {
        "name": "sk_binary",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "inputs": [{"name": "X", "datatype": "FP32", "shape": [-1, N_FEATURES]}],
        "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": [-1, 1]},
            {"name": "predict_proba", "datatype": "FP32", "shape": [-1, 2]},
        ],
        "parameters": {"uri": "./model.joblib", "version": "1"},
    }
    with open(os.path.join(model_dir, "model-settings.json"), "w") as f:
        json.dump(settings, f, indent=2)
        f.write("\n")
    print(f"sk_binary: training accuracy {model.score(X, y):.3f}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_sk_binary.py MODEL_DIR")
    main(sys.argv[1])
