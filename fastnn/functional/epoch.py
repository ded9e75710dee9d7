"""One compiled training epoch (:func:`train_epoch`) of a plan from :func:`~fastnn.functional.epoch_plan`
(a dense network) or :func:`~fastnn.functional.conv_epoch_plan` (a stack of conv, pool, flatten and dense
layers)."""

from __future__ import annotations

import numbers
import threading
from typing import NamedTuple

import numpy as np

from .._kernels import _core
from ._checks import check_array, check_reduction, describe
from .conv_epoch import NetworkPlan
from .dense_epoch import EpochPlan
from .threads import check_threads, get_num_threads

__all__ = ["RETRY_FULL_TEAM", "EpochResult", "train_epoch"]

#: A plan whose call had to send threads away starts its next calls with the threads that were left; every
#: RETRY_FULL_TEAM-th call starts with all of them again (the machine may have become quiet).
RETRY_FULL_TEAM = 4


class EpochResult(NamedTuple):
    """What :func:`train_epoch` returns: the summed loss, the correct predictions, the update count, the
    first batch that fewer threads ran because other work slowed the team down (-1: none), the threads
    the call started with, and the batches it did."""

    loss: float
    correct: int
    step: int
    reduced_from: int = -1
    threads: int = 1
    batches: int = 0


