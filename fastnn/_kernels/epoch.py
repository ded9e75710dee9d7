"""One whole training epoch of a dense MLP in one compiled call (Numba).

The epoch is a composition of the same kernels the step-by-step path uses
(``dense_forward``, the fused losses, ``dense_backward_from_pre`` and
``optimizer_step``); it only removes the Python loop around them.  All
parameters live in one flat vector ``theta`` (weights and biases are views of
it), so one optimizer call updates the whole model.  Batches are gathered
from ``X`` by ``order`` into a reused workspace: nothing proportional to the
data set is allocated.

When the first layer's products are split over the threads and no other
layer's are (``gathers_during_middle``), the next batch is gathered on a second
thread while the first thread runs the small layers and the loss (see
``mlp_epoch``).
"""

import numpy as np
from numba import njit, prange

from .._config import CACHE, ERROR_MODEL, FASTMATH
from .activations import LINEAR
from .blas import gemm, splits_over_threads
from .dense import add_bias_activate, delta_pre_activation, dense_backward_from_pre, dense_backward_sgd
from .losses import softmax_cross_entropy_onehot, sigmoid_binary_cross_entropy, squared_error
from .optim import SGD, optimizer_step

SOFTMAX_CE = 0
SIGMOID_BCE = 1
SQUARED_ERROR = 2

