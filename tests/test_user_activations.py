"""Activations of your own (fastnn.register_activation): compiled by Numba, called by the compiled core
everywhere a built-in activation name works, inside the fused epochs too.  Skipped without Numba (the extra
``fastnn[jit]``; tests/test_optional_imports.py checks the error without it)."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("numba", reason="register_activation needs Numba: pip install 'fastnn[jit]'")

import _reference as R  # noqa: E402
import _user_activations as U  # noqa: E402

import fastnn  # noqa: E402
import fastnn.functional as F  # noqa: E402
import fastnn.nn as nn  # noqa: E402
from fastnn.layers import Conv2D, Dense, Flatten, MaxPool2D  # noqa: E402
from fastnn.models import CNN, MLP, ModelFileError  # noqa: E402
from fastnn.train import Trainer  # noqa: E402

NAMES = list(U.FUNCTIONS)
pytestmark = pytest.mark.filterwarnings("ignore::fastnn.train.ChanceLevelWarning")
TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module", autouse=True)
def registered():
    U.register_all()


# ------------------------------------------------------------------------------ the functions themselves

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", NAMES)
def test_activation_and_derivative_match_numpy(name, dtype, rng):
    Z = (rng.normal(size=(7, 13)) * 4).astype(dtype)
    Z[0, :4] = [-1000, -50, 50, 1000]
    A = F.activation(Z, name)
    D = F.activation_deriv(None, name, pre=Z)
    assert A.dtype == D.dtype == np.dtype(dtype)
    np.testing.assert_allclose(A, R.user_activation(Z, name), **R.tol(dtype))
    np.testing.assert_allclose(D, R.user_activation_deriv(Z, name), **R.tol(dtype))
    out = np.empty_like(Z)
    assert F.activation(Z, name, out=out) is out and np.array_equal(out, A)
    Zc = Z.copy()
    F.activation(Zc, name, out=Zc)  # in place
    assert np.array_equal(Zc, A)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", NAMES)
def test_dense_forward_and_backward_match_numpy(name, dtype, rng):
    X = rng.normal(size=(9, 6)).astype(dtype)
    W = rng.normal(size=(6, 5)).astype(dtype)
    b = rng.normal(size=5).astype(dtype)
    pre, post = F.dense_forward(X, W, b, name)
    rpre, _ = R.dense_forward(X, W, b, "linear")
    np.testing.assert_allclose(pre, rpre, **R.tol(dtype))
    np.testing.assert_allclose(post, R.user_activation(pre, name), **R.tol(dtype))
    delta = rng.normal(size=(9, 5)).astype(dtype)
    gW, gb, gX = F.dense_backward(delta, post, X, W, name, pre=pre)
    for got, want in zip((gW, gb, gX), R.dense_backward_from_pre(delta, pre, X, W, name)):
        np.testing.assert_allclose(got, want, **R.tol(dtype))
    # post is not read for a registered activation
    gW2, _, _ = F.dense_backward(delta, None, X, W, name, pre=pre)
    assert np.array_equal(gW, gW2)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_conv_forward_and_backward_match_the_builtin_sigmoid(dtype, rng):
    X = rng.normal(size=(3, 6, 5, 2)).astype(dtype)
    W = rng.normal(size=(3, 3, 2, 4)).astype(dtype)
    b = rng.normal(size=4).astype(dtype)
    pre, post = F.conv2d_forward(X, W, b, "u_sigmoid", padding="same")
    bpre, bpost = F.conv2d_forward(X, W, b, "sigmoid", padding="same")
    np.testing.assert_allclose(pre, bpre, **R.tol(dtype))
    np.testing.assert_allclose(post, bpost, **R.tol(dtype))
    delta = rng.normal(size=post.shape).astype(dtype)
    got = F.conv2d_backward(delta, post, X, W, "u_sigmoid", padding="same", pre=pre)
    want = F.conv2d_backward(delta, bpost, X, W, "sigmoid", padding="same")
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, **R.tol(dtype))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 9), m=st.integers(0, 40), dtype=st.sampled_from(["float32", "float64"]),
       name=st.sampled_from(NAMES), seed=st.integers(0, 2**16))
def test_any_shape_read_only_and_strided_inputs(n, m, dtype, name, seed):
    Z = (np.random.default_rng(seed).normal(size=(n, 2 * m)) * 3).astype(dtype)[:, ::2]  # not contiguous
    Z.flags.writeable = False
    A = F.activation(Z, name)
    D = F.activation_deriv(None, name, pre=Z)
    assert A.shape == D.shape == (n, m)
    np.testing.assert_allclose(A, R.user_activation(Z, name), **R.tol(dtype))
    np.testing.assert_allclose(D, R.user_activation_deriv(Z, name), **R.tol(dtype))


def test_a_registered_derivative_needs_the_pre_activation(rng):
    Z = rng.normal(size=(2, 3))
    with pytest.raises(ValueError, match="pre="):
        F.activation_deriv(F.activation(Z, "u_tanh"), "u_tanh")
    with pytest.raises(ValueError, match="pre="):
        F.dense_backward(Z, Z, np.ones((2, 4)), np.ones((4, 3)), "u_tanh")
    with pytest.raises(ValueError, match="pre="):
        F.conv2d_backward(np.ones((1, 2, 2, 1)), np.ones((1, 2, 2, 1)), np.ones((1, 2, 2, 1)), np.ones((1, 1, 1, 1)),
                          "u_tanh")


# ------------------------------------------------------------------------------------- the fused epochs

def _mlp_data(rng, sizes, n, out="onehot"):
    X = rng.random((n, sizes[0]))
    if out == "values":
        return X, rng.normal(size=(n, sizes[-1]))
    return X, np.eye(sizes[-1])[rng.integers(0, sizes[-1], n)]


MLP_NETS = {
    "classifier": ([12, 10, 5], ["u_sigmoid", "softmax"], "onehot"),
    "deep": ([12, 9, 7, 5], ["u_softplus", "u_tanh", "softmax"], "onehot"),
    "regression": ([12, 8, 4], ["relu", "u_tanh"], "values"),  # a registered output under the squared error
}


def _fit_mlp(sizes, acts, X, T, dtype, *, fused=True, optimizer="adam", threads=1, epochs=3):
    model = MLP(sizes, acts, dtype=dtype, seed=5)
    trainer = Trainer(model, optimizer=optimizer, lr=2e-3, batch_size=16, shuffle="epoch", seed=9, fused=fused,
                      progress=False, weight_decay=1e-3, threads=threads)
    hist = trainer.fit(X, T, epochs=epochs)
    return model.theta.copy(), np.array(hist.train_loss), trainer.state1.copy()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("net", list(MLP_NETS))
def test_mlp_fused_epoch_matches_step_path(net, optimizer, dtype, rng):
    sizes, acts, out = MLP_NETS[net]
    X, T = _mlp_data(rng, sizes, 83, out)
    fused = _fit_mlp(sizes, acts, X, T, dtype, optimizer=optimizer)
    step = _fit_mlp(sizes, acts, X, T, dtype, optimizer=optimizer, fused=False)
    tol = dict(rtol=2e-4, atol=2e-5) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)
    for a, b in zip(fused, step):
        np.testing.assert_allclose(a, b, **tol)
    assert not np.array_equal(fused[0], MLP(sizes, acts, dtype=dtype, seed=5).theta)  # it trained


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mlp_registered_sigmoid_trains_as_the_builtin(dtype, rng):
    """Not bits: the built-in float32 sigmoid is a polynomial; float64 both are libm's exp."""
    sizes = [1024, 64, 10]
    X, T = _mlp_data(rng, sizes, 150)
    mine = _fit_mlp(sizes, ["u_sigmoid", "softmax"], X, T, dtype, optimizer="sgd")
    builtin = _fit_mlp(sizes, ["sigmoid", "softmax"], X, T, dtype, optimizer="sgd")
    tol = dict(rtol=2e-4, atol=2e-5) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)
    for a, b in zip(mine, builtin):
        np.testing.assert_allclose(a, b, **tol)


