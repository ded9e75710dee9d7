"""Convolution and max-pooling kernels (through fastnn.functional) against the NumPy references in
_reference.py; finite-difference gradients; PyTorch parity when torch is installed."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fastnn.functional as F
from fastnn._kernels import _core

import _reference as R

DTYPES = [np.float32, np.float64]
ACTS = ["linear", "sigmoid", "tanh", "relu"]
settings.register_profile("fastnn", max_examples=40, deadline=None)
settings.load_profile("fastnn")


def close(a, b, dtype, scale=1.0):
    tol = R.tol(dtype)
    np.testing.assert_allclose(a, b, rtol=tol["rtol"], atol=tol["atol"] * scale)


def conv_case(seed, N, H, W, C, Fo, k, dtype):
    r = np.random.default_rng(seed)
    X = r.standard_normal((N, H, W, C)).astype(dtype)
    Wt = (r.standard_normal((k, k, C, Fo)) / np.sqrt(k * k * C)).astype(dtype)
    b = r.standard_normal(Fo).astype(dtype)
    return X, Wt, b


def fits(H, W, k, padding):
    return padding == "same" or (H >= k and W >= k)


conv_shapes = st.tuples(st.integers(1, 4), st.integers(1, 11), st.integers(1, 11), st.integers(1, 5),
                        st.integers(1, 5), st.integers(1, 5), st.integers(1, 3), st.sampled_from(F.PADDINGS))


def variants(a):
    """The same values as C-ordered, F-ordered, strided (non-contiguous) and read-only arrays."""
    wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    wide[..., ::2] = a
    ro = a.copy()
    ro.flags.writeable = False
    return {"C": a, "F": np.asfortranarray(a), "strided": wide[..., ::2], "readonly": ro}


# ------------------------------------------------------------------------- convolution

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTS)
@given(shape=conv_shapes)
def test_conv_forward_matches_reference(dtype, act, shape):
    N, H, W, C, Fo, k, s, padding = shape
    assume(fits(H, W, k, padding))
    X, Wt, b = conv_case(hash(shape) % 2**32, N, H, W, C, Fo, k, dtype)
    pre, post = F.conv2d_forward(X, Wt, b, act, stride=s, padding=padding)
    rpre, rpost = R.conv2d_forward(X, Wt, b, act, s, padding)
    assert pre.dtype == dtype and pre.shape == rpre.shape == F.conv2d_forward(X, Wt, b, act, stride=s,
                                                                              padding=padding)[1].shape
    assert pre.shape[1:] == F.conv2d_output_shape((H, W, C), Wt.shape, s, padding)
    close(pre, rpre, dtype)
    close(post, rpost, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTS)
@given(shape=conv_shapes, need_gx=st.booleans())
def test_conv_backward_matches_reference(dtype, act, shape, need_gx):
    N, H, W, C, Fo, k, s, padding = shape
    assume(fits(H, W, k, padding))
    X, Wt, b = conv_case(hash(shape) % 2**32, N, H, W, C, Fo, k, dtype)
    _, post = F.conv2d_forward(X, Wt, b, act, stride=s, padding=padding)
    delta = np.random.default_rng(7).standard_normal(post.shape).astype(dtype)
    gW, gb, gX = F.conv2d_backward(delta, post, X, Wt, act, stride=s, padding=padding, need_grad_X=need_gx)
    rW, rb, rX = R.conv2d_backward(delta, post, X, Wt, act, s, padding)
    scale = max(1.0, np.sqrt(N * post.shape[1] * post.shape[2]))
    assert gW.dtype == dtype and gW.shape == Wt.shape and gb.shape == b.shape
    close(gW, rW, dtype, scale)
    close(gb, rb, dtype, scale)
    if need_gx:
        assert gX.shape == X.shape
        close(gX, rX, dtype, scale)
    else:
        assert gX is None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["C", "F", "strided", "readonly"])
def test_conv_accepts_any_layout(dtype, layout):
    X, Wt, b = conv_case(3, 3, 9, 8, 3, 4, 3, dtype)
    delta = np.random.default_rng(8).standard_normal((3, 5, 4, 4)).astype(dtype)
    ref = F.conv2d_forward(X, Wt, b, "tanh", stride=2, padding="same")
    got = F.conv2d_forward(variants(X)[layout], variants(Wt)[layout], variants(b)[layout], "tanh", stride=2,
                           padding="same")
    for a, r in zip(got, ref):
        np.testing.assert_array_equal(a, r)
    post = ref[1]
    g_ref = F.conv2d_backward(delta, post, X, Wt, "tanh", stride=2, padding="same")
    g = F.conv2d_backward(variants(delta)[layout], variants(post)[layout], variants(X)[layout], variants(Wt)[layout],
                          "tanh", stride=2, padding="same")
    for a, r in zip(g, g_ref):
        np.testing.assert_array_equal(a, r)


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_out_buffers_are_used(dtype):
    X, Wt, b = conv_case(4, 2, 6, 7, 2, 3, 3, dtype)
    pre, post = np.empty((2, 6, 7, 3), dtype), np.empty((2, 6, 7, 3), dtype)
    got = F.conv2d_forward(X, Wt, b, "relu", padding="same", out=(pre, post))
    assert got[0] is pre and got[1] is post
    close(post, R.conv2d_forward(X, Wt, b, "relu", 1, "same")[1], dtype)
    bufs = (np.empty_like(Wt), np.empty_like(b), np.empty_like(X))
    delta = np.ones_like(post)
    g = F.conv2d_backward(delta, post, X, Wt, "relu", padding="same", out=bufs)
    assert all(np.shares_memory(a, o) for a, o in zip(g, bufs))
    for a, r in zip(g, R.conv2d_backward(delta, post, X, Wt, "relu", 1, "same")):
        close(a, r, dtype, 10)
    with pytest.raises(ValueError, match=r"out\[1\] \(post\): the buffer shares memory with out\[0\] \(pre\)"):
        F.conv2d_forward(X, Wt, b, "relu", padding="same", out=(pre, pre))
    with pytest.raises(ValueError, match=r"out\[2\] \(grad_X\): the buffer shares memory with X"):
        F.conv2d_backward(delta, post, X, Wt, "relu", padding="same", out=(bufs[0], bufs[1], X))
    with pytest.raises(ValueError, match=r"out\[0\] \(pre\): expected a buffer of shape \(2, 4, 5, 3\)"):
        F.conv2d_forward(X, Wt, b, "relu", out=(pre, post))  # 'valid' gives (2, 4, 5, 3)


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_zero_size_edges(dtype):
    # no images
    X, Wt, b = conv_case(5, 0, 5, 5, 2, 3, 3, dtype)
    pre, post = F.conv2d_forward(X, Wt, b, "relu")
    assert pre.shape == post.shape == (0, 3, 3, 3)
    gW, gb, gX = F.conv2d_backward(np.zeros((0, 3, 3, 3), dtype), post, X, Wt, "relu")
    assert np.all(gW == 0) and np.all(gb == 0) and gX.shape == (0, 5, 5, 2)
    # no output channels
    X, Wt, b = conv_case(5, 2, 5, 5, 2, 0, 3, dtype)
    pre, post = F.conv2d_forward(X, Wt, b, "relu")
    assert post.shape == (2, 3, 3, 0)
    gW, gb, gX = F.conv2d_backward(np.zeros((2, 3, 3, 0), dtype), post, X, Wt, "relu")
    assert gW.shape == (3, 3, 2, 0) and gb.shape == (0,) and np.all(gX == 0)
    # no input channels: the output is the bias alone; only the bias has a gradient
    X, Wt, b = conv_case(5, 2, 4, 4, 0, 3, 3, dtype)
    pre, post = F.conv2d_forward(X, Wt, b, "linear", padding="same")
    np.testing.assert_array_equal(pre, np.broadcast_to(b, (2, 4, 4, 3)))
    delta = np.ones((2, 4, 4, 3), dtype)
    gW, gb, gX = F.conv2d_backward(delta, post, X, Wt, "linear", padding="same")
    assert gW.shape == (3, 3, 0, 3) and gX.shape == (2, 4, 4, 0)
    np.testing.assert_array_equal(gb, np.full(3, 32.0))


def test_conv_threads_give_the_same_numbers_and_chunks_match_the_reference():
    """Large enough that each chunk is cut in two parts for two threads, and that the im2col workspace
    holds only part of the batch (several chunks, an odd count of images)."""
    X, Wt, b = conv_case(6, 61, 24, 24, 8, 16, 3, np.float64)
    per_image = 24 * 24 * 72 * 8
    assert 61 * per_image > F.conv.CONV_WORKSPACE_BYTES  # several chunks
    results = []
    old = _core.get_num_threads()
    try:
        for threads in (1, 2):
            _core.set_num_threads(threads)
            pre, post = F.conv2d_forward(X, Wt, b, "relu", padding="same")
            delta = np.cos(post)
            results.append((pre, post) + F.conv2d_backward(delta, post, X, Wt, "relu", padding="same"))
    finally:
        _core.set_num_threads(old)
    for a, c in zip(*results):
        np.testing.assert_array_equal(a, c)
    ref = R.conv2d_forward(X, Wt, b, "relu", 1, "same")
    close(results[0][1], ref[1], np.float64)
    for a, r in zip(results[0][2:], R.conv2d_backward(np.cos(ref[1]), ref[1], X, Wt, "relu", 1, "same")):
        close(a, r, np.float64, 100)


def _numeric_grad(f, x, eps=1e-6):
    g = np.zeros_like(x)
    flat, gf = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        fp = f()
        flat[i] = old - eps
        fm = f()
        flat[i] = old
        gf[i] = (fp - fm) / (2 * eps)
    return g


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("geometry", [(1, "valid"), (2, "same"), (3, "valid"), (1, "same")])
def test_conv_gradients_by_finite_differences(act, geometry, rng):
    s, padding = geometry
    X, Wt, b = conv_case(9, 2, 7, 6, 2, 3, 3, np.float64)
    Rw = rng.standard_normal(F.conv2d_forward(X, Wt, b, act, stride=s, padding=padding)[1].shape)

    def J():
        return float(np.sum(F.conv2d_forward(X, Wt, b, act, stride=s, padding=padding)[1] * Rw))

    post = F.conv2d_forward(X, Wt, b, act, stride=s, padding=padding)[1]
    gW, gb, gX = F.conv2d_backward(Rw, post, X, Wt, act, stride=s, padding=padding)
    for got, x in ((gW, Wt), (gb, b), (gX, X)):
        np.testing.assert_allclose(got, _numeric_grad(J, x), rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------- pooling

@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=st.tuples(st.integers(0, 4), st.integers(1, 11), st.integers(1, 11), st.integers(0, 5)),
       size=st.integers(1, 3), ties=st.booleans())
def test_max_pool_matches_reference(dtype, shape, size, ties):
    N, H, W, C = shape
    assume(H >= size and W >= size)
    r = np.random.default_rng(hash(shape) % 2**32)
    X = r.standard_normal(shape)
    if ties:  # many equal values: the first in window order must win, as in the reference
        X = np.round(X)
    X = X.astype(dtype)
    Y, arg = F.max_pool2d_forward(X, size)
    rY, rarg = R.max_pool2d_forward(X, size)
    assert Y.dtype == dtype and arg.dtype == np.int32 and Y.shape == (N, H // size, W // size, C)
    np.testing.assert_array_equal(Y, rY)
    np.testing.assert_array_equal(arg, rarg)
    dY = r.standard_normal(Y.shape).astype(dtype)
    gX = F.max_pool2d_backward(dY, arg, X.shape, size=size)
    assert gX.dtype == dtype
    np.testing.assert_array_equal(gX, R.max_pool2d_backward(dY, rarg, X.shape).astype(dtype))


def test_max_pool_nan_is_the_maximum():
    X = np.array([1.0, np.nan, 3.0, 2.0]).reshape(1, 2, 2, 1)
    Y, arg = F.max_pool2d_forward(X)
    assert np.isnan(Y[0, 0, 0, 0]) and arg[0, 0, 0, 0] == 1


@pytest.mark.parametrize("layout", ["C", "F", "strided", "readonly"])
def test_max_pool_layouts_and_out(layout, rng):
    X = rng.standard_normal((3, 7, 6, 4))
    Y, arg = F.max_pool2d_forward(variants(X)[layout])
    rY, rarg = R.max_pool2d_forward(X)
    np.testing.assert_array_equal(Y, rY)
    bufs = (np.empty_like(Y), np.empty(Y.shape, np.int32))
    got = F.max_pool2d_forward(X, out=bufs)
    assert got[0] is bufs[0] and got[1] is bufs[1]
    np.testing.assert_array_equal(bufs[1], rarg)
    dY = rng.standard_normal(Y.shape)
    gbuf = np.full(X.shape, 7.0)
    gX = F.max_pool2d_backward(variants(dY)[layout], variants(arg)[layout], X.shape, out=gbuf)
    assert gX is gbuf
    np.testing.assert_array_equal(gX, R.max_pool2d_backward(dY, rarg, X.shape))


def test_max_pool_gradient_by_finite_differences(rng):
    X = rng.standard_normal((2, 5, 7, 3))  # distinct values: the max is differentiable
    Rw = rng.standard_normal((2, 2, 3, 3))

    def J():
        return float(np.sum(F.max_pool2d_forward(X)[0] * Rw))

    _, arg = F.max_pool2d_forward(X)
    np.testing.assert_allclose(F.max_pool2d_backward(Rw, arg, X.shape), _numeric_grad(J, X), atol=1e-7)


def test_max_pool_threads_give_the_same_numbers(rng):
    X = rng.standard_normal((33, 32, 32, 16)).astype(np.float32)
    old = _core.get_num_threads()
    try:
        out = []
        for threads in (1, 2):
            _core.set_num_threads(threads)
            out.append(F.max_pool2d_forward(X))
    finally:
        _core.set_num_threads(old)
    np.testing.assert_array_equal(out[0][0], out[1][0])
    np.testing.assert_array_equal(out[0][1], out[1][1])
    np.testing.assert_array_equal(out[0][0], R.max_pool2d_forward(X)[0])


# ------------------------------------------------------------------- a whole small CNN

def _small_cnn(params, X, labels):
    """conv3x3 same (relu) -> pool -> conv2x2 valid stride 1 (tanh) -> flatten -> dense softmax CE: loss
    and the gradients of every parameter, by the functional kernels."""
    W1, b1, W2, b2, W3, b3 = params
    _, a1 = F.conv2d_forward(X, W1, b1, "relu", padding="same")
    p1, arg = F.max_pool2d_forward(a1)
    _, a2 = F.conv2d_forward(p1, W2, b2, "tanh")
    flat = a2.reshape(len(X), -1)
    z, _ = F.dense_forward(flat, W3, b3, "linear")
    r = F.softmax_cross_entropy(z, labels)
    g3W, g3b, gflat = F.dense_backward(r.delta, z, flat, W3, "linear")
    g2W, g2b, gp1 = F.conv2d_backward(gflat.reshape(a2.shape), a2, p1, W2, "tanh")
    ga1 = F.max_pool2d_backward(gp1, arg, a1.shape)
    g1W, g1b, _ = F.conv2d_backward(ga1, a1, X, W1, "relu", padding="same", need_grad_X=False)
    return r.loss, [g1W, g1b, g2W, g2b, g3W, g3b]


def test_small_cnn_gradients_by_finite_differences(rng):
    X = rng.standard_normal((3, 7, 7, 2))
    labels = np.array([0, 2, 1])
    params = [rng.standard_normal((3, 3, 2, 4)) * 0.5, rng.standard_normal(4) * 0.1,
              rng.standard_normal((2, 2, 4, 3)) * 0.5, rng.standard_normal(3) * 0.1,
              rng.standard_normal((2 * 2 * 3, 3)) * 0.5, rng.standard_normal(3) * 0.1]
    _, grads = _small_cnn(params, X, labels)
    for p, g in zip(params, grads):
        num = _numeric_grad(lambda: _small_cnn(params, X, labels)[0], p)
        np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------------- bad input

def test_bad_input_names_the_function_and_the_shapes():
    X = np.zeros((2, 4, 4, 3))
    with pytest.raises(ValueError, match=r"conv2d_forward: images of shape \(H, W, C\) = \(4, 4, 3\) are too small "
                                         r"for a 5x5 kernel.*expected H >= 5 and W >= 5"):
        F.conv2d_forward(X, np.zeros((5, 5, 3, 2)), np.zeros(2))
    with pytest.raises(ValueError, match=r"conv2d_forward: W of shape \(3, 3, 2, 8\) expects 2 input channels.*"
                                         r"expected W of shape \(3, 3, 3, 8\)"):
        F.conv2d_forward(X, np.zeros((3, 3, 2, 8)), np.zeros(8))
    with pytest.raises(ValueError, match=r"conv2d_forward: padding must be one of \('valid', 'same'\), got 'full'"):
        F.conv2d_forward(X, np.zeros((3, 3, 3, 2)), np.zeros(2), padding="full")
    with pytest.raises(ValueError, match=r"conv2d_forward: stride: expected a positive integer, got 0"):
        F.conv2d_forward(X, np.zeros((3, 3, 3, 2)), np.zeros(2), stride=0)
    with pytest.raises(ValueError, match=r"conv2d_forward: b: expected shape \(2,\)"):
        F.conv2d_forward(X, np.zeros((3, 3, 3, 2)), np.zeros(3))
    with pytest.raises(ValueError, match=r"X: expected a 4-D array, got shape \(4, 4, 3\)"):
        F.conv2d_forward(X[0], np.zeros((3, 3, 3, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="conv2d_forward: .*softmax"):
        F.conv2d_forward(X, np.zeros((3, 3, 3, 2)), np.zeros(2), "softmax")
    with pytest.raises(ValueError, match=r"conv2d_backward: delta: expected shape \(2, 2, 2, 2\)"):
        F.conv2d_backward(np.zeros((2, 4, 4, 2)), np.zeros((2, 2, 2, 2)), X, np.zeros((3, 3, 3, 2)))
    with pytest.raises(ValueError, match=r"max_pool2d_forward: images of shape \(H, W, C\) = \(1, 4, 3\) are "
                                         r"smaller than the 2x2 window"):
        F.max_pool2d_forward(np.zeros((2, 1, 4, 3)))
    with pytest.raises(ValueError, match=r"max_pool2d_forward: size: expected a positive integer, got 0"):
        F.max_pool2d_forward(X, 0)
    Y, arg = F.max_pool2d_forward(X)
    with pytest.raises(ValueError, match=r"max_pool2d_backward: argmax: indices must lie in \[0, 48\)"):
        F.max_pool2d_backward(Y, arg + 100, X.shape)
    with pytest.raises(ValueError, match=r"max_pool2d_backward: argmax: expected an int32 array"):
        F.max_pool2d_backward(Y, arg.astype(np.int64), X.shape)
    with pytest.raises(ValueError, match=r"fit the window sizes \[3, 4, 5\]; pass size="):
        F.max_pool2d_backward(np.zeros((1, 1, 1, 1)), np.zeros((1, 1, 1, 1), np.int32), (1, 5, 5, 1))
    with pytest.raises(ValueError, match=r"grad_Y: expected shape \(2, 1, 1, 3\), the pooled output of inputs of "
                                         r"shape \(2, 4, 4, 3\) with 3x3 windows"):
        F.max_pool2d_backward(Y, arg, X.shape, size=3)
    with pytest.raises(TypeError, match="astype"):
        F.conv2d_forward(X.astype(complex), np.zeros((3, 3, 3, 2)), np.zeros(2))


def test_dtype_policy():
    X = np.ones((1, 3, 3, 1), np.float32)
    assert F.conv2d_forward(X, np.ones((2, 2, 1, 1), np.float32), np.zeros(1, np.float32))[0].dtype == np.float32
    assert F.conv2d_forward(X, np.ones((2, 2, 1, 1)), np.zeros(1))[0].dtype == np.float64
    assert F.max_pool2d_forward(X.astype(np.int16))[0].dtype == np.float64


# ------------------------------------------------------------------- PyTorch parity

def test_torch_parity_of_a_small_cnn(rng):
    """The same weights give PyTorch's outputs, loss and gradients (float32); weights are permuted from
    PyTorch's NCHW (F, C, KH, KW) to NHWC (KH, KW, C, F), and the dense input from C,H,W to H,W,C order."""
    torch = pytest.importorskip("torch", reason="PyTorch is an optional test dependency (not installed)")
    nn = torch.nn
    torch.manual_seed(0)
    conv1, conv2 = nn.Conv2d(1, 6, 3, padding="same"), nn.Conv2d(6, 8, 3, stride=1)
    pool, lin = nn.MaxPool2d(2), nn.Linear(8 * 5 * 5, 10)
    Xn = rng.standard_normal((5, 1, 24, 24)).astype(np.float32)
    labels = np.array([1, 3, 9, 0, 3])
    xt = torch.tensor(Xn, requires_grad=True)
    a1 = torch.relu(conv1(xt))
    p1 = pool(a1)
    a2 = torch.relu(conv2(p1))
    p2 = pool(a2)
    z = lin(p2.flatten(1))
    loss = nn.functional.cross_entropy(z, torch.tensor(labels), reduction="sum")
    loss.backward()

    def w(conv):
        return conv.weight.detach().numpy().transpose(2, 3, 1, 0)

    X = Xn.transpose(0, 2, 3, 1)
    W1, b1, W2, b2 = w(conv1), conv1.bias.detach().numpy(), w(conv2), conv2.bias.detach().numpy()
    # Linear's input is the flattened (C, H, W) map; ours is (H, W, C): permute its rows
    W3 = lin.weight.detach().numpy().T.reshape(8, 5, 5, 10).transpose(1, 2, 0, 3).reshape(200, 10)
    b3 = lin.bias.detach().numpy()
    _, q1 = F.conv2d_forward(X, W1, b1, "relu", padding="same")
    r1, arg1 = F.max_pool2d_forward(q1)
    _, q2 = F.conv2d_forward(r1, W2, b2, "relu")
    r2, arg2 = F.max_pool2d_forward(q2)
    flat = r2.reshape(5, -1)
    zz, _ = F.dense_forward(flat, W3, b3, "linear")
    res = F.softmax_cross_entropy(zz, labels)
    tol = dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(q1, a1.detach().numpy().transpose(0, 2, 3, 1), **tol)
    np.testing.assert_allclose(r2, p2.detach().numpy().transpose(0, 2, 3, 1), **tol)
    np.testing.assert_allclose(zz, z.detach().numpy(), **tol)
    np.testing.assert_allclose(res.loss, loss.item(), rtol=1e-5)
    g3W, g3b, gflat = F.dense_backward(res.delta, zz, flat, W3, "linear")
    gq2 = F.max_pool2d_backward(gflat.reshape(r2.shape), arg2, q2.shape)
    g2W, g2b, gr1 = F.conv2d_backward(gq2, q2, r1, W2, "relu")
    gq1 = F.max_pool2d_backward(gr1, arg1, q1.shape)
    g1W, g1b, gX = F.conv2d_backward(gq1, q1, X, W1, "relu", padding="same")
    np.testing.assert_allclose(g1W, conv1.weight.grad.numpy().transpose(2, 3, 1, 0), **tol)
    np.testing.assert_allclose(g1b, conv1.bias.grad.numpy(), **tol)
    np.testing.assert_allclose(g2W, conv2.weight.grad.numpy().transpose(2, 3, 1, 0), **tol)
    np.testing.assert_allclose(g2b, conv2.bias.grad.numpy(), **tol)
    np.testing.assert_allclose(g3W, lin.weight.grad.numpy().T.reshape(8, 5, 5, 10).transpose(1, 2, 0, 3)
                               .reshape(200, 10), **tol)
    np.testing.assert_allclose(g3b, lin.bias.grad.numpy(), **tol)
    np.testing.assert_allclose(gX, xt.grad.numpy().transpose(0, 2, 3, 1), **tol)


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
@pytest.mark.parametrize("geometry", [(3, 2, "valid"), (4, 1, "same"), (5, 1, "same"), (2, 3, "valid")])
def test_torch_parity_of_strides_and_same_padding(geometry, rng):
    torch = pytest.importorskip("torch", reason="PyTorch is an optional test dependency (not installed)")
    k, s, padding = geometry
    conv = torch.nn.Conv2d(3, 4, k, stride=s, padding=padding)
    Xn = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    out = conv(torch.tensor(Xn))
    _, got = F.conv2d_forward(Xn.transpose(0, 2, 3, 1), conv.weight.detach().numpy().transpose(2, 3, 1, 0),
                              conv.bias.detach().numpy(), "linear", stride=s, padding=padding)
    np.testing.assert_allclose(got, out.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------- the compiled network epoch

def _unpack(layers, shape, theta):
    """Views of theta per layer: (W, b) or None, by the documented layout."""
    offsets, _ = F.network_parameter_offsets(layers, shape)
    views, cur = [], shape
    for layer, off in zip(layers, offsets):
        kind = layer[0]
        if kind == "conv":
            k = layer[3] if isinstance(layer[3], tuple) else (layer[3], layer[3])
            Wt = theta[off[0]:off[1]].reshape(k[0], k[1], layer[1], layer[2])
            views.append((Wt, theta[off[1]:off[1] + layer[2]]))
            cur = F.conv2d_output_shape(cur, Wt.shape, layer[4], layer[5])
        elif kind == "dense":
            views.append((theta[off[0]:off[1]].reshape(layer[1], layer[2]), theta[off[1]:off[1] + layer[2]]))
        else:
            views.append(None)
    return views


def _step_batch(layers, views, x, t, loss):
    """The step-by-step path: loss and per-layer (grad_W, grad_b) of one batch, by the functional kernels."""
    n, acts, cache = len(x), [x], []
    for layer, v in zip(layers, views):
        kind, a = layer[0], acts[-1]
        if kind == "conv":
            pre, post = F.conv2d_forward(a, *v, layer[6], stride=layer[4], padding=layer[5])
            cache.append(None)
        elif kind == "pool":
            post, arg = F.max_pool2d_forward(a, layer[1])
            cache.append(arg)
        elif kind == "flatten":
            post = a.reshape(n, -1)
            cache.append(None)
        else:
            last = layer is layers[-1]
            act = "linear" if last and loss != "squared_error" else layer[3]
            pre, post = F.dense_forward(a, *v, act)
            cache.append(pre)
        acts.append(post)
    if loss == "cross_entropy":
        r = F.softmax_cross_entropy(cache[-1], t)
        value, delta = r.loss, r.delta
    elif loss == "binary_cross_entropy":
        r = F.sigmoid_binary_cross_entropy(cache[-1], t)
        value, delta = r.loss, r.delta
    else:
        value, delta = F.squared_error(acts[-1], t)
    grads = [None] * len(layers)
    for i in range(len(layers) - 1, -1, -1):
        layer, a_in, a_out = layers[i], acts[i], acts[i + 1]
        kind = layer[0]
        if kind == "dense":
            act = "linear" if i == len(layers) - 1 and loss != "squared_error" else layer[3]
            gW, gb, delta = F.dense_backward(delta, a_out, a_in, views[i][0], act, need_grad_X=i > 0)
            grads[i] = (gW, gb)
        elif kind == "flatten":
            delta = delta.reshape(a_in.shape)
        elif kind == "pool":
            delta = F.max_pool2d_backward(delta, cache[i], a_in.shape, size=layer[1]) if i > 0 else None
        else:
            gW, gb, delta = F.conv2d_backward(delta, a_out, a_in, views[i][0], layer[6], stride=layer[4],
                                              padding=layer[5], need_grad_X=i > 0)
            grads[i] = (gW, gb)
    return value, grads


def step_epoch(layers, shape, theta, X, T, order, bs, loss, optimizer, lr, wd, state, step=0):
    views = _unpack(layers, shape, theta)
    params = [p for v in views if v is not None for p in v]
    starts = np.cumsum([0] + [p.size for p in params])
    bufs = [[b[o:o + p.size].reshape(p.shape) for p, o in zip(params, starts)] if b.size else None for b in state]
    total = 0.0
    for s in range(0, len(order), bs):
        idx = order[s:s + bs]
        value, grads = _step_batch(layers, views, X[idx], T[idx], loss)
        total += value
        g = [x for gr in grads if gr is not None for x in gr]
        step += 1
        if optimizer == "sgd":
            F.sgd_update(params, g, lr, weight_decay=wd)
        elif optimizer in ("momentum", "nesterov"):
            F.momentum_update(params, g, bufs[0], lr, mu=0.9, nesterov=optimizer == "nesterov", weight_decay=wd)
        else:
            F.adam_update(params, g, bufs[0], bufs[1], step, lr, weight_decay=wd)
    return total, step


NETS = {
    "two_conv": ([("conv", 1, 4, 3, 1, "same", "relu"), ("pool", 2), ("conv", 4, 6, 3, 2, "valid", "tanh"),
                  ("flatten",), ("dense", 54, 10, "relu"), ("dense", 10, 5, "softmax")], (16, 16, 1),
                 "cross_entropy"),
    "odd": ([("conv", 3, 5, (2, 3), 1, "valid", "sigmoid"), ("conv", 5, 2, 1, 1, "valid", "linear"), ("pool", 3),
             ("flatten",), ("dense", 12, 1, "sigmoid")], (10, 9, 3), "binary_cross_entropy"),
    "pool_first": ([("pool", 2), ("conv", 2, 3, 3, 2, "same", "relu"), ("flatten",), ("dense", 12, 7, "tanh"),
                    ("dense", 7, 4, "linear")], (7, 8, 2), "squared_error"),
    "dense_only": ([("flatten",), ("dense", 20, 6, "relu"), ("dense", 6, 3, "softmax")], (4, 5, 1), "cross_entropy"),
}


def _targets(rng, loss, n, c):
    if loss == "cross_entropy":
        return np.eye(c)[rng.integers(0, c, n)]
    if loss == "binary_cross_entropy":
        return rng.integers(0, 2, (n, 1)).astype(float)
    return rng.standard_normal((n, c))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adam"])
@pytest.mark.parametrize("net", list(NETS))
def test_network_epoch_matches_the_step_path(dtype, optimizer, net, rng):
    layers, shape, loss = NETS[net]
    N, bs = 53, 12  # a short last batch
    X = rng.standard_normal((N,) + shape).astype(dtype)
    T = _targets(rng, loss, N, layers[-1][2]).astype(dtype)
    plan = F.network_plan(layers, shape, loss, optimizer=optimizer, batch_size=bs, dtype=dtype, weight_decay=1e-3)
    theta0 = (rng.standard_normal(plan.n_params) * 0.3).astype(dtype)
    order = rng.permutation(N)
    lr = 1e-3 if optimizer == "adam" else 1e-2
    results = []
    for threads in (1, 2):
        theta, state = theta0.copy(), plan.new_state()
        r = F.train_epoch(plan, X, T, order, theta, state, lr=lr, step=3, threads=threads)
        results.append((theta, state, r))
    np.testing.assert_array_equal(results[0][0], results[1][0])  # 1 and 2 threads: the same bits
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_array_equal(a, b)
    assert results[0][2].loss == results[1][2].loss and results[0][2].step == 3 + 5
    theta = theta0.copy()
    state = [np.zeros(n, dtype) for n in plan.state_sizes]
    total, _ = step_epoch(layers, shape, theta, X, T, order, bs, loss, optimizer, lr, 1e-3, state, step=3)
    tol = dict(rtol=2e-4, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(results[0][0], theta, **tol)
    for a, b in zip(results[0][1], state):
        np.testing.assert_allclose(a, b, **tol)
    np.testing.assert_allclose(results[0][2].loss, total, rtol=tol["rtol"])
    assert not np.array_equal(theta, theta0)


def test_network_epoch_large_enough_to_split_products_and_batch_of_one(rng):
    """Products large enough to be cut for the team, images in 4-D, a batch size of 1 (part 0 is empty)."""
    layers = [("conv", 2, 16, 3, 1, "same", "relu"), ("pool", 2), ("conv", 16, 32, 3, 1, "same", "relu"), ("pool", 2),
              ("flatten",), ("dense", 512, 64, "relu"), ("dense", 64, 10, "softmax")]
    shape = (16, 16, 2)
    X = rng.standard_normal((40,) + shape).astype(np.float32)
    T = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 40)]
    for bs in (1, 32):
        plan = F.network_plan(layers, shape, "cross_entropy", optimizer="momentum", batch_size=bs, dtype="float32")
        theta0 = (rng.standard_normal(plan.n_params) * 0.05).astype(np.float32)
        order = np.arange(40 if bs > 1 else 5)
        out = []
        for threads in (1, 2):
            theta, state = theta0.copy(), plan.new_state()
            F.train_epoch(plan, X, T, order, theta, state, lr=1e-3, threads=threads)
            out.append(theta)
        np.testing.assert_array_equal(out[0], out[1])
        theta = theta0.copy()
        state = [np.zeros(n, np.float32) for n in plan.state_sizes]
        step_epoch(layers, shape, theta, X, T, order, bs, "cross_entropy", "momentum", 1e-3, 0.0, state)
        np.testing.assert_allclose(out[0], theta, rtol=2e-4, atol=2e-5)


