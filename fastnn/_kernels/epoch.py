"""One whole training epoch of a dense MLP in one compiled call (Numba).

The epoch is a composition of the same kernels the step-by-step path uses
(``dense_forward``, the fused losses, ``dense_backward_from_pre`` and
``optimizer_step``); it only removes the Python loop around them.  All
parameters live in one flat vector ``theta`` (weights and biases are views of
it), so one optimizer call updates the whole model.  Batches are gathered
from ``X`` by ``order`` into a reused workspace: nothing proportional to the
data set is allocated.
"""

import numpy as np
from numba import njit

from .._config import CACHE, ERROR_MODEL, FASTMATH
from .activations import LINEAR
from .dense import delta_pre_activation, dense_backward_from_pre, dense_backward_sgd, dense_forward
from .losses import softmax_cross_entropy_onehot, sigmoid_binary_cross_entropy, squared_error
from .optim import SGD, optimizer_step

SOFTMAX_CE = 0
SIGMOID_BCE = 1
SQUARED_ERROR = 2

#: Columns of the ``layout`` array, one row per layer.
N_IN, N_OUT, W_OFF, B_OFF, PRE_OFF, POST_OFF, ACT = range(7)
#: Entries of the ``cfg`` array.
CFG_BATCH, CFG_LOSS, CFG_OPT, CFG_XB, CFG_TB, CFG_DA, CFG_DB = range(7)


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL)
def _gather_rows(src, order, start, stop, out):  # IN src (N, d), order (N,); OUT out (stop-start, d)
    for r in range(stop - start):
        i = order[start + r]
        for j in range(src.shape[1]):
            out[r, j] = src[i, j]


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL)
def _view(buf, off, rows, cols):
    return buf[off:off + rows * cols].reshape((rows, cols))


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL)
def mlp_forward_backward(xb, tb, theta, grad, work, layout, cfg, sgd_lr, sgd_wd):
    # IN xb (n, d) inputs, tb (n, c) targets, layout (L, 7), cfg, sgd_lr, sgd_wd;
    # IN/OUT theta (P,) (updated here only when sgd_lr > 0); OUT grad (P,), work
    """Forward, fused loss and backward of one batch; return (summed loss, correct predictions).

    With ``sgd_lr > 0`` each layer takes its plain SGD step inside its backward pass
    (``dense_backward_sgd``) and ``grad`` is not written; otherwise the gradients go to ``grad``.
    """
    n = xb.shape[0]
    n_layers = layout.shape[0]
    loss_kind = cfg[CFG_LOSS]
    inp = xb
    for l in range(n_layers):
        k = layout[l, N_IN]
        m = layout[l, N_OUT]
        W = _view(theta, layout[l, W_OFF], k, m)
        b = theta[layout[l, B_OFF]:layout[l, B_OFF] + m]
        act = layout[l, ACT]
        if l == n_layers - 1 and loss_kind != SQUARED_ERROR:
            act = LINEAR  # the fused loss below applies softmax / sigmoid to the logits
        dense_forward(inp, W, b, act, _view(work, layout[l, PRE_OFF], n, m), _view(work, layout[l, POST_OFF], n, m))
        inp = _view(work, layout[l, POST_OFF], n, m)

    last = n_layers - 1
    m = layout[last, N_OUT]
    logits = _view(work, layout[last, PRE_OFF], n, m)
    out = _view(work, layout[last, POST_OFF], n, m)
    dA = _view(work, cfg[CFG_DA], n, m)
    correct = 0
    if loss_kind == SOFTMAX_CE:
        loss, correct = softmax_cross_entropy_onehot(logits, tb, out, dA)
    elif loss_kind == SIGMOID_BCE:
        loss, correct = sigmoid_binary_cross_entropy(logits, tb, out, dA)
    else:
        dB = _view(work, cfg[CFG_DB], n, m)
        loss = squared_error(out, tb, dB)
        delta_pre_activation(dB, out, layout[last, ACT], dA)
    if not np.isfinite(loss):
        return loss, correct  # leave the parameters as they are

    for l in range(n_layers - 1, -1, -1):
        k = layout[l, N_IN]
        m = layout[l, N_OUT]
        W = _view(theta, layout[l, W_OFF], k, m)
        dpre = _view(work, cfg[CFG_DA], n, m)
        X_l = _view(work, layout[l - 1, POST_OFF], n, k) if l > 0 else xb
        gX = _view(work, cfg[CFG_DB], n, k) if l > 0 else xb  # the first layer's input gradient is never needed
        if sgd_lr > 0:
            b = theta[layout[l, B_OFF]:layout[l, B_OFF] + m]
            dense_backward_sgd(dpre, X_l, W, b, sgd_lr, sgd_wd, gX, l > 0)
        else:
            gW = _view(grad, layout[l, W_OFF], k, m)
            gb = grad[layout[l, B_OFF]:layout[l, B_OFF] + m]
            dense_backward_from_pre(dpre, X_l, W, gW, gb, gX, l > 0)
        if l > 0:
            delta_pre_activation(gX, X_l, layout[l - 1, ACT], _view(work, cfg[CFG_DA], n, k))
    return loss, correct


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL)
def mlp_epoch(X, T, order, theta, grad, state1, state2, work, layout, cfg, hyper, step):
    # IN X (N, d), T (N, c), order (N,) sample order, layout, cfg, hyper, step (updates done so far);
    # IN/OUT theta (P,), state1 (P,), state2 (P,); OUT grad (P,), work
    """Train one epoch over ``order`` in batches of cfg[CFG_BATCH]; return (loss sum, correct, step).

    Stops at the first batch whose loss is not finite (before its update) and returns that loss.
    """
    N = order.shape[0]
    bs = cfg[CFG_BATCH]
    d = X.shape[1]
    c = T.shape[1]
    fused_sgd = cfg[CFG_OPT] == SGD
    total = 0.0
    correct = 0
    for start in range(0, N, bs):
        stop = min(start + bs, N)
        n = stop - start
        xb = _view(work, cfg[CFG_XB], n, d)
        tb = _view(work, cfg[CFG_TB], n, c)
        _gather_rows(X, order, start, stop, xb)
        _gather_rows(T, order, start, stop, tb)
        loss, ok = mlp_forward_backward(xb, tb, theta, grad, work, layout, cfg,
                                        hyper[0] if fused_sgd else 0.0, hyper[4])
        if not np.isfinite(loss):
            return loss, correct, step
        total += loss
        correct += ok
        step += 1
        if not fused_sgd:
            optimizer_step(cfg[CFG_OPT], (theta,), (grad,), (state1,), (state2,), hyper, step)
    return total, correct, step
