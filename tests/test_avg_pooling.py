"""Average pooling (fastnn.layers.AvgPool2D) and global average pooling (GlobalAvgPool2D): the functional
kernels against their NumPy references, and the layers in a CNN (step path, compiled epoch, files, exporters).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import _reference as R
import fastnn.functional as F
from fastnn.layers import AvgPool2D, Conv2D, Dense, Flatten, GlobalAvgPool2D, MaxPool2D
from fastnn.models import CNN
from fastnn.train import Trainer

DTYPES = ["float32", "float64"]


@st.composite
def _pools(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    size = kh if draw(st.booleans()) else (kh, kw)
    kh, kw = (size, size) if isinstance(size, int) else size
    H, W = draw(st.integers(kh, kh * 3 + 2)), draw(st.integers(kw, kw * 3 + 2))
    return draw(st.integers(0, 5)), H, W, draw(st.integers(1, 6)), size


@settings(max_examples=60, deadline=None)
@given(_pools(), st.sampled_from(DTYPES), st.integers(0, 2**32 - 1))
def test_avg_pool_forward_and_backward_match_the_reference(pool, dtype, seed):
    N, H, W, C, size = pool
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, H, W, C)).astype(dtype)
    Y = F.avg_pool2d_forward(X, size)
    ref = R.avg_pool2d_forward(X, size)
    np.testing.assert_allclose(Y, ref, **R.tol(dtype))
    assert Y.dtype == X.dtype and Y.shape == ref.shape
    dY = rng.normal(size=Y.shape).astype(dtype)
    dX = F.avg_pool2d_backward(dY, X.shape, size)
    np.testing.assert_allclose(dX, R.avg_pool2d_backward(dY, X.shape, size), **R.tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_global_avg_pool_is_the_mean_of_each_channel(dtype, rng):
    X = rng.normal(size=(4, 5, 3, 6)).astype(dtype)
    np.testing.assert_allclose(F.global_avg_pool2d_forward(X), X.astype(np.float64).mean(axis=(1, 2)), **R.tol(dtype))
    dY = rng.normal(size=(4, 6)).astype(dtype)
    dX = F.global_avg_pool2d_backward(dY, X.shape)
    np.testing.assert_allclose(dX, np.broadcast_to(dY[:, None, None, :] / 15, X.shape), **R.tol(dtype))


def test_the_backward_is_the_forward_s_adjoint_and_finite_differences_agree(rng):
    """Average pooling is linear: <pool(X), dY> = <X, pool'(dY)>, and central differences of <pool(X), dY>
    give pool'(dY) (float64)."""
    X = rng.normal(size=(2, 7, 5, 3))
    dY = rng.normal(size=F.avg_pool2d_forward(X, (3, 2)).shape)
    dX = F.avg_pool2d_backward(dY, X.shape, (3, 2))
    assert abs(np.vdot(F.avg_pool2d_forward(X, (3, 2)), dY) - np.vdot(X, dX)) < 1e-12
    numeric = np.zeros_like(X)
    for idx in np.ndindex(*X.shape):
        for sign in (1, -1):
            Xp = X.copy()
            Xp[idx] += sign * 1e-6
            numeric[idx] += sign * np.vdot(F.avg_pool2d_forward(Xp, (3, 2)), dY) / 2e-6
    np.testing.assert_allclose(dX, numeric, atol=1e-8)
    assert not dX[:, 6].any() and not dX[:, :, 4].any()  # the row and the column no window covers


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_read_only_inputs_and_out_buffers(dtype, rng):
    base = rng.normal(size=(3, 8, 6, 4)).astype(dtype)
    X = base[:, ::2]  # non-contiguous
    X.flags.writeable = False
    out = np.empty((3, 2, 3, 4), dtype)
    Y = F.avg_pool2d_forward(X, 2, out=out)
    assert Y is out
    np.testing.assert_allclose(Y, R.avg_pool2d_forward(np.ascontiguousarray(X), 2), **R.tol(dtype))
    with pytest.raises(ValueError, match="smaller than the 5x5 window"):
        F.avg_pool2d_forward(X, 5)
    with pytest.raises(ValueError, match="grad_Y: expected shape"):
        F.avg_pool2d_backward(np.zeros((3, 3, 3, 4), dtype), X.shape, 2)


def test_threads_give_the_same_bits(rng):
    X = rng.normal(size=(64, 12, 12, 8)).astype(np.float32)
    dY = rng.normal(size=(64, 4, 4, 8)).astype(np.float32)
    before = F.get_num_threads()
    try:
        out = []
        for threads in (1, 2, 3):
            F.set_num_threads(threads)
            out.append((F.avg_pool2d_forward(X, 3), F.avg_pool2d_backward(dY, X.shape, 3)))
    finally:
        F.set_num_threads(before)
    for Y, dX in out[1:]:
        assert np.array_equal(Y, out[0][0]) and np.array_equal(dX, out[0][1])


# ------------------------------------------------------------------------------------------- in a CNN

