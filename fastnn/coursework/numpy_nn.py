"""The coursework's plain NumPy ``nn.py``: the module that ``fastnn.nn`` replaces.

The same names, signatures and ``params`` keys as ``fastnn.nn``, written in the plain NumPy of the
coursework, float64 and nothing fast or clever on purpose.  It is the baseline of the benchmarks and the
reference of the drop-in's tests (``bench/epoch_benchmark.py``, ``tests/_reference.py``):
:mod:`fastnn.coursework` runs the coursework's loop on either module.
"""

import numpy as np

__all__ = ["initialize_weights", "sigmoid", "sigmoid_deriv", "tanh", "tanh_deriv", "relu", "relu_deriv", "linear",
           "linear_deriv", "softmax", "forward", "compute_loss_and_acc", "backwards", "get_random_batches"]


def initialize_weights(in_size, out_size, params, name=""):
    var = 2.0 / (in_size + out_size)
    limit = np.sqrt(3.0 * var)
    params["W" + name] = np.random.uniform(-limit, limit, (in_size, out_size))
    params["b" + name] = np.zeros(out_size)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def sigmoid_deriv(post_act):
    return post_act * (1.0 - post_act)


def tanh(x):
    return np.tanh(x)


def tanh_deriv(post_act):
    return 1.0 - post_act**2


def relu(x):
    return np.maximum(x, 0)


def relu_deriv(post_act):
    return (post_act > 0).astype(post_act.dtype)


def linear(x):
    return x


def linear_deriv(post_act):
    return np.ones_like(post_act)


def softmax(x):
    c = -np.max(x, axis=1, keepdims=True)
    s = np.exp(x + c)
    return s / np.sum(s, axis=1, keepdims=True)


def forward(X, params, name="", activation=sigmoid):
    W = params["W" + name]
    b = params["b" + name]
    pre_act = X @ W + b
    post_act = activation(pre_act)
    params["cache_" + name] = (X, pre_act, post_act)
    return post_act


def compute_loss_and_acc(y, probs):
    loss = -np.sum(y * np.log(probs))
    acc = np.mean(np.argmax(y, axis=1) == np.argmax(probs, axis=1))
    return loss, acc


def backwards(delta, params, name="", activation_deriv=sigmoid_deriv):
    W = params["W" + name]
    X, pre_act, post_act = params["cache_" + name]
    delta_pre = activation_deriv(post_act) * delta
    params["grad_W" + name] = X.T @ delta_pre
    params["grad_b" + name] = np.sum(delta_pre, axis=0)
    return delta_pre @ W.T


def get_random_batches(x, y, batch_size):
    N = x.shape[0]
    idx = np.random.permutation(N)
    return [(x[idx[i:i + batch_size]], y[idx[i:i + batch_size]]) for i in range(0, N, batch_size)]
