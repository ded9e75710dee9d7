"""Plain NumPy references for every kernel, and the coursework's NumPy ``nn.py`` (from fastnn.numpy_nn).

The tests compare each compiled kernel with the function of the same role here.
Nothing in this module is fast or clever on purpose.
"""

import numpy as np

# The coursework's nn.py, one copy in the package: the plain NumPy module that fastnn.nn replaces (also the
# benchmarks' baseline). The tests use it as this module's R.forward, R.backwards, ...
from fastnn.numpy_nn import *  # noqa: F403
from fastnn.numpy_nn import (linear, linear_deriv, relu, relu_deriv, sigmoid, sigmoid_deriv, softmax, tanh,
                             tanh_deriv)

ACTIVATIONS = {"sigmoid": (sigmoid, sigmoid_deriv), "tanh": (tanh, tanh_deriv), "relu": (relu, relu_deriv),
               "linear": (linear, linear_deriv)}


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
