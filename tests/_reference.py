"""Plain NumPy references for every kernel, and the coursework's NumPy ``nn.py`` (from fastnn.coursework.numpy_nn).

The tests compare each compiled kernel with the function of the same role here.
Nothing in this module is fast or clever on purpose.
"""

import numpy as np

# The coursework's nn.py, one copy in the package: the plain NumPy module that fastnn.nn replaces (also the
# benchmarks' baseline). The tests use it as this module's R.forward, R.backwards, ...
from fastnn.coursework.numpy_nn import *  # noqa: F403
from fastnn.coursework.numpy_nn import (linear, linear_deriv, relu, relu_deriv, sigmoid, sigmoid_deriv, softmax, tanh,
                             tanh_deriv)

ACTIVATIONS = {"sigmoid": (sigmoid, sigmoid_deriv), "tanh": (tanh, tanh_deriv), "relu": (relu, relu_deriv),
               "linear": (linear, linear_deriv)}


# --------------------------------------------------------------------- tolerances

#: rtol and atol of a compiled kernel's output against its reference here, by dtype: the one table of
#: test_kernels, test_conv_kernels and test_processes. float32 1.5e-4 (scikit-image's; the largest error
#: measured over those files is 4e-6 of the value's scale), float64 1e-9.
TOLERANCES = {np.dtype(np.float32): dict(rtol=1.5e-4, atol=1.5e-4), np.dtype(np.float64): dict(rtol=1e-9, atol=1e-9)}


def tol(dtype):
    """``dict(rtol=..., atol=...)`` for ``dtype`` (np.float32, 'float32', an ndarray's dtype...) from TOLERANCES."""
    return dict(TOLERANCES[np.dtype(dtype)])


# --------------------------------------------------------------------- kernel references


def activation(Z, name):
    Z = np.asarray(Z, dtype=np.float64)
    if name == "softmax":
        return softmax(Z)
    if name == "sigmoid":
        with np.errstate(over="ignore"):
            return sigmoid(Z)
    return ACTIVATIONS[name][0](Z)


def activation_deriv(A, name):
    return ACTIVATIONS[name][1](np.asarray(A, dtype=np.float64))


def dense_forward(X, W, b, name):
    pre = X.astype(np.float64) @ W.astype(np.float64) + b.astype(np.float64)
    return pre, activation(pre, name)


def dense_backward(delta, post, X, W, name):
    dpre = activation_deriv(post, name) * delta
    X = X.astype(np.float64)
    return X.T @ dpre, dpre.sum(axis=0), dpre @ W.astype(np.float64).T


def softmax_cross_entropy(Z, Y):
    """Summed CE, accuracy and P - Y from logits, via log-sum-exp in float64."""
    Z = Z.astype(np.float64)
    Y = Y.astype(np.float64)
    m = Z.max(axis=1, keepdims=True)
    lse = m + np.log(np.exp(Z - m).sum(axis=1, keepdims=True))
    P = np.exp(Z - lse)
    loss = -np.sum(Y * (Z - lse))
    acc = np.mean(Z.argmax(axis=1) == Y.argmax(axis=1))
    return loss, acc, P - Y, P


def sigmoid_binary_cross_entropy(Z, y):
    Z = Z.astype(np.float64)
    y = y.astype(np.float64).reshape(Z.shape)
    loss = np.sum(np.logaddexp(0.0, Z) - y * Z)
    P = np.exp(-np.logaddexp(0.0, -Z))
    acc = np.mean((P >= 0.5) == (y >= 0.5))
    return loss, acc, P - y, P


def squared_error(P, Y):
    D = P.astype(np.float64) - Y.astype(np.float64)
    return np.sum(D * D), 2 * D


def sgd(params, grads, lr, wd=0.0):
    for p, g in zip(params, grads):
        p -= lr * (g + wd * p)


def momentum(params, grads, bufs, lr, mu, wd=0.0, nesterov=False):
    for p, g, m in zip(params, grads, bufs):
        g = g + wd * p
        m *= mu
        m -= lr * g
        if nesterov:
            p += mu * m - lr * g
        else:
            p += m


def adam(params, grads, m1, m2, step, lr, beta1=0.9, beta2=0.999, eps=1e-8, wd=0.0):
    for p, g, a, v in zip(params, grads, m1, m2):
        g = g + wd * p
        a[...] = beta1 * a + (1 - beta1) * g
        v[...] = beta2 * v + (1 - beta2) * g * g
        p -= lr * (a / (1 - beta1**step)) / (np.sqrt(v / (1 - beta2**step)) + eps)


# ---------------------------------------------------------------- the coursework's Q2 toy


