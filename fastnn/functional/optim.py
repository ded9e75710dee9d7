"""Optimizers: the in-place parameter updates and the plan of a training run's optimizer steps.

:func:`sgd_update`, :func:`momentum_update` (with Nesterov), :func:`adam_update` and :func:`adamw_update`
(Adam with decoupled weight decay, as ``torch.optim.AdamW``) update every parameter of a list in place.
:func:`step_plan` checks a training run's optimizer options, with the very checks of the compiled epochs'
plans (:func:`~fastnn.functional.epoch_plan`, :func:`~fastnn.functional.conv_epoch_plan`), and says how large
its optimizer state is; those plans are step plans too (:class:`StepPlan`).
"""

from __future__ import annotations

import numbers

import numpy as np

from .._config import ADAM_EPS
from .._kernels import _core
from ._checks import all_finite, check_adam, check_hyperparameter, check_optimizer_options, describe

__all__ = ["OPTIMIZERS", "ADAM_LIKE", "sgd_update", "momentum_update", "adam_update", "adamw_update", "StepPlan",
           "step_plan"]

#: Optimizers of :func:`step_plan` and the epoch plans (and of ``fastnn.train.Trainer``).
OPTIMIZERS = tuple(_core.OPTIMIZERS)
#: The optimizers with Adam's moment buffers and constants (betas, eps).
ADAM_LIKE = ("adam", "adamw")


# ------------------------------------------------------------------------- updates

def _flat_views(arrays, name: str, dtype=None, shapes=None):
    """1-D views of writeable contiguous arrays (checked, never copied: they are updated in place)."""
    if isinstance(arrays, np.ndarray):
        arrays = [arrays]
    views = []
    for i, a in enumerate(arrays):
        if not isinstance(a, np.ndarray) or a.dtype not in (np.float32, np.float64):
            raise TypeError(f"{name}[{i}]: expected a float32 or float64 ndarray, got {describe(a)}")
        if dtype is not None and a.dtype != dtype:
            raise TypeError(f"{name}[{i}]: expected dtype {dtype} like the parameters, got {a.dtype}")
        if shapes is not None and a.shape != shapes[i]:
            raise ValueError(f"{name}[{i}]: expected shape {shapes[i]} like the parameter, got shape {a.shape}")
        if not a.flags.c_contiguous:
            raise ValueError(f"{name}[{i}]: must be C-contiguous to be updated in place")
        if not a.flags.writeable and name != "grads":
            raise ValueError(f"{name}[{i}]: is read-only and cannot be updated in place")
        views.append(a.reshape(-1))
    return tuple(views)


def _check_update(params, grads, *states):
    if len(params) == 0:
        raise ValueError("params: nothing to update (empty list)")
    P = _flat_views(params, "params")
    dtype = P[0].dtype
    shapes = [np.shape(p) for p in (params if not isinstance(params, np.ndarray) else [params])]
    for i, p in enumerate(P):
        if p.dtype != dtype:
            raise TypeError(f"params[{i}]: all parameters must share one dtype ({dtype}), got {p.dtype}")
    if len(grads) != len(P):
        raise ValueError(f"grads: expected {len(P)} arrays (one per parameter), got {len(grads)}")
    G = []
    for i, g in enumerate(grads):
        g = np.asarray(g)
        if g.shape != shapes[i]:
            raise ValueError(f"grads[{i}]: expected shape {shapes[i]} like the parameter, got shape {g.shape}")
        if not all_finite(g):
            raise ValueError(f"grads[{i}]: contains NaN or inf; refusing to corrupt the parameters")
        G.append(np.ascontiguousarray(g, dtype=dtype).reshape(-1))
    S = []
    for name, st in states:
        if len(st) != len(P):
            raise ValueError(f"{name}: expected {len(P)} buffers (one per parameter), got {len(st)}")
        S.append(_flat_views(st, name, dtype, shapes))
    return P, tuple(G), S


def _check_lr(lr):
    if not np.isfinite(lr) or lr < 0:
        raise ValueError(f"lr: expected a finite learning rate >= 0, got {lr!r}")