def train_epoch(plan: EpochPlan | NetworkPlan, X, T, order, theta, state, *, lr, step: int = 0,
                threads: int | None = None, start_loss: float = 0.0, weights=None,
                reduction: str = "sum", seed: int = 0, running=None) -> EpochResult:
    """Train one epoch in one compiled call: every batch's gather, forward, fused loss, backward and update.

    Parameters
    ----------
    plan : EpochPlan or NetworkPlan
        From :func:`epoch_plan` (a dense network, an MLP) or :func:`conv_epoch_plan` (a stack of conv, pool,
        flatten and dense layers).
    X : (N, sizes[0]) C-contiguous ndarray of the plan's dtype
        Finite inputs (not checked here, for speed: ``Trainer.fit`` checks them once).  For a NetworkPlan,
        NHWC images (N, H, W, C) or their rows (N, H*W*C).
    T : (N, sizes[-1]) C-contiguous ndarray of the plan's dtype
        Targets: one-hot rows (cross-entropy), 0/1 (binary cross-entropy) or values (squared error).
    order : (n,) C-contiguous ndarray of int64
        The rows of X to train on, in order; batches are ``order[0:bs]``, ``order[bs:2bs]``, ... (the last
        may be short).  An epoch can be trained in several calls over consecutive slices of its order
        that start at multiples of the batch size (for progress reports): see ``start_loss``.
    theta : (n_params,) ndarray of the plan's dtype
        The flat parameters (see :func:`parameter_offsets`, :func:`network_parameter_offsets`), updated in
        place.
    state : pair of ndarrays
        The optimizer buffers from ``plan.new_state()``, updated in place.
    lr : float or (n_batches,) ndarray of float64
        Learning rate (> 0) for the gradient of the batch's loss (summed over its rows unless ``reduction``
        is 'mean'); or one rate (>= 0, finite) for each batch of ``order`` in turn, at least
        ``ceil(n / batch_size)`` of them (a schedule that changes within the epoch: the compiled epoch reads
        each batch's from the array).  A float runs every batch at that rate, as before there were schedules.
    step : int
        Updates done before this epoch (Adam's bias correction counts from it).
    start_loss : float
        Added to the loss sum before the first batch: the previous calls' ``loss`` when an epoch is trained
        in several calls, so that its loss sums in the same order, to the same bits, as in one call.
    threads : int, optional
        Threads for this epoch (default :func:`get_num_threads`; no more than the plan's ``max_parts``, nor
        than the CPUs the process may use, are started).  When other work on the machine keeps slowing the
        team down (in 3 of 4 batches the first thread waits more than half the batch for parts taken by
        others, or the batch takes over twice the plan's best), half the threads leave for the rest of the
        call, down to one, and the plan's next calls start with those
        that were left (all of them again every RETRY_FULL_TEAM-th call): the numbers are the same either
        way.
    weights : (N,) C-contiguous ndarray of float64, optional
        A weight per row of X (not of ``order``: they are gathered with the batch's rows), finite and >= 0
        (not checked here, for speed: ``Trainer.fit`` checks them once).  Each row's loss and gradient are
        multiplied by its weight; the loss sum returned is the weighted one; ``correct`` is not weighted.
    reduction : {'sum', 'mean'}
        'mean' divides each batch's gradient by its rows (also a short last batch's by its own), as
        PyTorch's default; the loss sum returned is not divided.
    seed : int
        The run's seed, from which a NetworkPlan's Dropout layers draw their masks (with the step and the
        layer's index: ``fastnn.functional.dropout``'s masks, the step path's).
    running : (plan.running_size,) C-contiguous ndarray of float64
        A NetworkPlan with BatchNorm layers: their running means and variances (each layer's C means, then
        its C variances, in layer order: ``fastnn.models.CNN.running``), updated in place after every
        batch whose loss is finite, as ``update_running_stats`` does.  Required with BatchNorm layers.

    Returns
    -------
    EpochResult
        ``loss`` summed over the epoch, ``correct`` predictions, ``step`` after the epoch,
        ``reduced_from``, ``threads``, ``batches``.  When a batch's loss is not finite the epoch stops
        before that batch's update and ``loss`` is that value.  Called from the main thread, Ctrl-C stops
        the epoch after the batch under way (never inside one) and Python raises KeyboardInterrupt as the
        call returns; the parameters then hold the finished batches' updates.  When your own SIGINT handler
        does not raise, the call returns after that batch all the same: ``batches`` then counts fewer than
        the order's batches, and a call over the rest of the order (``start_loss`` the loss so far) finishes
        the epoch with the same numbers (``Trainer`` does that).
    """
    if isinstance(plan, EpochPlan):
        d, c, shape = plan.sizes[0], plan.sizes[-1], f"a 2-D array of shape (N, {plan.sizes[0]})"
    elif isinstance(plan, NetworkPlan):
        d, c = plan.input_size, plan.output_size
        shape = f"C-contiguous images of shape (N, {', '.join(map(str, plan.input_shape))}) or rows (N, {d})"
        if isinstance(X, np.ndarray) and X.ndim == 4 and X.shape[1:] == plan.input_shape and X.flags.c_contiguous:
            X = X.reshape(X.shape[0], d)
    else:
        raise TypeError(f"plan: expected an EpochPlan from fastnn.functional.epoch_plan or a NetworkPlan from "
                        f"conv_epoch_plan, got {type(plan).__name__}")
    if not isinstance(X, np.ndarray) or X.ndim != 2:
        raise ValueError(f"X: expected {shape}, got "
                         f"{describe(X) if isinstance(X, np.ndarray) else type(X).__name__}")
    N = X.shape[0]
    check_array(X, "X", (N, d), plan.dtype)
    check_array(T, "T", (N, c), plan.dtype)
    if not isinstance(order, np.ndarray) or order.ndim != 1:
        raise ValueError(f"order: expected a 1-D array of row numbers, got "
                         f"{describe(order) if isinstance(order, np.ndarray) else type(order).__name__}")
    check_array(order, "order", order.shape, np.int64)
    if order.size and (order.min() < 0 or order.max() >= N):
        raise ValueError(f"order: row numbers must lie in [0, {N}), got values from {order.min()} to {order.max()}")
    check_array(theta, "theta", (plan.n_params,), plan.dtype, writeable=True)
    if not isinstance(state, (tuple, list)) or len(state) != 2:
        raise ValueError("state: expected the pair of optimizer buffers from plan.new_state()")
    for i, size in enumerate(plan.state_sizes):
        check_array(state[i], f"state[{i}]", (size,), plan.dtype, writeable=True)
    lrs = None
    if isinstance(lr, np.ndarray):
        batches_needed = -(-order.shape[0] // plan.batch_size)
        if lr.ndim != 1 or lr.dtype != np.float64 or not lr.flags.c_contiguous or lr.shape[0] < batches_needed:
            raise ValueError(f"lr: expected a float or a C-contiguous float64 array of a rate per batch, at least "
                             f"{batches_needed}, got {describe(lr)}")
        if lr.size and not (np.all(np.isfinite(lr)) and lr.min() >= 0):
            raise ValueError("lr: the rates per batch must be finite and >= 0")
        lrs, lr = lr, float(lr[0]) if lr.size else 0.0
    elif not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr: expected a positive learning rate, got {lr!r}")
    mean = check_reduction(reduction) == "mean"
    weight_work = None
    if weights is not None:
        check_array(weights, "weights", (N,), np.float64)
        weight_work = getattr(plan, "_weight_work", None)
        if weight_work is None:
            weight_work = plan._weight_work = np.zeros(2 * plan.batch_size)
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
        raise ValueError(f"step: expected the number of updates done so far (>= 0), got {step!r}")
    threads = get_num_threads() if threads is None else check_threads(threads)
    if not np.isfinite(start_loss):
        raise ValueError(f"start_loss: expected the finite loss sum of the epoch's earlier calls, got {start_loss!r}")
    # No more threads than the plan's largest step has parts, nor than the CPUs the process may use: in the
    # epoch every step waits for the parts of the one before, and a thread beyond the CPUs only takes the CPU
    # from one that holds a part (measured: 8 threads on 2 CPUs ran the batch-1024 epoch 20% slower than 2).
    roles = max(1, min(int(threads), plan.max_parts, _core.get_cpus()))
    # A call that had to send threads away (a busy machine, or more threads than CPUs) makes the plan's next
    # calls start with the threads that were left; every RETRY_FULL_TEAM-th call tries the whole team again.
    hint, since = plan._threads_memory
    if hint is not None and hint < roles and since < RETRY_FULL_TEAM:
        start, plan._threads_memory = hint, (hint, since + 1)
    else:
        start, plan._threads_memory = roles, (None, 0)
    need = getattr(plan, "running_size", 0)
    if need:
        if running is None:
            raise ValueError(f"running: the plan's BatchNorm layers need their running statistics ({need} float64 "
                             "values, e.g. fastnn.models.CNN.running)")
        check_array(running, "running", (need,), np.float64, writeable=True)
    elif running is not None and np.asarray(running).size:
        raise ValueError("running: this plan has no BatchNorm layer, so no running statistics to update")
    args = (plan, X, T, order, theta, state[0], state[1], float(lr), int(step), start, float(start_loss),
            threading.current_thread() is threading.main_thread(), weights, weight_work, lrs, mean, int(seed) % 2**64)
    if isinstance(plan, NetworkPlan):
        loss, correct, step, reduced, batches, left = _core.network_epoch(*args, running if need else None)
    else:
        loss, correct, step, reduced, batches, left = _core.mlp_epoch(*args)
    if reduced >= 0 or start < roles:
        plan._threads_memory = (int(left), plan._threads_memory[1])
    return EpochResult(float(loss), int(correct), int(step), int(reduced), start, int(batches))