def toy_data(rng_seed=None):
    """The four 2-D Gaussian classes of the coursework (10 points each), from the global RNG."""
    g0 = np.random.multivariate_normal([3.6, 40], [[0.05, 0], [0, 10]], 10)
    g1 = np.random.multivariate_normal([3.9, 10], [[0.01, 0], [0, 5]], 10)
    g2 = np.random.multivariate_normal([3.4, 30], [[0.25, 0], [0, 5]], 10)
    g3 = np.random.multivariate_normal([2.0, 10], [[0.5, 0], [0, 10]], 10)
    x = np.vstack([g0, g1, g2, g3])
    y = np.zeros((40, 4))
    y[np.arange(40), np.repeat(np.arange(4), 10)] = 1
    return x, y


def train_two_layer(nn, x, y, hidden, batch_size, lr, epochs, seed):
    """The coursework's training loop (fastnn.coursework.train) on module ``nn``: per-epoch (loss, acc), params."""
    from fastnn import coursework

    return coursework.train(nn, x, y, hidden, batch_size, lr, epochs, seed)


# ------------------------------------------------------- convolution and pooling (H-kernels' section)
# NHWC images (N, H, W, C), weights (KH, KW, C, F).  Written as one product per kernel offset over a
# zero-padded copy of the images, a different route from the kernels' im2col.


