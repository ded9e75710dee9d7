"""Callbacks of Trainer.fit (fastnn.callbacks): early stopping, checkpoints, your own, and what they leave alone.

The task: a 64-unit network fitted to 40 noisy training rows, judged on 400 validation rows, overfits within a
few epochs: its validation loss falls for two or three epochs, then rises while the training loss keeps
falling.  Callbacks run between the compiled epochs and change none of their numbers, so an early-stopped
run's History is the first epochs of the full run's, to the bit: the expected stop is computed from the full
run by a plain loop (``_expected``) and checked against the direct count (best + patience + 1 epochs).
"""

import math
import os

import numpy as np
import pytest

from fastnn.callbacks import Callback, EarlyStopping, ModelCheckpoint
from fastnn.layers import Conv2D, Dense, Flatten, MaxPool2D
from fastnn.models import CNN, MLP
from fastnn.train import History, Trainer, TrainingDiverged, TrainingInterrupted

EPOCHS = 40
SERIES = ("train_loss", "train_acc", "valid_loss", "valid_acc")


@pytest.fixture
def task(rng):
    W = rng.standard_normal((10, 3))

    def draw(n):
        X = rng.standard_normal((n, 10))
        return X, np.argmax(X @ W + 1.5 * rng.standard_normal((n, 3)), axis=1)

    X, y = draw(40)
    return X, y, draw(400)


def _trainer(**kw):
    model = MLP([10, 64, 3], ["tanh", "softmax"], seed=0)
    return Trainer(model, optimizer="adam", lr=0.01, batch_size=8, progress=False, **kw)


def _fit(task, callbacks=None, epochs=EPOCHS, valid=True, **kw):
    """(trainer, history, states): states[e] is the trainer's state at the end of epoch e (the old callback=)."""
    X, y, (Xv, yv) = task
    trainer = _trainer()
    states = []
    hist = trainer.fit(X, y, epochs, valid=(Xv, yv) if valid else None, callbacks=callbacks,
                       callback=lambda ep, h: states.append(trainer.get_state()), **kw)
    return trainer, hist, states


@pytest.fixture
def full(task):
    """The History of the full run, without callbacks."""
    return _fit(task)[1]


def _expected(values, patience, min_delta=0.0, mode="min"):
    """(best epoch, stopped epoch or None): Keras's rule, a plain loop."""
    best, best_ep, wait = (math.inf if mode == "min" else -math.inf), None, 0
    for ep, v in enumerate(values):
        if (v < best - min_delta) if mode == "min" else (v > best + min_delta):
            best, best_ep, wait = v, ep, 0
            continue
        wait += 1
        if wait >= patience:
            return best_ep, ep
    return best_ep, None


def _same_state(a, b):
    return all(x.tobytes() == y.tobytes() for x, y in zip(a[:3], b[:3])) and a[3] == b[3]


def _prefix(hist, full):
    n = len(hist.train_loss)
    for s in SERIES + ("lr",):
        assert getattr(hist, s) == getattr(full, s)[:n], f"history.{s} is not the full run's first {n} epochs"
        assert len(getattr(hist, s)) == n


# ------------------------------------------------------------------------------------------- no change

def test_no_callbacks_an_empty_list_and_no_op_callbacks_give_the_same_bits(task):
    runs = [_fit(task, callbacks) for callbacks in (None, [], [Callback()], (Callback(), Callback()))]
    for trainer, hist, _ in runs[1:]:
        assert _same_state(trainer.get_state(), runs[0][0].get_state())
        assert all(getattr(hist, s) == getattr(runs[0][1], s) for s in SERIES + ("lr",))
        assert hist.stopped_epoch is None and hist.best_epoch == runs[0][1].best_epoch


def test_the_task_overfits(full):
    """The scenario the stopping tests need: validation loss at its lowest early, then rising for good."""
    b = int(np.argmin(full.valid_loss))
    assert 1 <= b <= 5 and full.valid_loss[-1] > full.valid_loss[b] + 0.2
    assert np.all(np.diff(full.train_loss) < 0)