def sgd_update(params, grads, lr: float, *, weight_decay: float = 0.0) -> None:
    """One plain SGD step for every parameter at once: ``p -= lr * (g + weight_decay * p)``, in place.

    Parameters
    ----------
    params : list of ndarrays (float32 or float64, C-contiguous, writeable)
    grads : list of ndarrays, shapes like ``params``
    lr : float
    weight_decay : float
    """
    _check_lr(lr)
    weight_decay = check_hyperparameter(weight_decay, "weight_decay", 0.0)
    P, G, _ = _check_update(params, grads)
    none = np.empty(0, P[0].dtype)
    for p, g in zip(P, G):
        _core.update(_core.OPTIMIZERS["sgd"], p, g, none, none, float(lr), 0.0, 0.0, 0.0, float(weight_decay), 0)


def momentum_update(params, grads, buffers, lr: float, *, mu: float = 0.9, nesterov: bool = False,
                    weight_decay: float = 0.0) -> None:
    """One momentum step for every parameter, exactly as the coursework writes it, in place.

    ``M = mu * M - lr * g``; ``p += M`` (Nesterov: ``p += mu * M - lr * g``).

    Parameters
    ----------
    params, grads : lists of ndarrays
    buffers : list of ndarrays
        The momentum buffers ``M``, shaped like ``params`` (start them at zero).
    lr, mu : float
    nesterov : bool
    weight_decay : float
    """
    _check_lr(lr)
    mu = check_hyperparameter(mu, "mu", 0.0, 1.0, high_open=True)
    weight_decay = check_hyperparameter(weight_decay, "weight_decay", 0.0)
    P, G, (M,) = _check_update(params, grads, ("buffers", buffers))
    kind = _core.OPTIMIZERS["nesterov" if nesterov else "momentum"]
    none = np.empty(0, P[0].dtype)
    for p, g, buf in zip(P, G, M):
        _core.update(kind, p, g, buf, none, float(lr), float(mu), 0.0, 0.0, float(weight_decay), 0)


def adam_update(params, grads, m, v, step: int, lr: float = 1e-3, *, beta1: float = 0.9, beta2: float = 0.999,
                eps: float = ADAM_EPS, weight_decay: float = 0.0) -> None:
    """One Adam step for every parameter, in place.

    Parameters
    ----------
    params, grads : lists of ndarrays
    m, v : lists of ndarrays
        First and second moment buffers, shaped like ``params`` (start at zero).
    step : int
        The number of this update, starting at 1 (bias correction).
    lr, beta1, beta2, eps, weight_decay : float
    """
    _adam_steps("adam", params, grads, m, v, step, lr, beta1, beta2, eps, weight_decay)


def adamw_update(params, grads, m, v, step: int, lr: float = 1e-3, *, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = ADAM_EPS, weight_decay: float = 1e-2) -> None:
    """One AdamW step for every parameter, in place: Adam with decoupled weight decay, as ``torch.optim.AdamW``.

    ``p *= 1 - lr * weight_decay``, then Adam's step from ``g`` alone (the decay is not in the gradient, so
    not in the moments): ``m = beta1 m + (1 - beta1) g``, ``v = beta2 v + (1 - beta2) g**2``,
    ``p -= lr * (m / (1 - beta1**step)) / (sqrt(v / (1 - beta2**step)) + eps)``.

    Parameters
    ----------
    params, grads : lists of ndarrays
    m, v : lists of ndarrays
        First and second moment buffers, shaped like ``params`` (start at zero).
    step : int
        The number of this update, starting at 1 (bias correction).
    lr, beta1, beta2, eps : float
    weight_decay : float
        The decoupled decay, >= 0; 0.01 by default, as torch's AdamW (the :class:`~fastnn.train.Trainer`'s
        ``weight_decay`` defaults to 0 for every optimizer).

    Examples
    --------
    >>> p, g = np.ones(2), np.array([0.5, -0.5]); m, v = np.zeros(2), np.zeros(2)
    >>> adamw_update([p], [g], [m], [v], step=1, lr=0.1, weight_decay=0.5)
    >>> p.round(6)  # 1 * (1 - 0.05) -/+ 0.1 (Adam's first step is lr * sign(g))
    array([0.85, 1.05])
    """
    _adam_steps("adamw", params, grads, m, v, step, lr, beta1, beta2, eps, weight_decay)