def conv2d_padding(H, W, KH, KW, stride, padding):
    """(OH, OW, pad_top, pad_bottom, pad_left, pad_right) as TensorFlow / PyTorch define 'valid' and 'same'."""
    if padding == "valid":
        return (H - KH) // stride + 1, (W - KW) // stride + 1, 0, 0, 0, 0
    OH, OW = -(-H // stride), -(-W // stride)
    ph = max((OH - 1) * stride + KH - H, 0)
    pw = max((OW - 1) * stride + KW - W, 0)
    return OH, OW, ph // 2, ph - ph // 2, pw // 2, pw - pw // 2


def _padded(X, KH, KW, stride, padding):
    N, H, W, C = X.shape
    OH, OW, pt, pb, pl, pr = conv2d_padding(H, W, KH, KW, stride, padding)
    return np.pad(X.astype(np.float64), ((0, 0), (pt, pb), (pl, pr), (0, 0))), OH, OW, (pt, pl)


def conv2d_forward(X, W, b, name, stride=1, padding="valid"):
    KH, KW, C, F = W.shape
    Xp, OH, OW, _ = _padded(X, KH, KW, stride, padding)
    pre = np.zeros((X.shape[0], OH, OW, F)) + b.astype(np.float64)
    for kh in range(KH):
        for kw in range(KW):
            patch = Xp[:, kh:kh + stride * (OH - 1) + 1:stride, kw:kw + stride * (OW - 1) + 1:stride, :]
            pre += patch @ W[kh, kw].astype(np.float64)
    return pre, activation(pre, name)


def conv2d_backward(delta, post, X, W, name, stride=1, padding="valid"):
    """(grad_W, grad_b, grad_X) of the summed loss, from delta = dJ/d(post)."""
    KH, KW, C, F = W.shape
    N, H, Wd, _ = X.shape
    Xp, OH, OW, (pt, pl) = _padded(X, KH, KW, stride, padding)
    dpre = activation_deriv(post, name) * delta
    gW = np.zeros(W.shape)
    gXp = np.zeros(Xp.shape)
    for kh in range(KH):
        for kw in range(KW):
            sl = (slice(None), slice(kh, kh + stride * (OH - 1) + 1, stride),
                  slice(kw, kw + stride * (OW - 1) + 1, stride), slice(None))
            gW[kh, kw] = np.einsum("nhwc,nhwf->cf", Xp[sl], dpre)
            gXp[sl] += dpre @ W[kh, kw].astype(np.float64).T
    return gW, dpre.sum(axis=(0, 1, 2)), gXp[:, pt:pt + H, pl:pl + Wd, :]


def max_pool2d_forward(X, size=2):
    """(Y, argmax): argmax the flat index (h * W + w) * C + c of the first maximum inside its image."""
    N, H, W, C = X.shape
    OH, OW = H // size, W // size
    win = X[:, :OH * size, :OW * size, :].reshape(N, OH, size, OW, size, C).transpose(0, 1, 3, 5, 2, 4)
    win = win.reshape(N, OH, OW, C, size * size)
    k = np.argmax(win, axis=-1)
    nan = np.isnan(win)
    if nan.any():  # a NaN is the maximum of its window (the last NaN, as torch scans)
        last_nan = size * size - 1 - np.argmax(nan[..., ::-1], axis=-1)
        k = np.where(nan.any(axis=-1), last_nan, k)
    Y = np.take_along_axis(win, k[..., None], axis=-1)[..., 0]
    oh = np.arange(OH)[None, :, None, None]
    ow = np.arange(OW)[None, None, :, None]
    c = np.arange(C)[None, None, None, :]
    h = oh * size + k // size
    w = ow * size + k % size
    return Y, ((h * W + w) * C + c).astype(np.int32)


def max_pool2d_backward(grad_Y, argmax, input_shape):
    N = input_shape[0]
    gX = np.zeros((N, int(np.prod(input_shape[1:]))))
    for n in range(N):
        np.add.at(gX[n], argmax[n].ravel(), grad_Y[n].astype(np.float64).ravel())
    return gX.reshape(input_shape)


# ----------------------------------------------------- the whole CNN of fastnn.cnn (H-model's section)
# Layer by layer in float64 with the references above, reading the parameters through the model's own
# layout (CNN.layer_parameters); the reference for CNN.forward and CNN.loss_gradient.


def cnn_loss_gradient(model, theta, X, T):
    """Summed loss and d loss / d theta of a fastnn.models.CNN (cross-entropy or squared error) at ``theta``."""
    from fastnn.layers import Conv2D, Dense, MaxPool2D

    theta = np.asarray(theta, dtype=np.float64)
    h, records, L = np.asarray(X, dtype=np.float64), [], len(model.layers)
    for i, layer in enumerate(model.layers):
        if isinstance(layer, (Conv2D, Dense)):
            W, b = model.layer_parameters(theta, i)
            act = "linear" if (i == L - 1 and model.loss != "squared_error") else layer.activation
            if isinstance(layer, Conv2D):
                _, post = conv2d_forward(h, W, b, act, layer.stride, layer.padding)
            else:
                _, post = dense_forward(h, W, b, act)
            records.append((h, post, act))
            h = post
        elif isinstance(layer, MaxPool2D):
            shape = h.shape
            h, argmax = max_pool2d_forward(h, layer.size)
            records.append((shape, argmax, None))
        else:
            records.append((h.shape, None, None))
            h = h.reshape(h.shape[0], -1)
    if model.loss == "cross_entropy":
        loss, _, delta, _ = softmax_cross_entropy(h, T)
    else:
        loss, delta = squared_error(h, T)
    grad = np.zeros_like(theta)
    for i in range(L - 1, -1, -1):
        layer, (a, b, act) = model.layers[i], records[i]
        if isinstance(layer, (Conv2D, Dense)):
            W, _ = model.layer_parameters(theta, i)
            gW, gb = model.layer_parameters(grad, i)
            if isinstance(layer, Conv2D):
                gW[...], gb[...], delta = conv2d_backward(delta, b, a, W, act, layer.stride, layer.padding)
            else:
                gW[...], gb[...], delta = dense_backward(delta, b, a, W, act)
        elif isinstance(layer, MaxPool2D):
            delta = max_pool2d_backward(delta, b, a)
        else:
            delta = delta.reshape(a)
    return loss, grad


def cnn_forward(model, theta, X):
    """The CNN's outputs (probabilities for a softmax output) in float64."""
    from fastnn.layers import Conv2D, Dense, MaxPool2D

    theta = np.asarray(theta, dtype=np.float64)
    h = np.asarray(X, dtype=np.float64)
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Conv2D):
            h = conv2d_forward(h, *model.layer_parameters(theta, i), layer.activation, layer.stride, layer.padding)[1]
        elif isinstance(layer, Dense):
            h = dense_forward(h, *model.layer_parameters(theta, i), layer.activation)[1]
        elif isinstance(layer, MaxPool2D):
            h = max_pool2d_forward(h, layer.size)[0]
        else:
            h = h.reshape(h.shape[0], -1)
    return h


# --------------------------------------------------------------------- registered activations
# NumPy references of the scalar functions in tests/_user_activations.py (registered with
# fastnn.register_activation): name -> (activation of z, derivative of z), both in float64.

def _np_sigmoid(z):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


USER_ACTIVATIONS = {
    "u_sigmoid": (_np_sigmoid, lambda z: _np_sigmoid(z) * (1.0 - _np_sigmoid(z))),
    "u_tanh": (np.tanh, lambda z: 1.0 - np.tanh(z) ** 2),
    "u_softplus": (lambda z: np.logaddexp(0.0, z), _np_sigmoid),
}


def user_activation(Z, name):
    return USER_ACTIVATIONS[name][0](np.asarray(Z, dtype=np.float64))


def user_activation_deriv(Z, name):
    return USER_ACTIVATIONS[name][1](np.asarray(Z, dtype=np.float64))


def dense_backward_from_pre(delta, pre, X, W, name):
    """dense_backward of a registered activation, whose derivative is a function of the pre-activation."""
    dpre = user_activation_deriv(pre, name) * delta
    X = X.astype(np.float64)
    return X.T @ dpre, dpre.sum(axis=0), dpre @ W.astype(np.float64).T