# ------------------------------------------------------------------------------------------- EarlyStopping

@pytest.mark.parametrize("patience", [1, 2, 3, 5])
def test_early_stopping_stops_after_best_plus_patience_plus_one_epochs(task, full, patience):
    stop = EarlyStopping(monitor="valid_loss", patience=patience, restore_best=False)
    trainer, hist, states = _fit(task, [stop])
    n = len(hist.train_loss)
    best = int(np.argmin(hist.valid_loss))
    assert n == best + patience + 1 < EPOCHS
    assert hist.stopped_epoch == stop.stopped_epoch == n - 1 and stop.best_epoch == best
    assert (best, n - 1) == _expected(full.valid_loss, patience)
    assert stop.best == hist.valid_loss[best] and stop.wait == patience
    _prefix(hist, full)
    assert len(states) == n and _same_state(trainer.get_state(), states[-1])  # restore_best=False: the last epoch
    assert hist.as_dict()["stopped_epoch"] == n - 1


def test_min_delta_counts_small_improvements_as_none(task, full):
    min_delta = 0.05
    b0, s0 = _expected(full.valid_loss, 3)
    b1, s1 = _expected(full.valid_loss, 3, min_delta)
    assert (b1, s1) != (b0, s0), "(the scenario: an improvement smaller than min_delta exists)"
    stop = EarlyStopping(patience=3, min_delta=min_delta)
    hist = _fit(task, [stop])[1]
    assert (stop.best_epoch, hist.stopped_epoch) == (b1, s1) and len(hist.train_loss) == s1 + 1


@pytest.mark.parametrize("monitor, mode, direction", [
    ("valid_acc", "auto", "max"), ("valid_acc", "max", "max"), ("valid_acc", "min", "min"),
    ("valid_loss", "max", "max"), ("train_loss", "auto", "min"), ("train_acc", "auto", "max"),
])
def test_monitor_and_mode(task, full, monitor, mode, direction):
    best, stopped = _expected(getattr(full, monitor), 2, mode=direction)
    stop = EarlyStopping(monitor=monitor, patience=2, mode=mode, restore_best=False)
    hist = _fit(task, [stop])[1]
    assert (stop.best_epoch, hist.stopped_epoch) == (best, stopped)
    assert len(hist.train_loss) == (EPOCHS if stopped is None else stopped + 1)
    _prefix(hist, full)


def test_train_loss_that_keeps_falling_never_stops(task, full):
    stop = EarlyStopping(monitor="train_loss", patience=1)
    trainer, hist, states = _fit(task, [stop])
    assert hist.stopped_epoch is None and stop.stopped_epoch is None and len(hist.train_loss) == EPOCHS
    assert stop.best_epoch == EPOCHS - 1 and _same_state(trainer.get_state(), states[-1])


@pytest.mark.parametrize("restore_best", [True, False])
def test_restore_best_sets_the_best_epochs_parameters_and_optimizer_state(task, tmp_path, restore_best):
    path = tmp_path / "best.npz"
    stop = EarlyStopping(monitor="valid_loss", patience=4, restore_best=restore_best)
    ckpt = ModelCheckpoint(path, monitor="valid_loss")
    trainer, hist, states = _fit(task, [stop, ckpt])
    best = stop.best_epoch
    assert best == ckpt.best_epoch == int(np.argmin(hist.valid_loss)) and best < len(states) - 1
    if restore_best:
        assert _same_state(trainer.get_state(), states[best])  # parameters, moments and step count
        np.testing.assert_array_equal(MLP.load(path).theta, trainer.model.theta)  # the checkpointed copy
        assert trainer.step == (best + 1) * 5  # 40 rows, batches of 8
    else:
        assert _same_state(trainer.get_state(), states[-1])
        assert not np.array_equal(MLP.load(path).theta, trainer.model.theta)
    # the trainer's own record (best by validation accuracy) is left as it was
    assert hist.best_epoch == int(np.argmax(hist.valid_acc))
    np.testing.assert_array_equal(trainer.best_theta, states[hist.best_epoch][0])