def _model(dtype="float64", seed=1):
    return CNN((9, 8, 2), [Conv2D(2, 4, 3, padding="same", activation="tanh"), AvgPool2D(2),
                           Conv2D(4, 6, 2, activation="relu"), GlobalAvgPool2D(), Dense(6, 3, "softmax")],
               dtype=dtype, seed=seed)


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-9), ("float32", 2e-4)])
def test_a_cnn_with_average_pooling_matches_the_reference(dtype, tol, rng):
    model = _model(dtype)
    assert repr(model).count("AvgPool2D(2)") == 1 and "GlobalAvgPool2D()" in repr(model)
    assert model.shapes[1] == (4, 4, 4) and model.shapes[3] == (6,)
    X = rng.normal(size=(7, 9, 8, 2)).astype(dtype)
    T = np.eye(3, dtype=dtype)[rng.integers(0, 3, 7)]
    np.testing.assert_allclose(model.predict_proba(X), R.cnn_forward(model, model.theta, X), rtol=tol, atol=tol)
    loss, _, grad = model.loss_gradient(X, T)
    ref_loss, ref_grad = R.cnn_loss_gradient(model, model.theta, X, T)
    np.testing.assert_allclose(loss, ref_loss, rtol=tol)
    np.testing.assert_allclose(grad, ref_grad, rtol=tol, atol=tol)


def test_the_compiled_epoch_runs_them_and_matches_the_step_path(rng):
    X = rng.normal(size=(37, 9, 8, 2))
    T = np.eye(3)[rng.integers(0, 3, 37)]
    thetas = []
    for fused in (True, False):
        model = _model()
        trainer = Trainer(model, optimizer="adam", lr=1e-2, batch_size=8, shuffle="epoch", fused=fused,
                          progress=False)
        assert trainer.fused is fused and isinstance(trainer.plan, F.NetworkPlan) is fused
        trainer.fit(X, T, 3)
        thetas.append(model.theta.copy())
    assert model.network_layers()[1] == ("avgpool", 2) and model.network_layers()[3] == ("globalavgpool",)
    np.testing.assert_allclose(thetas[0], thetas[1], rtol=1e-9, atol=1e-11)


def test_a_stack_with_a_flatten_after_a_global_pooling_is_refused_clearly():
    with pytest.raises(ValueError, match=r"layers\[2\] Flatten\(\).*expected an image"):
        CNN((6, 6, 1), [Conv2D(1, 2, 3), GlobalAvgPool2D(), Flatten(), Dense(2, 2, "softmax")])
    with pytest.raises(ValueError, match=r"layers\[1\] AvgPool2D\(5\).*smaller than the 5x5 window"):
        CNN((6, 6, 1), [Conv2D(1, 2, 3), AvgPool2D(5), Flatten(), Dense(2, 2, "softmax")])


def test_they_save_and_load(tmp_path, rng):
    model = _model("float32")
    model.theta[...] = rng.normal(size=model.theta.size)
    back = CNN.load(model.save(tmp_path / "m.npz"))
    assert back.layers == model.layers and np.array_equal(back.theta, model.theta)
    X = rng.normal(size=(3, 9, 8, 2)).astype(np.float32)
    assert np.array_equal(back.predict_proba(X), model.predict_proba(X))


def test_the_layer_list_names_them():
    kinds = [layer[0] for layer in _model().layer_list()]
    assert kinds == ["conv", "avgpool", "conv", "globalavgpool", "dense"]
    assert _model().layer_list()[3] == ("globalavgpool", (3, 3, 6))


def test_onnx_runs_them(tmp_path, rng):
    pytest.importorskip("onnx", reason="onnx is not installed (optional: pip install 'fastnn[onnx]')")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (optional)")
    from fastnn.onnx import to_onnx

    model = _model("float32")
    model.theta[...] = rng.normal(0, 0.5, model.theta.size)
    X = rng.normal(size=(5, 9, 8, 2)).astype(np.float32)
    path = to_onnx(model, tmp_path / "pool.onnx")
    got = ort.InferenceSession(str(path)).run(None, {"input": X})[0]
    np.testing.assert_allclose(got, model.predict_proba(X), atol=1e-5)


def test_pytorch_runs_them_and_reads_them_back(rng):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (optional: pip install 'fastnn[torch]')")
    from fastnn.torch import from_torch, to_torch

    model = _model("float64")
    model.theta[...] = rng.normal(0, 0.5, model.theta.size)
    seq = to_torch(model)
    assert any(isinstance(m, torch.nn.AvgPool2d) for m in seq)
    assert any(isinstance(m, torch.nn.AdaptiveAvgPool2d) for m in seq)
    X = rng.normal(size=(4, 9, 8, 2))
    with torch.no_grad():
        got = seq(torch.from_numpy(X.transpose(0, 3, 1, 2).copy())).numpy()
    np.testing.assert_allclose(got, model.predict_proba(X), atol=1e-12)
    back = from_torch(seq, input_shape=model.input_shape)
    assert back.layers == model.layers and np.array_equal(back.theta, model.theta)
    bad = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Linear(3, 2))
    with pytest.raises(ValueError, match=r"AdaptiveAvgPool2d\(1\) then Flatten"):
        from_torch(bad, input_shape=(9, 8, 2))
    with pytest.raises(ValueError, match="square window with stride = size"):
        from_torch(torch.nn.Sequential(torch.nn.AvgPool2d(2, stride=1), torch.nn.Flatten(),
                                       torch.nn.Linear(56 * 2, 2)), input_shape=(9, 8, 2))


def test_max_and_average_pooling_differ_where_they_should(rng):
    """A guard against a mix-up of the two kinds in the stack table: the same stack with MaxPool2D trains
    to other numbers."""
    X = rng.normal(size=(16, 8, 8, 1))
    T = np.eye(2)[rng.integers(0, 2, 16)]
    out = []
    for pool in (AvgPool2D(2), MaxPool2D(2)):
        model = CNN((8, 8, 1), [Conv2D(1, 2, 3, padding="same"), pool, Flatten(), Dense(32, 2, "softmax")], seed=0)
        Trainer(model, lr=1e-2, batch_size=8, progress=False).fit(X, T, 1)
        out.append(model.theta.copy())
    assert not np.allclose(out[0], out[1])
