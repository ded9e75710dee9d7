"""ONNX export (fastnn.onnx.to_onnx of an MLP and a CNN): the checker passes, and onnxruntime gives fastnn's outputs.

Skipped as a whole when onnx or onnxruntime is not installed: both are optional (``pip install 'fastnn[onnx]'``).
"""

import os
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="onnx is not installed (optional: pip install 'fastnn[onnx]')")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (optional: pip install 'fastnn[onnx]')")

from fastnn import data  # noqa: E402
from fastnn import onnx as fonnx  # noqa: E402
from fastnn.layers import Conv2D, Dense, Flatten, MaxPool2D, rows_to_images  # noqa: E402
from fastnn.models import CNN, MLP  # noqa: E402
from fastnn.train import Trainer  # noqa: E402

SHARED = Path(os.environ.get("FASTNN_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
needs_hw36 = pytest.mark.skipif(not (SHARED / "hw36").is_dir(),
                                reason=f"real hw36 data not found at {SHARED / 'hw36'} (set FASTNN_DATA)")

NETS = {
    "classifier": ([12, 10, 5], ["sigmoid", "softmax"]),
    "deep": ([12, 9, 7, 5], ["relu", "tanh", "softmax"]),
    "binary": ([12, 6, 1], ["tanh", "sigmoid"]),
    "autoencoder": ([12, 8, 4, 8, 12], ["relu", "linear", "relu", "sigmoid"]),
    "regressor": ([12, 8, 3], ["tanh", "linear"]),
}
ATOL = {"float32": 1e-5, "float64": 1e-12}


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _scrambled(model, rng):
    """Biases away from zero, so that the biases' wiring is tested too."""
    for b in model.biases:
        b[...] = rng.normal(0, 0.5, b.shape)
    return model


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("net", list(NETS))
def test_onnxruntime_agrees_with_fastnn(tmp_path, rng, net, dtype):
    model = _scrambled(MLP(*NETS[net], dtype=dtype, seed=3), rng)
    path = fonnx.to_onnx(model, tmp_path / "m.onnx")
    assert path == tmp_path / "m.onnx"
    onnx.checker.check_model(str(path), full_check=True)
    sess = _session(path)
    for n in (1, 7, 300):  # the batch dimension is dynamic
        X = rng.normal(0, 2, (n, model.sizes[0])).astype(dtype)
        got = sess.run(None, {"input": X})[0]
        assert got.dtype == np.dtype(dtype) and got.shape == (n, model.sizes[-1])
        np.testing.assert_allclose(got, model.forward(X), rtol=0, atol=ATOL[dtype])
    X = rng.normal(size=(5, model.sizes[0])).astype(dtype)
    logits = _session(fonnx.to_onnx(model, tmp_path / "logits.onnx", logits=True)).run(None, {"input": X})[0]
    np.testing.assert_allclose(logits, model.forward(X, logits=True), rtol=0, atol=ATOL[dtype])


def test_graph_declares_opset_names_and_dynamic_batch(tmp_path):
    model = MLP([4, 3, 2], ["relu", "softmax"], dtype="float32")
    proto = onnx.load(str(fonnx.to_onnx(model, tmp_path / "m.onnx")))
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", fonnx.DEFAULT_OPSET)]
    assert proto.producer_name == "fastnn"
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert inp.name == "input" and out.name == "output"
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and not dims[0].HasField("dim_value") and dims[1].dim_value == 4
    assert out.type.tensor_type.shape.dim[0].dim_param == "batch"
    assert [n.op_type for n in proto.graph.node] == ["Gemm", "Relu", "Gemm", "Softmax"]
    assert {i.name for i in proto.graph.initializer} == {"W_0", "b_0", "W_1", "b_1"}
    proto13 = onnx.load(str(fonnx.to_onnx(model, tmp_path / "m13.onnx", opset=13)))
    assert proto13.opset_import[0].version == 13
    X = np.random.default_rng(0).random((3, 4), dtype=np.float32)
    np.testing.assert_allclose(_session(tmp_path / "m13.onnx").run(None, {"input": X})[0], model.forward(X),
                               atol=1e-6)


@needs_hw36
def test_onnxruntime_agrees_on_hw36_rows(tmp_path):
    X, Y = data.load_hw36(SHARED, "valid")
    X = X.astype(np.float32)
    model = MLP([1024, 64, 36], ["sigmoid", "softmax"], dtype="float32", seed=0)
    Trainer(model, optimizer="adam", lr=1e-3, batch_size=64, shuffle="epoch", progress=False).fit(X, Y, epochs=3)
    got = _session(fonnx.to_onnx(model, tmp_path / "hw36.onnx")).run(None, {"input": X})[0]
    np.testing.assert_allclose(got, model.forward(X), rtol=0, atol=1e-5)
    assert np.mean(got.argmax(axis=1) == Y.argmax(axis=1)) > 0.15  # trained (chance: 1/36)


def test_bad_arguments_are_named(tmp_path):
    model = MLP([4, 3, 2], ["relu", "softmax"])
    for bad in (12, 10**6, "17", True):
        with pytest.raises(ValueError, match="opset"):
            fonnx.to_onnx(model, tmp_path / "m.onnx", opset=bad)
    with pytest.raises(TypeError, match="model"):
        fonnx.to_onnx(object(), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


# ------------------------------------------------------------------------------------------------- CNN

CNNS = {  # (input_shape, layers): valid/same padding, strides 1 and 2, 1 and 3 channels, odd sizes
    "valid-s1-gray": ((9, 11, 1), lambda: [Conv2D(1, 4, 3), MaxPool2D(2), Flatten(), Dense(4 * 3 * 4, 5, "softmax")]),
    "same-s2-rgb": ((9, 7, 3), lambda: [Conv2D(3, 4, 3, stride=2, padding="same", activation="tanh"),
                                        Conv2D(4, 5, (2, 3), padding="same"), MaxPool2D(2), Flatten(),
                                        Dense(5 * 2 * 2, 6, "relu"), Dense(6, 4, "softmax")]),
    "same-even-s2": ((8, 9, 3), lambda: [Conv2D(3, 3, 4, stride=2, padding="same", activation="sigmoid"),
                                         Conv2D(3, 2, 3, stride=2, activation="linear"), Flatten(),
                                         Dense(1 * 2 * 2, 1, "sigmoid")]),
    "valid-s2-deep": ((13, 13, 1), lambda: [Conv2D(1, 3, 3, stride=2), Conv2D(3, 4, 2, padding="same"),
                                            MaxPool2D(3), Flatten(), Dense(2 * 2 * 4, 3, "linear")]),
}


def _cnn(name, dtype, seed=3):
    shape, layers = CNNS[name]
    model = CNN(shape, layers(), dtype=dtype, seed=seed)
    model.theta[...] += np.random.default_rng(seed).normal(0, 0.2, model.theta.size)  # biases away from zero too
    return model


@pytest.mark.parametrize("net", list(CNNS))
def test_onnxruntime_agrees_with_fastnn_on_cnns(tmp_path, rng, net):
    dtype = "float32"  # onnxruntime's CPU provider has no float64 Conv (see the next test)
    model = _cnn(net, dtype)
    path = fonnx.to_onnx(model, tmp_path / "cnn.onnx")
    onnx.checker.check_model(str(path), full_check=True)
    proto = onnx.load(str(path))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert proto.graph.input[0].name == "input" and dims[0].dim_param == "batch"
    assert [d.dim_value for d in dims[1:]] == list(model.input_shape)  # NHWC, as predict_proba takes
    sess = _session(path)
    for n in (1, 7):
        X = rng.normal(0, 1, (n, *model.input_shape)).astype(dtype)
        got = sess.run(None, {"input": X})[0]
        assert got.dtype == np.dtype(dtype) and got.shape == (n, model.n_outputs)
        np.testing.assert_allclose(got, model.predict_proba(X), rtol=0, atol=ATOL[dtype])
    X = rng.normal(size=(3, *model.input_shape)).astype(dtype)
    logits = _session(fonnx.to_onnx(model, tmp_path / "logits.onnx", logits=True)).run(None, {"input": X})[0]
    np.testing.assert_allclose(logits, model.forward(X, logits=True), rtol=0, atol=ATOL[dtype])


def test_a_float64_cnn_exports_a_checked_float64_graph(tmp_path):
    model = _cnn("same-s2-rgb", "float64")
    proto = onnx.load(str(fonnx.to_onnx(model, tmp_path / "cnn64.onnx")))
    onnx.checker.check_model(proto, full_check=True)
    double = onnx.TensorProto.DOUBLE
    assert proto.graph.input[0].type.tensor_type.elem_type == double
    assert {i.data_type for i in proto.graph.initializer} == {double}
    assert [n.op_type for n in proto.graph.node][:3] == ["Transpose", "Conv", "Tanh"]
    conv = proto.graph.node[1]
    assert {a.name: list(a.ints) for a in conv.attribute}["pads"] == [1, 1, 1, 1]


def test_cnn_on_flat_inputs_is_dense_only(tmp_path, rng):
    model = CNN((6,), [Dense(6, 4, "tanh"), Dense(4, 3, "softmax")], dtype="float32", seed=0)
    proto = onnx.load(str(fonnx.to_onnx(model, tmp_path / "flat.onnx")))
    assert [n.op_type for n in proto.graph.node] == ["Gemm", "Tanh", "Gemm", "Softmax"]
    X = rng.normal(size=(5, 6)).astype(np.float32)
    np.testing.assert_allclose(_session(tmp_path / "flat.onnx").run(None, {"input": X})[0], model.forward(X),
                               rtol=0, atol=1e-5)


@needs_hw36
def test_onnxruntime_agrees_with_a_trained_cnn_on_hw36_rows(tmp_path):
    X, Y = data.load_hw36(SHARED, "valid")
    X, Y = rows_to_images(X[:360].astype(np.float32)), Y[:360]
    model = CNN((32, 32, 1), [Conv2D(1, 4, 3, stride=2, padding="same"), MaxPool2D(2), Flatten(),
                              Dense(8 * 8 * 4, 36, "softmax")], dtype="float32", seed=0)
    before = model.theta.copy()
    Trainer(model, optimizer="adam", lr=1e-3, batch_size=32, shuffle="epoch", progress=False).fit(X, Y, epochs=2)
    assert not np.array_equal(model.theta, before)
    got = _session(fonnx.to_onnx(model, tmp_path / "hw36_cnn.onnx")).run(None, {"input": X})[0]
    np.testing.assert_allclose(got, model.predict_proba(X), rtol=0, atol=1e-5)
