"""Ctrl-C (SIGINT) during training stops it promptly and leaves a consistent state.

Every scenario runs in a child process (the fastnn this test imported on PYTHONPATH, a temporary working
directory) that announces on stdout, as ``@tag {json}`` lines, the moments the parent waits for: the end of
an epoch, the start of a call.  The parent then waits a quarter of an epoch, so that the signal lands in the
middle of the next one, sends SIGINT with ``Popen.send_signal`` and reads what the child found.  The child
sets SIGINT to Python's own handler first: a SIGINT ignored by whoever started pytest would otherwise be
inherited, and nothing could be interrupted.

What is checked:

* ``Trainer.fit`` (MLP: the compiled epoch in one call and in progress slices, and batch by batch from
  Python; CNN: the compiled epoch) raises ``TrainingInterrupted``, a KeyboardInterrupt, with the History of
  the finished epochs (also ``trainer.history``) and ``epochs_done``; the parameters, the optimizer state
  and the step count are bitwise those of the end of the last finished epoch (the initial ones when the
  first epoch is interrupted); the process's SIGINT handler, as the kernel holds it, is the one it had
  before; fitting again continues exactly as a new trainer given that state would;
* the exception comes well within the epoch: within half an epoch of the signal, when the epoch's end
  would come three quarters of an epoch after it (the times are printed: ``pytest -s``; the child's
  ``time.monotonic()`` at the catch against the parent's at the send, one system-wide clock on Linux);
* a SIGINT handler of the user's that does not raise leaves the epoch whole (the compiled call it cut
  short is resumed);
* ``fastnn.functional.train_epoch`` called directly stops after a whole number of batches, fewer than the
  epoch's, and raises KeyboardInterrupt; called from another thread it is not cut short;
* the ``fastnn`` command exits with 130 and one line ``fastnn TASK: interrupted``, no traceback, and leaves
  only complete files (those written before the signal: loadable) and no temporaries.
"""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import fastnn

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX signals, Linux sigaction layout")

#: The folder holding the fastnn this test imported: the installed package (CI runs pytest from a checkout
#: whose fastnn/ has no compiled core), or this checkout when it is installed in editable mode.
ROOT = Path(fastnn.__file__).resolve().parents[1]
FASTNN_SCRIPT = Path(sys.executable).parent / "fastnn"  # the console script installed with fastnn
TIMEOUT = 60  # seconds for one child process: a hang fails instead of blocking
EPOCH_ROWS = 60_000  # 60k float32 rows of 1024 features in batches of 64
LONG = [1024, 1024, 36]  # an epoch of 2 to 3 s on 2 cores (the case of one compiled call per epoch)
SIZES = [1024, 512, 36]  # 1 to 2 s

# ----------------------------------------------------------------------------- the children's common code

