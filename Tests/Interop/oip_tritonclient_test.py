"""Interoperability: Freshline's Open Inference Protocol V2 (/v2) against the real Triton HTTP client.

Run by scripts/interop-test.sh, which starts `freshline serve` on a manifest of zoo models and passes:

    FRESHLINE_OIP_URL   host:port of the server (for example 127.0.0.1:40123); required
    FRESHLINE_ZOO       the zoo folder (default: <repo>/Tests/Fixtures/zoo)
    FRESHLINE_OIP_MODELS  comma-separated model names the manifest serves (default: MODELS below)
    FRESHLINE_OIP_MAX_BODY_BYTES  the manifest's server.max_body_bytes (default 1048576, Freshline's default)

Every model is a zoo model served under its zoo name. Results are compared with the committed
onnxruntime outputs (NAME.inputs.jsonl rows run as one batch -> NAME.expected.jsonl): floating point
within a relative 1e-5 (plus a tiny absolute floor for values next to zero), integers and strings exactly.

Nothing here is skipped: a missing environment variable, client or fixture is a failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import urllib.error
import urllib.request

import numpy as np
import pytest
import tritonclient.http as httpclient
import tritonclient.http.aio as aioclient
from tritonclient.utils import InferenceServerException

REPO = pathlib.Path(__file__).resolve().parents[2]
ZOO = pathlib.Path(os.environ.get("FRESHLINE_ZOO", REPO / "Tests" / "Fixtures" / "zoo"))

# gbc_binary: FP32 in, INT64 + FP32 out (tree ensemble); two_tower: INT64 in, FP32 + INT64 [N,10] out;
# logreg_multi_strlabels: BYTES (string) labels; mlp_clf_double: FP64 in and out;
# ml_afe_scaler_normalizer: two inputs of different types (order of the binary sections matters).
MODELS = ["gbc_binary", "two_tower", "logreg_multi_strlabels", "mlp_clf_double", "ml_afe_scaler_normalizer"]

ONNX_TO_TRITON = {
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(int64)": "INT64",
    "tensor(int32)": "INT32",
    "tensor(int8)": "INT8",
    "tensor(uint8)": "UINT8",
    "tensor(bool)": "BOOL",
    "tensor(string)": "BYTES",
}
TRITON_TO_NUMPY = {
    "FP32": np.float32,
    "FP64": np.float64,
    "INT64": np.int64,
    "INT32": np.int32,
    "INT8": np.int8,
    "UINT8": np.uint8,
    "BOOL": np.bool_,
    "BYTES": np.object_,
}
RTOL = 1e-5
MAX_BODY_BYTES = int(os.environ.get("FRESHLINE_OIP_MAX_BODY_BYTES", "1048576"))
ATOL = {"FP32": 1e-7, "FP64": 1e-12}


def _url() -> str:
    url = os.environ.get("FRESHLINE_OIP_URL", "").strip()
    if not url:
        raise RuntimeError(
            "FRESHLINE_OIP_URL is not set: run this file through scripts/interop-test.sh FRESHLINE_BINARY "
            "(or set it to host:port of a running `freshline serve`)"
        )
    for prefix in ("http://", "https://"):
        if url.startswith(prefix):
            url = url[len(prefix):]
    return url.rstrip("/")


def _served_models() -> list[str]:
    names = os.environ.get("FRESHLINE_OIP_MODELS", "").strip()
    return [n for n in names.split(",") if n] if names else list(MODELS)


def _zoo_manifest() -> dict:
    path = ZOO / "MANIFEST.json"
    if not path.is_file():
        raise RuntimeError(f"zoo manifest not found at {path} (set FRESHLINE_ZOO)")
    with path.open() as f:
        return {m["name"]: m for m in json.load(f)["models"]}


ZOO_MODELS = _zoo_manifest()
SERVED = _served_models()


def _read_jsonl(path: pathlib.Path) -> list[dict]:
    if not path.is_file():
        raise RuntimeError(f"fixture not found: {path}")
    with path.open() as f:
        return [json.loads(line) for line in f if line.strip()]


class Case:
    """A zoo model's declared signature, its fixture rows as one batch, and the expected outputs."""

    def __init__(self, name: str):
        if name not in ZOO_MODELS:
            raise RuntimeError(f"model {name} is not in the zoo manifest")
        self.name = name
        self.spec = ZOO_MODELS[name]
        rows = _read_jsonl(ZOO / self.spec["inputs_file"])
        expected = _read_jsonl(ZOO / self.spec["expected_file"])
        assert len(rows) == len(expected) > 0, f"{name}: inputs and expected rows differ in number"
        self.rows = len(rows)
        self.inputs: dict[str, np.ndarray] = {}
        for decl in self.spec["inputs"]:
            datatype = ONNX_TO_TRITON[decl["type"]]
            values = [row[decl["name"]] for row in rows]
            self.inputs[decl["name"]] = np.array(values, dtype=TRITON_TO_NUMPY[datatype])
        self.outputs: dict[str, tuple[str, np.ndarray]] = {}
        for decl in self.spec["outputs"]:
            datatype = ONNX_TO_TRITON[decl["type"]]
            values = [row[decl["name"]] for row in expected]
            if datatype == "BYTES":
                array = np.array(values, dtype=np.object_)
            else:
                array = np.array(values, dtype=TRITON_TO_NUMPY[datatype])
            self.outputs[decl["name"]] = (datatype, array)

    def input_datatype(self, name: str) -> str:
        decl = next(d for d in self.spec["inputs"] if d["name"] == name)
        return ONNX_TO_TRITON[decl["type"]]

    def make_inputs(self, binary: bool, rows: slice | None = None) -> list[httpclient.InferInput]:
        result = []
        for name, array in self.inputs.items():
            if rows is not None:
                array = array[rows]
            tensor = httpclient.InferInput(name, list(array.shape), self.input_datatype(name))
            tensor.set_data_from_numpy(array, binary_data=binary)
            result.append(tensor)
        return result

    def check_output(self, result: httpclient.InferResult, name: str, rows: slice | None = None) -> None:
        datatype, want = self.outputs[name]
        if rows is not None:
            want = want[rows]
        described = result.get_output(name)
        assert described is not None, f"{self.name}: output {name} missing from the response {result.get_response()}"
        assert described["datatype"] == datatype, f"{self.name}.{name}: datatype {described['datatype']}, want {datatype}"
        assert list(described["shape"]) == list(want.shape), (
            f"{self.name}.{name}: shape {described['shape']}, want {list(want.shape)}"
        )
        got = result.as_numpy(name)
        assert got is not None, f"{self.name}: as_numpy({name}) returned None"
        assert got.shape == want.shape, f"{self.name}.{name}: array shape {got.shape}, want {want.shape}"
        if datatype == "BYTES":
            decoded = np.array(
                [v.decode("utf-8") if isinstance(v, (bytes, bytearray)) else v for v in got.reshape(-1)], dtype=np.object_
            ).reshape(got.shape)
            assert decoded.tolist() == want.tolist(), f"{self.name}.{name}: {decoded.tolist()} != {want.tolist()}"
        elif datatype in ("FP32", "FP64"):
            assert got.dtype == TRITON_TO_NUMPY[datatype], f"{self.name}.{name}: dtype {got.dtype}"
            np.testing.assert_allclose(
                got, want, rtol=RTOL, atol=ATOL[datatype], err_msg=f"{self.name}.{name} differs from onnxruntime"
            )
        else:
            assert got.dtype == TRITON_TO_NUMPY[datatype], f"{self.name}.{name}: dtype {got.dtype}"
            np.testing.assert_array_equal(got, want, err_msg=f"{self.name}.{name} differs from onnxruntime")


