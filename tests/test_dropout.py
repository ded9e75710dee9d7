"""fastnn.layers.Dropout and fastnn.functional.dropout: masks that are a hash of (seed, step, layer, index),
against their NumPy reference; a CNN with dropout in training (the compiled epoch and the step path) and in
inference, its files and exporters."""

import subprocess
import sys

import numpy as np
import pytest

import _reference as R
import fastnn.functional as F
from fastnn.layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D
from fastnn.models import CNN
from fastnn.train import Trainer

DTYPES = ["float32", "float64"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, rate, key", [((7, 5), 0.5, (0, 1, 0)), ((3, 4, 4, 2), 0.2, (12345, 77, 3)),
                                              ((1000,), 0.9, (2**64 - 1, 2**40, 12)), ((0, 3), 0.5, (1, 1, 1))])
def test_the_mask_and_the_scale_match_the_reference(dtype, shape, rate, key, rng):
    X = rng.normal(size=shape).astype(dtype)
    seed, step, layer = key
    Y = F.dropout(X, rate, seed=seed, step=step, layer=layer)
    np.testing.assert_array_equal(Y, R.dropout(X, rate, seed, step, layer))
    assert Y.dtype == X.dtype and Y is not X


def test_the_rate_is_the_share_dropped_and_masks_differ_by_step_layer_and_seed():
    ones = np.ones(100_000)
    share = [np.mean(F.dropout(ones, r, seed=3, step=5) == 0) for r in (0.1, 0.5, 0.9)]
    np.testing.assert_allclose(share, [0.1, 0.5, 0.9], atol=0.005)
    masks = [F.dropout(ones[:64], 0.5, seed=s, step=t, layer=l) != 0 for s, t, l in
             ((0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1))]
    assert all(not np.array_equal(masks[0], m) for m in masks[1:])
    assert np.array_equal(F.dropout(ones, 0.0, seed=1, step=2), ones)


def test_in_place_on_the_gradient_is_the_same_mask(rng):
    X = rng.normal(size=(6, 9))
    Y = F.dropout(X, 0.3, seed=4, step=8, layer=2)
    G = np.ones_like(X)
    assert F.dropout(G, 0.3, seed=4, step=8, layer=2, out=G) is G
    np.testing.assert_array_equal(G != 0, Y != 0)


@pytest.mark.parametrize("bad, match", [(dict(rate=1.0), "rate"), (dict(rate=-0.1), "rate"),
                                        (dict(rate=0.5, seed=-1), "seed"), (dict(rate=0.5, step=1.5), "step")])
def test_bad_arguments_are_named(bad, match):
    with pytest.raises(ValueError, match=match):
        F.dropout(np.ones(3), **bad)
    with pytest.raises(ValueError, match="Dropout rate"):
        Dropout(1.0)


# ------------------------------------------------------------------------------------------- in a CNN

def _model(dtype="float64", seed=1, rate=0.3):
    return CNN((8, 8, 1), [Conv2D(1, 4, 3, padding="same", activation="tanh"), Dropout(rate), MaxPool2D(2),
                           Flatten(), Dense(64, 16, "relu"), Dropout(rate), Dense(16, 3, "softmax")],
               dtype=dtype, seed=seed)


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-9), ("float32", 2e-4)])
def test_training_mode_matches_the_reference_and_inference_is_the_identity(dtype, tol, rng):
    model = _model(dtype)
    X = rng.normal(size=(5, 8, 8, 1)).astype(dtype)
    T = np.eye(3, dtype=dtype)[rng.integers(0, 3, 5)]
    loss, _, grad = model.loss_gradient(X, T, training=(7, 3))
    ref_loss, ref_grad = R.cnn_loss_gradient(model, model.theta, X, T, dropout_key=(7, 3))
    np.testing.assert_allclose(loss, ref_loss, rtol=tol)
    np.testing.assert_allclose(grad, ref_grad, rtol=tol, atol=tol)
    np.testing.assert_allclose(model.predict_proba(X), R.cnn_forward(model, model.theta, X), rtol=tol, atol=tol)
    no_dropout = model.loss_gradient(X, T)[2]
    assert not np.allclose(grad, no_dropout)  # the masks changed the gradient ...
    np.testing.assert_allclose(no_dropout, R.cnn_loss_gradient(model, model.theta, X, T)[1], rtol=tol, atol=tol)


def test_the_gradient_with_a_fixed_mask_is_the_loss_s_derivative(rng):
    model = _model("float64")
    X = rng.normal(size=(3, 8, 8, 1))
    T = np.eye(3)[[0, 2, 1]]
    _, _, grad = model.loss_gradient(X, T, training=(2, 9))
    theta = model.theta.copy()
    for j in rng.choice(theta.size, 25, replace=False):
        up, down = theta.copy(), theta.copy()
        up[j] += 1e-6
        down[j] -= 1e-6
        numeric = (model.loss_gradient(X, T, theta=up, training=(2, 9))[0]
                   - model.loss_gradient(X, T, theta=down, training=(2, 9))[0]) / 2e-6
        assert abs(numeric - grad[j]) <= 1e-6 + 1e-5 * abs(numeric), j