PRELUDE = r'''
import ctypes, json, os, signal, sys, time
import numpy as np
signal.signal(signal.SIGINT, signal.default_int_handler)  # whatever disposition this process inherited
import fastnn
import fastnn.functional as F
from fastnn.train import Trainer, TrainingInterrupted


def say(tag, **info):
    print("@" + tag, json.dumps(info), flush=True)


_libc = ctypes.CDLL(None, use_errno=True)


def sigint_handler_address():
    """The SIGINT handler as the kernel holds it (signal.getsignal knows only Python's own table, not a handler
    that a compiled call installed and left behind)."""
    action = ctypes.create_string_buffer(512)  # struct sigaction; its first member is the handler
    if _libc.sigaction(signal.SIGINT, None, action) != 0:
        raise OSError(ctypes.get_errno(), "sigaction")
    return ctypes.c_void_p.from_buffer(action).value


def tiled(rows, shape, classes, seed=0):
    """rows float32 samples of ``shape`` and class indices: a random block of 1000 repeated (quick to make)."""
    rng = np.random.default_rng(seed)
    X = np.tile(rng.standard_normal((1000, *shape), dtype=np.float32), (rows // 1000,) + (1,) * len(shape))
    return X, np.tile(rng.integers(0, classes, 1000), rows // 1000)


def snapshot(model, trainer):
    return [model.theta.copy(), trainer.state1.copy(), trainer.state2.copy(), trainer.step]


def same(a, b):
    """Bitwise the same parameters, optimizer state and step count."""
    return all(x.dtype == y.dtype and x.tobytes() == y.tobytes() for x, y in zip(a[:3], b[:3])) and a[3] == b[3]


def fit_interrupted(trainer, X, y, epochs):
    """Fit until a SIGINT; check what fit promises after one; return (epochs done, monotonic time of the catch).
    Every finished epoch is announced as @epoch with its length."""
    model = trainer.model
    kept, losses = [snapshot(model, trainer)], []  # the state at the start and at the end of every epoch
    handler = sigint_handler_address()

    def callback(ep, hist):
        kept.append(snapshot(model, trainer))
        losses.append(hist.train_loss[-1])
        say("epoch", ep=ep, seconds=hist.seconds[-1])

    try:
        trainer.fit(X, y, epochs, callback=callback)
    except KeyboardInterrupt as exc:  # what a caller of fit catches
        caught = time.monotonic()
        err = exc
    else:
        raise AssertionError(f"fit ran its {epochs} epochs: the SIGINT was not seen")
    assert type(err) is TrainingInterrupted, f"fit raised {type(err).__name__}, not TrainingInterrupted: {err}"
    done, hist = err.epochs_done, err.history
    assert len(kept) == done + 1, f"{len(kept) - 1} epochs ended (callback), {done} are counted as done"
    assert hist is trainer.history, "the exception's history is not trainer.history"
    for key in ("train_loss", "train_acc", "lr", "seconds"):
        assert len(getattr(hist, key)) == done, f"history.{key} has {len(getattr(hist, key))} epochs, not {done}"
    assert hist.train_loss == losses and hist.valid_loss == [] and hist.best_epoch is None
    assert same(snapshot(model, trainer), kept[done]), (
        f"the model or the optimizer state is not that of the end of epoch {done} (step {trainer.step}, "
        f"expected {kept[done][3]})")
    assert sigint_handler_address() == handler, "fit left another SIGINT handler installed"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    return done, caught


say("hello", fastnn=fastnn.__file__)
'''

FIT_SCRIPT = PRELUDE + r'''
opts = json.loads(sys.argv[1])
if opts["model"] == "mlp":
    from fastnn.models import MLP

    X, y = tiled(opts["rows"], (opts["sizes"][0],), opts["sizes"][-1])

    def make():
        model = MLP(opts["sizes"], ["relu", "softmax"], dtype="float32", seed=0)
        return model, Trainer(model, optimizer="adam", lr=1e-3, batch_size=64, shuffle="epoch", seed=1,
                              progress=opts["progress"], fused=opts["fused"])
else:
    from fastnn.cnn import CNN
    from fastnn.layers import Conv2D, Dense, Flatten, MaxPool2D

    X, y = tiled(opts["rows"], (32, 32, 1), 10)

    def make():
        model = CNN((32, 32, 1), [Conv2D(1, 8, 5, activation="relu"), MaxPool2D(2),
                                  Conv2D(8, 16, 3, activation="relu"), MaxPool2D(2), Flatten(),
                                  Dense(576, 10, "softmax")], dtype="float32", seed=0)
        trainer = Trainer(model, optimizer="momentum", lr=1e-3, batch_size=32, shuffle="epoch", seed=1,
                          progress=False, fused=True)
        assert trainer.fused and isinstance(trainer.plan, F.NetworkPlan), "the CNN does not train by the compiled epoch"
        return model, trainer

# Interrupted in the second epoch: the first one is kept.
model, trainer = make()
done, caught = fit_interrupted(trainer, X, y, 3)
say("interrupted", done=done, caught=caught)
kept = snapshot(model, trainer)

# Fitting again continues from there exactly as a new trainer given that state does.
part = slice(0, opts["refit_rows"])
again = trainer.fit(X[part], y[part], 1)
model2, trainer2 = make()
model2.theta[...], trainer2.state1[...], trainer2.state2[...], trainer2.step = kept
expected = trainer2.fit(X[part], y[part], 1)
assert trainer.step == kept[3] + -(-opts["refit_rows"] // trainer.batch_size), "the second fit did not run every batch"
assert same(snapshot(model, trainer), snapshot(model2, trainer2)) and again.train_loss == expected.train_loss, (
    "fitting again after the interruption differs from a new trainer started from the kept state")

# Interrupted in the first epoch: the initial parameters and an empty History.
model, trainer = make()
say("start")
done, caught = fit_interrupted(trainer, X, y, 2)
say("interrupted", done=done, caught=caught)
'''