#: Columns of the ``layout`` array, one row per layer.
N_IN, N_OUT, W_OFF, B_OFF, PRE_OFF, POST_OFF, ACT = range(7)
#: Entries of the ``cfg`` array: batch size, loss and optimizer codes, then workspace offsets of the batch
#: inputs and targets (two buffers each, see ``mlp_epoch``) and of two delta buffers.
CFG_BATCH, CFG_LOSS, CFG_OPT, CFG_XB, CFG_TB, CFG_XB2, CFG_TB2, CFG_DA, CFG_DB = range(9)


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
def _layer_forward_product(l, inp, theta, work, layout, n):
    # IN l, inp (n, k) the layer's input, theta, layout, n; OUT the layer's pre-activation block of work
    """pre_l = inp @ W_l (no bias yet)."""
    W = _view(theta, layout[l, W_OFF], layout[l, N_IN], layout[l, N_OUT])
    gemm(inp, W, _view(work, layout[l, PRE_OFF], n, layout[l, N_OUT]), 1.0, 0.0)


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL)
def _middle(xb, tb, theta, grad, work, layout, cfg, sgd_lr, sgd_wd, result):
    # IN xb (n, d), tb (n, c), layout, cfg, sgd_lr, sgd_wd, and pre_0 = xb @ W_0 in work;
    # IN/OUT theta (layers >= 1 updated when sgd_lr > 0); OUT grad, work, result (2,) = (loss, correct)
    """One batch from layer 0's product to layer 0's pre-activation gradient.

    Layer 0's bias and activation, the forward of layers 1.., the fused loss, the backward of layers
    ..1 (with their SGD step when sgd_lr > 0, else their gradients into ``grad``), and dJ/d(pre_0) into
    the DA block of ``work``.  Nothing after the loss when it is not finite.
    """
    n = xb.shape[0]
    n_layers = layout.shape[0]
    loss_kind = cfg[CFG_LOSS]
    inp = xb
    for l in range(n_layers):
        m = layout[l, N_OUT]
        if l > 0:
            _layer_forward_product(l, inp, theta, work, layout, n)
        act = layout[l, ACT]
        if l == n_layers - 1 and loss_kind != SQUARED_ERROR:
            act = LINEAR  # the fused loss below applies softmax / sigmoid to the logits
        b = theta[layout[l, B_OFF]:layout[l, B_OFF] + m]
        add_bias_activate(_view(work, layout[l, PRE_OFF], n, m), b, act, _view(work, layout[l, POST_OFF], n, m))
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
    result[0] = loss
    result[1] = correct
    if not np.isfinite(loss):
        return  # leave the parameters as they are
    for l in range(n_layers - 1, 0, -1):
        k = layout[l, N_IN]
        X_l = _view(work, layout[l - 1, POST_OFF], n, k)
        gX = _view(work, cfg[CFG_DB], n, k)
        _layer_backward(l, X_l, theta, grad, work, layout, cfg, sgd_lr, sgd_wd, gX)
        delta_pre_activation(gX, X_l, layout[l - 1, ACT], _view(work, cfg[CFG_DA], n, k))


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL)
def _layer_backward(l, X_l, theta, grad, work, layout, cfg, sgd_lr, sgd_wd, gX):
    # IN l, X_l (n, k) the layer's input, dJ/d(pre_l) in the DA block of work, sgd_lr, sgd_wd;
    # IN/OUT theta (updated when sgd_lr > 0); OUT grad (when sgd_lr == 0), gX (n, k) when l > 0
    """Layer l's backward pass from its pre-activation gradient (its input gradient only when l > 0)."""
    n, k = X_l.shape
    m = layout[l, N_OUT]
    W = _view(theta, layout[l, W_OFF], k, m)
    dpre = _view(work, cfg[CFG_DA], n, m)
    if sgd_lr > 0:
        b = theta[layout[l, B_OFF]:layout[l, B_OFF] + m]
        dense_backward_sgd(dpre, X_l, W, b, sgd_lr, sgd_wd, gX, l > 0)
    else:
        gW = _view(grad, layout[l, W_OFF], k, m)
        gb = grad[layout[l, B_OFF]:layout[l, B_OFF] + m]
        dense_backward_from_pre(dpre, X_l, W, gW, gb, gX, l > 0)


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL)
def gathers_during_middle(layout, bs):  # IN layout, bs batch size
    """True when layer 0's products are split over the threads and no other layer's are, so that with two
    or more threads ``mlp_epoch`` gathers the next batch while the first thread runs the small layers.
    (A layer's three products, forward, weight and input gradient, all have bs * n_in * n_out terms.)"""
    if layout.shape[0] < 2 or not splits_over_threads(bs, layout[0, N_IN], layout[0, N_OUT]):
        return False
    for l in range(1, layout.shape[0]):
        if splits_over_threads(bs, layout[l, N_IN], layout[l, N_OUT]):
            return False
    return True


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, parallel=True)
def _middle_and_gather(xb, tb, theta, grad, work, layout, cfg, sgd_lr, sgd_wd, result, X, T, order, start, stop,
                       xb_next, tb_next):
    """``_middle`` of this batch on one thread while another gathers rows ``order[start:stop]`` of X and T
    into the other buffers (nothing to gather when start == stop)."""
    for t in prange(2):
        if t == 0:
            _middle(xb, tb, theta, grad, work, layout, cfg, sgd_lr, sgd_wd, result)
        elif stop > start:
            _gather_rows(X, order, start, stop, xb_next)
            _gather_rows(T, order, start, stop, tb_next)


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL)
def mlp_epoch(X, T, order, theta, grad, state1, state2, work, layout, cfg, hyper, step, threads):
    # IN X (N, d), T (N, c), order (N,) sample order, layout, cfg, hyper, step (updates done so far),
    # threads (numba.get_num_threads(), read by the caller: reading it here would stop the kernel being cached);
    # IN/OUT theta (P,), state1 (P,), state2 (P,); OUT grad (P,), work
    """Train one epoch over ``order`` in batches of cfg[CFG_BATCH]; return (loss sum, correct, step).

    Stops at the first batch whose loss is not finite (before its update) and returns that loss.

    With two or more ``threads`` and only layer 0's products split over them, a batch's rows are gathered
    (into the other of two input buffers) by the second thread while the first runs the previous batch's
    small layers and loss (``_middle_and_gather``), instead of on their own between batches.  The
    arithmetic, and so every result, is the same either way.
    """
    N = order.shape[0]
    bs = cfg[CFG_BATCH]
    d = X.shape[1]
    c = T.shape[1]
    fused_sgd = cfg[CFG_OPT] == SGD
    sgd_lr = hyper[0] if fused_sgd else 0.0
    wd = hyper[4]
    overlap = threads > 1 and gathers_during_middle(layout, bs)
    result = np.empty(2)
    total = 0.0
    correct = 0
    buf = 0
    if N > 0:
        n = min(bs, N)
        _gather_rows(X, order, 0, n, _view(work, cfg[CFG_XB], n, d))
        _gather_rows(T, order, 0, n, _view(work, cfg[CFG_TB], n, c))
    for start in range(0, N, bs):
        stop = min(start + bs, N)
        n = stop - start
        xb = _view(work, cfg[CFG_XB2] if buf else cfg[CFG_XB], n, d)
        tb = _view(work, cfg[CFG_TB2] if buf else cfg[CFG_TB], n, c)
        nstop = min(stop + bs, N)
        xb_next = _view(work, cfg[CFG_XB] if buf else cfg[CFG_XB2], nstop - stop, d)
        tb_next = _view(work, cfg[CFG_TB] if buf else cfg[CFG_TB2], nstop - stop, c)
        _layer_forward_product(0, xb, theta, work, layout, n)
        if overlap:
            _middle_and_gather(xb, tb, theta, grad, work, layout, cfg, sgd_lr, wd, result, X, T, order, stop,
                               nstop, xb_next, tb_next)
        else:
            _middle(xb, tb, theta, grad, work, layout, cfg, sgd_lr, wd, result)
            _gather_rows(X, order, stop, nstop, xb_next)
            _gather_rows(T, order, stop, nstop, tb_next)
        loss = result[0]
        if not np.isfinite(loss):
            return loss, correct, step
        _layer_backward(0, xb, theta, grad, work, layout, cfg, sgd_lr, wd, xb)  # layer 0's gX is never needed
        total += loss
        correct += int(result[1])
        step += 1
        buf = 1 - buf
        if not fused_sgd:
            optimizer_step(cfg[CFG_OPT], (theta,), (grad,), (state1,), (state2,), hyper, step)
    return total, correct, step