CASES: dict[str, Case] = {}


def case(name: str) -> Case:
    if name not in CASES:
        CASES[name] = Case(name)
    return CASES[name]


@pytest.fixture(scope="module")
def client():
    c = httpclient.InferenceServerClient(_url(), concurrency=4, connection_timeout=10.0, network_timeout=30.0)
    yield c
    c.close()


def raw_get(path: str) -> tuple[int, bytes]:
    """A plain HTTP GET beside the client, to look at status codes the client folds into booleans."""
    try:
        with urllib.request.urlopen(f"http://{_url()}{path}", timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def model_version(client, name: str) -> str:
    versions = client.get_model_metadata(name).get("versions") or []
    assert versions, f"{name}: metadata lists no versions"
    return versions[0]


# --- health and metadata --------------------------------------------------------------------------------------


def test_server_live_and_ready(client):
    assert client.is_server_live() is True
    assert client.is_server_ready() is True


def test_server_metadata(client):
    meta = client.get_server_metadata()
    assert meta["name"] == "freshline"
    assert isinstance(meta["version"], str) and meta["version"]
    assert "binary_tensor_data" in meta.get("extensions", []), meta


@pytest.mark.parametrize("name", SERVED)
def test_model_ready(client, name):
    assert client.is_model_ready(name) is True
    assert client.is_model_ready(name, model_version=model_version(client, name)) is True


def test_unknown_model_is_not_ready(client):
    assert client.is_model_ready("no_such_model") is False
    status, _ = raw_get("/v2/models/no_such_model/ready")
    assert 400 <= status < 500, f"GET /v2/models/no_such_model/ready answered {status}"


@pytest.mark.parametrize("name", SERVED)
def test_model_metadata(client, name):
    spec = case(name).spec
    meta = client.get_model_metadata(name)
    assert meta["name"] == name
    assert meta.get("platform"), meta

    def expected(decls):
        return [
            {
                "name": d["name"],
                "datatype": ONNX_TO_TRITON[d["type"]],
                # null (unnamed) and symbolic ("N") dimensions are variable: -1 in the protocol.
                "shape": [dim if isinstance(dim, int) else -1 for dim in d["shape"]],
            }
            for d in decls
        ]

    def got(tensors):
        return [{"name": t["name"], "datatype": t["datatype"], "shape": list(t["shape"])} for t in tensors]

    assert got(meta["inputs"]) == expected(spec["inputs"])
    assert got(meta["outputs"]) == expected(spec["outputs"])


@pytest.mark.parametrize("name", SERVED)
def test_model_metadata_by_version(client, name):
    version = model_version(client, name)
    meta = client.get_model_metadata(name, model_version=version)
    assert meta["name"] == name
    assert version in meta["versions"]


def test_model_metadata_unknown_model(client):
    with pytest.raises(InferenceServerException) as info:
        client.get_model_metadata("no_such_model")
    assert "no_such_model" in info.value.message()
    assert info.value.status() == "404", info.value.status()


def test_model_metadata_unknown_version(client):
    with pytest.raises(InferenceServerException) as info:
        client.get_model_metadata("gbc_binary", model_version="no-such-version")
    assert info.value.message()
    assert info.value.status() == "404", info.value.status()


# --- inference ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SERVED)
def test_infer_json_tensors(client, name):
    """JSON in, JSON out: inputs as `data` arrays, every output requested with binary_data=False."""
    c = case(name)
    outputs = [httpclient.InferRequestedOutput(o, binary_data=False) for o in c.outputs]
    result = client.infer(name, c.make_inputs(binary=False), outputs=outputs)
    response = result.get_response()
    assert response["model_name"] == name
    for o in c.outputs:
        described = result.get_output(o)
        assert "data" in described, f"{name}.{o}: JSON output expected, got {described}"
        assert "binary_data_size" not in (described.get("parameters") or {})
        c.check_output(result, o)


@pytest.mark.parametrize("name", SERVED)
def test_infer_binary_tensors(client, name):
    """The client's default: binary inputs (Inference-Header-Content-Length) and, with no outputs named,
    every output in binary (binary_data_output)."""
    c = case(name)
    result = client.infer(name, c.make_inputs(binary=True))
    response = result.get_response()
    assert response["model_name"] == name
    assert sorted(o["name"] for o in response["outputs"]) == sorted(c.outputs)
    for o in c.outputs:
        described = result.get_output(o)
        size = (described.get("parameters") or {}).get("binary_data_size")
        assert isinstance(size, int) and size > 0, f"{name}.{o}: binary output expected, got {described}"
        assert "data" not in described
        c.check_output(result, o)


@pytest.mark.parametrize("name", SERVED)
def test_infer_binary_in_json_out(client, name):
    c = case(name)
    outputs = [httpclient.InferRequestedOutput(o, binary_data=False) for o in c.outputs]
    result = client.infer(name, c.make_inputs(binary=True), outputs=outputs)
    for o in c.outputs:
        assert "data" in result.get_output(o)
        c.check_output(result, o)


@pytest.mark.parametrize("name", SERVED)
def test_infer_json_in_binary_out(client, name):
    c = case(name)
    outputs = [httpclient.InferRequestedOutput(o, binary_data=True) for o in c.outputs]
    result = client.infer(name, c.make_inputs(binary=False), outputs=outputs)
    for o in c.outputs:
        assert "binary_data_size" in (result.get_output(o).get("parameters") or {})
        c.check_output(result, o)


def test_infer_mixed_output_encodings(client):
    """One output in binary, the other in JSON, in one response; the binary section holds only the first."""
    c = case("gbc_binary")
    outputs = [
        httpclient.InferRequestedOutput("probabilities", binary_data=True),
        httpclient.InferRequestedOutput("label", binary_data=False),
    ]
    result = client.infer("gbc_binary", c.make_inputs(binary=True), outputs=outputs)
    assert "binary_data_size" in result.get_output("probabilities")["parameters"]
    assert "data" in result.get_output("label")
    c.check_output(result, "probabilities")
    c.check_output(result, "label")


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize(
    "name,wanted",
    [("gbc_binary", "probabilities"), ("two_tower", "items"), ("logreg_multi_strlabels", "label")],
)
def test_infer_output_subset(client, name, wanted, binary):
    c = case(name)
    result = client.infer(
        name, c.make_inputs(binary=binary), outputs=[httpclient.InferRequestedOutput(wanted, binary_data=binary)]
    )
    names = [o["name"] for o in result.get_response()["outputs"]]
    assert names == [wanted], f"asked for {wanted} only, got {names}"
    for other in c.outputs:
        if other != wanted:
            assert result.as_numpy(other) is None
    c.check_output(result, wanted)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_single_row(client, binary):
    c = case("gbc_binary")
    rows = slice(3, 4)
    result = client.infer("gbc_binary", c.make_inputs(binary=binary, rows=rows))
    for o in c.outputs:
        c.check_output(result, o, rows=rows)


def test_infer_with_model_version(client):
    c = case("two_tower")
    version = model_version(client, "two_tower")
    result = client.infer("two_tower", c.make_inputs(binary=True), model_version=version)
    assert result.get_response()["model_version"] == version
    for o in c.outputs:
        c.check_output(result, o)


def test_infer_response_names_model_and_request_id(client):
    c = case("mlp_clf_double")
    result = client.infer("mlp_clf_double", c.make_inputs(binary=True), request_id="interop-42")
    response = result.get_response()
    assert response["model_name"] == "mlp_clf_double"
    assert response["model_version"] == model_version(client, "mlp_clf_double")
    assert response.get("id") == "interop-42"


def test_async_infer_concurrent(client):
    """Several requests in flight at once on the client's connection pool; each answer matches its rows."""
    c = case("gbc_binary")
    pending = []
    for start in range(0, c.rows, 4):
        rows = slice(start, min(start + 4, c.rows))
        pending.append((rows, client.async_infer("gbc_binary", c.make_inputs(binary=True, rows=rows))))
    for rows, handle in pending:
        result = handle.get_result(timeout=30)
        for o in c.outputs:
            c.check_output(result, o, rows=rows)


def test_infer_large_binary_batch(client):
    """The fixture rows tiled to fill half the body limit with one binary FP32 section (8192 rows at 1 MiB)."""
    c = case("gbc_binary")
    n = max(1, MAX_BODY_BYTES // 2 // (16 * 4))
    reps = -(-n // c.rows)
    x = np.tile(c.inputs["X"], (reps, 1))[:n]
    tensor = httpclient.InferInput("X", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    result = client.infer("gbc_binary", [tensor])
    want_label = np.tile(c.outputs["label"][1], reps)[:n]
    want_prob = np.tile(c.outputs["probabilities"][1], (reps, 1))[:n]
    np.testing.assert_array_equal(result.as_numpy("label"), want_label)
    np.testing.assert_allclose(result.as_numpy("probabilities"), want_prob, rtol=RTOL, atol=ATOL["FP32"])


def test_infer_json_non_finite_inputs(client):
    """tritonclient's JSON encoding writes NaN / Infinity / -Infinity as bare literals (Python's json.dumps), and
    Triton reads them. Missing values (NaN) matter for tree models. JSON and binary requests must give the same
    answer for the same rows."""
    c = case("ml_afe_scaler_normalizer")
    x = c.inputs["X"][:3].copy()
    x[0, 0] = np.nan
    x[1, 1] = np.inf
    x[2, 2] = -np.inf
    xi = c.inputs["Xi"][:3]

    def request(binary):
        tensors = []
        for name, array, datatype in (("X", x, "FP32"), ("Xi", xi, "INT64")):
            t = httpclient.InferInput(name, list(array.shape), datatype)
            t.set_data_from_numpy(array, binary_data=binary)
            tensors.append(t)
        return client.infer("ml_afe_scaler_normalizer", tensors)

    reference = request(binary=True)
    try:
        plain = request(binary=False)
    except InferenceServerException as e:
        pytest.fail(f"JSON tensor with NaN/Infinity refused: [{e.status()}] {e.message()} "
                    "(tritonclient sends them as bare NaN / Infinity / -Infinity literals)")
    for o in c.outputs:
        np.testing.assert_allclose(plain.as_numpy(o), reference.as_numpy(o), rtol=RTOL, equal_nan=True,
                                   err_msg=f"{o}: JSON and binary requests disagree")


def test_infer_tolerates_request_parameters(client):
    """Request-level parameters the server does not use (priority, timeout, custom ones) are ignored, not refused."""
    c = case("gbc_binary")
    result = client.infer(
        "gbc_binary", c.make_inputs(binary=True), priority=1, timeout=5_000_000, parameters={"custom": "x", "n": 3}
    )
    for o in c.outputs:
        c.check_output(result, o)


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_infer_compressed_request(client, algorithm):
    """tritonclient's request_compression_algorithm sends the body with Content-Encoding: gzip/deflate (Triton
    decodes both). A server either decodes it, or refuses it as unsupported (HTTP 415) with a message that says
    so -- never reads the compressed bytes as JSON."""
    c = case("gbc_binary")
    try:
        result = client.infer("gbc_binary", c.make_inputs(binary=True), request_compression_algorithm=algorithm)
    except InferenceServerException as e:
        message = (e.message() or "").lower()
        assert str(e.status()) == "415" and ("encoding" in message or algorithm in message), (
            f"Content-Encoding: {algorithm} request: got [{e.status()}] {e.message()!r}; "
            "want it decoded, or 415 Unsupported Media Type naming the encoding"
        )
        return
    for o in c.outputs:
        c.check_output(result, o)


def test_infer_compressed_response_accepted(client):
    """Accept-Encoding: gzip from the client; a plain or a gzip answer are both fine, the values must match."""
    c = case("logreg_multi_strlabels")
    result = client.infer("logreg_multi_strlabels", c.make_inputs(binary=True), response_compression_algorithm="gzip")
    for o in c.outputs:
        c.check_output(result, o)


def test_aio_client(client):
    """tritonclient.http.aio (aiohttp instead of geventhttpclient): health, metadata, binary and JSON inference."""

    async def run():
        aio = aioclient.InferenceServerClient(_url(), conn_timeout=10)
        try:
            assert await aio.is_server_live() is True
            assert await aio.is_server_ready() is True
            assert await aio.is_model_ready("two_tower") is True
            meta = await aio.get_model_metadata("two_tower")
            assert [t["name"] for t in meta["outputs"]] == ["scores", "items"]
            c = case("logreg_multi_strlabels")
            binary = await aio.infer("logreg_multi_strlabels", c.make_inputs(binary=True))
            for o in c.outputs:
                c.check_output(binary, o)
            outputs = [httpclient.InferRequestedOutput(o, binary_data=False) for o in c.outputs]
            plain = await aio.infer("logreg_multi_strlabels", c.make_inputs(binary=False), outputs=outputs)
            for o in c.outputs:
                c.check_output(plain, o)
            with pytest.raises(InferenceServerException) as info:
                await aio.infer("no_such_model", c.make_inputs(binary=True))
            assert "no_such_model" in info.value.message()
        finally:
            await aio.close()

    asyncio.run(asyncio.wait_for(run(), timeout=60))


# --- errors -------------------------------------------------------------------------------------------------------


def _assert_client_error(info, *fragments: str) -> None:
    e = info.value
    message = e.message() or ""
    assert message, f"the server's error carries no message: {e!r}"
    assert e.status() is not None and str(e.status()).startswith("4"), (
        f"expected a 4xx status for a client error, got {e.status()}: {message}"
    )
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in error message {message!r}"


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_unknown_model(client, binary):
    c = case("gbc_binary")
    with pytest.raises(InferenceServerException) as info:
        client.infer("no_such_model", c.make_inputs(binary=binary))
    _assert_client_error(info, "no_such_model")


def test_infer_unknown_version(client):
    c = case("gbc_binary")
    with pytest.raises(InferenceServerException) as info:
        client.infer("gbc_binary", c.make_inputs(binary=True), model_version="no-such-version")
    _assert_client_error(info)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_wrong_datatype(client, binary):
    """FP64 data for the FP32 input X."""
    data = case("gbc_binary").inputs["X"].astype(np.float64)
    tensor = httpclient.InferInput("X", list(data.shape), "FP64")
    tensor.set_data_from_numpy(data, binary_data=binary)
    with pytest.raises(InferenceServerException) as info:
        client.infer("gbc_binary", [tensor])
    _assert_client_error(info, "X")


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_bytes_for_numeric_input(client, binary):
    """BYTES (strings) for the INT64 input of two_tower: the server parses the BYTES encoding, then refuses."""
    data = np.array([b"7", b"11"], dtype=np.object_)
    tensor = httpclient.InferInput("user_id", [2], "BYTES")
    tensor.set_data_from_numpy(data, binary_data=binary)
    with pytest.raises(InferenceServerException) as info:
        client.infer("two_tower", [tensor])
    _assert_client_error(info, "user_id")


def test_infer_unknown_input(client):
    data = case("gbc_binary").inputs["X"]
    tensor = httpclient.InferInput("not_x", list(data.shape), "FP32")
    tensor.set_data_from_numpy(data)
    with pytest.raises(InferenceServerException) as info:
        client.infer("gbc_binary", [tensor])
    _assert_client_error(info, "not_x")


def test_infer_unknown_output(client):
    c = case("gbc_binary")
    with pytest.raises(InferenceServerException) as info:
        client.infer("gbc_binary", c.make_inputs(binary=True), outputs=[httpclient.InferRequestedOutput("nope")])
    _assert_client_error(info, "nope")


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_wrong_shape(client, binary):
    """15 features where the model declares [-1, 16]."""
    data = case("gbc_binary").inputs["X"][:, :15].copy()
    tensor = httpclient.InferInput("X", list(data.shape), "FP32")
    tensor.set_data_from_numpy(data, binary_data=binary)
    with pytest.raises(InferenceServerException) as info:
        client.infer("gbc_binary", [tensor])
    _assert_client_error(info, "X")


def test_infer_body_over_limit(client):
    """A JSON body past the server's max_body_bytes is refused with a 4xx and a message."""
    c = case("gbc_binary")
    reps = -(-MAX_BODY_BYTES * 2 // (16 * 8 * c.rows))  # 16 floats a row, at least 8 bytes each as JSON text
    x = np.tile(c.inputs["X"], (reps, 1))
    tensor = httpclient.InferInput("X", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=False)
    with pytest.raises(InferenceServerException) as info:
        client.infer("gbc_binary", [tensor])
    _assert_client_error(info)


def test_infer_binary_shape_disagrees_with_data(client):
    """The declared shape needs more elements than binary_data_size carries."""
    tensor = case("gbc_binary").make_inputs(binary=True, rows=slice(0, 2))[0]
    tensor.set_shape([3, 16])
    with pytest.raises(InferenceServerException) as info:
        client.infer("gbc_binary", [tensor])
    _assert_client_error(info, "X")


def test_infer_missing_input(client):
    """ml_afe_scaler_normalizer needs X and Xi; only X is sent."""
    c = case("ml_afe_scaler_normalizer")
    only_x = [t for t in c.make_inputs(binary=True) if t.name() == "X"]
    with pytest.raises(InferenceServerException) as info:
        client.infer("ml_afe_scaler_normalizer", only_x)
    _assert_client_error(info, "Xi")


def test_server_still_serves_after_errors(client):
    """The error cases above leave the server healthy."""
    assert client.is_server_ready() is True
    c = case("gbc_binary")
    result = client.infer("gbc_binary", c.make_inputs(binary=True))
    for o in c.outputs:
        c.check_output(result, o)