QUIET_HANDLER_SCRIPT = PRELUDE + r'''
from fastnn.models import MLP

sizes, rows = json.loads(sys.argv[1]), int(sys.argv[2])
X, y = tiled(rows, (sizes[0],), sizes[-1])


def make(progress):
    model = MLP(sizes, ["relu", "softmax"], dtype="float32", seed=0)
    return model, Trainer(model, optimizer="adam", lr=1e-3, batch_size=64, progress=progress)


# The compiled calls that a SIGINT cut short: without one this test would prove nothing.
cut = []
train_epoch = F.train_epoch


def recording_train_epoch(plan, X, T, order, *args, **kwargs):
    r = train_epoch(plan, X, T, order, *args, **kwargs)
    if r.batches < -(-order.shape[0] // plan.batch_size):
        cut.append(r.batches)
    return r


F.train_epoch = recording_train_epoch
model, trainer = make(False)
reference = trainer.fit(X, y, 1)
whole = snapshot(model, trainer)
calls = []
signal.signal(signal.SIGINT, lambda signum, frame: calls.append(signum))  # a handler that does not raise
for progress in (False, True):
    model, trainer = make(progress)
    say("start", seconds=reference.seconds[0])
    hist = trainer.fit(X, y, 1)
    assert calls == [signal.SIGINT], f"the Python handler ran {len(calls)} times"
    assert cut, "no compiled call was cut short by the SIGINT"
    assert same(snapshot(model, trainer), whole) and hist.train_loss == reference.train_loss, (
        f"progress={progress}: an epoch that a SIGINT cut short after batch {cut[0]} (the handler did not raise) "
        f"was recorded as the whole epoch: loss {hist.train_loss[0]} instead of {reference.train_loss[0]}, "
        f"step {trainer.step} instead of {whole[3]}")
    assert hist.train_acc == reference.train_acc
    calls.clear()
    cut.clear()
    say("whole", progress=progress)
'''

