"""Training: mini-batch SGD, momentum, Nesterov, Adam and AdamW, learning-rate schedules, sample and class
weights, history and checkpoints.

Callbacks (early stopping, checkpoints by any History series, your own) are in :mod:`fastnn.callbacks`.

The trainer has two paths that compute the same thing:

* the **fast path** (the default): one compiled call
  (``fastnn.functional.train_epoch``, of the plan the model builds with its
  ``epoch_plan``) runs a whole epoch, every batch's forward, fused loss,
  backward and update;
* the **step path** (``fused=False``, or a model whose ``epoch_plan`` is
  None): the model's ``loss_gradient`` batch by batch from Python through
  ``fastnn.functional``, and the same optimizer updates.

The trainer knows models only through their interface (:mod:`fastnn.models.base`):
an :class:`~fastnn.models.MLP` and a :class:`~fastnn.models.CNN` train alike.

The tests hold the two to the same numbers within dtype tolerance.  Gradients
are those of the loss summed over a batch (the coursework's convention), so
learning rates carry over from coursework scripts unchanged; ``loss_reduction="mean"``
averages it instead, as PyTorch and Keras do.  A learning-rate schedule that changes
within an epoch ('cosine', 'onecycle', a callable) gives the compiled epoch a rate
per batch, which it reads batch by batch; sample and class weights are gathered
with each batch's rows inside it too.
"""

from __future__ import annotations

import math
import numbers
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import functional as F
from ._config import ADAM_EPS, ONEHOT_ATOL
from .models.base import Model
from .progress import ProgressBar

SHUFFLES = ("once", "epoch", "none")
#: The per-epoch History series a callback may monitor (``lr`` and ``seconds`` are records, not figures of merit).
SERIES = ("train_loss", "train_acc", "valid_loss", "valid_acc")
#: Named learning-rate schedules of :class:`Trainer` (``lr_schedule``; a callable of the epoch works too).
LR_SCHEDULES = ("step", "cosine", "onecycle")
#: torch.optim.lr_scheduler.OneCycleLR's defaults, which the 'onecycle' schedule follows.
ONECYCLE = dict(pct_start=0.3, div_factor=25.0, final_div_factor=1e4)


def cosine_rates(lr: float, lr_min: float, first: int, count: int, total: int) -> np.ndarray:
    """Rates of batches ``first .. first + count - 1`` of ``total`` under cosine annealing from ``lr`` to
    ``lr_min`` (torch's CosineAnnealingLR with T_max = total, eta_min = lr_min, stepped per batch):
    ``lr_min + (lr - lr_min) (1 + cos(pi k / total)) / 2`` for batch k."""
    k = np.arange(first, first + count, dtype=np.float64)
    return lr_min + (lr - lr_min) * (1 + np.cos(np.pi * k / total)) / 2


def onecycle_rates(lr: float, first: int, count: int, total: int) -> np.ndarray:
    """Rates of batches ``first .. first + count - 1`` of ``total`` under the one-cycle policy, as torch's
    OneCycleLR(max_lr=lr, total_steps=total) with its defaults (pct_start 0.3, cosine annealing,
    div_factor 25, final_div_factor 1e4, two phases): from lr / 25 up to lr over the first 30% of the
    batches, then down to lr / 25 / 1e4.  (torch also cycles the momentum, or Adam's beta1, by default;
    fastnn cycles only the rate: torch's ``cycle_momentum=False``.)"""
    start = lr / ONECYCLE["div_factor"]
    low = start / ONECYCLE["final_div_factor"]
    phases = ((float(ONECYCLE["pct_start"] * total) - 1, start, lr), (float(total - 1), lr, low))
    out = np.empty(count)
    for i, k in enumerate(range(first, first + count)):
        begin = 0.0
        for j, (end, a, b) in enumerate(phases):
            if k <= end or j == len(phases) - 1:
                pct = (k - begin) / (end - begin)
                out[i] = b + (a - b) / 2.0 * (math.cos(math.pi * pct) + 1)
                break
            begin = end
    return out


def _from_batch(lr, b: int):
    """The rates from batch b on: a float stays, a per-batch array is sliced."""
    return lr[b:] if isinstance(lr, np.ndarray) else lr


class TrainingDiverged(ValueError):
    """The loss or the parameters became NaN or inf.  The model and the trainer's optimizer state (momentum
    or Adam's moments and step count) are rolled back to the end of the last finite epoch, so the same
    trainer can be fitted again, e.g. after lowering its ``lr``."""


class ChanceLevelWarning(UserWarning):
    """A classifier's training ended no better than always predicting the most frequent class."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) during :meth:`Trainer.fit`: a KeyboardInterrupt, raised after the batch under way.

    The model and the trainer's optimizer state are those of the end of the last finished epoch (the
    interrupted epoch's batches are undone), and ``history`` holds the finished epochs (also kept as
    ``trainer.history``), so the same trainer can be fitted again.
    """

    def __init__(self, history: History, epochs_done: int):
        super().__init__(f"training interrupted after {epochs_done} finished epoch"
                         f"{'' if epochs_done == 1 else 's'}; the model holds the end of the last one")
        self.history = history
        self.epochs_done = epochs_done


