"""Compiled kernels (through fastnn.functional) against the plain NumPy references in _reference.py."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastnn.functional as F

import _reference as R

DTYPES = [np.float32, np.float64]
ACTS = ["linear", "sigmoid", "tanh", "relu", "softmax"]
settings.register_profile("fastnn", max_examples=40, deadline=None)
settings.load_profile("fastnn")


def close(a, b, dtype, scale=1.0):
    tol = R.tol(dtype)
    np.testing.assert_allclose(a, b, rtol=tol["rtol"], atol=tol["atol"] * scale)


def variants(a):
    """The same values as C-, F-ordered, non-contiguous and read-only arrays."""
    f = np.asfortranarray(a)
    wide = np.zeros((a.shape[0], 2 * a.shape[1]) if a.ndim == 2 else (2 * a.shape[0],), a.dtype)
    if a.ndim == 2:
        wide[:, ::2] = a
        strided = wide[:, ::2]
    else:
        wide[::2] = a
        strided = wide[::2]
    ro = a.copy()
    ro.flags.writeable = False
    return {"C": a, "F": f, "strided": strided, "readonly": ro}


shapes = st.tuples(st.integers(1, 40), st.integers(1, 48), st.integers(1, 40))


# ------------------------------------------------------------------------ activations

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTS)
@given(shape=st.tuples(st.integers(1, 30), st.integers(1, 30)), scale=st.sampled_from([0.1, 3.0, 30.0]))
def test_activation_matches_reference(dtype, act, shape, scale):
    Z = (np.random.default_rng(shape[0] * 31 + shape[1]).standard_normal(shape) * scale).astype(dtype)
    out = F.activation(Z, act)
    assert out.dtype == dtype
    close(out, R.activation(Z, act), dtype)
    if act != "softmax":
        close(F.activation_deriv(out, act), R.activation_deriv(out, act), dtype)


def test_sigmoid_extremes_are_exact_and_silent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for dtype in DTYPES:
            s = F.activation(np.array([[-1000.0, 0.0, 1000.0]], dtype), "sigmoid")
            assert s[0, 0] == 0.0 and s[0, 1] == 0.5 and s[0, 2] == 1.0


def test_softmax_rows_sum_to_one_for_huge_logits():
    Z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]])
    P = F.softmax(Z)
    assert np.all(np.isfinite(P))
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    np.testing.assert_allclose(P[1], 1 / 3)


def test_activation_deriv_rejects_softmax():
    with pytest.raises(ValueError, match="softmax"):
        F.activation_deriv(np.ones((2, 2)), "softmax")


def test_unknown_activation_named():
    with pytest.raises(ValueError, match="swish"):
        F.activation(np.ones((2, 2)), "swish")


def _scalar_kernel_over(kernel, x):
    """A compiled float32 scalar kernel (``_core.exp32`` or ``tanh32``) over the 1-D array x."""
    out = np.empty_like(x)
    kernel(x, out)
    return out


@pytest.mark.parametrize("scale", [1.0, 30.0, 100.0])
def test_float32_exp_is_accurate_and_handles_the_edges(scale):
    """exp32 (the vectorised float32 exp behind float32 sigmoid and softmax) against float64 exp."""
    from fastnn._kernels._core import exp32

    x = (np.random.default_rng(int(scale)).standard_normal(200_000) * scale).astype(np.float32)
    edges = [0.0, -0.0, 88.72, 88.7228, 88.73, 1000.0, -87.33, -87.34, -1000.0, np.inf, -np.inf, np.nan]
    x = np.concatenate([x, np.float32(edges)])
    got = _scalar_kernel_over(exp32, x)
    with np.errstate(over="ignore", under="ignore"):
        ref = np.exp(x.astype(np.float64))
    normal = (ref >= np.finfo(np.float32).tiny) & (ref <= np.finfo(np.float32).max)
    assert np.max(np.abs(got[normal] / ref[normal] - 1)) < 3e-7  # about 2 float32 ulp
    assert np.all(got[x > 88.7229] == np.inf)
    assert np.all(got[x < -87.3366] == 0)
    tail = got[-len(edges):]
    assert np.isnan(tail[-1]) and tail[0] == 1.0 and tail[1] == 1.0


def test_float32_tanh_is_accurate_and_handles_the_edges():
    """tanh32 (the vectorised float32 tanh) against float64 tanh, across the polynomial/exp switch."""
    from fastnn._kernels._core import tanh32

    rng = np.random.default_rng(5)
    x = np.concatenate([rng.standard_normal(50_000) * s for s in (1e-6, 1e-2, 0.3, 1.0, 3.0, 30.0)])
    edges = [0.625, -0.625, 0.6249999, 9.1, -9.1, 1000.0, -1000.0, np.inf, -np.inf, np.nan]
    x = np.concatenate([x, edges]).astype(np.float32)
    got = _scalar_kernel_over(tanh32, x)
    ref = np.tanh(x.astype(np.float64))
    nonzero = np.isfinite(ref) & (ref != 0)
    assert np.max(np.abs(got[nonzero] / ref[nonzero] - 1)) < 3e-7
    tail = got[-len(edges):]
    assert list(tail[3:7]) == [1.0, -1.0, 1.0, -1.0] and tail[7] == 1.0 and tail[8] == -1.0
    assert np.isnan(tail[-1])


@pytest.mark.parametrize("act", ["sigmoid", "softmax", "tanh"])
def test_float32_activations_use_float32_precision_closely(act, rng):
    Z = (rng.standard_normal((64, 300)) * 8).astype(np.float32)
    out = F.activation(Z, act)
    np.testing.assert_allclose(out, R.activation(Z.astype(np.float64), act), rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------------------ dense

def _as_layout(a, layout):
    if layout == "block":
        big = np.zeros((a.shape[0] + 3, a.shape[1] + 5), a.dtype)
        big[2:-1, 1:-4] = a
        return big[2:-1, 1:-4]
    return np.asfortranarray(a) if layout == "F" else a


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(32, 1024, 64), (1024, 32, 64), (32, 64, 1024), (300, 300, 300), (6, 200000, 3),
                                   (1024, 1024, 64), (200, 1000, 1000)],
                         ids=["k-split", "row-split", "col-split", "square", "k-split-odd", "rows-16", "cols-many"])
@pytest.mark.parametrize("layout", ["C", "F", "block"])
def test_large_products_cut_into_parts_match_numpy_on_any_thread_count(dtype, shape, layout, rng):
    """Large products are cut into parts by their shapes (C's rows, its columns or the inner dimension)
    that the team shares; every thread count gives the same bits, close to NumPy's.

    The kernel takes operands with one unit stride: C- or F-ordered, or a block of a larger array
    (the public layer copies anything else)."""
    from fastnn._kernels._core import gemm, get_num_threads, set_num_threads, split_of_product

    m, k, n = shape
    cut, parts = split_of_product(m, k, n)
    assert cut != "none" and parts >= 2
    A = rng.standard_normal((m, k)).astype(dtype)
    B = rng.standard_normal((k, n)).astype(dtype)
    C0 = rng.standard_normal((m, n)).astype(dtype)
    old = get_num_threads()
    try:
        for alpha, beta in ((1.0, 0.0), (-0.5, 1.0), (2.0, 0.25)):
            out = []
            for threads in (1, 2, 3, 8):
                set_num_threads(threads)
                C = C0.copy()
                gemm(_as_layout(A, layout), _as_layout(B, layout), C, alpha, beta)
                out.append(C)
            for C in out[1:]:
                np.testing.assert_array_equal(C, out[0])
            ref = alpha * (A.astype(np.float64) @ B) + beta * C0
            close(out[0], ref, dtype, scale=np.sqrt(k))
    finally:
        set_num_threads(old)


def test_products_are_cut_by_their_shapes_alone():
    """Small products run whole; a large one is cut along its inner dimension when that dominates, else along
    C's longer side, into more parts the larger it is (within the limits of fastnn._config.PARTS)."""
    from fastnn._config import PARTS
    from fastnn._kernels._core import split_of_product

    assert split_of_product(32, 64, 36) == ("none", 1)
    assert split_of_product(32, 1024, 64)[0] == "k"
    assert split_of_product(1024, 32, 64)[0] == "rows"
    assert split_of_product(32, 64, 1024)[0] == "cols"
    small, big = split_of_product(256, 1024, 64)[1], split_of_product(1024, 1024, 64)[1]
    assert 2 <= small < big <= PARTS["max_parts"]
    assert split_of_product(1024, 1024, 64)[1] <= 1024 // PARTS["min_rows"]
    assert split_of_product(8, 100000, 8)[1] <= PARTS["max_k_parts"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTS)
@given(shape=shapes)
def test_dense_forward_matches_reference(dtype, act, shape):
    n, k, m = shape
    rng = np.random.default_rng(n * 10007 + k * 101 + m)
    X = rng.standard_normal((n, k)).astype(dtype)
    W = (rng.standard_normal((k, m)) / np.sqrt(k)).astype(dtype)
    b = rng.standard_normal(m).astype(dtype)
    pre_ref, post_ref = R.dense_forward(X, W, b, act)
    pre, post = F.dense_forward(X, W, b, act)
    assert pre.dtype == dtype and post.dtype == dtype
    close(pre, pre_ref, dtype, scale=np.sqrt(k))
    close(post, post_ref, dtype, scale=np.sqrt(k))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ["linear", "sigmoid", "tanh", "relu"])