def test_mlp_any_thread_count_gives_the_same_bits(rng):
    sizes = [1024, 64, 10]  # layer 0's products are split over the threads
    X, T = _mlp_data(rng, sizes, 150)
    for dtype in ("float32", "float64"):
        one = _fit_mlp(sizes, ["u_softplus", "softmax"], X, T, dtype, threads=1, epochs=2)
        two = _fit_mlp(sizes, ["u_softplus", "softmax"], X, T, dtype, threads=2, epochs=2)
        for a, b in zip(one, two):
            assert np.array_equal(a, b)


def _cnn_layers(act_conv, act_dense):
    return [Conv2D(2, 4, 3, padding="same", activation=act_conv), MaxPool2D(2),
            Conv2D(4, 5, 2, stride=2, padding="same", activation=act_conv), Flatten(),
            Dense(20, 6, act_dense), Dense(6, 4, "softmax")]


def _fit_cnn(layers, X, T, dtype, *, fused=True, optimizer="adam", threads=1, batch_size=8):
    model = CNN((8, 7, 2), layers, dtype=dtype, seed=3)
    trainer = Trainer(model, optimizer=optimizer, lr=2e-3, batch_size=batch_size, shuffle="epoch", seed=9,
                      fused=fused, progress=False, weight_decay=1e-3, threads=threads)
    assert trainer.fused is fused
    hist = trainer.fit(X, T, 3)
    return model.theta.copy(), trainer.state1.copy(), np.array(hist.train_loss)


