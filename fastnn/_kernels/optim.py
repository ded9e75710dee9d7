"""Batched optimizer updates (Numba): one call updates every parameter.

Parameters, gradients and optimizer buffers are passed as tuples of 1-D
contiguous arrays (flattened views of the weights and biases), so a whole
model is updated by a single compiled call.  Gradients are those of the
summed loss; ``weight_decay`` adds ``weight_decay * param`` to each gradient.
"""

import math

from numba import njit

from .._config import CACHE, ERROR_MODEL, FASTMATH


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL)
def sgd_update(params, grads, lr, weight_decay):
    # IN grads tuple of (p,), lr, weight_decay; IN/OUT params tuple of (p,)
    """param -= lr * (grad + weight_decay * param)."""
    for k in range(len(params)):
        p = params[k]
        g = grads[k]
        for i in range(p.shape[0]):
            p[i] -= lr * (g[i] + weight_decay * p[i])


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL)
def momentum_update(params, grads, bufs, lr, mu, weight_decay, nesterov):
    # IN grads, lr, mu, weight_decay, nesterov; IN/OUT params, bufs (the coursework's M_ buffers)
    """Coursework momentum: M = mu M - lr g; param += M.  Nesterov: param += mu M_new - lr g."""
    for k in range(len(params)):
        p = params[k]
        g = grads[k]
        m = bufs[k]
        for i in range(p.shape[0]):
            gi = g[i] + weight_decay * p[i]
            mi = mu * m[i] - lr * gi
            m[i] = mi
            if nesterov:
                p[i] += mu * mi - lr * gi
            else:
                p[i] += mi


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL)
def adam_update(params, grads, m1, m2, lr, beta1, beta2, eps, step, weight_decay):
    # IN grads, lr, beta1, beta2, eps, step (1-based), weight_decay; IN/OUT params, m1, m2
    """Adam (Kingma & Ba) with bias correction for update number ``step``."""
    c1 = 1.0 - beta1**step
    c2 = 1.0 - beta2**step
    for k in range(len(params)):
        p = params[k]
        g = grads[k]
        a = m1[k]
        v = m2[k]
        # Scalars in the parameters' dtype, so float32 updates stay float32 (and vectorise).
        t = p.dtype.type
        b1, b2, wd, e = t(beta1), t(beta2), t(weight_decay), t(eps)
        step_size = t(lr / c1)
        inv_c2 = t(1.0 / c2)
        one = t(1.0)
        for i in range(p.shape[0]):
            gi = g[i] + wd * p[i]
            a[i] = b1 * a[i] + (one - b1) * gi
            v[i] = b2 * v[i] + (one - b2) * gi * gi
            p[i] -= step_size * a[i] / (math.sqrt(v[i] * inv_c2) + e)

SGD = 0
MOMENTUM = 1
NESTEROV = 2
ADAM = 3

#: name -> code, for the layers above.
CODES = {"sgd": SGD, "momentum": MOMENTUM, "nesterov": NESTEROV, "adam": ADAM}


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL)
def optimizer_step(kind, params, grads, state1, state2, hyper, step):
    # IN kind code, grads, hyper float64 [lr, mu or beta1, beta2, eps, weight_decay], step (1-based);
    # IN/OUT params, state1 (momentum buffers or Adam m), state2 (Adam v)
    """Dispatch one update of every parameter to the optimizer named by ``kind``."""
    lr = hyper[0]
    wd = hyper[4]
    if kind == SGD:
        sgd_update(params, grads, lr, wd)
    elif kind == MOMENTUM or kind == NESTEROV:
        momentum_update(params, grads, state1, lr, hyper[1], wd, kind == NESTEROV)
    else:
        adam_update(params, grads, state1, state2, lr, hyper[1], hyper[2], hyper[3], step, wd)