def test_network_epoch_stops_at_a_non_finite_loss(rng):
    layers, shape, loss = NETS["two_conv"]
    plan = F.network_plan(layers, shape, loss, batch_size=8)
    X = rng.standard_normal((24,) + shape)
    X[10, 3, 3, 0] = np.inf
    T = _targets(rng, loss, 24, 5)
    theta = rng.standard_normal(plan.n_params) * 0.3
    before = theta.copy()
    r = F.train_epoch(plan, X, T, np.arange(24), theta, plan.new_state(), lr=1e-2)
    assert not np.isfinite(r.loss) and r.step == 1  # the first batch's update, then the bad one stopped it
    assert not np.array_equal(theta, before) and np.all(np.isfinite(theta))


def test_network_plan_bad_input_names_the_layer():
    conv = ("conv", 1, 4, 3, 1, "valid", "relu")
    with pytest.raises(ValueError, match=r"layers\[0\] \(conv\): expected 1 input channels, got images of shape "
                                         r"\(H, W, C\) = \(8, 8, 3\)"):
        F.network_plan([conv, ("flatten",), ("dense", 144, 2, "softmax")], (8, 8, 3), "cross_entropy")
    with pytest.raises(ValueError, match=r"layers\[1\] \(conv\): images of shape \(H, W, C\) = \(2, 2, 4\) are too "
                                         r"small for a 3x3 kernel"):
        F.network_plan([conv, conv[:1] + (4, 4) + conv[3:], ("flatten",), ("dense", 4, 2, "softmax")], (4, 4, 1),
                       "cross_entropy")
    with pytest.raises(ValueError, match=r"layers\[2\] \(dense\): expected n_in = 144 \(the flattened input\), got "
                                         r"n_in = 100"):
        F.network_plan([conv, ("flatten",), ("dense", 100, 2, "softmax")], (8, 8, 1), "cross_entropy")
    with pytest.raises(ValueError, match=r"layers\[1\] \(dense\): expected a flat input.*\('flatten',\)"):
        F.network_plan([conv, ("dense", 144, 2, "softmax")], (8, 8, 1), "cross_entropy")
    with pytest.raises(ValueError, match=r"layers\[2\] \(conv\): expected images"):
        F.network_plan([("flatten",), ("dense", 64, 9, "relu"), conv], (8, 8, 1), "cross_entropy")
    with pytest.raises(ValueError, match=r"layers\[0\] \(conv\): padding must be one of"):
        F.network_plan([conv[:5] + ("full", "relu"), ("flatten",), ("dense", 144, 2, "softmax")], (8, 8, 1),
                       "cross_entropy")
    with pytest.raises(ValueError, match=r"layers\[0\] \(conv\): stride: expected a positive integer"):
        F.network_plan([conv[:4] + (0,) + conv[5:], ("flatten",), ("dense", 144, 2, "softmax")], (8, 8, 1),
                       "cross_entropy")
    with pytest.raises(ValueError, match=r"the last layer must be 'dense'"):
        F.network_plan([conv, ("pool", 2)], (8, 8, 1), "cross_entropy")
    with pytest.raises(ValueError, match=r"layers\[1\] \(pool\): images of shape \(H, W, C\) = \(6, 6, 4\) are "
                                         r"smaller than the 7x7 window"):
        F.network_plan([conv, ("pool", 7), ("flatten",), ("dense", 4, 2, "softmax")], (8, 8, 1), "cross_entropy")
    with pytest.raises(ValueError, match=r"layers\[0\]: unknown kind 'lstm'"):
        F.network_plan([("lstm", 3)], (8, 8, 1), "cross_entropy")
    with pytest.raises(ValueError, match=r"input_shape: expected the images' \(H, W, C\)"):
        F.network_plan([("flatten",), ("dense", 64, 2, "softmax")], (8, 8), "cross_entropy")
    plan = F.network_plan([conv, ("flatten",), ("dense", 144, 2, "softmax")], (8, 8, 1), "cross_entropy")
    with pytest.raises(ValueError, match=r"X: expected C-contiguous images of shape \(N, 8, 8, 1\) or rows \(N, 64\), "
                                         r"got shape \(5, 8, 8, 2\)"):
        F.train_epoch(plan, np.zeros((5, 8, 8, 2)), np.zeros((5, 2)), np.arange(5), np.zeros(plan.n_params),
                      plan.new_state(), lr=0.1)


