"""Each compiled kernel against its plain NumPy baseline, in the same benchmark group.

The kernels are called directly (``fastnn._kernels._core``: no validation, preallocated
``*_out`` buffers); the baselines are the coursework's NumPy expressions.  Every
benchmark calls its function once before timing, so first-touch costs (page faults, the
OpenMP thread pool's start) stay out of the numbers.
"""

import numpy as np
import pytest

from fastnn._kernels import _core
from fastnn.coursework.numpy_nn import sigmoid as _np_sigmoid  # the coursework's NumPy formulas
from fastnn.coursework.numpy_nn import softmax as _np_softmax

_SGD, _MOMENTUM, _ADAM = (_core.OPTIMIZERS[k] for k in ("sgd", "momentum", "adam"))

N_IN = 1024
N_CLASSES = 36
BATCHES = [32, 128, 1024]
WIDTHS = [64, 256]
DTYPES = ["float32", "float64"]
IMPLS = ["fastnn", "numpy"]

grid = pytest.mark.parametrize("dtype", DTYPES)
grid_width = pytest.mark.parametrize("width", WIDTHS)
grid_batch = pytest.mark.parametrize("batch", BATCHES)
impls = pytest.mark.parametrize("impl", IMPLS)


def _run(benchmark, fn):
    fn()  # warm-up: first-touch page faults and the thread pool start stay out of the timing
    return benchmark(fn)


# -------------------------------------------------------------------------- baselines

NP_ACT = {"sigmoid": _np_sigmoid, "relu": lambda x: np.maximum(x, 0), "softmax": _np_softmax}


# ----------------------------------------------------------------------------- data

@pytest.fixture
def layer(rng, batch, width, dtype):
    """One dense layer's data: X (batch, 1024), W (1024, width), b, post and delta (batch, width)."""
    X = rng.random((batch, N_IN)).astype(dtype)
    W = rng.uniform(-0.05, 0.05, (N_IN, width)).astype(dtype)
    b = rng.uniform(-0.1, 0.1, width).astype(dtype)
    post = rng.random((batch, width)).astype(dtype)
    delta = rng.standard_normal((batch, width)).astype(dtype)
    return X, W, b, post, delta


@pytest.fixture
def net_params(rng, width, dtype):
    """A 1024-width-36 parameter set as flat 1-D arrays: (params, grads, state1, state2)."""
    shapes = [N_IN * width, width, width * N_CLASSES, N_CLASSES]
    params = tuple(rng.uniform(-0.05, 0.05, s).astype(dtype) for s in shapes)
    grads = tuple(rng.standard_normal(s).astype(dtype) for s in shapes)
    state1 = tuple(np.zeros(s, dtype) for s in shapes)
    state2 = tuple(np.zeros(s, dtype) for s in shapes)
    return params, grads, state1, state2


# ---------------------------------------------------------------------------- dense

@impls
@grid
@grid_width
@grid_batch
@pytest.mark.parametrize("act", ["sigmoid", "relu", "softmax"])
@pytest.mark.benchmark(group="dense_forward")
def bench_dense_forward(benchmark, tag, layer, act, batch, width, dtype, impl):
    X, W, b, _, _ = layer
    tag(f"dense_forward[{act}] b={batch} w={width} {dtype}", impl, dtype, fastnn=impl == "fastnn")
    if impl == "fastnn":
        code = _core.ACTIVATIONS[act]
        pre = np.empty((batch, width), dtype)
        post = np.empty((batch, width), dtype)
        _run(benchmark, lambda: _core.dense_forward(X, W, b, code, pre, post))
        ref = NP_ACT[act]((X.astype(np.float64) @ W.astype(np.float64)) + b)
        np.testing.assert_allclose(post, ref, rtol=1e-3 if dtype == "float32" else 1e-9, atol=1e-5)
    else:
        f = NP_ACT[act]
        _run(benchmark, lambda: f(X @ W + b))


@impls
@grid
@grid_width
@grid_batch
@pytest.mark.benchmark(group="dense_backward")
def bench_dense_backward(benchmark, tag, layer, batch, width, dtype, impl):
    """Sigmoid layer backward with the input gradient (grad_W, grad_b, grad_X)."""
    X, W, _, post, delta = layer
    tag(f"dense_backward[sigmoid] b={batch} w={width} {dtype}", impl, dtype, fastnn=impl == "fastnn")
    if impl == "fastnn":
        code = _core.ACTIVATIONS["sigmoid"]
        dpre = np.empty((batch, width), dtype)
        gW = np.empty((N_IN, width), dtype)
        gb = np.empty(width, dtype)
        gX = np.empty((batch, N_IN), dtype)
        _run(benchmark, lambda: _core.dense_backward(delta, post, X, W, code, dpre, gW, gb, gX, True))
    else:
        def numpy_backward():
            d = post * (1.0 - post) * delta
            return X.T @ d, np.sum(d, axis=0), d @ W.T
        _run(benchmark, numpy_backward)


