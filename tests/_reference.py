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


def avg_pool2d_forward(X, size=2):
    """Mean over non-overlapping windows (an int or (KH, KW)); trailing rows and columns dropped."""
    kh, kw = size if isinstance(size, tuple) else (size, size)
    N, H, W, C = X.shape
    OH, OW = H // kh, W // kw
    win = np.asarray(X, dtype=np.float64)[:, :OH * kh, :OW * kw, :].reshape(N, OH, kh, OW, kw, C)
    return win.mean(axis=(2, 4))


def avg_pool2d_backward(grad_Y, input_shape, size=2):
    kh, kw = size if isinstance(size, tuple) else (size, size)
    N, H, W, C = input_shape
    OH, OW = grad_Y.shape[1:3]
    gX = np.zeros(input_shape)
    spread = np.repeat(np.repeat(np.asarray(grad_Y, dtype=np.float64), kh, axis=1), kw, axis=2) / (kh * kw)
    gX[:, :OH * kh, :OW * kw, :] = spread
    return gX


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix64(z):
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def dropout_mask(shape, rate, seed, step, layer):
    """The kept values (bool, C order) of fastnn's dropout: SplitMix64 of (seed, step, layer, index)."""
    with np.errstate(over="ignore"):
        key = _mix64(_mix64(np.uint64(seed) * _GOLDEN + np.uint64(step)) ^ (np.uint64(layer + 1) * _GOLDEN))
        h = _mix64(key + np.arange(int(np.prod(shape)), dtype=np.uint64) * _GOLDEN)
    return ((h >> np.uint64(11)).astype(np.float64) * 2.0**-53 >= rate).reshape(shape)


def dropout(X, rate, seed, step, layer):
    scale = np.asarray(1.0 / (1.0 - rate), dtype=X.dtype)
    return np.where(dropout_mask(X.shape, rate, seed, step, layer), X * scale, 0).astype(X.dtype)


def batch_norm_forward(X, gamma, beta, eps):
    """(Y, mean, biased var) over all axes but the last, in float64."""
    rows = np.asarray(X, dtype=np.float64).reshape(-1, X.shape[-1])
    mean, var = rows.mean(axis=0), rows.var(axis=0)
    return ((rows - mean) / np.sqrt(var + eps) * gamma + beta).reshape(X.shape), mean, var


def batch_norm_backward(dY, X, gamma, eps):
    """(dX, dgamma, dbeta) of batch_norm_forward, the textbook way (through mean and variance separately)."""
    rows = np.asarray(X, dtype=np.float64).reshape(-1, X.shape[-1])
    d = np.asarray(dY, dtype=np.float64).reshape(rows.shape)
    n = rows.shape[0]
    mean, var = rows.mean(axis=0), rows.var(axis=0)
    xhat = (rows - mean) / np.sqrt(var + eps)
    dxhat = d * gamma
    dvar = np.sum(dxhat * (rows - mean), axis=0) * -0.5 * (var + eps) ** -1.5
    dmean = -np.sum(dxhat, axis=0) / np.sqrt(var + eps) + dvar * np.mean(-2 * (rows - mean), axis=0)
    dX = dxhat / np.sqrt(var + eps) + dvar * 2 * (rows - mean) / n + dmean / n
    return dX.reshape(X.shape), np.sum(d * xhat, axis=0), d.sum(axis=0)


# ----------------------------------------------------- the whole CNN of fastnn.cnn (H-model's section)
# Layer by layer in float64 with the references above, reading the parameters through the model's own
# layout (CNN.layer_parameters); the reference for CNN.forward and CNN.loss_gradient.