def test_network_plan_accepts_dicts_and_its_layout_is_documented():
    layers = [{"kind": "conv", "in_channels": 1, "out_channels": 4, "kernel_size": 3, "padding": "same"},
              {"kind": "pool"}, {"kind": "flatten"}, {"kind": "dense", "n_in": 64, "n_out": 3, "activation": "softmax"}]
    plan = F.network_plan(layers, (8, 8, 1), "cross_entropy", dtype="float32")
    assert plan.offsets_of_layers == [(0, 36), None, None, (40, 232)] and plan.n_params == 235
    assert plan.layer_fields[0]["activation"] == "relu" and "NetworkPlan((8, 8, 1) conv-pool" in repr(plan)


@pytest.mark.parametrize("dtype", DTYPES)
def test_network_epoch_recomputing_im2col_rows_gives_the_same_bits(dtype, rng, monkeypatch):
    """Above KEEP_COLS_BYTES the epoch computes each convolution's im2col rows again in the backward, a block
    of images at a time, instead of keeping the whole batch's from the forward: the same rows, so the same
    numbers bitwise (several blocks per part, a short last batch, a batch of one, 1 and 2 threads)."""
    from fastnn.functional import conv_epoch as network

    layers = [("conv", 2, 16, 3, 1, "same", "relu"), ("pool", 2), ("conv", 16, 32, 3, 1, "same", "relu"), ("pool", 2),
              ("conv", 32, 8, 1, 1, "valid", "tanh"), ("flatten",), ("dense", 128, 16, "relu"),
              ("dense", 16, 10, "softmax")]
    shape = (16, 16, 2)
    X = rng.standard_normal((45,) + shape).astype(dtype)
    T = np.eye(10, dtype=dtype)[rng.integers(0, 10, 45)]
    order = rng.permutation(45)
    monkeypatch.setattr(network, "STACK_BLOCK_BYTES", 1 << 16)  # a few images per block
    for bs in (1, 13, 32):
        runs = {}
        for keep, limit in ((True, 1 << 40), (False, 0)):
            monkeypatch.setattr(network, "KEEP_COLS_BYTES", limit)
            plan = F.network_plan(layers, shape, "cross_entropy", optimizer="adam", batch_size=bs, dtype=dtype)
            assert plan.keep_cols == keep and (bs == 1 or plan.block < (bs + 1) // 2)  # several blocks per part
            theta0 = (np.random.default_rng(7).standard_normal(plan.n_params) * 0.1).astype(dtype)
            for threads in (1, 2):
                theta, state = theta0.copy(), plan.new_state()
                r = F.train_epoch(plan, X, T, order if bs > 1 else order[:6], theta, state, lr=1e-3, threads=threads)
                runs[keep, threads] = (theta, state, r.loss)
        ref = runs[True, 1]
        for key, (theta, state, loss) in runs.items():
            np.testing.assert_array_equal(theta, ref[0], err_msg=str((bs, key)))
            for a, b in zip(state, ref[1]):
                np.testing.assert_array_equal(a, b)
            assert loss == ref[2]
        assert not np.array_equal(ref[0], theta0)