@given(shape=shapes)
def test_dense_backward_matches_reference(dtype, act, shape):
    n, k, m = shape
    rng = np.random.default_rng(n * 10007 + k * 101 + m + 7)
    X = rng.standard_normal((n, k)).astype(dtype)
    W = rng.standard_normal((k, m)).astype(dtype)
    post = F.activation(rng.standard_normal((n, m)).astype(dtype), act)
    delta = rng.standard_normal((n, m)).astype(dtype)
    gW, gb, gX = F.dense_backward(delta, post, X, W, act)
    rW, rb, rX = R.dense_backward(delta, post, X, W, act)
    for got, ref, s in ((gW, rW, n), (gb, rb, n), (gX, rX, m)):
        assert got.dtype == dtype
        close(got, ref, dtype, scale=np.sqrt(s))
    gW2, gb2, none = F.dense_backward(delta, post, X, W, act, need_grad_X=False)
    assert none is None
    np.testing.assert_array_equal(gW2, gW)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["C", "F", "strided", "readonly"])
def test_dense_layouts(dtype, layout, rng):
    X = rng.standard_normal((17, 23)).astype(dtype)
    W = rng.standard_normal((23, 11)).astype(dtype)
    b = rng.standard_normal(11).astype(dtype)
    Xv, Wv, bv = variants(X)[layout], variants(W)[layout], variants(b)[layout]
    pre, post = F.dense_forward(Xv, Wv, bv, "tanh")
    close(post, R.dense_forward(X, W, b, "tanh")[1], dtype, scale=5)
    delta = rng.standard_normal((17, 11)).astype(dtype)
    got = F.dense_backward(variants(delta)[layout], variants(post)[layout], Xv, Wv, "tanh")
    for g, r in zip(got, R.dense_backward(delta, post, X, W, "tanh")):
        close(g, r, dtype, scale=5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_out_buffers_are_used(dtype, rng):
    X = rng.standard_normal((5, 4)).astype(dtype)
    W = rng.standard_normal((4, 3)).astype(dtype)
    b = np.zeros(3, dtype)
    bufs = (np.empty((5, 3), dtype), np.empty((5, 3), dtype))
    pre, post = F.dense_forward(X, W, b, "relu", out=bufs)
    assert np.shares_memory(pre, bufs[0]) and np.shares_memory(post, bufs[1])
    close(post, R.dense_forward(X, W, b, "relu")[1], dtype)
    gbufs = (np.empty((4, 3), dtype), np.empty(3, dtype), np.empty((5, 4), dtype))
    got = F.dense_backward(post, post, X, W, "relu", out=gbufs)
    assert all(np.shares_memory(g, o) for g, o in zip(got, gbufs))
    with pytest.raises(ValueError, match=r"out\[0\].*shape \(5, 3\)"):
        F.dense_forward(X, W, b, "relu", out=(np.empty((3, 5), dtype), bufs[1]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_zero_size_edges(dtype):
    pre, post = F.dense_forward(np.empty((0, 4), dtype), np.ones((4, 3), dtype), np.ones(3, dtype), "sigmoid")
    assert pre.shape == (0, 3) and post.shape == (0, 3)
    gW, gb, gX = F.dense_backward(np.empty((0, 3), dtype), np.empty((0, 3), dtype), np.empty((0, 4), dtype),
                                  np.ones((4, 3), dtype), "sigmoid")
    assert gW.shape == (4, 3) and np.all(gW == 0) and np.all(gb == 0) and gX.shape == (0, 4)


def test_dense_shape_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"W: expected shape \(3, m\).*got shape \(4, 2\)"):
        F.dense_forward(np.ones((2, 3)), np.ones((4, 2)), np.ones(2))
    with pytest.raises(ValueError, match=r"b: expected shape \(2,\)"):
        F.dense_forward(np.ones((2, 3)), np.ones((3, 2)), np.ones(3))
    with pytest.raises(ValueError, match=r"X: expected a 2-D array, got shape \(3,\)"):
        F.dense_forward(np.ones(3), np.ones((3, 2)), np.ones(2))
    with pytest.raises(ValueError, match="delta: expected shape"):
        F.dense_backward(np.ones((2, 5)), np.ones((2, 2)), np.ones((2, 3)), np.ones((3, 2)))


def test_dtype_policy():
    pre, post = F.dense_forward(np.ones((2, 3), np.int64), np.ones((3, 2), np.float32), np.zeros(2, np.float32))
    assert post.dtype == np.float64
    pre, post = F.dense_forward(np.ones((2, 3), np.float32), np.ones((3, 2), np.float32), np.zeros(2, np.float32))
    assert post.dtype == np.float32
    with pytest.raises(TypeError, match=r"astype"):
        F.dense_forward(np.ones((2, 3), complex), np.ones((3, 2)), np.zeros(2))
    with pytest.raises(TypeError, match=r"astype"):
        F.activation(np.array([["a", "b"]]), "sigmoid")


# ----------------------------------------------------------------------------- losses

@pytest.mark.parametrize("dtype", DTYPES)
@given(n=st.integers(1, 50), c=st.integers(2, 40), scale=st.sampled_from([0.5, 5.0, 1e4]))
def test_softmax_cross_entropy_matches_reference(dtype, n, c, scale):
    rng = np.random.default_rng(n * 1000 + c)
    Z = (rng.standard_normal((n, c)) * scale).astype(dtype)
    labels = rng.integers(0, c, n)
    Y = np.eye(c, dtype=dtype)[labels]
    loss_r, acc_r, delta_r, P_r = R.softmax_cross_entropy(Z, Y)
    for lab in (labels, Y):
        r = F.softmax_cross_entropy(Z, lab)
        assert np.isfinite(r.loss)
        np.testing.assert_allclose(r.loss, loss_r, rtol=R.tol(dtype)["rtol"],
                                   atol=1e-3 if dtype == np.float32 else 1e-8)
        assert r.accuracy == pytest.approx(acc_r)
        close(r.delta, delta_r, dtype)
        close(r.probs, P_r, dtype)
        assert r.delta.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_layouts_and_out(dtype, rng):
    Z = rng.standard_normal((9, 6)).astype(dtype)
    labels = rng.integers(0, 6, 9)
    ref = R.softmax_cross_entropy(Z, np.eye(6)[labels])
    for Zv in variants(Z).values():
        r = F.softmax_cross_entropy(Zv, labels)
        close(r.delta, ref[2], dtype)
    bufs = (np.empty((9, 6), dtype), np.empty((9, 6), dtype))
    r = F.softmax_cross_entropy(Z, labels, out=bufs)
    assert np.shares_memory(r.delta, bufs[0]) and np.shares_memory(r.probs, bufs[1])


def test_softmax_cross_entropy_extreme_logits():
    Z = np.array([[1e4, -1e4, 0.0], [0.0, 1e4, -1e4]])
    r = F.softmax_cross_entropy(Z, np.array([1, 1]))
    assert np.isfinite(r.loss) and r.loss == pytest.approx(2e4)
    assert r.accuracy == 0.5
    np.testing.assert_allclose(r.delta, [[1, -1, 0], [0, 0, 0]], atol=1e-12)


def test_loss_label_errors():
    Z = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"\[0, 4\).*from 0 to 7"):
        F.softmax_cross_entropy(Z, np.array([0, 1, 7]))
    with pytest.raises(ValueError, match="one-hot"):
        F.softmax_cross_entropy(Z, np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"expected one-hot rows of shape \(3, 4\)"):
        F.softmax_cross_entropy(Z, np.eye(4)[:2])
    with pytest.raises(ValueError, match="class indices"):
        F.softmax_cross_entropy(Z, np.array([0.5, 1, 2]))
    with pytest.raises(ValueError, match="empty batch"):
        F.softmax_cross_entropy(np.zeros((0, 4)), np.zeros(0, int))
    with pytest.raises(ValueError, match="0 or 1"):
        F.sigmoid_binary_cross_entropy(np.zeros((2, 1)), np.array([0, 2]))


@pytest.mark.parametrize("dtype", DTYPES)
@given(n=st.integers(1, 60), scale=st.sampled_from([1.0, 50.0, 1e4]))
def test_sigmoid_bce_matches_reference(dtype, n, scale):
    rng = np.random.default_rng(n)
    Z = (rng.standard_normal((n, 1)) * scale).astype(dtype)
    y = rng.integers(0, 2, n)
    loss_r, acc_r, delta_r, P_r = R.sigmoid_binary_cross_entropy(Z, y)
    r = F.sigmoid_binary_cross_entropy(Z, y)
    np.testing.assert_allclose(r.loss, loss_r, rtol=R.tol(dtype)["rtol"], atol=1e-6)
    assert r.accuracy == pytest.approx(acc_r)
    close(r.delta, delta_r, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_squared_error_and_cross_entropy(dtype, rng):
    P = rng.random((7, 5)).astype(dtype)
    Y = rng.random((7, 5)).astype(dtype)
    loss, delta = F.squared_error(P, Y)
    loss_r, delta_r = R.squared_error(P, Y)
    np.testing.assert_allclose(loss, loss_r, rtol=1e-5)
    close(delta, delta_r, dtype)
    probs = F.softmax(rng.standard_normal((7, 5)).astype(dtype))
    onehot = np.eye(5)[rng.integers(0, 5, 7)]
    loss, acc = F.cross_entropy(onehot, probs)
    loss_r, acc_r = R.compute_loss_and_acc(onehot, probs.astype(np.float64))
    np.testing.assert_allclose(loss, loss_r, rtol=1e-5)
    assert acc == pytest.approx(acc_r)


def _numeric_grad(f, Z, eps=1e-6):
    g = np.zeros_like(Z)
    for idx in np.ndindex(Z.shape):
        z0 = Z[idx]
        Z[idx] = z0 + eps
        up = f(Z)
        Z[idx] = z0 - eps
        down = f(Z)
        Z[idx] = z0
        g[idx] = (up - down) / (2 * eps)
    return g


def test_loss_gradients_by_finite_differences(rng):
    Z = rng.standard_normal((5, 4))
    labels = rng.integers(0, 4, 5)
    num = _numeric_grad(lambda z: F.softmax_cross_entropy(z, labels).loss, Z)
    np.testing.assert_allclose(F.softmax_cross_entropy(Z, labels).delta, num, atol=1e-7)
    Zb = rng.standard_normal((6, 1)) * 3
    yb = rng.integers(0, 2, 6)
    num = _numeric_grad(lambda z: F.sigmoid_binary_cross_entropy(z, yb).loss, Zb)
    np.testing.assert_allclose(F.sigmoid_binary_cross_entropy(Zb, yb).delta, num, atol=1e-7)
    T = rng.random((3, 4))
    P = rng.random((3, 4))
    num = _numeric_grad(lambda p: F.squared_error(p, T)[0], P)
    np.testing.assert_allclose(F.squared_error(P, T)[1], num, atol=1e-7)


@pytest.mark.parametrize("act", ["linear", "sigmoid", "tanh", "relu"])
def test_dense_gradients_by_finite_differences(act, rng):
    X = rng.standard_normal((4, 3))
    W = rng.standard_normal((3, 5))
    b = rng.standard_normal(5)
    C = rng.standard_normal((4, 5))  # J = sum(C * post) so dJ/dpost = C

    def J(X=X, W=W, b=b):
        return float(np.sum(C * F.dense_forward(X, W, b, act)[1]))

    post = F.dense_forward(X, W, b, act)[1]
    gW, gb, gX = F.dense_backward(C, post, X, W, act)
    np.testing.assert_allclose(gW, _numeric_grad(lambda w: J(W=w), W.copy()), atol=1e-6)
    np.testing.assert_allclose(gb, _numeric_grad(lambda v: J(b=v), b.copy()), atol=1e-6)
    np.testing.assert_allclose(gX, _numeric_grad(lambda x: J(X=x), X.copy()), atol=1e-6)


# -------------------------------------------------------------------------- optimizers

def _params(rng, dtype):
    shapes = [(6, 4), (4,), (4, 3), (3,)]
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["sgd", "momentum", "nesterov", "adam"])
@pytest.mark.parametrize("wd", [0.0, 0.01])
def test_optimizer_parity_over_steps(dtype, kind, wd, rng):
    fast = _params(rng, dtype)
    ref = [p.astype(np.float64) for p in fast]
    s1 = [np.zeros_like(p) for p in fast]
    s2 = [np.zeros_like(p) for p in fast]
    r1 = [np.zeros_like(p) for p in ref]
    r2 = [np.zeros_like(p) for p in ref]
    for step in range(1, 13):
        grads = [rng.standard_normal(p.shape).astype(dtype) for p in fast]
        g64 = [g.astype(np.float64) for g in grads]
        if kind == "sgd":
            F.sgd_update(fast, grads, 0.05, weight_decay=wd)
            R.sgd(ref, g64, 0.05, wd)
        elif kind in ("momentum", "nesterov"):
            F.momentum_update(fast, grads, s1, 0.05, mu=0.9, nesterov=kind == "nesterov", weight_decay=wd)
            R.momentum(ref, g64, r1, 0.05, 0.9, wd, kind == "nesterov")
        else:
            F.adam_update(fast, grads, s1, s2, step, 0.01, weight_decay=wd)
            R.adam(ref, g64, r1, r2, step, 0.01, wd=wd)
    for a, b in zip(fast + s1 + s2, ref + r1 + r2):
        close(a, b, dtype, scale=10)


def test_optimizer_bad_input_changes_nothing(rng):
    params = _params(rng, np.float64)
    before = [p.copy() for p in params]
    grads = [np.ones_like(p) for p in params]
    grads[3] = np.array([1.0, np.nan, 0.0])
    with pytest.raises(ValueError, match=r"grads\[3\].*NaN"):
        F.sgd_update(params, grads, 0.1)
    grads[3] = np.ones(4)
    with pytest.raises(ValueError, match=r"grads\[3\]: expected shape \(3,\)"):
        F.sgd_update(params, grads, 0.1)
    with pytest.raises(ValueError, match=r"buffers: expected 4"):
        F.momentum_update(params, [np.ones_like(p) for p in params], [np.zeros(1)], 0.1)
    with pytest.raises(ValueError, match="lr"):
        F.sgd_update(params, [np.ones_like(p) for p in params], -1.0)
    for a, b in zip(params, before):
        np.testing.assert_array_equal(a, b)
    frozen = params[0].copy()
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        F.sgd_update([frozen], [np.ones_like(frozen)], 0.1)
    with pytest.raises(ValueError, match="beta1"):
        q = params[0]
        F.adam_update([q], [np.ones_like(q)], [np.zeros_like(q)], [np.zeros_like(q)], 1, beta1=1.0)
    with pytest.raises(ValueError, match="eps"):
        F.adam_update([q], [np.ones_like(q)], [np.zeros_like(q)], [np.zeros_like(q)], 1, eps=0.0)
    np.testing.assert_array_equal(params[0], before[0])


# ------------------------------------------------------------------------------- gather

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8, np.int64])
@given(n=st.integers(0, 30), shape=st.sampled_from([(), (5,), (3, 4)]))
def test_gather_rows_matches_fancy_indexing(dtype, n, shape):
    rng = np.random.default_rng(n)
    src = (rng.random((12,) + shape) * 100).astype(dtype)
    idx = rng.integers(0, 12, n)
    np.testing.assert_array_equal(F.gather_rows(src, idx), src[idx])
    ro = src.copy()
    ro.flags.writeable = False
    np.testing.assert_array_equal(F.gather_rows(ro[::1], idx), src[idx])