def cnn_loss_gradient(model, theta, X, T, dropout_key=None):
    """Summed loss and d loss / d theta of a fastnn.models.CNN (cross-entropy or squared error) at ``theta``."""
    from fastnn.layers import AvgPool2D, Conv2D, Dense, Dropout, GlobalAvgPool2D, MaxPool2D

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
        elif isinstance(layer, Dropout):
            mask = (dropout_mask(h.shape, layer.rate, *dropout_key, i) / (1 - layer.rate) if dropout_key
                    else np.ones(h.shape))
            records.append((mask, None, None))
            h = h * mask
        elif isinstance(layer, (AvgPool2D, GlobalAvgPool2D)):
            window = (layer.size, layer.size) if isinstance(layer, AvgPool2D) else tuple(h.shape[1:3])
            records.append((h.shape, window, None))
            h = avg_pool2d_forward(h, window)
            h = h.reshape(h.shape[0], -1) if isinstance(layer, GlobalAvgPool2D) else h
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
        elif isinstance(layer, Dropout):
            delta = delta * a
        elif isinstance(layer, MaxPool2D):
            delta = max_pool2d_backward(delta, b, a)
        elif isinstance(layer, (AvgPool2D, GlobalAvgPool2D)):
            delta = avg_pool2d_backward(delta.reshape(a[0], a[1] // b[0], a[2] // b[1], a[3]), a, b)
        else:
            delta = delta.reshape(a)
    return loss, grad


def cnn_forward(model, theta, X):
    """The CNN's outputs (probabilities for a softmax output) in float64."""
    from fastnn.layers import AvgPool2D, Conv2D, Dense, Dropout, GlobalAvgPool2D, MaxPool2D

    theta = np.asarray(theta, dtype=np.float64)
    h = np.asarray(X, dtype=np.float64)
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Conv2D):
            h = conv2d_forward(h, *model.layer_parameters(theta, i), layer.activation, layer.stride, layer.padding)[1]
        elif isinstance(layer, Dense):
            h = dense_forward(h, *model.layer_parameters(theta, i), layer.activation)[1]
        elif isinstance(layer, MaxPool2D):
            h = max_pool2d_forward(h, layer.size)[0]
        elif isinstance(layer, Dropout):  # the identity in inference
            continue
        elif isinstance(layer, AvgPool2D):
            h = avg_pool2d_forward(h, layer.size)
        elif isinstance(layer, GlobalAvgPool2D):
            h = avg_pool2d_forward(h, tuple(h.shape[1:3])).reshape(h.shape[0], -1)
        else:
            h = h.reshape(h.shape[0], -1)
    return h


# ------------------------------------------------------------- training controls (issue 22)

def adamw(params, grads, m1, m2, step, lr, beta1=0.9, beta2=0.999, eps=1e-8, wd=1e-2):
    """torch.optim.AdamW's update as its documentation writes it: decay first, then Adam without wd in g."""
    for p, g, a, v in zip(params, grads, m1, m2):
        p *= 1 - lr * wd
        a[...] = beta1 * a + (1 - beta1) * g
        v[...] = beta2 * v + (1 - beta2) * g * g
        p -= lr * (a / (1 - beta1**step)) / (np.sqrt(v / (1 - beta2**step)) + eps)


def cosine_lr(lr, k, total, lr_min=0.0):
    """CosineAnnealingLR's closed form: the rate of step k of T_max = total."""
    import math

    return lr_min + (lr - lr_min) * (1 + math.cos(math.pi * k / total)) / 2


def onecycle_lr(max_lr, k, total, pct_start=0.3, div_factor=25.0, final_div_factor=1e4):
    """OneCycleLR's rate of step k (two phases, cosine annealing), written from its documentation."""
    import math

    initial = max_lr / div_factor
    final = initial / final_div_factor
    up_end = pct_start * total - 1  # the step at which the rate reaches max_lr

    def cos_anneal(start, end, pct):
        return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)

    if k <= up_end:
        return cos_anneal(initial, max_lr, k / up_end)
    return cos_anneal(max_lr, final, (k - up_end) / (total - 1 - up_end))


def weighted_loss(loss, Z, T, w=None, reduction="sum"):
    """A batch's loss and dJ/dZ with row weights w (None: ones) and 'sum' or 'mean' over its rows, in float64,
    row by row with the references above (Z: logits for the cross-entropies, outputs for the squared error)."""
    Z = np.asarray(Z, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64).reshape(Z.shape)
    n = Z.shape[0]
    w = np.ones(n) if w is None else np.asarray(w, dtype=np.float64)
    fn = {"cross_entropy": lambda z, t: softmax_cross_entropy(z, t)[::2],
          "binary_cross_entropy": lambda z, t: sigmoid_binary_cross_entropy(z, t)[::2],
          "squared_error": squared_error}[loss]
    total, delta = 0.0, np.zeros_like(Z)
    for i in range(n):
        li, di = fn(Z[i:i + 1], T[i:i + 1])
        total += w[i] * li
        delta[i] = w[i] * di[0]
    if reduction == "mean":
        return total / n, delta / n
    return total, delta


def mlp_loss_gradient(model, theta, X, T, w=None, reduction="sum"):
    """A fastnn.models.MLP's (weighted, reduced) batch loss and d loss / d theta at ``theta``, in float64."""
    theta = np.asarray(theta, dtype=np.float64)
    L = model.n_layers
    from_logits = model.loss != "squared_error"
    h, inputs, posts = np.asarray(X, dtype=np.float64), [], []
    for l in range(L):
        act = "linear" if (l == L - 1 and from_logits) else model.activations[l]
        inputs.append(h)
        _, h = dense_forward(h, model.weight_view(theta, l), model.bias_view(theta, l), act)
        posts.append(h)
    loss, delta = weighted_loss(model.loss, h, T, w, reduction)
    grad = np.zeros_like(theta)
    for l in range(L - 1, -1, -1):
        act = "linear" if (l == L - 1 and from_logits) else model.activations[l]
        gW, gb, delta = dense_backward(delta, posts[l], inputs[l], model.weight_view(theta, l), act)
        model.weight_view(grad, l)[...] = gW
        model.bias_view(grad, l)[...] = gb
    return loss, grad


def mlp_train(model, X, T, order, batch_size, rates, optimizer="sgd", w=None, reduction="sum", weight_decay=0.0,
              betas=(0.9, 0.999), eps=1e-8, epochs=1):
    """Train a copy of ``model``'s parameters in float64, batch by batch over ``order`` for ``epochs`` epochs,
    batch k at ``rates[k]``: (theta, m, v) after the run (m, v: Adam's moments, zero for SGD)."""
    theta = model.theta.astype(np.float64)
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    k = 0
    for _ in range(epochs):
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            _, g = mlp_loss_gradient(model, theta, X[idx], T[idx], None if w is None else w[idx], reduction)
            if optimizer == "sgd":
                sgd([theta], [g], rates[k], weight_decay)
            elif optimizer == "adamw":
                adamw([theta], [g], [m], [v], k + 1, rates[k], *betas, eps, weight_decay)
            else:
                adam([theta], [g], [m], [v], k + 1, rates[k], *betas, eps, weight_decay)
            k += 1
    return theta, m, v


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