def test_refitting_a_restored_trainer_continues_from_the_best_epoch(task):
    """Fitting on after restore_best is fitting on from the end of the best epoch: the optimizer state came back
    with the parameters."""
    X, y, (Xv, yv) = task
    stop = EarlyStopping(patience=3)
    trainer = _trainer()
    trainer.fit(X, y, EPOCHS, valid=(Xv, yv), callbacks=[stop])
    trainer.fit(X, y, 1)
    reference = _trainer()
    reference.fit(X, y, stop.best_epoch + 1)
    reference.fit(X, y, 1)
    assert _same_state(trainer.get_state(), reference.get_state())


def test_a_callback_object_is_reset_by_each_fit(task):
    stop = EarlyStopping(patience=2)
    first = _fit(task, [stop])[1]
    best, stopped = stop.best_epoch, stop.stopped_epoch
    second = _fit(task, [stop])[1]
    assert (stop.best_epoch, stop.stopped_epoch) == (best, stopped) and second.valid_loss == first.valid_loss


def test_a_monitor_is_named_and_checked(task):
    with pytest.raises(ValueError, match=r"monitor: expected a History series.*'val_loss'.*'valid_loss' here"):
        EarlyStopping(monitor="val_loss")
    with pytest.raises(ValueError, match=r"monitor: expected a History series.*got 'lr'"):
        EarlyStopping(monitor="lr")
    with pytest.raises(ValueError, match=r"monitor: .*'accuracy'.*'train_acc' here"):
        ModelCheckpoint("m.npz", monitor="accuracy")
    with pytest.raises(ValueError, match=r"mode: expected one of \('auto', 'min', 'max'\), got 'up'"):
        EarlyStopping(mode="up")
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="patience: expected an integer >= 1"):
            EarlyStopping(patience=bad)
    for bad in (-0.1, math.nan):
        with pytest.raises(ValueError, match="min_delta: expected a finite number >= 0"):
            EarlyStopping(min_delta=bad)
    with pytest.raises(ValueError, match="restore_best: expected True or False"):
        EarlyStopping(restore_best=1)


@pytest.mark.parametrize("callback", [EarlyStopping(), EarlyStopping(monitor="valid_acc"), ModelCheckpoint("x.npz")])
def test_a_validation_monitor_without_valid_fails_before_training(task, callback, tmp_path):
    X, y, _ = task
    trainer = _trainer()
    before = trainer.get_state()
    epochs = []
    with pytest.raises(ValueError, match=r"monitors 'valid_\w+', a validation figure: pass valid=\(X_valid, Y_valid\)"):
        trainer.fit(X, y, 3, callbacks=[callback], callback=lambda ep, h: epochs.append(ep))
    assert epochs == [] and _same_state(trainer.get_state(), before) and trainer.history.train_loss == []
    assert not (tmp_path / "x.npz").exists()


def test_an_accuracy_monitor_on_a_squared_error_model_fails_before_training(rng):
    X = rng.random((30, 6))
    model = MLP([6, 3, 6], ["tanh", "sigmoid"], seed=0)
    with pytest.raises(ValueError, match=r"monitors 'valid_acc', which this model does not have.*'valid_loss'"):
        Trainer(model, progress=False).fit(X, None, 3, valid=(X, None), callbacks=[EarlyStopping("valid_acc")])
    stop = EarlyStopping("valid_loss", patience=1)
    hist = Trainer(model, lr=0.05, progress=False).fit(X, None, 3, valid=(X, None), callbacks=[stop])
    assert stop.best_epoch is not None and len(hist.valid_loss) == len(hist.train_loss)


# ------------------------------------------------------------------------------------------- ModelCheckpoint

