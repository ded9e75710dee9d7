"""Callbacks for :meth:`fastnn.train.Trainer.fit`: early stopping, checkpoints, and your own.

``Trainer.fit(..., callbacks=[...])`` calls the hooks of each object in the list, in order, as Keras does:

* ``on_train_begin(trainer)``: before the first epoch; a callback checks its settings here against
  ``trainer.fit_params`` (which History series this fit records), so a bad one fails before training;
* ``on_epoch_end(epoch, history, trainer)``: after each epoch (``epoch`` counted from 0, ``history`` holding
  it); a true result stops training after this epoch (``history.stopped_epoch``);
* ``on_train_end(history, trainer)``: when training ends by its last epoch or a stop; not when ``fit``
  raises (Ctrl-C's ``TrainingInterrupted``, ``TrainingDiverged``), as in Keras.

The callbacks run between the compiled epochs, in Python, once per epoch: they change no number of the
training itself.  Monitors name a History series: ``"valid_loss"``, ``"valid_acc"``, ``"train_loss"`` or
``"train_acc"`` (losses averaged per sample, accuracies in [0, 1]).

Examples
--------
>>> from fastnn.callbacks import EarlyStopping, ModelCheckpoint
>>> callbacks = [EarlyStopping(monitor="valid_loss", patience=5),
...              ModelCheckpoint("best.npz", monitor="valid_acc")]
>>> hist = trainer.fit(X, Y, epochs=100, valid=(Xv, Yv), callbacks=callbacks)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path

from .train import SERIES

__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint"]

MODES = ("auto", "min", "max")
#: Keras's names of the History series, for the error message of a monitor given one.
_KERAS_NAMES = {"val_loss": "valid_loss", "val_accuracy": "valid_acc", "val_acc": "valid_acc",
                "loss": "train_loss", "accuracy": "train_acc", "acc": "train_acc"}


class Callback:
    """The base of fastnn's callbacks: every hook does nothing.  Subclass it and override the hooks you need.

    Examples
    --------
    >>> class StopAt(Callback):
    ...     def __init__(self, loss):
    ...         self.loss = loss
    ...     def on_epoch_end(self, epoch, history, trainer):
    ...         return history.train_loss[-1] < self.loss  # True stops training after this epoch
    """

    def on_train_begin(self, trainer) -> None:
        """Before the first epoch of ``trainer.fit`` (``trainer.fit_params`` is set)."""

    def on_epoch_end(self, epoch, history, trainer) -> bool | None:
        """After epoch ``epoch`` (from 0), whose figures ``history`` holds; return True to stop training."""
        return None

    def on_train_end(self, history, trainer) -> None:
        """When training ended by its last epoch or a stop (not when ``fit`` raised)."""

    def __repr__(self):
        return f"{type(self).__name__}()"


def _check_monitor(monitor: str) -> str:
    if monitor not in SERIES:
        hint = f" (Keras's {monitor!r} is {_KERAS_NAMES[monitor]!r} here)" if monitor in _KERAS_NAMES else ""
        raise ValueError(f"monitor: expected a History series, one of {SERIES}, got {monitor!r}{hint}")
    return monitor


def _check_mode(mode: str, monitor: str) -> str:
    """'min' or 'max': 'auto' is 'min' for a loss, 'max' for an accuracy."""
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    if mode == "auto":
        return "min" if monitor.endswith("loss") else "max"
    return mode


def _check_recorded(owner, monitor: str, trainer) -> None:
    """A ValueError, before training, when this fit does not record ``monitor``."""
    series = trainer.fit_params["series"]
    if monitor in series:
        return
    if monitor.startswith("valid") and not trainer.fit_params["valid"]:
        raise ValueError(f"{owner!r} monitors {monitor!r}, a validation figure: pass valid=(X_valid, Y_valid) "
                         f"to fit, or monitor one of {series}")
    raise ValueError(f"{owner!r} monitors {monitor!r}, which this model does not have (a squared-error model "
                     f"has no accuracy): monitor one of {series}")


def _improved(value: float, best: float, mode: str, min_delta: float) -> bool:
    """``value`` beats ``best`` by more than ``min_delta`` (a NaN never does)."""
    return value < best - min_delta if mode == "min" else value > best + min_delta


class EarlyStopping(Callback):
    """Stop training when a History series has stopped improving, and keep the best epoch's state.

    An epoch improves when its value beats the best so far by more than ``min_delta`` (the first finite
    value always does); training stops after ``patience`` epochs in a row without improvement, i.e. after
    ``best_epoch + patience + 1`` epochs.  Keras's rule, with Keras's meaning of each argument.

    Parameters
    ----------
    monitor : {'valid_loss', 'valid_acc', 'train_loss', 'train_acc'}
        The series watched; the validation series need ``fit(valid=...)`` (else a ValueError at fit's start).
    patience : int >= 1
        Epochs in a row without improvement that stop training (1: the first such epoch does).  Keras also
        takes 0, which acts as 1 there; here it is an error, as no epoch can stop at the best one.
    min_delta : float >= 0
        A smaller change is no improvement.
    mode : {'auto', 'min', 'max'}
        'auto' minimises a loss and maximises an accuracy.
    restore_best : bool
        At the end of training (stopped or not), set the trainer back to the end of the best epoch: the
        model's parameters *and* the optimizer's state (momentum or Adam's moments, and its step count), so
        that fitting again continues from that epoch as if the later ones had not run.  (Keras restores the
        weights only, leaving the optimizer where the last epoch left it.)  ``trainer.history``,
        ``best_theta`` and the trainer's own checkpoint are left as they are.

    Attributes
    ----------
    best : float
        The best value of the last fit.
    best_epoch : int or None
        Its epoch, counted from 0.
    stopped_epoch : int or None
        The epoch after which it stopped the last fit, None if it did not.
    wait : int
        Epochs since the best one.

    Notes
    -----
    After Ctrl-C (``TrainingInterrupted``) ``on_train_end`` is not called and the model holds the end of the
    last finished epoch; :meth:`restore` then sets the best epoch's state by hand.

    Examples
    --------
    >>> stop = EarlyStopping(monitor="valid_loss", patience=5)
    >>> hist = trainer.fit(X, Y, epochs=200, valid=(Xv, Yv), callbacks=[stop])  # doctest: +SKIP
    >>> hist.stopped_epoch, stop.best_epoch  # doctest: +SKIP
    (17, 12)
    """

    def __init__(self, monitor="valid_loss", patience=5, min_delta=0.0, mode="auto", restore_best=True):
        self.monitor = _check_monitor(monitor)
        if isinstance(patience, bool) or not isinstance(patience, numbers.Integral) or patience < 1:
            raise ValueError(f"patience: expected an integer >= 1 (1 stops at the first epoch without improvement), "
                             f"got {patience!r}")
        if (isinstance(min_delta, bool) or not isinstance(min_delta, numbers.Real) or not math.isfinite(min_delta)
                or min_delta < 0):
            raise ValueError(f"min_delta: expected a finite number >= 0, got {min_delta!r}")
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.mode = mode
        self._direction = _check_mode(mode, self.monitor)
        if not isinstance(restore_best, bool):
            raise ValueError(f"restore_best: expected True or False, got {restore_best!r}")
        self.restore_best = restore_best
        self._reset()

    def _reset(self):
        self.best = math.inf if self._direction == "min" else -math.inf
        self.best_epoch = None
        self.stopped_epoch = None
        self.wait = 0
        self._best_state = None

    def __repr__(self):
        return (f"EarlyStopping(monitor={self.monitor!r}, patience={self.patience}, min_delta={self.min_delta:g}, "
                f"mode={self.mode!r}, restore_best={self.restore_best})")

    def on_train_begin(self, trainer) -> None:
        _check_recorded(self, self.monitor, trainer)
        self._reset()

    def on_epoch_end(self, epoch, history, trainer) -> bool:
        value = float(getattr(history, self.monitor)[-1])
        if _improved(value, self.best, self._direction, self.min_delta):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self._best_state = trainer.get_state()
            return False
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            return True
        return False

    def on_train_end(self, history, trainer) -> None:
        if self.restore_best:
            self.restore(trainer)

    def restore(self, trainer) -> None:
        """Set ``trainer``'s model and optimizer state to those of the end of the best epoch of the last fit
        (kept when ``restore_best``); nothing when no epoch was recorded."""
        if self._best_state is not None:
            trainer.set_state(self._best_state)


class ModelCheckpoint(Callback):
    """Save the model when a History series improves (or after every epoch), atomically, with ``model.save``.

    Parameters
    ----------
    path : str or path-like
        The ``.npz`` file (``.npz`` is appended to a name without it, as ``save`` does).  It may hold
        ``str.format`` placeholders: ``{epoch}`` (counted from 1, as the progress bar and Keras count; e.g.
        ``"ckpt/epoch{epoch:03d}.npz"``) and the History series of this fit (``{valid_acc:.3f}``).
    monitor : {'valid_acc', 'valid_loss', 'train_loss', 'train_acc'}
        The series that decides what is best (needs ``fit(valid=...)`` for the validation ones, unless
        ``save_best_only`` is False).
    mode : {'auto', 'min', 'max'}
        'auto' minimises a loss and maximises an accuracy.
    save_best_only : bool
        Save only when the monitored value beats the best of this fit (the first finite value does);
        False saves after every epoch.

    Saving follows ``Trainer(checkpoint=...)``: an existing read-only file (e.g. mode 0o444) is not replaced,
    a ``PermissionError`` at the first save, unless it is a file this callback saved last, unchanged since
    (a umask such as 0o277 makes those read-only).

    Attributes
    ----------
    best : float
        The best monitored value of the last fit.
    best_epoch : int or None
        Its epoch, counted from 0.
    saved : list of (int, pathlib.Path)
        The epochs (from 0) and files saved in the last fit, in order.

    Examples
    --------
    >>> ckpt = ModelCheckpoint("runs/best.npz", monitor="valid_acc")
    >>> hist = trainer.fit(X, Y, epochs=50, valid=(Xv, Yv), callbacks=[ckpt])  # doctest: +SKIP
    >>> model = MLP.load("runs/best.npz")  # doctest: +SKIP
    """

    def __init__(self, path, monitor="valid_acc", mode="auto", save_best_only=True):
        self.path = os.fspath(path)
        self.monitor = _check_monitor(monitor)
        self.mode = mode
        self._direction = _check_mode(mode, self.monitor)
        if not isinstance(save_best_only, bool):
            raise ValueError(f"save_best_only: expected True or False, got {save_best_only!r}")
        self.save_best_only = save_best_only
        self._format(dict.fromkeys(SERIES, 0.0), 0)  # a bad placeholder fails here
        self._own = {}  # path -> (st_dev, st_ino, st_mode) of each file this callback saved last
        self.best, self.best_epoch, self.saved = math.nan, None, []

    def __repr__(self):
        return (f"ModelCheckpoint({self.path!r}, monitor={self.monitor!r}, mode={self.mode!r}, "
                f"save_best_only={self.save_best_only})")

    def _format(self, values: dict, epoch: int) -> Path:
        try:
            return Path(self.path.format(epoch=epoch + 1, **values))
        except KeyError as exc:
            raise ValueError(f"path: unknown placeholder {{{exc.args[0]}}} in {self.path!r}: use {{epoch}} or a "
                             f"History series this fit records, one of {tuple(values)}") from None
        except (ValueError, IndexError) as exc:
            raise ValueError(f"path: {self.path!r} is not a valid format string ({exc}); write a literal brace "
                             "as {{ or }}") from None

    def on_train_begin(self, trainer) -> None:
        series = trainer.fit_params["series"]
        if self.save_best_only:
            _check_recorded(self, self.monitor, trainer)
        self._format(dict.fromkeys(series, 0.0), 0)  # a placeholder of a series this fit lacks fails now
        self.best = math.inf if self._direction == "min" else -math.inf
        self.best_epoch, self.saved = None, []

    def on_epoch_end(self, epoch, history, trainer) -> None:
        if self.save_best_only:
            value = float(getattr(history, self.monitor)[-1])
            if not _improved(value, self.best, self._direction, 0.0):
                return
            self.best, self.best_epoch = value, epoch
        values = {s: getattr(history, s)[-1] for s in trainer.fit_params["series"]}
        self.saved.append((epoch, self._save(trainer.model, self._format(values, epoch))))

    def _save(self, model, path: Path) -> Path:
        """``model.save(path)``: over a file this callback saved last even when it is read-only, over any other
        read-only file never (``overwrite=False``: the user protected it)."""
        key = os.path.abspath(path)
        own = self._own.get(key)
        try:
            st = os.stat(own[0]) if own is not None else None
        except OSError:
            st = None
        ours = st is not None and (st.st_dev, st.st_ino, st.st_mode) == own[1:]
        saved = Path(model.save(path, overwrite=ours))
        st = os.stat(saved)
        self._own[key] = (saved, st.st_dev, st.st_ino, st.st_mode)
        return saved