def _cnn_data(rng, dtype, n=37):
    X = rng.normal(size=(n, 8, 7, 2)).astype(dtype)
    return X, np.eye(4, dtype=dtype)[rng.integers(0, 4, n)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_cnn_fused_epoch_matches_step_path(optimizer, dtype, rng):
    X, T = _cnn_data(rng, dtype)
    layers = _cnn_layers("u_softplus", "u_tanh")
    fused = _fit_cnn(layers, X, T, dtype, optimizer=optimizer)
    step = _fit_cnn(layers, X, T, dtype, optimizer=optimizer, fused=False)
    tol = dict(rtol=2e-4, atol=2e-5) if dtype == "float32" else dict(rtol=1e-9, atol=1e-11)
    for a, b in zip(fused, step):
        np.testing.assert_allclose(a, b, **tol)
    assert not np.allclose(fused[0], CNN((8, 7, 2), layers, dtype=dtype, seed=3).theta)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cnn_registered_sigmoid_trains_as_the_builtin(dtype, rng):
    X, T = _cnn_data(rng, dtype)
    mine = _fit_cnn(_cnn_layers("u_sigmoid", "u_sigmoid"), X, T, dtype)
    builtin = _fit_cnn(_cnn_layers("sigmoid", "sigmoid"), X, T, dtype)
    tol = dict(rtol=2e-4, atol=2e-5) if dtype == "float32" else dict(rtol=1e-9, atol=1e-11)
    for a, b in zip(mine, builtin):
        np.testing.assert_allclose(a, b, **tol)


def test_cnn_any_thread_count_gives_the_same_bits(rng):
    X, T = _cnn_data(rng, "float32", n=70)
    layers = _cnn_layers("u_softplus", "u_tanh")
    one = _fit_cnn(layers, X, T, "float32", threads=1, batch_size=32)
    two = _fit_cnn(layers, X, T, "float32", threads=2, batch_size=32)
    for a, b in zip(one, two):
        assert np.array_equal(a, b)


def test_the_plans_keep_a_pre_activation_only_for_registered_layers():
    builtin = F.conv_epoch_plan([("conv", 2, 4, 3, 1, "same", "relu"), ("flatten",), ("dense", 224, 4, "softmax")],
                                (8, 7, 2), "cross_entropy")
    mine = F.conv_epoch_plan([("conv", 2, 4, 3, 1, "same", "u_tanh"), ("flatten",), ("dense", 224, 4, "softmax")],
                             (8, 7, 2), "cross_entropy")
    pre = list(F.conv_epoch_plan.__globals__["_core"].STACK_COLUMNS).index("pre_off")
    assert builtin.stack[0, pre] == -1 and mine.stack[0, pre] >= 0
    assert mine.work.size == builtin.work.size + 32 * 8 * 7 * 4  # one batch's pre-activations more


# ------------------------------------------------------------------------------------ gradients (float64)

@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_gradients_match_finite_differences(kind, rng):
    if kind == "mlp":
        model = MLP([5, 6, 4, 3], ["u_softplus", "u_tanh", "softmax"], seed=2)
        X = rng.normal(size=(7, 5))
    else:
        model = CNN((5, 4, 2), [Conv2D(2, 3, 3, padding="same", activation="u_softplus"), Flatten(),
                                Dense(60, 4, "u_sigmoid"), Dense(4, 3, "softmax")], seed=2)
        X = rng.normal(size=(7, 5, 4, 2))
    T = np.eye(3)[rng.integers(0, 3, 7)]
    _, _, grad = model.loss_gradient(X, T)
    theta = model.theta.copy()
    eps = 1e-6
    idx = rng.choice(theta.size, size=min(60, theta.size), replace=False)
    for i in idx:
        up, down = theta.copy(), theta.copy()
        up[i] += eps
        down[i] -= eps
        fd = (model.loss_gradient(X, T, theta=up)[0] - model.loss_gradient(X, T, theta=down)[0]) / (2 * eps)
        assert abs(fd - grad[i]) <= 1e-6 * max(1.0, abs(fd)), (i, fd, grad[i])


# ------------------------------------------------------------------------------------------- the drop-in

@pytest.mark.parametrize("name", NAMES)
def test_drop_in_forward_and_backwards(name, rng):
    np.random.seed(0)
    params = {}
    nn.initialize_weights(6, 5, params, "layer1")
    X = rng.normal(size=(8, 6))
    delta = rng.normal(size=(8, 5))
    act, act_deriv = nn.activation_functions(name)
    for a, d in ((act, act_deriv), (name, name)):  # the functions, or the name
        post = nn.forward(X, params, "layer1", a)
        gX = nn.backwards(delta, params, "layer1", d)
        pre = X @ params["Wlayer1"] + params["blayer1"]
        np.testing.assert_allclose(post, R.user_activation(pre, name), rtol=1e-12, atol=1e-12)
        gW, gb, gx = R.dense_backward_from_pre(delta, pre, X, params["Wlayer1"], name)
        np.testing.assert_allclose(params["grad_Wlayer1"], gW, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(params["grad_blayer1"], gb, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(gX, gx, rtol=1e-10, atol=1e-12)
    # called directly, the derivative takes the pre-activation
    np.testing.assert_allclose(act_deriv(pre), R.user_activation_deriv(pre, name), rtol=1e-12, atol=1e-12)
    assert nn.activation_functions("tanh") == (nn.tanh, nn.tanh_deriv)


# ------------------------------------------------------------------------------------------------ errors

class _Python:
    def value(self, z):
        return z


def _bad_numba(z):
    return _Python().value(z)  # a Python object: Numba's nopython mode cannot compile it


@pytest.mark.parametrize("name, match", [("sigmoid", "built-in"), ("softmax", "built-in"), ("my act", "identifier"),
                                         ("", "identifier"), (3, "identifier")])
def test_bad_names_are_refused(name, match):
    with pytest.raises(ValueError, match=match):
        fastnn.register_activation(name, U.sigmoid, U.sigmoid_deriv)


def test_non_callables_and_uncompilable_functions_are_refused():
    with pytest.raises(TypeError, match="fn: expected a Python function"):
        fastnn.register_activation("bad1", 1.5, U.sigmoid_deriv)
    with pytest.raises(TypeError, match="derivative: expected a Python function"):
        fastnn.register_activation("bad1", U.sigmoid, None)
    with pytest.raises(TypeError, match="Numba cannot compile derivative '_bad_numba'"):
        fastnn.register_activation("bad1", U.sigmoid, _bad_numba)
    assert "bad1" not in fastnn.functional.registered_activations()


def test_unknown_names_say_how_to_register():
    with pytest.raises(ValueError, match=r"register_activation\(name, fn, derivative\)"):
        MLP([3, 4, 2], ["nope", "softmax"])
    with pytest.raises(ValueError, match="register_activation"):
        Conv2D(1, 2, 3, activation="nope")
    with pytest.raises(ValueError, match="softmax only last"):
        MLP([3, 4, 2], ["softmax", "u_tanh"])


def test_registering_again_replaces_the_functions(rng):
    Z = rng.normal(size=(3, 4))
    fastnn.register_activation("u_again", U.tanh, U.tanh_deriv)
    np.testing.assert_allclose(F.activation(Z, "u_again"), np.tanh(Z), rtol=1e-12)
    fastnn.register_activation("u_again", U.softplus, U.softplus_deriv)
    np.testing.assert_allclose(F.activation(Z, "u_again"), np.logaddexp(0, Z), rtol=1e-12)
    np.testing.assert_allclose(F.activation_deriv(None, "u_again", pre=Z), R.user_activation_deriv(Z, "u_softplus"),
                               rtol=1e-12)


def test_registering_again_reaches_a_plan_built_before(rng):
    X = rng.random((16, 4))
    T = np.eye(3)[rng.integers(0, 3, 16)]
    order = np.arange(16, dtype=np.int64)
    fastnn.register_activation("u_later", U.tanh, U.tanh_deriv)
    plan = F.epoch_plan([4, 5, 3], ["u_later", "softmax"], "cross_entropy", batch_size=8)
    theta0 = rng.normal(size=plan.n_params)
    losses = []
    for fn, deriv in ((U.softplus, U.softplus_deriv), (U.tanh, U.tanh_deriv)):
        fastnn.register_activation("u_later", fn, deriv)
        losses.append(F.train_epoch(plan, X, T, order, theta0.copy(), plan.new_state(), lr=1e-3).loss)
    want = [F.train_epoch(F.epoch_plan([4, 5, 3], [act, "softmax"], "cross_entropy", batch_size=8), X, T, order,
                          theta0.copy(), plan.new_state(), lr=1e-3).loss for act in ("u_softplus", "u_tanh")]
    np.testing.assert_allclose(losses, want, rtol=1e-12)


def test_exporters_refuse_a_registered_activation():
    model = MLP([3, 4, 2], ["u_tanh", "softmax"])
    from fastnn.onnx import layers_of
    from fastnn.torch import to_torch

    with pytest.raises(ValueError, match="registered activation 'u_tanh'.*fastnn.onnx"):
        layers_of(model)
    with pytest.raises(ValueError, match="registered activation 'u_tanh'.*fastnn.torch"):
        to_torch(model)


# ------------------------------------------------------------------------------------------- model files

def _child(script):
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                          timeout=300, cwd=TESTS)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_model_file_round_trip_in_other_processes(kind, tmp_path, rng):
    path = tmp_path / "m.npz"
    if kind == "mlp":
        model = MLP([4, 5, 3], ["u_softplus", "softmax"], seed=1)
        X = rng.normal(size=(6, 4))
        load = "from fastnn.models import MLP as M"
    else:
        model = CNN((4, 4, 1), [Conv2D(1, 2, 3, padding="same", activation="u_tanh"), Flatten(),
                                Dense(32, 3, "softmax")], seed=1)
        X = rng.normal(size=(6, 4, 4, 1))
        load = "from fastnn.models import CNN as M"
    model.save(path)
    np.save(tmp_path / "x.npy", X)
    registered = _child(f"""
        import json, numpy as np, _user_activations as U
        U.register_all()
        {load}
        m = M.load({str(path)!r})
        print(json.dumps(m.predict_proba(np.load({str(tmp_path / 'x.npy')!r})).tolist()))
    """)
    np.testing.assert_allclose(registered, model.predict_proba(X), rtol=1e-12)
    error = _child(f"""
        import json
        {load}
        try:
            M.load({str(path)!r})
            print(json.dumps(None))
        except ValueError as exc:
            print(json.dumps([type(exc).__name__, str(exc)]))
    """)
    assert error is not None and error[0] == "ModelFileError" and issubclass(ModelFileError, ValueError)
    assert "register_activation" in error[1] and ("u_softplus" if kind == "mlp" else "u_tanh") in error[1]