TRAIN_EPOCH_SCRIPT = PRELUDE + r'''
import threading
from fastnn.models import MLP

sizes, rows, bs = json.loads(sys.argv[1]), int(sys.argv[2]), 64
X, y = tiled(rows, (sizes[0],), sizes[-1])
T = np.eye(sizes[-1], dtype=np.float32)[y]
plan = F.epoch_plan(sizes, ["relu", "softmax"], "cross_entropy", optimizer="momentum", batch_size=bs,
                    dtype="float32")
theta0 = MLP(sizes, ["relu", "softmax"], dtype="float32", seed=0).theta.copy()
order = np.random.default_rng(1).permutation(rows).astype(np.int64)
n_batches = -(-rows // bs)


def run(order, theta, state, **kwargs):
    return F.train_epoch(plan, X, T, order, theta, state, lr=1e-3, **kwargs)


full, full_state = theta0.copy(), plan.new_state()
t0 = time.monotonic()
assert run(order, full, full_state).batches == n_batches
seconds = time.monotonic() - t0

handler = sigint_handler_address()
theta, state = theta0.copy(), plan.new_state()
say("start", seconds=seconds)
try:
    r = run(order, theta, state)
except KeyboardInterrupt as exc:
    caught = time.monotonic()
    assert type(exc) is KeyboardInterrupt, type(exc)
else:
    raise AssertionError(f"train_epoch returned ({r.batches} of {n_batches} batches): the SIGINT was not seen")
assert sigint_handler_address() == handler and signal.getsignal(signal.SIGINT) is signal.default_int_handler, (
    "train_epoch left another SIGINT handler installed")
# The batches it did: replayed one call per batch from the start until the parameters are the same.
replay, replay_state, done = theta0.copy(), plan.new_state(), None
for b in range(n_batches):
    run(order[b * bs:(b + 1) * bs], replay, replay_state)
    if replay.tobytes() == theta.tobytes():
        done = b + 1
        break
assert done is not None, "the parameters after the SIGINT are those of no whole number of batches"
assert replay_state[0].tobytes() == state[0].tobytes(), "the momentum is not that of the same batches"
assert done < n_batches and theta.tobytes() != full.tobytes(), "the interrupted call ran the whole epoch"
say("interrupted", caught=caught, batches=done, n_batches=n_batches)

# The next call is not cut short by a flag left behind.
assert run(order[:10 * bs], theta0.copy(), plan.new_state()).batches == 10

# From another thread the epoch is not watched: the main thread gets the KeyboardInterrupt, the epoch runs whole.
result, finished = {}, threading.Event()  # (not Thread.join: interrupted, it can return early on 3.11)
half = n_batches // 2


def in_thread():
    result["r"] = run(order[:half * bs], theta0.copy(), plan.new_state())
    finished.set()


threading.Thread(target=in_thread, daemon=True).start()
say("thread", seconds=seconds / 2)
try:
    while not finished.wait(0.05):
        pass
except KeyboardInterrupt:
    pass
else:
    raise AssertionError("the main thread got no KeyboardInterrupt")
assert finished.wait(30), "the epoch in the other thread did not end"
assert result["r"].batches == half, f"an epoch run in another thread stopped after {result['r'].batches} of {half}"
say("thread-done")
'''

CALLBACK_SCRIPT = PRELUDE + r'''
from fastnn.models import MLP

rng = np.random.default_rng(0)
W = rng.standard_normal((20, 4))
X, Xv = rng.standard_normal((4000, 20)).astype(np.float32), rng.standard_normal((1000, 20)).astype(np.float32)
y, yv = np.argmax(X @ W, axis=1), np.argmax(Xv @ W, axis=1)
model = MLP([20, 32, 4], ["tanh", "softmax"], dtype="float32", seed=0)
trainer = Trainer(model, optimizer="momentum", lr=1e-3, batch_size=32, progress=False)
kept, accuracies = [snapshot(model, trainer)], []


def callback(ep, hist):
    kept.append(snapshot(model, trainer))
    accuracies.append(hist.valid_acc[-1])
    if ep == 1:
        say("callback")
        time.sleep(TIMEOUT)


try:
    trainer.fit(X, y, 3, valid=(Xv, yv), callback=callback)
except KeyboardInterrupt as exc:
    err = exc
else:
    raise AssertionError("fit ran its 3 epochs: the SIGINT was not seen")
assert type(err) is TrainingInterrupted, type(err)
done, hist = err.epochs_done, err.history
# Whether the epoch whose callback was interrupted counts as finished is fit's choice; either way all agrees.
assert len(kept) == 3 and done in (1, 2), (len(kept), done)
assert hist is trainer.history
for key in ("train_loss", "train_acc", "valid_loss", "valid_acc", "lr", "seconds"):
    assert len(getattr(hist, key)) == done, f"history.{key} has {len(getattr(hist, key))} epochs, {done} are done"
assert hist.valid_acc == accuracies[:done]
assert same(snapshot(model, trainer), kept[done]), f"the model is not that of the end of epoch {done}"
assert accuracies[1] > accuracies[0], "(the scenario: the interrupted epoch is the new best)"
best = int(np.argmax(accuracies[:done]))
assert hist.best_epoch == best, f"history.best_epoch is {hist.best_epoch}, the best finished epoch is {best}"
assert trainer.best_theta.tobytes() == kept[best + 1][0].tobytes(), "best_theta is not the best epoch's"
say("interrupted", done=done)
'''.replace("TIMEOUT", str(TIMEOUT))