def test_model_checkpoint_saves_only_on_improvement(task, tmp_path):
    ckpt = ModelCheckpoint(tmp_path / "e{epoch:02d}.npz", monitor="valid_acc")
    trainer, hist, states = _fit(task, [ckpt], epochs=15)
    improved, best = [], -1.0
    for ep, acc in enumerate(hist.valid_acc):
        if acc > best:
            improved.append(ep)
            best = acc
    assert len(improved) < 15, "(the scenario: some epochs do not improve)"
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"e{ep + 1:02d}.npz" for ep in improved]
    assert [ep for ep, _ in ckpt.saved] == improved and ckpt.best_epoch == improved[-1] == hist.best_epoch
    for ep, path in ckpt.saved:
        np.testing.assert_array_equal(MLP.load(path).theta, states[ep][0])


def test_one_checkpoint_file_holds_the_best_epoch(task, tmp_path):
    path = tmp_path / "best.npz"
    ckpt = ModelCheckpoint(path, monitor="valid_loss", mode="min")
    trainer, hist, states = _fit(task, [ckpt], epochs=15)
    best = int(np.argmin(hist.valid_loss))
    assert ckpt.best_epoch == best and ckpt.best == hist.valid_loss[best]
    assert list(tmp_path.iterdir()) == [path]  # no temporary files left behind
    np.testing.assert_array_equal(MLP.load(path).theta, states[best][0])


def test_model_checkpoint_every_epoch_with_series_in_the_name(task, tmp_path):
    ckpt = ModelCheckpoint(os.fspath(tmp_path / "e{epoch}-{valid_loss:.3f}"), save_best_only=False)
    trainer, hist, states = _fit(task, [ckpt], epochs=4)
    names = [f"e{ep + 1}-{hist.valid_loss[ep]:.3f}.npz" for ep in range(4)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)
    assert [p.name for _, p in ckpt.saved] == names
    for ep, name in enumerate(names):
        np.testing.assert_array_equal(MLP.load(tmp_path / name).theta, states[ep][0])


