"""An MLP's predictions in one compiled call per chunk (``_core.dense_stack_forward``): bitwise the numbers of
``fastnn.functional.dense_forward`` layer after layer, the same checks of the input, any layout of it."""

import numpy as np
import pytest

import _reference as R
import fastnn.functional as F
from fastnn.models import MLP
from fastnn.models.base import EVAL_CHUNK

NETS = [([1024, 64, 36], ["sigmoid", "softmax"]), ([20, 50, 30, 3], ["relu", "tanh", "softmax"]),
        ([5, 1], ["sigmoid"]), ([7, 9, 4], ["relu", "linear"])]


def _layer_by_layer(model, X, logits):
    parts = []
    for s in range(0, X.shape[0], EVAL_CHUNK):
        h = X[s:s + EVAL_CHUNK]
        for l in range(model.n_layers):
            pre, h = F.dense_forward(h, model.weight_view(model.theta, l), model.bias_view(model.theta, l),
                                     model.activations[l])
        parts.append(pre if logits else h)
    return np.concatenate(parts) if parts else np.zeros((0, model.sizes[-1]), model.dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("net", range(len(NETS)))
@pytest.mark.parametrize("n", [0, 1, 3, 32, EVAL_CHUNK + 7])
def test_forward_is_dense_forward_layer_after_layer(dtype, net, n, rng):
    sizes, activations = NETS[net]
    model = MLP(sizes, activations, dtype=dtype, seed=1)
    X = rng.normal(size=(n, sizes[0])).astype(dtype)
    for logits in (False, True):
        np.testing.assert_array_equal(model.forward(X, logits=logits), _layer_by_layer(model, X, logits))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_few_rows_match_the_float64_reference(dtype, rng):
    """Small batches (the core's own products, ``_small.h``) against NumPy in float64, a wide layer (k = 2048)
    included."""
    model = MLP([2048, 100, 10], ["relu", "softmax"], dtype=dtype, seed=3)
    for n in range(1, 9):
        X = rng.normal(size=(n, 2048)).astype(dtype)
        h = X.astype(np.float64)
        for l in range(model.n_layers):
            h = h @ model.weight_view(model.theta, l).astype(np.float64) + model.bias_view(model.theta, l)
            h = np.maximum(h, 0) if l == 0 else h
        np.testing.assert_allclose(model.forward(X, logits=True), h, **R.tol(dtype))


def test_any_layout_and_dtype_of_the_input_gives_the_same_predictions(rng):
    model = MLP([12, 8, 3], ["tanh", "softmax"], dtype="float32", seed=0)
    X = rng.normal(size=(6, 12)).astype(np.float32)
    want = model.predict_proba(X)
    for other in (np.asfortranarray(X), X.astype(np.float64), np.ascontiguousarray(np.repeat(X, 2, axis=1)[:, ::2]),
                  X.tolist()):
        np.testing.assert_array_equal(model.predict_proba(other), want)
    readonly = X.copy()
    readonly.flags.writeable = False
    np.testing.assert_array_equal(model.predict_proba(readonly), want)


def test_bad_inputs_are_named(rng):
    model = MLP([4, 3], ["softmax"], dtype="float32")
    X = np.zeros((2, 4), np.float32)
    X[1, 2] = np.nan
    with pytest.raises(ValueError, match="X: contains NaN or inf values"):
        model.predict_proba(X)
    with pytest.raises(ValueError, match=r"X: expected shape \(n_samples, 4\), got shape \(2, 5\)"):
        model.predict_proba(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match=r"expected shape \(n_samples, 4\), got shape \(4,\)"):
        model.predict_proba(np.zeros(4, np.float32))


def test_a_changed_theta_is_used(rng):
    """The layer table is cached, the parameters are read at each call (``theta`` replaced or changed)."""
    model = MLP([6, 5, 2], ["relu", "softmax"], seed=0)
    X = rng.normal(size=(3, 6))
    before = model.predict_proba(X)
    model.theta = model.theta * 2.0
    after = model.predict_proba(X)
    assert not np.allclose(before, after)
    np.testing.assert_array_equal(after, _layer_by_layer(model, X, False))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_any_non_finite_value_anywhere_is_refused(dtype, rng):
    """The compiled call checks the values itself (``check_finite``): NaN, inf and -inf at the first, a middle
    or the last value, in the first or a later chunk of rows, are refused; the largest finite values and
    subnormals are not."""
    model = MLP([9, 4, 3], ["relu", "softmax"], dtype=dtype, seed=0)
    n = EVAL_CHUNK + 5
    base = rng.normal(size=(n, 9)).astype(dtype)
    for bad in (np.nan, np.inf, -np.inf):
        for where in ((0, 0), (3, 4), (EVAL_CHUNK - 1, 8), (EVAL_CHUNK, 0), (n - 1, 8)):
            X = base.copy()
            X[where] = bad
            with pytest.raises(ValueError, match="X: contains NaN or inf values"):
                model.predict_proba(X)
    info = np.finfo(dtype)
    X = base.copy()
    X[0, :3] = (info.max, -info.max, info.smallest_subnormal)
    assert model.predict_proba(X).shape == (n, 3)
