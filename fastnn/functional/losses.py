"""Losses: the fused loss functions and the one table of the losses a model may train with.

:func:`softmax_cross_entropy`, :func:`sigmoid_binary_cross_entropy` and :func:`squared_error` compute one
batch's summed loss and its gradient (:func:`cross_entropy` the loss of given probabilities); each takes
optional per-row ``weights`` (sample or class weights: ``sum_i w_i loss_i``) and a ``reduction`` of
:data:`LOSS_REDUCTIONS`: 'sum' (the default, the coursework's) or 'mean' (divided by the rows, PyTorch's
default, also with weights: ``(w * l).mean()``).  The gradient is always that of the loss returned.
:data:`LOSS_TABLE` says, for each name of :data:`LOSSES`, which output layer feeds the loss and whether it
is computed from the logits; :func:`check_loss` picks and checks a model's loss by it, and
:func:`batch_loss` computes any of them on one batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np

from .._config import ONEHOT_ATOL
from .._kernels import _core
from ._checks import (LOSS_REDUCTIONS, as_float, check_loss_name, check_out, check_reduction, check_row_weights,
                      float_dtype)

__all__ = ["LOSSES", "LOSS_REDUCTIONS", "LossResult", "softmax_cross_entropy", "sigmoid_binary_cross_entropy",
           "squared_error", "cross_entropy", "Loss", "LOSS_TABLE", "batch_loss", "check_loss"]

#: Names of the losses the kernels implement (of :func:`~fastnn.functional.epoch_plan`, of the models and of
#: :data:`LOSS_TABLE`, in this order).
LOSSES = tuple(_core.LOSSES)


def _check_batch(n: int, name: str) -> None:
    if n == 0:
        raise ValueError(f"{name}: empty batch (0 rows); pass at least one sample")


def _weighting(weights, reduction, n: int):
    """The kernels' row weights (None or (n,) float64) and gradient scale, and the loss's divisor."""
    reduction = check_reduction(reduction)
    w = None if weights is None else check_row_weights(weights, n)
    scale = 1.0 / n if reduction == "mean" else 1.0
    return w, scale, (n if reduction == "mean" else 1)


class LossResult(NamedTuple):
    """What a fused loss returns: the summed loss, the accuracy, dJ/d(logits) and the probabilities."""

    loss: float
    accuracy: float
    delta: np.ndarray
    probs: np.ndarray


def _labels(labels, n: int, c: int, dtype):
    """Return ('onehot', Y) or ('index', idx) after checking the labels against n rows and c classes."""
    y = np.asarray(labels)
    if y.ndim == 1:
        if y.shape[0] != n:
            raise ValueError(f"labels: expected {n} class indices (one per row of the logits), got shape {y.shape}")
        if y.dtype.kind not in "iu":
            if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
                y = y.astype(np.int64)
            else:
                raise ValueError(f"labels: 1-D labels must be integer class indices in [0, {c}), got dtype {y.dtype}")
        if n and (y.min() < 0 or y.max() >= c):
            raise ValueError(f"labels: class indices must lie in [0, {c}), got values from {y.min()} to {y.max()}")
        return "index", np.ascontiguousarray(y, dtype=np.int64)
    if y.ndim == 2:
        if y.shape != (n, c):
            raise ValueError(f"labels: expected one-hot rows of shape ({n}, {c}) like the logits, got shape {y.shape}")
        float_dtype(y)
        Y = np.ascontiguousarray(y, dtype=dtype)
        if n and not (
            np.all(np.abs(Y.sum(axis=1) - 1) <= ONEHOT_ATOL) and Y.min() >= -ONEHOT_ATOL
        ):
            raise ValueError(
                f"labels: 2-D labels must be one-hot (or probability) rows: non-negative and summing to 1; "
                f"got row sums from {Y.sum(axis=1).min():.4g} to {Y.sum(axis=1).max():.4g}"
            )
        return "onehot", Y
    raise ValueError(f"labels: expected one-hot rows (n, c) or class indices (n,), got shape {y.shape}")


def softmax_cross_entropy(logits, labels, *, weights=None, reduction="sum", out=None) -> LossResult:
    """Fused softmax + cross-entropy: summed loss, accuracy and ``delta = softmax(logits) - y`` in one pass.

    Stable for logits of any magnitude (log-sum-exp; no overflow, no log(0)).

    Parameters
    ----------
    logits : (n, c) ndarray of float32 or float64
    labels : (n, c) one-hot ndarray or (n,) ndarray of int class indices
    weights : (n,) array of float, optional
        Each row's weight (finite, >= 0): the loss is ``sum_i weights[i] * loss_i`` and row i's ``delta``
        is multiplied by ``weights[i]``.  The accuracy is not weighted.
    reduction : {'sum', 'mean'}
        'mean' divides the loss and ``delta`` by n (with weights too: ``(weights * loss_i).mean()``).
    out : tuple (delta, probs) of (n, c) buffers, optional

    Returns
    -------
    LossResult
        ``loss`` (float, summed over the batch, or its mean), ``accuracy`` (float in [0, 1]),
        ``delta`` (n, c) gradient of that loss with respect to the logits,
        ``probs`` (n, c) softmax probabilities.

    Examples
    --------
    >>> r = softmax_cross_entropy(np.array([[0.0, 0.0]]), np.array([1]))
    >>> round(r.loss, 6), r.delta
    (0.693147, array([[ 0.5, -0.5]]))
    >>> softmax_cross_entropy(np.array([[0.0, 0.0]]), np.array([1]), weights=[2.0]).delta
    array([[ 1., -1.]])
    """
    Z = as_float(logits, "logits", float_dtype(logits), 2)
    n, c = Z.shape
    _check_batch(n, "logits")
    kind, y = _labels(labels, n, c, Z.dtype)
    w, scale, divisor = _weighting(weights, reduction, n)
    d_out, p_out = (None, None) if out is None else out
    inputs = [("logits", Z), ("labels", y)]
    delta = check_out(d_out, "out[0] (delta)", (n, c), Z.dtype, inputs)
    probs = check_out(p_out, "out[1] (probs)", (n, c), Z.dtype, inputs + [("out[0] (delta)", delta)])
    if kind == "index":
        loss, correct = _core.softmax_cross_entropy_index(Z, y, probs, delta, w, scale)
    else:
        loss, correct = _core.softmax_cross_entropy_onehot(Z, y, probs, delta, w, scale)
    return LossResult(float(loss) / divisor, correct / n, delta, probs)


def sigmoid_binary_cross_entropy(logits, y, *, weights=None, reduction="sum", out=None) -> LossResult:
    """Fused sigmoid + binary cross-entropy for single-output networks.

    Parameters
    ----------
    logits : (n, 1) ndarray of float32 or float64
    y : (n, 1) or (n,) ndarray of targets in {0, 1}
    weights : (n,) array of float, optional
        Row weights, as :func:`softmax_cross_entropy`'s.
    reduction : {'sum', 'mean'}
    out : tuple (delta, probs) of (n, 1) buffers, optional

    Returns
    -------
    LossResult
        Summed (or mean) BCE, accuracy of ``p >= 0.5``, ``delta = (sigmoid(logits) - y) * weights`` (divided
        by n for the mean), ``probs = sigmoid(logits)``.
    """
    Z = as_float(logits, "logits", float_dtype(logits), 2)
    n, c = Z.shape
    _check_batch(n, "logits")
    if c != 1:
        raise ValueError(f"logits: binary cross-entropy takes one output column, got shape {Z.shape}")
    Y = np.asarray(y)
    if Y.shape not in ((n,), (n, 1)):
        raise ValueError(f"y: expected shape ({n}, 1) or ({n},), got shape {Y.shape}")
    float_dtype(Y)
    Y = np.ascontiguousarray(Y.reshape(n, 1), dtype=Z.dtype)
    if not np.all((Y == 0) | (Y == 1)):
        raise ValueError("y: binary targets must be 0 or 1")
    w, scale, divisor = _weighting(weights, reduction, n)
    d_out, p_out = (None, None) if out is None else out
    inputs = [("logits", Z), ("y", Y)]
    delta = check_out(d_out, "out[0] (delta)", (n, 1), Z.dtype, inputs)
    probs = check_out(p_out, "out[1] (probs)", (n, 1), Z.dtype, inputs + [("out[0] (delta)", delta)])
    loss, correct = _core.sigmoid_binary_cross_entropy(Z, Y, probs, delta, w, scale)
    return LossResult(float(loss) / divisor, correct / n, delta, probs)


def squared_error(pred, target, *, weights=None, reduction="sum", out=None):
    """Total squared error ``sum((pred - target)**2)`` and its gradient ``2 (pred - target)``.

    Parameters
    ----------
    pred, target : (n, m) ndarrays of float32 or float64
    weights : (n,) array of float, optional
        Row weights: ``sum_i weights[i] * sum_j (pred - target)[i, j]**2``.
    reduction : {'sum', 'mean'}
        'mean' divides by the n rows (not by n * m).
    out : (n, m) buffer for the gradient, optional

    Returns
    -------
    loss : float
    delta : (n, m) ndarray
    """
    dtype = float_dtype(pred, target)
    P = as_float(pred, "pred", dtype, 2)
    T = as_float(target, "target", dtype, 2)
    if P.shape != T.shape:
        raise ValueError(f"target: expected shape {P.shape} like pred, got shape {T.shape}")
    _check_batch(P.shape[0], "pred")
    w, scale, divisor = _weighting(weights, reduction, P.shape[0])
    delta = check_out(out, "out", P.shape, dtype, [("pred", P), ("target", T)])
    return float(_core.squared_error(P, T, delta, w, scale)) / divisor, delta


def cross_entropy(y, probs):
    """Summed cross-entropy ``-sum(y * log(probs))`` and accuracy, from probabilities.

    Parameters
    ----------
    y : (n, c) one-hot ndarray
    probs : (n, c) ndarray of probabilities

    Returns
    -------
    loss : float
    accuracy : float
    """
    P = as_float(probs, "probs", float_dtype(probs), 2)
    n, c = P.shape
    _check_batch(n, "probs")
    kind, Y = _labels(y, n, c, P.dtype)
    if kind == "index":
        Y = np.eye(c, dtype=P.dtype)[Y]
    loss, correct = _core.cross_entropy_from_probs(Y, P)
    return float(loss), correct / n


# ------------------------------------------------------------------------- the table

@dataclass(frozen=True)
class Loss:
    """One loss of :data:`LOSS_TABLE`: the function that computes it and the output layer that feeds it.

    Attributes
    ----------
    name : str
        Its name in :data:`LOSSES`.
    function : callable
        The function of :mod:`fastnn.functional` that computes it on one batch, ``function(Z, T)``.
    output_activation : str or None
        The activation of the last layer it pairs with ('softmax', 'sigmoid'); None: any but those of
        ``not_with``.
    from_logits : bool
        True: computed from the last layer's pre-activation Z (the logits), the activation fused into the
        loss (the layer itself then runs 'linear'); False: from the layer's output.
    counts_correct : bool
        Whether it counts correct predictions (an accuracy); the squared error does not.
    n_out : int or None
        The output units it needs (1 for binary cross-entropy); None: any number.
    not_with : tuple of str
        Activations of the last layer it refuses.
    mismatch : str
        The ValueError text when the output layer cannot feed it (see :func:`check_loss`).
    """

    name: str
    function: Callable = field(repr=False)
    output_activation: str | None
    from_logits: bool
    counts_correct: bool
    mismatch: str
    n_out: int | None = None
    not_with: tuple[str, ...] = ()

    def pairs_with(self, activation: str, n_out: int) -> bool:
        """True when a last layer of ``n_out`` units with this ``activation`` can feed the loss."""
        return ((self.output_activation is None or activation == self.output_activation)
                and activation not in self.not_with and (self.n_out is None or n_out == self.n_out))


_LOSSES = (
    Loss("cross_entropy", softmax_cross_entropy, "softmax", from_logits=True, counts_correct=True,
         mismatch="loss 'cross_entropy' needs a 'softmax' output layer"),
    Loss("binary_cross_entropy", sigmoid_binary_cross_entropy, "sigmoid", from_logits=True, counts_correct=True,
         n_out=1, mismatch="loss 'binary_cross_entropy' needs one 'sigmoid' output unit"),
    Loss("squared_error", squared_error, None, from_logits=False, counts_correct=False, not_with=("softmax",),
         mismatch="loss 'squared_error' with a softmax output is not supported; use 'cross_entropy'"),
)
#: Each loss of :data:`LOSSES` (same order) by name: a :class:`Loss`.
LOSS_TABLE: dict[str, Loss] = {name: next(entry for entry in _LOSSES if entry.name == name) for name in LOSSES}


def check_loss(loss, activation: str, n_out: int) -> str:
    """A model's loss, checked against its output layer (or chosen by it when None): the loss's name.

    Parameters
    ----------
    loss : str or None
        One of :data:`LOSSES`.  None picks the first loss of :data:`LOSS_TABLE` that the output layer can
        feed: cross-entropy for softmax, binary cross-entropy for one sigmoid unit, the squared error
        otherwise.
    activation : str
        The activation of the model's last layer.
    n_out : int
        Its units.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        For a name not in :data:`LOSSES`, or a loss that the output layer cannot feed (the loss's
        ``mismatch`` text).

    Examples
    --------
    >>> check_loss(None, "sigmoid", 1), check_loss(None, "relu", 3)
    ('binary_cross_entropy', 'squared_error')
    """
    if loss is None:
        return next(entry.name for entry in LOSS_TABLE.values() if entry.pairs_with(activation, n_out))
    entry = LOSS_TABLE[check_loss_name(loss)]
    if not entry.pairs_with(activation, n_out):
        raise ValueError(entry.mismatch)
    return entry.name


def batch_loss(loss: str, Z, T, *, weights=None, reduction="sum") -> tuple[float, np.ndarray, int]:
    """One batch's summed (or mean) loss, its gradient with respect to Z and the correct predictions.

    Parameters
    ----------
    loss : str
        One of :data:`LOSSES`.
    Z : (n, m) ndarray of float32 or float64
        The last layer's output: its pre-activation (the logits) for a loss computed ``from_logits`` (the
        cross-entropies), its activation's output for the squared error.
    T : ndarray
        Targets as the loss's function takes them: one-hot rows or class indices (cross-entropy), 0/1
        (binary cross-entropy), values (squared error).
    weights : (n,) array of float, optional
        Row weights (sample or class weights), passed to the loss's function.
    reduction : {'sum', 'mean'}
        Of :data:`LOSS_REDUCTIONS`, passed to the loss's function.

    Returns
    -------
    loss_sum : float
        The (weighted) loss summed over the rows, or its mean over them.
    delta : (n, m) ndarray
        dJ/dZ of that loss.
    correct : int
        Correct predictions (0 for a loss without an accuracy: the squared error).

    Examples
    --------
    >>> batch_loss("cross_entropy", np.array([[0.0, 0.0]]), np.array([1]))[1]
    array([[ 0.5, -0.5]])
    """
    entry = LOSS_TABLE[check_loss_name(loss)]
    if not entry.counts_correct:
        loss_sum, delta = entry.function(Z, T, weights=weights, reduction=reduction)
        return loss_sum, delta, 0
    r = entry.function(Z, T, weights=weights, reduction=reduction)
    return r.loss, r.delta, round(r.accuracy * r.delta.shape[0])