def test_model_checkpoint_placeholders_are_checked(task, tmp_path):
    with pytest.raises(ValueError, match=r"path: unknown placeholder \{step\}"):
        ModelCheckpoint("m{step}.npz")
    with pytest.raises(ValueError, match="path: .* is not a valid format string"):
        ModelCheckpoint("m{epoch.npz")
    X, y, _ = task
    ckpt = ModelCheckpoint(tmp_path / "m{valid_acc}.npz", monitor="train_loss")
    with pytest.raises(ValueError, match=r"path: unknown placeholder \{valid_acc\}"):
        _trainer().fit(X, y, 2, callbacks=[ckpt])  # no validation set: fails at fit's start
    assert list(tmp_path.iterdir()) == []
    # every epoch, no monitor needed: the default valid_acc does not ask for valid=
    _trainer().fit(X, y, 2, callbacks=[ModelCheckpoint(tmp_path / "m{epoch}.npz", save_best_only=False)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m1.npz", "m2.npz"]


def test_model_checkpoint_replaces_its_own_file_but_not_one_the_user_made_read_only(task, tmp_path):
    path = tmp_path / "best.npz"
    old_umask = os.umask(0o277)  # the callback's own files come out read-only (0o400): still its own to replace
    try:
        ckpt = ModelCheckpoint(path, monitor="valid_loss")
        _fit(task, [ckpt], epochs=4)
    finally:
        os.umask(old_umask)
    assert len(ckpt.saved) >= 2 and (path.stat().st_mode & 0o777) == 0o400
    os.chmod(path, 0o444)  # now the user protects it: a new run must not replace it
    before = path.read_bytes()
    with pytest.raises(PermissionError, match=r"best\.npz: .*read-only"):
        _fit(task, [ModelCheckpoint(path, monitor="valid_loss")], epochs=2)
    assert path.read_bytes() == before


# ------------------------------------------------------------------------------------------- your own

class Recorder(Callback):
    """Logs its hook calls; asks to stop after epoch ``stop_at``."""

    def __init__(self, log, name, stop_at=None):
        self.log, self.name, self.stop_at = log, name, stop_at

    def on_train_begin(self, trainer):
        self.log.append((self.name, "begin", len(trainer.history.train_loss)))

    def on_epoch_end(self, epoch, history, trainer):
        self.log.append((self.name, "epoch", epoch, len(history.train_loss)))
        return epoch == self.stop_at

    def on_train_end(self, history, trainer):
        self.log.append((self.name, "end", len(history.train_loss)))


def test_a_custom_callback_stops_training_and_every_hook_runs_in_order(task, full):
    log = []

    class OnlyEpochEnd:  # no base class, one hook: the others are skipped
        def on_epoch_end(self, epoch, history, trainer):
            log.append(("duck", epoch))

    trainer, hist, states = _fit(task, [Recorder(log, "a", stop_at=2), Recorder(log, "b"), OnlyEpochEnd()])
    assert log == ([("a", "begin", 0), ("b", "begin", 0)]
                   + [x for ep in range(3) for x in (("a", "epoch", ep, ep + 1), ("b", "epoch", ep, ep + 1),
                                                     ("duck", ep))]
                   + [("a", "end", 3), ("b", "end", 3)])
    assert hist.stopped_epoch == 2 and len(hist.train_loss) == 3 and len(states) == 3  # the old callback= too
    _prefix(hist, full)
    assert _same_state(trainer.get_state(), states[-1])


def test_the_old_callback_is_still_called_with_epoch_and_history(task):
    X, y, (Xv, yv) = task
    seen = []
    hist = _trainer().fit(X, y, 3, valid=(Xv, yv), callback=lambda ep, h: seen.append((ep, len(h.valid_acc), h)))
    assert [(ep, n) for ep, n, _ in seen] == [(0, 1), (1, 2), (2, 3)] and all(h is hist for *_, h in seen)
    # what it returns is ignored, as before: a true result does not stop training
    hist = _trainer().fit(X, y, 3, callback=lambda ep, h: True)
    assert len(hist.train_loss) == 3 and hist.stopped_epoch is None


def test_the_callbacks_argument_is_checked(task):
    X, y, _ = task
    with pytest.raises(TypeError, match=r"callbacks: expected a list of callbacks \(callbacks=\[...\]\), got Callback"):
        _trainer().fit(X, y, 1, callbacks=Callback())
    with pytest.raises(TypeError, match=r"callbacks\[1\]: expected an object with .* goes to callback="):
        _trainer().fit(X, y, 1, callbacks=[Callback(), lambda ep, h: None])


def test_the_progress_bar_ends_at_the_stop(task, capsys):
    X, y, (Xv, yv) = task
    _trainer().fit(X, y, EPOCHS, valid=(Xv, yv), callbacks=[EarlyStopping(patience=2)])
    assert capsys.readouterr().err == ""  # progress=False
    trainer = _trainer()
    trainer.progress = True  # stderr is no terminal here: plain lines, the last one at the stop
    hist = trainer.fit(X, y, EPOCHS, valid=(Xv, yv), callbacks=[EarlyStopping(patience=2)])
    n = len(hist.train_loss)
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith(f"epoch {n}/{n} [{'#' * 24}]") and last.endswith("(stopped early by EarlyStopping)")

    class Outer:  # an adapter placing this fit in a longer job: told the fit is over
        updates = []

        def update(self, done, info=""):
            self.updates.append((done, info))

    trainer = _trainer()
    trainer.progress = Outer()
    hist = trainer.fit(X, y, EPOCHS, valid=(Xv, yv), callbacks=[EarlyStopping(patience=2)])
    done = [d for d, _ in Outer.updates if float(d).is_integer()]
    assert done == list(range(1, len(hist.train_loss) + 1)) + [EPOCHS]
    assert Outer.updates[-1][1].endswith("(stopped early by EarlyStopping)")


# ------------------------------------------------------------------------------------------- failures

def test_ctrl_c_in_a_callback_rolls_back_and_skips_on_train_end(task):
    """As in Keras, on_train_end is not called when fit raises; fit's rollback is unchanged: the model and the
    optimizer state are those of the end of the last epoch whose hooks all returned."""
    log = []

    class Interrupt(Callback):
        def on_epoch_end(self, epoch, history, trainer):
            if epoch == 6:
                raise KeyboardInterrupt

    stop = EarlyStopping(monitor="valid_loss", patience=10)
    with pytest.raises(TrainingInterrupted) as info:
        _fit(task, [stop, Recorder(log, "r"), Interrupt()])
    assert info.value.epochs_done == 6 and len(info.value.history.train_loss) == 6
    assert ("r", "end", 7) not in log and all(entry[1] != "end" for entry in log)
    trainer_state = _fit(task, epochs=6)[0].get_state()
    # the model holds the end of epoch 6 (index 5), not the best epoch: restore_best did not run
    X, y, (Xv, yv) = task
    trainer = _trainer()
    with pytest.raises(TrainingInterrupted):
        trainer.fit(X, y, EPOCHS, valid=(Xv, yv), callbacks=[stop, Interrupt()])
    assert _same_state(trainer.get_state(), trainer_state)
    best = stop.best_epoch
    assert best < 5
    stop.restore(trainer)  # by hand
    assert _same_state(trainer.get_state(), _fit(task, epochs=best + 1)[0].get_state())


def test_divergence_rolls_back_as_before_and_skips_on_train_end(rng):
    X = rng.random((64, 12))
    log, snapshots = [], []
    model = MLP([12, 8, 12], ["linear", "linear"], seed=0)  # an unbounded net; lr 0.01 is stable, 0.1 is not
    trainer = Trainer(model, lr=0.01, lr_decay=10.0, lr_step=2, batch_size=8, progress=False)
    with pytest.raises(TrainingDiverged, match=r"epoch 3 \(lr=0.1\).*end of epoch 2"):
        trainer.fit(X, None, 50, callbacks=[Recorder(log, "r"), EarlyStopping("train_loss", patience=50)],
                    callback=lambda ep, h: snapshots.append(model.theta.copy()))
    assert [entry[1] for entry in log] == ["begin", "epoch", "epoch"]
    np.testing.assert_array_equal(model.theta, snapshots[-1])


# ------------------------------------------------------------------------------------------- CNN

def test_early_stopping_and_a_checkpoint_of_a_cnn(rng, tmp_path):
    def images(n):
        y = rng.integers(0, 2, n)
        X = rng.normal(size=(n, 8, 8, 1)) * 0.8
        X[y == 1, 2:6, 3:5, 0] += 0.7  # a faint vertical bar
        return X, y

    X, y = images(24)
    Xv, yv = images(200)

    def fit(callbacks):
        model = CNN((8, 8, 1), [Conv2D(1, 6, 3, padding="same"), MaxPool2D(2), Flatten(),
                                Dense(96, 2, "softmax")], seed=0)
        trainer = Trainer(model, optimizer="adam", lr=0.02, batch_size=6, progress=False)
        states = []
        hist = trainer.fit(X, y, 30, valid=(Xv, yv), callbacks=callbacks,
                           callback=lambda ep, h: states.append(trainer.get_state()))
        return trainer, hist, states

    full = fit(None)[1]
    best, stopped = _expected(full.valid_loss, 3)
    assert stopped is not None and stopped < 29, "(the scenario: the CNN overfits)"
    stop, ckpt = EarlyStopping(patience=3), ModelCheckpoint(tmp_path / "cnn.npz", monitor="valid_loss")
    trainer, hist, states = fit([stop, ckpt])
    assert (stop.best_epoch, hist.stopped_epoch) == (best, stopped) and len(hist.train_loss) == best + 4
    assert _same_state(trainer.get_state(), states[best])
    np.testing.assert_array_equal(CNN.load(tmp_path / "cnn.npz").theta, trainer.model.theta)
    assert hist.valid_loss == full.valid_loss[:stopped + 1]


def test_history_has_stopped_epoch():
    assert History().stopped_epoch is None and History().as_dict()["stopped_epoch"] is None