@dataclass
class History:
    """Per-epoch records: losses are averaged per sample, accuracies are fractions in [0, 1]."""

    train_loss: list = field(default_factory=list)
    train_acc: list = field(default_factory=list)
    valid_loss: list = field(default_factory=list)
    valid_acc: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    best_epoch: int | None = None
    #: The epoch (counted from 0, as ``best_epoch``) after which a callback stopped training; None when it ran
    #: every epoch.  The lists then hold ``stopped_epoch + 1`` epochs.
    stopped_epoch: int | None = None

    def as_dict(self) -> dict:
        return {k: list(getattr(self, k)) for k in ("train_loss", "train_acc", "valid_loss", "valid_acc", "lr",
                                                     "seconds")} | {"best_epoch": self.best_epoch,
                                                                    "stopped_epoch": self.stopped_epoch}

    def __repr__(self):
        n = len(self.train_loss)
        last = f", last train_loss={self.train_loss[-1]:.4g}" if n else ""
        return f"History({n} epochs{last})"


class Trainer:
    """Mini-batch training of a fastnn model (:class:`~fastnn.models.MLP`, :class:`~fastnn.models.CNN`).

    Parameters
    ----------
    model : fastnn.models.Model
    optimizer : {'sgd', 'momentum', 'nesterov', 'adam', 'adamw'}
        'adamw' is Adam with decoupled weight decay (``torch.optim.AdamW``): each step first shrinks the
        parameters by ``lr * weight_decay``, and the decay is not added to the gradient.
    lr : float
        Learning rate, for the gradient of the loss *summed* over a batch (the coursework's convention), not
        averaged as in PyTorch and Keras: their SGD and momentum rates divided by ``batch_size`` give the
        same steps here.  A classifier whose training ends no better than always predicting the most
        frequent class gets a :class:`ChanceLevelWarning` saying so.  With ``loss_reduction='mean'`` the rate is
        for the batch's mean loss, PyTorch's scale.  The peak rate of the 'cosine' and 'onecycle' schedules.
    momentum : float
        ``mu`` of momentum and Nesterov (``M = mu M - lr g; W += M``).
    betas : (float, float)
        Adam's beta1, beta2, each in [0, 1).
    eps : float
        Adam's epsilon, > 0.
    weight_decay : float
        L2 penalty added to every gradient; for 'adamw' the decoupled decay (torch's AdamW default is 0.01,
        fastnn's stays 0 for every optimizer).
    batch_size : int
    shuffle : {'once', 'epoch', 'none'}
        'once' draws the batches once and reuses them every epoch (the coursework);
        'epoch' reshuffles every epoch; 'none' keeps the data order.
    lr_decay, lr_step : float, int
        Multiply the learning rate by ``lr_decay`` every ``lr_step`` epochs (0: never): the 'step' schedule.
    lr_schedule : {None, 'step', 'cosine', 'onecycle'} or callable
        How the rate changes over a :meth:`fit` (every ``fit`` starts its schedule anew):

        * None or 'step': ``lr`` decayed by ``lr_decay`` every ``lr_step`` epochs (constant by default);
        * 'cosine': batch by batch from ``lr`` down to ``lr_min``, as ``torch.optim.lr_scheduler.
          CosineAnnealingLR(T_max=the fit's batches, eta_min=lr_min)`` stepped after every batch;
        * 'onecycle': as torch's ``OneCycleLR(max_lr=lr, total_steps=the fit's batches)`` with its defaults
          (pct_start 0.3, cosine annealing, div_factor 25, final_div_factor 1e4), stepped after every batch;
          fastnn cycles the rate only, not the momentum or Adam's beta1 (torch's ``cycle_momentum=False``);
        * a callable ``f(epoch)`` of the epoch as a float (``ep + b / batches``: 2.5 is halfway through the
          third epoch) returning the rate (finite, >= 0) of that batch.

        Rates that change within an epoch are handed to the compiled epoch as one rate per batch.
        ``History.lr`` records the rate of each epoch's first batch.
    lr_min : float
        The 'cosine' schedule's final rate (torch's ``eta_min``), >= 0.
    loss_reduction : {'sum', 'mean'}
        'sum' (the default, the coursework's): the gradient of the loss summed over a batch.  'mean': of its
        mean, divided by the batch's rows (a short last batch by its own), PyTorch's and Keras's default,
        so that their learning rates carry over.  The reported losses are the same either way.
    seed : int
        Seeds the batch order.
    fused : bool
        Run each epoch as one compiled call (default) or batch by batch.  A model whose layers the compiled
        epoch does not run (its ``epoch_plan`` is None, e.g. a CNN of :meth:`fastnn.models.CNN.network_layers`
        None) trains batch by batch (``fused`` is then False).
    progress : bool, None or a ProgressBar
        Show progress on stderr: on a terminal a bar redrawn within each epoch, elsewhere plain lines at
        a modest rate (None and True); False shows nothing.  An object with ``update(done, info)`` (a
        :class:`ProgressBar`, or an adapter placing one ``fit`` within a longer job) is reported to
        instead of a new bar, ``done`` counted in epochs of each ``fit``.
    checkpoint : path, optional
        Save the model with the best validation accuracy there (``.npz``, atomic).  An existing file that is
        read-only (e.g. mode 0o444) is not replaced, a ``PermissionError`` at the first save, unless it is
        the file this trainer saved last, unchanged since (a umask such as 0o277 makes those read-only).
    threads : 'auto' or int
        Threads for the fused epoch: 'auto' is fastnn's team size (``fastnn.functional.get_num_threads``:
        FASTNN_NUM_THREADS, OMP_NUM_THREADS or the CPUs the process may use), an int sets it for this
        trainer.  Any value gives the same numbers; no more threads are started than the epoch has parts,
        and on a machine busy with other work the epoch sends half of them away (down to one) when they
        hold the first one up.

    Ctrl-C (SIGINT) stops :meth:`fit` after the batch under way, with or without a progress bar: it raises
    :class:`TrainingInterrupted` (a KeyboardInterrupt) and leaves the model and the optimizer state as
    they were at the end of the last finished epoch, whose History the exception carries.

    ``fit(..., callbacks=[...])`` takes objects with Keras-like hooks (:class:`fastnn.callbacks.Callback`,
    :class:`~fastnn.callbacks.EarlyStopping`, :class:`~fastnn.callbacks.ModelCheckpoint`); see :meth:`fit`.

    Examples
    --------
    >>> from fastnn.models import MLP
    >>> model = MLP([2, 8, 2], ["tanh", "softmax"], seed=0)
    >>> X = np.array([[0., 0.], [0., 1.], [1., 0.], [1., 1.]] * 8); y = np.array([0, 1, 1, 0] * 8)
    >>> hist = Trainer(model, optimizer="adam", lr=0.05, batch_size=8, progress=False).fit(X, y, epochs=200)
    >>> hist.train_acc[-1]
    1.0
    """

    def __init__(self, model: Model, *, optimizer="sgd", lr=1e-3, momentum=0.9, betas=(0.9, 0.999), eps=ADAM_EPS,
                 weight_decay=0.0, batch_size=32, shuffle="once", lr_decay=1.0, lr_step=0, seed=0, fused=True,
                 progress=None, checkpoint=None, threads="auto", lr_schedule=None, lr_min=0.0, loss_reduction="sum"):
        if not isinstance(model, Model):
            raise TypeError(f"model: expected a fastnn model (fastnn.models.MLP, fastnn.models.CNN), got "
                            f"{type(model).__name__}")
        if not (np.isfinite(lr) and lr > 0):
            raise ValueError(f"lr: expected a positive learning rate, got {lr!r}")
        if shuffle not in SHUFFLES:
            raise ValueError(f"shuffle: expected one of {SHUFFLES}, got {shuffle!r}")
        if not (np.isfinite(lr_decay) and lr_decay > 0) or int(lr_step) < 0:
            raise ValueError(f"lr_decay/lr_step: expected lr_decay > 0 and lr_step >= 0, got {lr_decay!r}, {lr_step!r}")
        if not (lr_schedule is None or callable(lr_schedule) or (isinstance(lr_schedule, str)
                                                                 and lr_schedule in LR_SCHEDULES)):
            raise ValueError(f"lr_schedule: expected None, one of {LR_SCHEDULES} or a callable of the epoch, "
                             f"got {lr_schedule!r}")
        if lr_schedule not in (None, "step") and int(lr_step) and lr_decay != 1:
            raise ValueError(f"lr_decay/lr_step: they make the 'step' schedule; lr_schedule={lr_schedule!r} "
                             "replaces it: leave them at their defaults")
        lr_min = F.check_hyperparameter(lr_min, "lr_min", 0.0)
        loss_reduction = F.check_reduction(loss_reduction, "loss_reduction")
        if threads != "auto" and (isinstance(threads, bool) or not isinstance(threads, numbers.Integral)
                                  or not 1 <= threads <= F.MAX_THREADS):
            raise ValueError(f"threads: expected 'auto' or an integer from 1 to {F.MAX_THREADS}, got {threads!r}")
        # The plan checks the optimizer, batch size, betas and eps; a compiled epoch's plan also holds its
        # workspace.  A model the compiled epoch cannot run trains batch by batch.
        options = dict(optimizer=optimizer, batch_size=batch_size, momentum=momentum, betas=betas, eps=eps,
                       weight_decay=weight_decay)
        self.plan = model.epoch_plan(**options) if fused else None
        if self.plan is None:
            fused = False
            self.plan = F.step_plan(model.theta.size, dtype=model.dtype, **options)
        self.n_outputs = model.n_outputs
        self.model = model
        self.optimizer = optimizer
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.betas = tuple(float(b) for b in betas)
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.lr_decay = float(lr_decay)
        self.lr_step = int(lr_step)
        self.seed = seed
        self.fused = bool(fused)
        self.progress = progress
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self._own_checkpoint = None  # (path, st_dev, st_ino, st_mode) of the checkpoint this trainer saved last
        self.state1, self.state2 = self.plan.new_state()
        self.step = 0
        self.best_theta = None
        self.threads = threads
        self.lr_schedule = lr_schedule
        self.lr_min = lr_min
        self.loss_reduction = loss_reduction
        #: The History of the last (or current) :meth:`fit`: its finished epochs, also after Ctrl-C.
        self.history = None
        #: What the last (or current) :meth:`fit` records: {"epochs", "n_samples", "valid" (bool), "series"
        #: (the History series it fills with numbers)}, set before the callbacks' ``on_train_begin``.
        self.fit_params = None

    def __repr__(self):
        return (f"Trainer({self.model!r}, optimizer={self.optimizer!r}, lr={self.lr:g}, "
                f"batch_size={self.batch_size}, shuffle={self.shuffle!r}, fused={self.fused})")

    # ----------------------------------------------------------------- targets

    def targets(self, T, n: int, name="Y") -> np.ndarray:
        """The training targets as a (n, n_outputs) array of the model's dtype (class indices become one-hot)."""
        model = self.model
        c = self.n_outputs
        T = np.asarray(T)
        if model.loss == "cross_entropy" and T.ndim == 1:
            if T.shape[0] != n or T.dtype.kind not in "iu" or (n and (T.min() < 0 or T.max() >= c)):
                raise ValueError(f"{name}: expected {n} integer class indices in [0, {c}), got {T.shape} {T.dtype}")
            out = np.zeros((n, c), dtype=model.dtype)
            out[np.arange(n), T] = 1
            return out
        if model.loss == "binary_cross_entropy" and T.ndim == 1:
            T = T.reshape(-1, 1)
        if T.shape != (n, c):
            raise ValueError(f"{name}: expected targets of shape ({n}, {c}), got shape {T.shape}")
        F.float_dtype(T)
        T = np.ascontiguousarray(T, dtype=model.dtype)
        if not F.all_finite(T):
            raise ValueError(f"{name}: contains NaN or inf values")
        if model.loss == "cross_entropy":
            if not (np.all(np.abs(T.sum(axis=1) - 1) < ONEHOT_ATOL) and T.min() >= 0):
                raise ValueError(f"{name}: cross-entropy targets must be one-hot rows (or class indices)")
        if model.loss == "binary_cross_entropy" and not np.all((T == 0) | (T == 1)):
            raise ValueError(f"{name}: binary targets must be 0 or 1")
        return T

    # ------------------------------------------------------------------- epochs

    def run_epoch(self, X, T, order, lr=None, threads=None, on_progress=None, weights=None):
        """One fused epoch over ``order`` (X and T as :meth:`fit` prepares them); return (loss sum, correct).

        Advances ``step``; ``lr`` (a float, or a float64 array of a rate per batch) defaults to the trainer's,
        ``threads`` to fastnn's setting; ``weights`` are the rows' weights (float64, one per row of X, checked),
        or None.  With ``on_progress(fraction, loss_so_far, correct_so_far)`` the epoch runs in slices of whole
        batches of about a quarter of a second each and reports after each; the numbers are the same to the bit.
        """
        lr = self.lr if lr is None else lr
        if on_progress is None:
            return self._train_batches(X, T, order, lr, threads, 0.0, weights)
        bs, n = self.batch_size, order.shape[0]
        loss, correct, start, chunk = 0.0, 0, 0, 8  # batches in the next slice: 8, then ~0.25 s worth
        while start < n:
            t0 = time.perf_counter()
            stop = min(start + chunk * bs, n)
            loss, ok = self._train_batches(X, T, order[start:stop], _from_batch(lr, start // bs), threads, loss,
                                           weights)
            correct += ok
            if not np.isfinite(loss):
                return loss, correct
            per_batch = (time.perf_counter() - t0) / -(-(stop - start) // bs)
            chunk = int(min(max(0.25 / max(per_batch, 1e-9), 1), 1 << 20))
            start = stop
            on_progress(start / n, loss, correct)
        return loss, correct

    def _train_batches(self, X, T, order, lr, threads, loss, weights=None):
        """Every batch of ``order`` through F.train_epoch (the loss sum continuing from ``loss``); return (loss
        sum, correct), advance ``step``.  A SIGINT stops a compiled call after the batch under way even when
        Python's handler for it does not raise (a handler of the user's): the call is then resumed after its
        last batch, so that the epoch stays whole (Python's KeyboardInterrupt, when there is one, is raised as
        the call returns and never gets here)."""
        bs, n = self.batch_size, order.shape[0]
        start, correct = 0, 0
        while True:
            r = F.train_epoch(self.plan, X, T, order[start:], self.model.theta, (self.state1, self.state2),
                              lr=_from_batch(lr, start // bs), step=self.step, threads=threads, start_loss=loss,
                              weights=weights, reduction=self.loss_reduction, seed=int(self.seed) % 2**64,
                              running=self._running() if self._running().size else None)
            self.step, loss, correct = r.step, r.loss, correct + r.correct
            start += r.batches * bs
            if start >= n or r.batches <= 0 or not np.isfinite(loss):
                return loss, correct

    def _epoch_steps(self, X, T, order, lr, weights=None):
        """The same epoch, batch by batch through fastnn.functional (the reference for the fused path)."""
        model = self.model
        theta, grad = model.theta, np.zeros_like(model.theta)
        total, correct = 0.0, 0
        mean = self.loss_reduction == "mean"
        for b, s in enumerate(range(0, order.shape[0], self.batch_size)):
            idx = order[s:s + self.batch_size]
            xb = F.gather_rows(X, idx)
            tb = F.gather_rows(T, idx)
            loss, ok, _ = model.loss_gradient(xb, tb, grad, weights=None if weights is None else weights[idx],
                                              reduction=self.loss_reduction,
                                              training=(int(self.seed) % 2**64, self.step))
            if not np.isfinite(loss):
                return loss, correct
            total += loss * idx.shape[0] if mean else loss  # the loss sum, as the fused epoch's
            correct += ok
            if not F.all_finite(grad):  # the update would poison the parameters: stop like a non-finite loss
                return float("nan"), correct
            self.step += 1
            rate = float(lr[b]) if isinstance(lr, np.ndarray) else lr
            if self.optimizer == "sgd":
                F.sgd_update([theta], [grad], rate, weight_decay=self.weight_decay)
            elif self.optimizer in ("adam", "adamw"):
                update = F.adam_update if self.optimizer == "adam" else F.adamw_update
                update([theta], [grad], [self.state1], [self.state2], self.step, rate, beta1=self.betas[0],
                       beta2=self.betas[1], eps=self.eps, weight_decay=self.weight_decay)
            else:
                F.momentum_update([theta], [grad], [self.state1], rate, mu=self.momentum,
                                  nesterov=self.optimizer == "nesterov", weight_decay=self.weight_decay)
        return total, correct

    def fit(self, X, Y, epochs: int, *, valid=None, callback=None, order=None, callbacks=None, sample_weight=None,
            class_weight=None) -> History:
        """Train for ``epochs`` epochs, or fewer when a callback stops training.

        Parameters
        ----------
        X : (n, sizes[0]) ndarray for an MLP; (n, H, W, C) images for a CNN
        Y : targets (see :meth:`MLP.evaluate`); ignored and taken as ``X`` for an autoencoder when None.
        epochs : int
        valid : (X_valid, T_valid), optional
            Evaluated after every epoch; the best epoch by validation accuracy (by validation loss for
            the squared error) is kept in ``best_theta`` and written to ``checkpoint``.
        callback : callable(epoch, history), optional
            Called after every epoch (``epoch`` counted from 0); what it returns is ignored.
        order : (n,) ndarray of int, optional
            The first epoch's sample order (a permutation of the rows), e.g. the coursework's
            ``np.random.permutation``; with ``shuffle='once'`` it is kept for every epoch.
        callbacks : list of callback objects, optional
            Each may have any of the hooks of :class:`fastnn.callbacks.Callback` (a missing one is skipped),
            called in the list's order: ``on_train_begin(trainer)`` before the first epoch (where a callback
            checks its settings: ``trainer.fit_params`` says which History series this fit records);
            ``on_epoch_end(epoch, history, trainer)`` after each epoch, its History entry and ``callback``:
            a true result from any of them (all are called) stops training after this epoch, recorded as
            ``history.stopped_epoch`` (the progress bar ends there); ``on_train_end(history, trainer)`` when
            training ends, by its last epoch or a stop.  As in Keras, ``on_train_end`` is *not* called when
            ``fit`` raises (:class:`TrainingInterrupted`, :class:`TrainingDiverged` or a callback's own
            error): the model and the optimizer state are then rolled back as without callbacks (a hook
            interrupted by Ctrl-C, ``on_train_end`` included, leaves those of the end of the last epoch
            whose hooks all returned).  Without callbacks, or with an empty list, training is the same to
            the bit.
        sample_weight : (n,) array of float, optional
            A weight per training row (finite, >= 0): each row's loss and gradient are multiplied by it, inside
            the compiled epoch (gathered with the batch's rows) as in the step path.
        class_weight : 'balanced' or dict {class: weight}, optional
            A weight per class of a classifier's loss (cross-entropy: the class index, the argmax of a one-hot
            row; binary cross-entropy: the target 0 or 1), given to each row of that class.  'balanced' is
            scikit-learn's ``n_samples / (n_classes * np.bincount(y))`` over the classes present in ``Y``; a
            dict's missing classes weigh 1.  With ``sample_weight`` too, the two multiply.

        With weights, ``History.train_loss`` is the weighted loss summed over the epoch's rows divided by
        their number (not by the weights' sum), and ``train_acc`` is not weighted; the validation figures
        are never weighted.

        Returns
        -------
        History

        Raises
        ------
        TrainingDiverged
            When the loss becomes NaN or inf; the model then holds the parameters of the last finite epoch.
        """
        model = self.model
        if isinstance(epochs, bool) or int(epochs) != epochs or epochs <= 0:
            raise ValueError(f"epochs: expected a positive integer, got {epochs!r}")
        callbacks = self._check_callbacks(callbacks)
        X = model.check_inputs(X)
        n = X.shape[0]
        if n == 0:
            raise ValueError("X: empty training set (0 rows)")
        T = X if (Y is None and model.loss == "squared_error") else self.targets(Y, n)
        weights = self.row_weights(T, n, sample_weight, class_weight)
        if valid is not None:
            Xv = model.check_inputs(valid[0], "valid X")
            Tv = Xv if (valid[1] is None and model.loss == "squared_error") else self.targets(
                valid[1], Xv.shape[0], "valid Y")
        rng = np.random.default_rng(self.seed)
        if order is not None:
            order = np.asarray(order)
            if order.shape != (n,) or order.dtype.kind not in "iu" or not np.array_equal(np.sort(order), np.arange(n)):
                raise ValueError(f"order: expected a permutation of range({n}), got shape {order.shape}")
            order = np.ascontiguousarray(order, dtype=np.int64)
        elif self.shuffle == "none":
            order = np.arange(n, dtype=np.int64)
        else:
            order = np.asarray(rng.permutation(n), dtype=np.int64)
        bar = None if self.progress is False else (self.progress if hasattr(self.progress, "update")
                                                  else ProgressBar(epochs, "epoch"))
        hist = self.history = History()
        threads = F.get_num_threads() if self.threads == "auto" else int(self.threads)
        #: What this fit records, for callbacks to check their settings against in ``on_train_begin``.
        self.fit_params = {"epochs": int(epochs), "n_samples": n, "valid": valid is not None,
                           "series": tuple(s for s in SERIES if (s.startswith("train") or valid is not None)
                                           and not (s.endswith("acc") and model.loss == "squared_error"))}
        # The state at the end of the last finished epoch (its number, the model's and optimizer's state and
        # the best epoch so far), replaced in one assignment when an epoch is finished, so that Ctrl-C at any
        # moment finds a consistent record to roll back to.
        self._finished = (0, self._snapshot(), None)
        try:
            for cb in callbacks:
                if hasattr(cb, "on_train_begin"):
                    cb.on_train_begin(self)
            self._fit_epochs(X, T, n, rng, order, bar, hist, (Xv, Tv) if valid is not None else None, epochs,
                             callback, threads, callbacks, weights)
            for cb in callbacks:
                if hasattr(cb, "on_train_end"):
                    cb.on_train_end(hist, self)
        except KeyboardInterrupt as exc:
            done, state, hist.best_epoch = self._finished
            self._restore(state)
            for key in ("train_loss", "train_acc", "valid_loss", "valid_acc", "lr", "seconds"):
                del getattr(hist, key)[done:]
            raise TrainingInterrupted(hist, done) from exc
        self._warn_at_chance(X, T, hist)
        return hist

    @staticmethod
    def _check_callbacks(callbacks) -> list:
        """``callbacks`` as a list of objects with at least one hook, or a TypeError naming the argument."""
        if callbacks is None:
            return []
        hooks = ("on_train_begin", "on_epoch_end", "on_train_end")
        if any(hasattr(callbacks, h) for h in hooks) or not isinstance(callbacks, (list, tuple)):
            raise TypeError(f"callbacks: expected a list of callbacks (callbacks=[...]), got "
                            f"{type(callbacks).__name__}")
        for i, cb in enumerate(callbacks):
            if not any(hasattr(cb, h) for h in hooks):
                hint = " (a function of (epoch, history) goes to callback=)" if callable(cb) else ""
                raise TypeError(f"callbacks[{i}]: expected an object with on_train_begin, on_epoch_end or "
                                f"on_train_end (e.g. a fastnn.callbacks.Callback), got {type(cb).__name__}{hint}")
        return list(callbacks)

    def row_weights(self, T, n: int, sample_weight=None, class_weight=None):
        """The training rows' weights, a (n,) float64 array (see :meth:`fit`), or None without weights.

        ``T`` are the targets as :meth:`targets` makes them.  Raises ValueError naming ``sample_weight`` or
        ``class_weight``: a wrong length, negative or non-finite weights, class weights for the squared
        error, or classes that the model does not have.
        """
        weights = None if sample_weight is None else F.check_row_weights(sample_weight, n, "sample_weight")
        if class_weight is None:
            return weights
        loss = self.model.loss
        if loss == "squared_error":
            raise ValueError("class_weight: only for a classifier's loss ('cross_entropy', 'binary_cross_entropy'), "
                             "not 'squared_error'; pass sample_weight instead")
        n_classes = 2 if loss == "binary_cross_entropy" else T.shape[1]
        y = (T[:, 0] >= 0.5).astype(np.int64) if loss == "binary_cross_entropy" else T.argmax(axis=1)
        counts = np.bincount(y, minlength=n_classes)
        if isinstance(class_weight, str) and class_weight == "balanced":
            per_class = np.ones(n_classes)
            present = counts > 0
            per_class[present] = n / (np.count_nonzero(present) * counts[present])
        elif isinstance(class_weight, dict):
            unknown = [k for k in class_weight if isinstance(k, bool) or not isinstance(k, numbers.Integral)
                       or not 0 <= k < n_classes]
            if unknown:
                raise ValueError(f"class_weight: unknown classes {unknown}; the model's classes are 0 to "
                                 f"{n_classes - 1}")
            per_class = np.ones(n_classes)
            for k, v in class_weight.items():
                per_class[int(k)] = F.check_hyperparameter(v, f"class_weight[{k!r}]", 0.0)
        else:
            raise ValueError(f"class_weight: expected None, 'balanced' or a dict {{class: weight}}, got "
                             f"{class_weight!r}")
        by_class = per_class[y]
        return by_class if weights is None else weights * by_class

    def _epoch_rates(self, ep: int, epochs: int, batches: int, lr: float):
        """Epoch ``ep``'s learning rates: a float (constant over the epoch: no schedule, 'step', the step schedule's
        ``lr`` of this epoch), else a float64 array of one rate per batch."""
        schedule = self.lr_schedule
        if schedule is None or schedule == "step":
            return lr
        if schedule == "cosine":
            return cosine_rates(self.lr, self.lr_min, ep * batches, batches, epochs * batches)
        if schedule == "onecycle":
            return onecycle_rates(self.lr, ep * batches, batches, epochs * batches)
        rates = np.empty(batches)
        for b in range(batches):
            rate = schedule(ep + b / batches)
            try:
                rates[b] = rate
            except (TypeError, ValueError):
                rates[b] = np.nan
            if not (np.isfinite(rates[b]) and rates[b] >= 0):
                raise ValueError(f"lr_schedule: the callable returned {rate!r} for epoch {ep + b / batches:g}; "
                                 "expected a finite learning rate >= 0")
        return rates

    def _warn_at_chance(self, X, T, hist) -> None:
        """A :class:`ChanceLevelWarning` when a classifier's last epoch is no better (within a point) than
        always predicting the training set's most frequent class and the model now predicts one class for
        nearly every sample (of up to 2,048 rows spread over X): the sign of units saturated by a learning rate
        meant for the *mean* loss of a batch (PyTorch's and Keras's default), which steps ``batch_size``
        times too far on fastnn's summed loss.  (A run that is merely slow, its predictions still spread
        over the classes, is not warned about.)"""
        if self.model.loss == "squared_error":
            return
        counts = T.sum(axis=0) if T.shape[1] > 1 else np.array([T.shape[0] - T.sum(), T.sum()])
        chance = float(counts.max()) / T.shape[0]
        acc = hist.train_acc[-1]
        if acc > chance + 0.01:
            return
        rows = np.linspace(0, X.shape[0] - 1, min(X.shape[0], 2048)).astype(np.int64)
        predicted = np.concatenate([self.model.predict(X[rows[i:i + 256]]) for i in range(0, rows.size, 256)])
        one_class = np.bincount(predicted).max() / predicted.shape[0]
        if one_class < 0.9:
            return
        epochs = len(hist.train_acc)
        hint = (f" If lr={self.lr:g} was meant for a loss averaged over the batch (PyTorch, Keras), it is "
                f"batch_size={self.batch_size} times too large for fastnn's gradients, which are of the loss summed "
                f"over a batch: try lr={self.lr / self.batch_size:g}. (Or keep it with loss_reduction='mean'.)"
                if self.loss_reduction == "sum" else " Try a lower learning rate.")
        warnings.warn(
            f"training accuracy {acc:.3f} after {epochs} epoch{'s' * (epochs != 1)} is no better than always "
            f"predicting the most frequent class ({chance:.3f}), and the model predicts one class for "
            f"{one_class:.0%} of the samples: it learned nothing.{hint}",
            ChanceLevelWarning, stacklevel=3)

    def _save_checkpoint(self, model):
        """Save ``model`` to ``checkpoint``: over the file this trainer saved last even when it is read-only, over
        any other read-only file never (``save(overwrite=False)``: the user protected it)."""
        own = self._own_checkpoint
        try:
            st = os.stat(own[0]) if own is not None else None
        except OSError:
            st = None
        ours = st is not None and (st.st_dev, st.st_ino, st.st_mode) == own[1:]
        saved = model.save(self.checkpoint, overwrite=ours)
        st = os.stat(saved)
        self._own_checkpoint = (saved, st.st_dev, st.st_ino, st.st_mode)

    def _running(self):
        """The model's running statistics (a CNN's BatchNorm layers'), or an empty array."""
        return getattr(self.model, "running", np.zeros(0))

    def _snapshot(self):
        return (self.model.theta.copy(), self.state1.copy(), self.state2.copy(), self.step, self.best_theta,
                self._running().copy())

    def _restore(self, state):
        self.model.theta[...], self.state1[...], self.state2[...], self.step, self.best_theta, running = state
        self._running()[...] = running

    def _fit_epochs(self, X, T, n, rng, order, bar, hist, valid, epochs, callback, threads, callbacks=(),
                    weights=None):
        """The epoch loop of :meth:`fit` (``valid`` is None or the checked (X, T) pair)."""
        model = self.model
        best = -np.inf
        lr = self.lr
        batches = -(-n // self.batch_size)
        for ep in range(epochs):
            if ep and self.lr_step and ep % self.lr_step == 0:
                lr *= self.lr_decay
            rates = self._epoch_rates(ep, epochs, batches, lr)
            first_rate = float(rates[0]) if isinstance(rates, np.ndarray) else rates
            if self.shuffle == "epoch" and ep:
                order = np.asarray(rng.permutation(n), dtype=np.int64)
            finite = self._finished[1]
            t0 = time.perf_counter()
            within = None
            if bar is not None:
                def within(frac, loss_so_far, correct_so_far, ep=ep):  # a live bar within the epoch
                    if frac >= 1:
                        return  # the epoch's own update below follows, with the validation figures
                    rows = max(frac * n, 1)
                    acc = "" if model.loss == "squared_error" else f" acc {correct_so_far / rows:.3f}"
                    bar.update(ep + frac, f"loss {loss_so_far / rows:.4g}{acc}")
            loss, correct = (self.run_epoch(X, T, order, rates, threads, within, weights) if self.fused
                             else self._epoch_steps(X, T, order, rates, weights))
            if not (np.isfinite(loss) and F.all_finite(model.theta)):  # the last update is checked too
                self._restore(finite)
                what = f"training loss became {loss}" if not np.isfinite(loss) else "parameters became NaN or inf"
                kept = f"the end of epoch {ep}" if ep else "before training (its initial values)"
                raise TrainingDiverged(
                    f"the {what} in epoch {ep + 1} (lr={first_rate:g}); the model and the optimizer state were rolled "
                    f"back to {kept}. Lower the learning rate (trainer.lr) and fit again.")
            hist.seconds.append(time.perf_counter() - t0)
            hist.train_loss.append(loss / n)
            hist.train_acc.append(correct / n if model.loss != "squared_error" else float("nan"))
            hist.lr.append(first_rate)
            info = f"loss {hist.train_loss[-1]:.4g}"
            if model.loss != "squared_error":
                info += f" acc {hist.train_acc[-1]:.3f}"
            if valid is not None:
                vl, va = model.evaluate(*valid)
                hist.valid_loss.append(vl)
                hist.valid_acc.append(va)
                score = -vl if model.loss == "squared_error" else va
                if score > best:
                    best = score
                    hist.best_epoch = ep
                    self.best_theta = model.theta.copy()
                    if self.checkpoint is not None:
                        self._save_checkpoint(model)
                info += f" valid_loss {vl:.4g}" + ("" if np.isnan(va) else f" valid_acc {va:.3f}")
            if bar is not None:
                bar.update(ep + 1, info)
            if callback is not None:
                callback(ep, hist)
            stop = [type(cb).__name__ for cb in callbacks
                    if hasattr(cb, "on_epoch_end") and cb.on_epoch_end(ep, hist, self)]
            self._finished = (ep + 1, self._snapshot(), hist.best_epoch)
            if stop:
                hist.stopped_epoch = ep
                if bar is self.progress:  # the caller's: this fit is over, done = all its epochs
                    bar.update(epochs, f"{info} (stopped early by {', '.join(stop)})")
                elif bar is not None:  # this fit's own bar ends at the epochs run, its total shortened to them
                    bar.total = ep + 1
                    bar.update(ep + 1, f"{info} (stopped early by {', '.join(stop)})")
                return

    def restore_best(self) -> None:
        """Load the parameters of the best validation epoch into the model."""
        if self.best_theta is None:
            raise ValueError("no best model yet: fit with valid=(X_valid, T_valid) first")
        self.model.theta[...] = self.best_theta

    def get_state(self) -> tuple:
        """A copy of the training state: the model's parameters, the optimizer's state (momentum, or Adam's
        moments) and its step count, and the model's running statistics (BatchNorm's), for :meth:`set_state`
        (as ``EarlyStopping`` keeps its best epoch's)."""
        return self.model.theta.copy(), self.state1.copy(), self.state2.copy(), self.step, self._running().copy()

    def set_state(self, state) -> None:
        """Set the model's parameters and the optimizer's state to those :meth:`get_state` returned."""
        theta, state1, state2, step, running = state
        self.model.theta[...], self.state1[...], self.state2[...], self.step = theta, state1, state2, int(step)
        self._running()[...] = running