def test_gather_rows_checks_indices():
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        F.gather_rows(np.ones((3, 2)), [0, 3])
    with pytest.raises(ValueError, match="integer"):
        F.gather_rows(np.ones((3, 2)), [0.5])


# ----------------------------------------------------------------- overlapping out= buffers

def test_out_buffers_that_overlap_an_input_are_refused(rng):
    """A kernel that writes into memory it still reads gives silently wrong results (gather_rows over its own
    source; dense_forward writing pre over X was off by up to 2.8): refused, naming both."""
    s = np.arange(12.0).reshape(4, 3)
    with pytest.raises(ValueError, match="out.*shares memory with src"):
        F.gather_rows(s, [3, 2, 1, 0], out=s)
    X = rng.standard_normal((5, 4))
    W, b = rng.standard_normal((4, 4)), np.zeros(4)
    with pytest.raises(ValueError, match=r"out\[0\] \(pre\).*shares memory with X"):
        F.dense_forward(X, W, b, "relu", out=(X, np.empty((5, 4))))
    pre = np.empty((5, 4))
    with pytest.raises(ValueError, match=r"out\[1\] \(post\).*shares memory with out\[0\]"):
        F.dense_forward(X, W, b, "relu", out=(pre, pre))
    Z = rng.standard_normal((6, 3))
    with pytest.raises(ValueError, match="shares memory with logits"):
        F.softmax_cross_entropy(Z, np.zeros(6, int), out=(Z, np.empty((6, 3))))
    big = rng.standard_normal((5, 3))
    with pytest.raises(ValueError, match="shares memory with Z"):
        F.activation(big[:4], "sigmoid", out=big[1:])  # shifted by a row: reads what it already wrote
    delta, post = rng.standard_normal((5, 4)), rng.random((5, 4))
    with pytest.raises(ValueError, match="shares memory with delta"):
        F.dense_backward(delta, post, X, W, "sigmoid", out=(np.empty((4, 4)), np.empty(4), delta[:, :4]))
    np.testing.assert_array_equal(s, np.arange(12.0).reshape(4, 3))  # nothing was modified


def test_an_elementwise_activation_may_write_over_its_input(rng):
    Z = rng.standard_normal((5, 3))
    ref = R.activation(Z, "tanh")
    out = F.activation(Z, "tanh", out=Z)
    assert out is Z
    close(Z, ref, np.float64)


def test_optimizer_updates_in_parts_give_the_same_numbers_on_any_thread_count(rng):
    """An update of more than one part's values (fastnn._config.PARTS['vector_part']) is cut into parts of the
    vector that the team shares: every thread count gives the same bits."""
    from fastnn._kernels import _core

    n = 200_003
    p0 = rng.standard_normal(n).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float32)
    assert _core.vector_parts_of(n) > 4
    old = _core.get_num_threads()
    out = []
    try:
        for threads in (1, 2, 3, 8):
            _core.set_num_threads(threads)
            p, m, v = p0.copy(), np.zeros(n, np.float32), np.zeros(n, np.float32)
            for step in range(1, 4):
                F.adam_update([p], [g], [m], [v], step, 1e-3)
            out.append((p, m, v))
    finally:
        _core.set_num_threads(old)
    for got in out[1:]:
        for a, b in zip(got, out[0]):
            np.testing.assert_array_equal(a, b)