CLI_STARTUP_SCRIPT = PRELUDE + r'''
import fastnn.cli as cli
import fastnn.tasks.registry as registry


def load_tasks():  # stands for the imports of every task that build_parser does first
    say("loading")
    time.sleep(TIMEOUT)
    raise AssertionError("no SIGINT came")


registry.load_tasks = load_tasks
sys.exit(cli.main(["classify", "--epochs", "1", "--out", "out"]))
'''.replace("TIMEOUT", str(TIMEOUT))

# Reset SIGINT to its default action and run the console script: an ignored SIGINT survives exec, and Python
# installs its KeyboardInterrupt handler only over the default action.
EXEC_WITH_DEFAULT_SIGINT = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                            "os.execv(sys.argv[1], sys.argv[1:])")


# ------------------------------------------------------------------------------------ the parent's side

def _env():
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FASTNN_DATA")}
    env.update(PYTHONPATH=str(ROOT), MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    return env


class Child:
    """A child process; its stdout and stderr are read by two threads into one queue of (stream, line)."""

    def __init__(self, cmd, cwd):
        self.deadline = time.monotonic() + TIMEOUT
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)
        self.lines = {"stdout": [], "stderr": []}
        self.queue = queue.Queue()
        self.readers = [threading.Thread(target=self._read, args=(name,), daemon=True) for name in self.lines]
        for reader in self.readers:
            reader.start()

    def _read(self, name):
        for line in getattr(self.proc, name):
            self.lines[name].append(line.rstrip("\n"))
            self.queue.put((name, line.rstrip("\n")))
        self.queue.put((name, None))

    def output(self):
        return "\n--- stdout:\n" + "\n".join(self.lines["stdout"]) + "\n--- stderr:\n" + "\n".join(self.lines["stderr"])

    def fail(self, problem):
        self.kill()
        pytest.fail(f"{problem} (returncode {self.proc.returncode}){self.output()}")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for reader in self.readers:
            reader.join(5)

    def wait_for(self, what, match):
        """The next line (stream, text) for which match(stream, text) is true; fail on the end of the output."""
        while True:
            try:
                stream, line = self.queue.get(timeout=max(self.deadline - time.monotonic(), 0.01))
            except queue.Empty:
                self.fail(f"timed out after {TIMEOUT} s waiting for {what}")
            if line is None:
                if stream == "stdout":
                    self.fail(f"the child's output ended while waiting for {what}")
                continue
            if match(stream, line):
                return line

    def expect(self, tag):
        """The child's next @message (a dict); it must be @tag."""
        line = self.wait_for(f"@{tag}", lambda stream, line: stream == "stdout" and line.startswith("@"))
        got, _, info = line[1:].partition(" ")
        if got != tag:
            self.fail(f"expected @{tag} from the child, got {line!r}")
        return json.loads(info)

    def interrupt(self, after=0.0):
        """Send SIGINT ``after`` seconds from now; return the monotonic time it was sent."""
        time.sleep(after)
        if self.proc.poll() is not None:
            self.fail("the child ended before the SIGINT")
        sent = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        return sent

    def finish(self):
        """Wait for the end (and the end of its output); return the returncode."""
        try:
            self.proc.wait(timeout=max(self.deadline - time.monotonic(), 0.01))
        except subprocess.TimeoutExpired:
            self.fail(f"still running after {TIMEOUT} s")
        for reader in self.readers:
            reader.join(5)
        return self.proc.returncode


