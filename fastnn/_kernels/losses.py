"""Fused losses (Numba): loss, accuracy and the gradient in one pass.

Every loss is the *sum* over the batch, as the coursework defines it; the
gradient is the gradient of that sum.  Totals accumulate in float64.
"""

import math

import numpy as np
from numba import njit

from .._config import CACHE, ERROR_MODEL, FASTMATH
from .activations import exp_minus


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, inline="always")
def _softmax_row(Z, i, P_out):
    """Fill P_out[i] = softmax(Z[i]); return (log of the normaliser, argmax) in float64."""
    c = Z.shape[1]
    m = np.float64(Z[i, 0])
    best = 0
    for j in range(1, c):
        if Z[i, j] > m:
            m = np.float64(Z[i, j])
            best = j
    s = 0.0
    for j in range(c):
        e = exp_minus(Z[i, j], m)
        P_out[i, j] = e
        s += e
    inv = 1.0 / s
    for j in range(c):
        P_out[i, j] = P_out[i, j] * inv
    return m + math.log(s), best


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL)
def softmax_cross_entropy_onehot(Z, Y, P_out, D_out):
    # IN Z (n, c) logits, Y (n, c) one-hot (or soft) targets; OUT P_out (n, c) probs, D_out (n, c) = P - Y
    """Return (summed cross-entropy, number of rows whose argmax matches Y's argmax)."""
    n, c = Z.shape
    loss = 0.0
    correct = 0
    for i in range(n):
        lse, best = _softmax_row(Z, i, P_out)
        ybest = 0
        ymax = Y[i, 0]
        for j in range(c):
            y = Y[i, j]
            if y != 0:
                loss -= np.float64(y) * (np.float64(Z[i, j]) - lse)
            if y > ymax:
                ymax = y
                ybest = j
            D_out[i, j] = P_out[i, j] - y
        if ybest == best:
            correct += 1
    return loss, correct


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL)
def softmax_cross_entropy_index(Z, labels, P_out, D_out):
    # IN Z (n, c) logits, labels (n,) int class indices; OUT P_out (n, c), D_out (n, c) = P - onehot
    """Return (summed cross-entropy, number of rows whose argmax equals the label)."""
    n, c = Z.shape
    loss = 0.0
    correct = 0
    for i in range(n):
        lse, best = _softmax_row(Z, i, P_out)
        k = labels[i]
        loss -= np.float64(Z[i, k]) - lse
        for j in range(c):
            D_out[i, j] = P_out[i, j]
        D_out[i, k] = P_out[i, k] - 1
        if k == best:
            correct += 1
    return loss, correct


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL)
def cross_entropy_from_probs(Y, P):  # IN Y (n, c) one-hot, P (n, c) probabilities
    """Return (-sum(Y * log P), matches of argmax(Y) and argmax(P)); zero targets add nothing."""
    n, c = P.shape
    loss = 0.0
    correct = 0
    for i in range(n):
        pbest = 0
        ybest = 0
        for j in range(c):
            y = Y[i, j]
            if y != 0:
                loss -= np.float64(y) * math.log(np.float64(P[i, j]))
            if P[i, j] > P[i, pbest]:
                pbest = j
            if y > Y[i, ybest]:
                ybest = j
        if pbest == ybest:
            correct += 1
    return loss, correct


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL)
def sigmoid_binary_cross_entropy(Z, Y, P_out, D_out):
    # IN Z (n, 1) logits, Y (n, 1) targets in {0, 1}; OUT P_out (n, 1) = sigmoid(Z), D_out (n, 1) = P - Y
    """Return (summed binary cross-entropy, rows with (P >= 0.5) == (Y >= 0.5)), stable for any |Z|."""
    n, c = Z.shape
    loss = 0.0
    correct = 0
    for i in range(n):
        for j in range(c):
            z = np.float64(Z[i, j])
            y = np.float64(Y[i, j])
            # log(1 + exp(z)) - y z, written without overflow.
            loss += max(z, 0.0) - z * y + math.log1p(math.exp(-abs(z)))
            if z >= 0:
                p = 1.0 / (1.0 + math.exp(-z))
            else:
                e = math.exp(z)
                p = e / (1.0 + e)
            P_out[i, j] = p
            D_out[i, j] = p - y
            if (p >= 0.5) == (y >= 0.5):
                correct += 1
    return loss, correct


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL)
def squared_error(P, Y, D_out):  # IN P (n, m) predictions, Y (n, m) targets; OUT D_out (n, m) = 2 (P - Y)
    """Return the total squared error sum((P - Y)**2)."""
    n, m = P.shape
    loss = 0.0
    for i in range(n):
        for j in range(m):
            d = np.float64(P[i, j]) - np.float64(Y[i, j])
            loss += d * d
            D_out[i, j] = 2 * d
    return loss