def test_training_is_reproducible_and_the_seed_draws_the_masks(rng):
    X = rng.normal(size=(40, 8, 8, 1))
    y = rng.integers(0, 3, 40)
    thetas = []
    for seed in (0, 0, 1):
        model = _model()
        Trainer(model, optimizer="adam", lr=1e-2, batch_size=8, seed=seed, shuffle="none", progress=False).fit(X, y, 2)
        thetas.append(model.theta.copy())
    assert np.array_equal(thetas[0], thetas[1]) and not np.allclose(thetas[0], thetas[2])
    model = _model(rate=0.0)
    Trainer(model, optimizer="adam", lr=1e-2, batch_size=8, seed=0, shuffle="none", progress=False).fit(X, y, 2)
    plain = CNN((8, 8, 1), [layer for layer in _model().layers if not isinstance(layer, Dropout)], seed=1)
    Trainer(plain, optimizer="adam", lr=1e-2, batch_size=8, seed=0, shuffle="none", progress=False).fit(X, y, 2)
    np.testing.assert_array_equal(model.theta, plain.theta)  # rate 0 changes nothing (both in the compiled epoch)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_the_compiled_epoch_draws_the_step_path_s_masks(dtype, optimizer, rng):
    """Dropout in the compiled CNN epoch, in the stack (after a conv, after the flatten) and after a hidden
    dense layer: the same masks as the step path (the same hash of seed, step, layer, index), so the same
    training to rounding, over reshuffled epochs with a short last batch."""
    X = rng.normal(size=(37, 8, 8, 1)).astype(dtype)
    y = rng.integers(0, 3, 37)
    layers = [Conv2D(1, 4, 3, padding="same", activation="tanh"), Dropout(0.3), MaxPool2D(2), Flatten(),
              Dropout(0.2), Dense(64, 16, "relu"), Dropout(0.4), Dense(16, 3, "softmax")]
    thetas = []
    for fused in (True, False):
        model = CNN((8, 8, 1), layers, dtype=dtype, seed=1)
        trainer = Trainer(model, optimizer=optimizer, lr=1e-2, batch_size=8, shuffle="epoch", fused=fused, seed=5,
                          progress=False)
        assert trainer.fused is fused
        trainer.fit(X, y, 3)
        thetas.append(model.theta.copy())
    tol = dict(rtol=2e-4, atol=2e-5) if dtype == "float32" else dict(rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(thetas[0], thetas[1], **tol)
    assert not np.allclose(thetas[0], CNN((8, 8, 1), layers, dtype=dtype, seed=1).theta)


def test_the_compiled_epoch_s_masks_do_not_depend_on_threads(rng):
    X = rng.normal(size=(64, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    thetas = []
    for threads in (1, 2, 3):
        model = _model("float32")
        Trainer(model, optimizer="adam", lr=1e-2, batch_size=32, threads=threads, progress=False).fit(X, y, 2)
        thetas.append(model.theta.copy())
    assert np.array_equal(thetas[0], thetas[1]) and np.array_equal(thetas[0], thetas[2])


def test_where_the_compiled_epoch_takes_dropout():
    assert _model().network_layers()[1] == ("dropout", 0.3)
    two = CNN((4, 4, 1), [Flatten(), Dense(16, 8, "relu"), Dropout(0.1), Dropout(0.1), Dense(8, 2, "softmax")])
    assert two.network_layers() is None  # two in a row after a dense layer: batch by batch
    assert Trainer(two, progress=False).fused is False


def test_files_and_exporters(tmp_path, rng):
    model = _model("float32")
    back = CNN.load(model.save(tmp_path / "d.npz"))
    assert back.layers == model.layers and "Dropout(0.3)" in repr(back)
    assert [layer[0] for layer in model.layer_list()].count("dropout") == 2


def test_onnx_leaves_dropout_out(tmp_path, rng):
    pytest.importorskip("onnx", reason="onnx is not installed (optional: pip install 'fastnn[onnx]')")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (optional)")
    import onnx

    from fastnn.onnx import to_onnx

    model = _model("float32")
    path = to_onnx(model, tmp_path / "d.onnx")
    assert "Dropout" not in {node.op_type for node in onnx.load(str(path)).graph.node}
    X = rng.normal(size=(4, 8, 8, 1)).astype(np.float32)
    np.testing.assert_allclose(ort.InferenceSession(str(path)).run(None, {"input": X})[0], model.predict_proba(X),
                               atol=1e-5)


def test_pytorch_dropout_both_ways(rng):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (optional: pip install 'fastnn[torch]')")
    from fastnn.torch import from_torch, to_torch

    model = _model("float64")
    seq = to_torch(model).eval()
    assert [m.p for m in seq if isinstance(m, torch.nn.Dropout)] == [0.3, 0.3]
    X = rng.normal(size=(3, 8, 8, 1))
    with torch.no_grad():
        got = seq(torch.from_numpy(X.transpose(0, 3, 1, 2).copy())).numpy()
    np.testing.assert_allclose(got, model.predict_proba(X), atol=1e-12)
    back = from_torch(seq, input_shape=model.input_shape)
    assert back.layers == model.layers


def test_dropout_masks_do_not_depend_on_the_thread_count(tmp_path):
    """Two processes with 1 and 2 threads train the same dropout model to the same bits."""
    code = ("import numpy as np, sys; sys.path.insert(0, %r); import test_dropout as t; "
            "from fastnn.train import Trainer; rng = np.random.default_rng(0); X = rng.normal(size=(24, 8, 8, 1)); "
            "y = rng.integers(0, 3, 24); m = t._model('float32'); "
            "Trainer(m, lr=1e-2, batch_size=8, progress=False).fit(X, y, 1); sys.stdout.write(m.theta.tobytes().hex())"
            % str(__import__("pathlib").Path(__file__).parent))
    outs = []
    for threads in ("1", "2"):
        env = dict(__import__("os").environ, FASTNN_NUM_THREADS=threads)
        outs.append(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                                   cwd=tmp_path).stdout)
    assert outs[0] == outs[1] and outs[0]