@pytest.fixture
def spawn(tmp_path):
    """spawn(cmd) starts a Child in tmp_path; every child still running at the end of the test is killed."""
    children = []

    def start(cmd):
        children.append(Child(cmd, tmp_path))
        return children[-1]

    yield start
    for child in children:
        child.kill()


@pytest.fixture
def python_child(spawn):
    """python_child(script, *args): a Python child, after its @hello (which says it imported this fastnn)."""

    def start(script, *args):
        child = spawn([sys.executable, "-c", script, *map(str, args)])
        hello = child.expect("hello")
        if not Path(hello["fastnn"]).resolve().is_relative_to(ROOT / "fastnn"):
            child.fail(f"the child imported fastnn from {hello['fastnn']}, not from {ROOT}")
        return child

    return start


def _report(label, seconds):
    print(f"\n[interrupt] {label}: {1e3 * seconds:.1f} ms", flush=True)


def _finish_ok(child):
    if child.finish() != 0:
        child.fail("the child failed a check")


# ------------------------------------------------------------------------------------- Trainer.fit

def _interrupt_fits(child, label):
    """Drive FIT_SCRIPT: a SIGINT a quarter into the second epoch, then a quarter into the first."""
    first = child.expect("epoch")
    seconds = first["seconds"]  # the length of an epoch
    assert first["ep"] == 0
    for epoch, done in ((2, 1), (1, 0)):
        if epoch == 1:
            child.expect("start")
        sent = child.interrupt(after=seconds / 4)
        got = child.expect("interrupted")
        reaction = got["caught"] - sent
        _report(f"{label}, epoch {epoch} (epoch {seconds:.2f} s), SIGINT to TrainingInterrupted", reaction)
        assert got["done"] == done
        # Without the flag the exception would come at the end of the epoch, three quarters of an epoch later.
        assert reaction < seconds / 2, \
            f"TrainingInterrupted came {reaction:.2f} s after the SIGINT (epoch {seconds:.2f} s)"
    _finish_ok(child)


@pytest.mark.parametrize("progress,fused", [(False, True), (True, True), (False, False)],
                         ids=["fused", "fused-progress", "steps"])