def _adam_steps(kind, params, grads, m, v, step, lr, beta1, beta2, eps, weight_decay) -> None:
    """adam_update's and adamw_update's checks and their kernel calls (``kind`` 'adam' or 'adamw')."""
    _check_lr(lr)
    check_adam(beta1, beta2, eps)
    if int(step) < 1:
        raise ValueError(f"step: Adam counts updates from 1, got {step!r}")
    weight_decay = check_hyperparameter(weight_decay, "weight_decay", 0.0)
    P, G, (M1, M2) = _check_update(params, grads, ("m", m), ("v", v))
    for p, g, a, b in zip(P, G, M1, M2):
        _core.update(_core.OPTIMIZERS[kind], p, g, a, b, float(lr), float(beta1), float(beta2), float(eps),
                     float(weight_decay), int(step))


# ------------------------------------------------------------------------ the plan

class StepPlan:
    """A training run's optimizer options, checked, and the sizes of its optimizer state.

    Built by :func:`step_plan` for a model trained batch by batch; the compiled epochs' plans
    (``EpochPlan``, ``NetworkPlan``) are StepPlans with a workspace besides.  ``optimizer``, ``batch_size``,
    ``dtype``, ``momentum``, ``betas`` and ``weight_decay`` are the checked options; ``mu``, ``beta2`` and
    ``eps`` the constants the update kernel takes (``mu`` is Adam's beta1 for Adam and AdamW, the momentum
    otherwise; ``beta2`` and ``eps`` are 0 but for those two).
    """

    def __init__(self, n_params, optimizer, batch_size, dtype, momentum, betas, eps, weight_decay):
        self.n_params = int(n_params)
        self.optimizer = optimizer
        self.optimizer_code = _core.OPTIMIZERS[optimizer]
        self.batch_size = batch_size
        self.dtype = dtype
        self.momentum = momentum
        self.betas = betas
        adam = optimizer in ADAM_LIKE
        self.mu = betas[0] if adam else momentum
        self.beta2 = betas[1] if adam else 0.0
        self.eps = eps if adam else 0.0
        self.weight_decay = weight_decay
        #: Lengths of the two optimizer buffers: momentum or Adam's m, and Adam's v (0: unused).
        self.state_sizes = (0 if optimizer == "sgd" else self.n_params, self.n_params if adam else 0)

    def new_state(self):
        """Zeroed optimizer buffers (momentum, or Adam's m and v) for a training run: a pair of arrays."""
        return tuple(np.zeros(n, self.dtype) for n in self.state_sizes)

    def __repr__(self):
        return (f"StepPlan({self.n_params:,} parameters, optimizer={self.optimizer!r}, "
                f"batch_size={self.batch_size}, {self.dtype})")


def step_plan(n_params, *, optimizer="sgd", batch_size=32, dtype="float64", momentum=0.9, betas=(0.9, 0.999),
              eps=ADAM_EPS, weight_decay=0.0) -> StepPlan:
    """Plan the optimizer steps of a model trained batch by batch: check the options, size the state.

    The checks (and their messages) are those of :func:`~fastnn.functional.epoch_plan` and
    :func:`~fastnn.functional.conv_epoch_plan`, without a loss or a compiled epoch's workspace.

    Parameters
    ----------
    n_params : int
        The model's parameters (the length of its flat theta), > 0.
    optimizer, batch_size, dtype, momentum, betas, eps, weight_decay
        As in :func:`~fastnn.functional.epoch_plan`.

    Returns
    -------
    StepPlan

    Examples
    --------
    >>> plan = step_plan(10, optimizer="adam", dtype="float32")
    >>> plan.state_sizes, plan.new_state()[1].dtype
    ((10, 10), dtype('float32'))
    """
    if isinstance(n_params, bool) or not isinstance(n_params, numbers.Integral) or n_params < 1:
        raise ValueError(f"n_params: expected a positive integer (the length of theta), got {n_params!r}")
    return StepPlan(n_params, *check_optimizer_options(optimizer, batch_size, dtype, momentum, betas, eps,
                                                       weight_decay))