# ---------------------------------------------------------------------------- losses

@impls
@grid
@pytest.mark.parametrize("classes", [N_CLASSES, 256])
@grid_batch
@pytest.mark.benchmark(group="softmax_cross_entropy")
def bench_softmax_cross_entropy(benchmark, tag, rng, batch, classes, dtype, impl):
    """Softmax, summed cross-entropy, accuracy and delta = P - Y from logits and one-hot labels."""
    Z = (3 * rng.standard_normal((batch, classes))).astype(dtype)
    Y = np.zeros((batch, classes), dtype)
    Y[np.arange(batch), rng.integers(0, classes, batch)] = 1
    tag(f"softmax_cross_entropy b={batch} c={classes} {dtype}", impl, dtype, fastnn=impl == "fastnn")
    if impl == "fastnn":
        P = np.empty_like(Z)
        D = np.empty_like(Z)
        _run(benchmark, lambda: _core.softmax_cross_entropy_onehot(Z, Y, P, D))
    else:
        def numpy_loss():
            probs = _np_softmax(Z)
            loss = -np.sum(Y * np.log(probs))
            acc = np.mean(np.argmax(Y, axis=1) == np.argmax(probs, axis=1))
            return loss, acc, probs - Y
        _run(benchmark, numpy_loss)


# ------------------------------------------------------------------------- optimizers

@impls
@grid
@grid_width
@pytest.mark.benchmark(group="sgd_update")
def bench_sgd_update(benchmark, tag, net_params, width, dtype, impl):
    params, grads, _, _ = net_params
    tag(f"sgd_update 1024-{width}-36 {dtype}", impl, dtype, fastnn=impl == "fastnn")
    lr = 1e-7
    if impl == "fastnn":
        none = np.empty(0, params[0].dtype)

        def fastnn_sgd():
            for p, g in zip(params, grads):
                _core.update(_SGD, p, g, none, none, lr, 0.0, 0.0, 0.0, 0.0, 0)
        _run(benchmark, fastnn_sgd)
    else:
        def numpy_sgd():
            for p, g in zip(params, grads):
                p -= lr * g
        _run(benchmark, numpy_sgd)


@impls
@grid
@grid_width
@pytest.mark.benchmark(group="momentum_update")
def bench_momentum_update(benchmark, tag, net_params, width, dtype, impl):
    params, grads, bufs, _ = net_params
    tag(f"momentum_update 1024-{width}-36 {dtype}", impl, dtype, fastnn=impl == "fastnn")
    lr, mu = 1e-7, 0.9
    if impl == "fastnn":
        none = np.empty(0, params[0].dtype)

        def fastnn_momentum():
            for p, g, m in zip(params, grads, bufs):
                _core.update(_MOMENTUM, p, g, m, none, lr, mu, 0.0, 0.0, 0.0, 0)
        _run(benchmark, fastnn_momentum)
    else:
        def numpy_momentum():  # the coursework's M = mu M - lr g; p += M
            for p, g, m in zip(params, grads, bufs):
                m[...] = mu * m - lr * g
                p += m
        _run(benchmark, numpy_momentum)


@impls
@grid
@grid_width
@pytest.mark.benchmark(group="adam_update")
def bench_adam_update(benchmark, tag, net_params, width, dtype, impl):
    params, grads, m1, m2 = net_params
    tag(f"adam_update 1024-{width}-36 {dtype}", impl, dtype, fastnn=impl == "fastnn")
    lr, b1, b2, eps, step = 1e-7, 0.9, 0.999, 1e-8, 10
    if impl == "fastnn":
        def fastnn_adam():
            for p, g, a, v in zip(params, grads, m1, m2):
                _core.update(_ADAM, p, g, a, v, lr, b1, b2, eps, 0.0, step)
        _run(benchmark, fastnn_adam)
    else:
        c1, c2 = 1 - b1**step, 1 - b2**step

        def numpy_adam():
            for p, g, a, v in zip(params, grads, m1, m2):
                a[...] = b1 * a + (1 - b1) * g
                v[...] = b2 * v + (1 - b2) * g * g
                p -= lr * (a / c1) / (np.sqrt(v / c2) + eps)
        _run(benchmark, numpy_adam)