def test_mlp_fit_interrupted_mid_epoch_rolls_back_to_the_last_finished_epoch(python_child, progress, fused):
    opts = dict(model="mlp", sizes=LONG if fused and not progress else SIZES,
                rows=EPOCH_ROWS if fused else EPOCH_ROWS // 2, refit_rows=4096, progress=progress, fused=fused)
    _interrupt_fits(python_child(FIT_SCRIPT, json.dumps(opts)), f"MLP fused={fused} progress={progress}")


def test_cnn_fit_interrupted_mid_epoch_rolls_back_to_the_last_finished_epoch(python_child):
    opts = dict(model="cnn", rows=36_000, refit_rows=1024, progress=False, fused=True)
    _interrupt_fits(python_child(FIT_SCRIPT, json.dumps(opts)), "CNN fused progress=False")


def test_a_sigint_handler_that_does_not_raise_leaves_the_epoch_whole(python_child):
    """The compiled epoch stops after the batch during which SIGINT came whatever Python's handler does; when
    the handler does not raise, the epoch must go on to its end (with and without progress slices)."""
    child = python_child(QUIET_HANDLER_SCRIPT, json.dumps(SIZES), EPOCH_ROWS // 2)
    for progress in (False, True):
        start = child.expect("start")
        child.interrupt(after=start["seconds"] / 4)
        assert child.expect("whole") == {"progress": progress}
    _finish_ok(child)


def test_interrupted_in_a_callback_the_history_and_the_best_epoch_agree_with_the_model(python_child):
    """SIGINT while the callback of epoch 2 runs (its History entry, validation and best model recorded)."""
    child = python_child(CALLBACK_SCRIPT)
    child.expect("callback")
    child.interrupt(after=0.05)
    child.expect("interrupted")
    _finish_ok(child)


# ------------------------------------------------------------------------------ functional.train_epoch

def test_train_epoch_stops_after_a_whole_batch_and_raises(python_child):
    child = python_child(TRAIN_EPOCH_SCRIPT, json.dumps(SIZES), EPOCH_ROWS)
    seconds = child.expect("start")["seconds"]
    sent = child.interrupt(after=seconds / 4)
    got = child.expect("interrupted")
    reaction = got["caught"] - sent
    _report(f"train_epoch (epoch {seconds:.2f} s, stopped after batch {got['batches']} of {got['n_batches']}), "
            "SIGINT to KeyboardInterrupt", reaction)
    assert reaction < seconds / 2, f"KeyboardInterrupt came {reaction:.2f} s after the SIGINT (epoch {seconds:.2f} s)"
    child.interrupt(after=child.expect("thread")["seconds"] / 3)
    child.expect("thread-done")
    _finish_ok(child)


# ------------------------------------------------------------------------------------------ the CLI

def _cli(*args):
    if not FASTNN_SCRIPT.exists():
        pytest.skip(f"no fastnn console script beside {sys.executable}")
    return [sys.executable, "-c", EXEC_WITH_DEFAULT_SIGINT, str(FASTNN_SCRIPT), *args]


def _assert_interrupted_exit(child, task, sent):
    rc = child.finish()
    _report(f"fastnn {task}, SIGINT to the end of the process", time.monotonic() - sent)
    err = child.lines["stderr"]
    if rc != 130 or "Traceback" in "\n".join(err) or not err or err[-1] != f"fastnn {task}: interrupted":
        child.fail(f"expected exit code 130 and a last stderr line 'fastnn {task}: interrupted', no traceback")
    assert [line for line in err if "interrupted" in line.lower()] == [err[-1]]
    assert child.lines["stdout"] == [], "the task printed results although it was interrupted"


def _check_complete(path):
    """A file written before the interrupt is whole: it parses or loads."""
    data = path.read_bytes()
    if path.suffix == ".json":
        json.loads(data)
    elif path.suffix == ".png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and data.endswith(b"IEND\xaeB`\x82"), f"{path.name} is cut short"
    elif path.suffix == ".npz":
        from fastnn.models import MLP

        assert np.all(np.isfinite(MLP.load(path).theta))
    else:
        assert data.strip(), f"{path.name} is empty"


def test_cli_interrupted_while_training(spawn, tmp_path):
    out = tmp_path / "out"
    child = spawn(_cli("classify", "--epochs", "1000", "--out", str(out), "--progress"))
    child.wait_for("the first progress line", lambda stream, line: stream == "stderr" and line.startswith("epoch 1/"))
    _assert_interrupted_exit(child, "classify", child.interrupt(after=0.5))
    assert sorted(p.name for p in out.iterdir()) == []  # classify writes its files after training


def test_cli_interrupted_in_a_later_stage_keeps_the_earlier_files_whole(spawn, tmp_path):
    """`fastnn demo` writes the classifier's, the weights' and the confusion matrix's files, then trains the
    autoencoder (epochs of one compiled call each, --no-progress): a SIGINT there leaves the earlier files
    complete and nothing else, no temporary."""
    out = tmp_path / "out"
    child = spawn(_cli("demo", "--out", str(out), "--no-progress"))
    while not (out / "confusion.md").exists():  # the last file before the autoencoder's training
        if child.proc.poll() is not None or time.monotonic() > child.deadline:
            child.fail("demo ended, or ran too long, before writing confusion.md")
        time.sleep(0.05)
    _assert_interrupted_exit(child, "demo", child.interrupt(after=1.0))
    written = {f"{stage}{ext}" for stage in ("classify", "weights", "confusion") for ext in (".json", ".md")}
    written |= {"classify_curves.png", "classify_model.npz", "weights_init.png", "weights_trained.png",
                "confusion.png"}
    assert sorted(p.name for p in out.iterdir()) == sorted(written)
    for name in written:
        _check_complete(out / name)


def test_cli_interrupted_while_loading_its_tasks(python_child):
    child = python_child(CLI_STARTUP_SCRIPT)
    child.expect("loading")
    child.interrupt()
    rc = child.finish()
    if rc != 130 or child.lines["stderr"] != ["fastnn: interrupted"]:
        child.fail("expected exit code 130 and the one stderr line 'fastnn: interrupted'")


# ------------------------------------------------------------------ SIGINT at awkward moments (regressions)

EARLY_SIGINT_SCRIPT = PRELUDE + r'''
import threading
rng = np.random.default_rng(0)
n, d, bs = 8192, 4096, 4096  # two batches; gathering the first (128 MB of float64 rows) takes milliseconds
X = rng.standard_normal((n, d)); T = np.eye(8)[rng.integers(0, 8, n)]
order = np.arange(n, dtype=np.int64)
plan = F.epoch_plan([d, 16, 8], ["relu", "softmax"], "cross_entropy", batch_size=bs, dtype="float64")
theta0 = rng.standard_normal(plan.n_params) * 0.01
one = theta0.copy()
F.train_epoch(plan, X, T, order[:bs], one, plan.new_state(), lr=1e-3)
late = []
for delay in (0.0005, 0.001, 0.002, 0.004):
    theta = theta0.copy()
    timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        F.train_epoch(plan, X, T, order, theta, plan.new_state(), lr=1e-3)
    except KeyboardInterrupt:
        pass
    timer.join()
    if not np.array_equal(theta, one):  # more than the batch under way ran
        late.append(delay)
say("late", delays=late)
'''


def test_a_sigint_just_before_the_epoch_starts_is_not_lost(python_child):
    """A SIGINT arriving after Python last looked at signals but before the compiled epoch watches for one (a
    thread of the user's sends it as the call begins) must still stop the call after its first batch."""
    child = python_child(EARLY_SIGINT_SCRIPT)
    late = child.expect("late")["delays"]
    assert late == [], f"SIGINTs sent {late} s into the call let the epoch run past its first batch"
    _finish_ok(child)


FORK_DURING_WATCH_SCRIPT = PRELUDE + r'''
import threading
plan = F.epoch_plan([256, 64, 4], ["sigmoid", "softmax"], "cross_entropy", batch_size=16)
X = np.random.default_rng(0).random((20000, 256)); T = np.eye(4)[np.arange(20000) % 4]
theta = np.zeros(plan.n_params)
out, forked = {}, threading.Event()


def fork_while_main_trains():
    time.sleep(0.2)  # the main thread is inside train_epoch, with its SIGINT watch installed
    pid = os.fork()
    forked.set()
    if pid == 0:  # this thread is the child's main thread
        try:
            F.train_epoch(plan, X[:64], T[:64], np.arange(64), theta.copy(), plan.new_state(), lr=1e-3)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(2)
            os._exit(3)  # the SIGINT raised nothing
        except KeyboardInterrupt:
            os._exit(0)
    for _ in range(100):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            out["child"] = os.waitstatus_to_exitcode(status)
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    out["child"] = "still running 5 s after its SIGINT"


thread = threading.Thread(target=fork_while_main_trains)
thread.start()
while not forked.is_set():
    F.train_epoch(plan, X, T, np.arange(20000), theta, plan.new_state(), lr=1e-3)
thread.join()
say("child", result=out["child"])
'''


def test_a_child_forked_during_a_watched_epoch_still_raises_on_ctrl_c(python_child):
    """A thread forks while the main thread is inside a compiled epoch (which had put its SIGINT watch in
    place): in the child, the watch must be gone, so that its own epochs watch again and a SIGINT raises
    KeyboardInterrupt (it once called itself for ever, at 100% CPU)."""
    child = python_child(FORK_DURING_WATCH_SCRIPT)
    result = child.expect("child")["result"]
    assert result == 0, f"the forked child, sent SIGINT after an epoch: {result}"
    _finish_ok(child)
