"""Separate processes in sequence and together: no order of processes crashes a public entry point.

Until the compiled core, fastnn's kernels were Numba functions cached on disk, and an installed fastnn
segfaulted after an ordinary sequence of separate processes: Numba issue 8578 (a cached function that calls
a ``parallel=True`` function, compiled in a process that loaded its callee from the on-disk cache, is
written to the cache broken, and the next process that loads it crashes) and Numba issue 10128 (processes
started together race on the cache). One pytest process cannot see either, so every test here starts real
processes:

* ``sys.executable`` (or the ``fastnn`` console script beside it), that is the *installed* fastnn, run from
  an empty temporary directory so that the source tree can never shadow it;
* HOME, XDG_CACHE_HOME and FASTNN_CACHE inside the test's ``tmp_path``: every scenario starts from an empty
  cache, all its processes share that one cache, and nothing is written to the user's home;
* the orders that broke the cache: "callee first, caller second, loader third" (the process that runs
  the inner kernel, then one that runs the entry point on top of it, then one more that would load what
  the second wrote) and "two processes started together, then a third";
* every process must exit 0 (a segfault is returncode -11, named SIGSEGV in the message, with the
  process's stdout and stderr), and its numbers are checked against NumPy or against the same code run in
  this process, and between the processes bitwise, so that a process that runs but computes garbage, or
  computes differently from its neighbour, fails too.

The products are made large enough to be cut over two threads (32x1024 @ 1024x64 is 2**22 flops, over
``PARALLEL_GEMM_MIN_FLOPS`` = 2**19), the path that Numba's ``parallel=True`` took, and small enough for
the whole file to take a few seconds per test.
"""

import ast
import contextlib
import io
import json
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _reference import tol
from _subproc import describe, python_command

TIMEOUT = 120  # seconds for one process, or for a group started together: a hang fails instead of blocking CI
SOURCE_PACKAGE = Path(__file__).resolve().parents[1] / "fastnn"  # the source tree's package, never to be imported
FASTNN_SCRIPT = Path(sys.executable).parent / "fastnn"  # the console script installed with fastnn
ORDERS = ["callee-caller-loader", "two-together-then-third"]
DTYPES = ["float32", "float64"]
#: (n, k, m) of X (n, k) @ W (k, m): 'large' is split over two threads, 'small' runs as one product.
SHAPES = {"large": (32, 1024, 64), "small": (5, 7, 3)}


# --------------------------------------------------------------------------- running processes

def _fresh_env(tmp_path):
    """The parent's environment with HOME and every cache inside tmp_path, no PYTHONPATH (which could put the
    source tree before the installed package) and no inherited FASTNN_* setting; PYTHONFAULTHANDLER makes a
    crashing process print its Python traceback on stderr (it still ends by the signal)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("FASTNN_")}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), FASTNN_CACHE=str(tmp_path / "fastnn-cache"),
               PYTHONFAULTHANDLER="1")
    return env


def _python(script, *args):
    return python_command(script, *args)


def _describe(proc, label, problem=""):
    return describe(proc, f"process '{label}'", problem)


def _differs(expected):
    """The ``problem`` of _describe for a process whose output is not ``expected`` (computed in this process)."""
    import fastnn

    return (f", but printed other output than the same code run in the test process (fastnn from "
            f"{Path(fastnn.__file__).parent}), which printed:\n{expected}")


def _together(cmds, tmp_path):
    """Start every command at once (subprocess.Popen each, then wait for all) in tmp_path's fresh environment,
    from the empty directory tmp_path/cwd; return their CompletedProcess records in order. A group that is
    still running after TIMEOUT seconds is killed and fails the test as a hang."""
    cwd = tmp_path / "cwd"
    cwd.mkdir(exist_ok=True)
    env = _fresh_env(tmp_path)
    procs = [subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for cmd in cmds]
    deadline = time.monotonic() + TIMEOUT
    done, hung = [], None
    try:
        for p in procs:
            try:
                out, err = p.communicate(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                hung = p
                break
            done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    if hung is not None:
        pytest.fail(f"hang: {shlex.join(map(str, hung.args))[:300]} still ran after {TIMEOUT} s (killed)")
    return done


def _run(cmd, tmp_path):
    """Run one command to its end in tmp_path's fresh environment (see _together)."""
    return _together([cmd], tmp_path)[0]


def _assert_ok(proc, label):
    assert proc.returncode == 0, _describe(proc, label)


def _in_order(order, tmp_path, callee, caller):
    """Run the processes of one scenario against tmp_path's one cache and check that each exits 0.

    ``callee`` and ``caller`` map a process label to its command line. 'callee-caller-loader' runs the
    callee, then the caller, then the caller again (the process that would load what the second wrote);
    'two-together-then-third' starts two callers at once, then a third after both have ended.
    Returns {label: CompletedProcess}.
    """
    if order == "callee-caller-loader":
        stages = [[("callee", callee)], [("caller", caller)], [("loader", caller)]]
    else:
        stages = [[("together-1", caller), ("together-2", caller)], [("third", caller)]]
    results = {}
    for stage in stages:
        procs = _together([make(label) for label, make in stage], tmp_path)
        results.update((label, p) for (label, _), p in zip(stage, procs))
    for label, proc in results.items():
        _assert_ok(proc, label)
    return results


def _npz(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def _assert_same_bits(results, label, first_label):
    """Two processes of one script wrote bitwise the same arrays (same inputs, same machine)."""
    a, b = results[first_label], results[label]
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), f"'{label}' and '{first_label}' differ in {key}"


# --------------------------------------------------------------------------- NumPy references

def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _act(name, z):
    return {"linear": lambda z: z, "sigmoid": _sigmoid, "tanh": np.tanh, "relu": lambda z: np.maximum(z, 0),
            "softmax": _softmax}[name](z)


def _deriv(name, post):
    return {"linear": np.ones_like(post), "sigmoid": post * (1 - post), "tanh": 1 - post**2,
            "relu": (post > 0).astype(np.float64)}[name]


def _close(got, ref, dtype, what):
    assert got.dtype == dtype, f"{what}: dtype {got.dtype}, expected {dtype}"
    np.testing.assert_allclose(got, ref, **tol(dtype), err_msg=what)


def _f64(a):
    return np.asarray(a, np.float64)


# --------------------------------------------------------------------------- the bug report

BUG_REPORT = [
    "import numpy as np; from fastnn._kernels import blas; A=np.ones((2,3),np.float32); "
    "blas.gemm(A, np.ones((3,3),np.float32), np.zeros((2,3),np.float32), 1.0, 0.0)",
    "import numpy as np; from fastnn import functional as F; "
    "F.dense_forward(np.ones((2,3),np.float32), np.ones((3,3),np.float32), np.zeros(3,np.float32), 'relu')",
]
#: Appended to each command above, which otherwise prints nothing: the same call again, its result printed.
BUG_REPORT_PRINT = [
    "; C=np.zeros((2,3),np.float32); blas.gemm(A, np.ones((3,3),np.float32), C, 1.0, 0.0); print(C.tolist())",
    "; pre, post = F.dense_forward(np.ones((2,3),np.float32), np.ones((3,3),np.float32), np.zeros(3,np.float32), "
    "'relu'); print(pre.tolist(), post.tolist())",
]


def test_bug_report_commands_in_sequence(tmp_path):
    """The bug report's exact commands, as separate processes one after the other against one fresh cache
    (gemm, then dense_forward twice: with the Numba cache the third process segfaulted). Each must exit 0 and
    print NumPy's numbers (a printout of the call's result is appended to the command)."""
    commands = [BUG_REPORT[0] + BUG_REPORT_PRINT[0]] + [BUG_REPORT[1] + BUG_REPORT_PRINT[1]] * 2
    product = np.ones((2, 3), np.float32) @ np.ones((3, 3), np.float32)
    layer = f"{product.tolist()!r} {np.maximum(product, 0).tolist()!r}"
    expected = [repr(product.tolist()), layer, layer]
    for i, (cmd, want) in enumerate(zip(commands, expected)):
        proc = _run(_python(cmd), tmp_path)
        _assert_ok(proc, f"bug-report command {i + 1}")
        assert proc.stdout.strip() == want, _describe(proc, f"bug-report command {i + 1}",
                                                      f", but printed other numbers than NumPy's {want}")


# --------------------------------------------------------------------------- the functional API

_FUNCTIONAL_PRELUDE = f"""
import sys
import numpy as np
import fastnn.functional as F
from fastnn._kernels import _core

F.set_num_threads(2)  # two threads even on one core: the large products are cut over them
SHAPES = {SHAPES!r}
out = {{}}


def layer(dtype, n, k, m):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((n, k)).astype(dtype)
    W = (rng.standard_normal((k, m)) / np.sqrt(k)).astype(dtype)
    b = rng.standard_normal(m).astype(dtype)
    return rng, X, W, b

"""

FUNCTIONAL_SCRIPTS = {
    # the callee of every entry point below: the raw product and the activations, no fused layer
    "kernels": _FUNCTIONAL_PRELUDE + """
for dtype in ("float32", "float64"):
    for size, (n, k, m) in SHAPES.items():
        rng = np.random.default_rng(0)
        A = rng.standard_normal((n, k)).astype(dtype)
        B = rng.standard_normal((k, m)).astype(dtype)
        C = np.zeros((n, m), dtype)
        _core.gemm(A, B, C, 1.0, 0.0)
        Z = (3 * rng.standard_normal((n, m))).astype(dtype)
        key = f"{dtype}_{size}_"
        out.update({key + "A": A, key + "B": B, key + "C": C, key + "Z": Z,
                    key + "sigmoid": F.activation(Z, "sigmoid"), key + "softmax": F.softmax(Z)})
np.savez(sys.argv[1], **out)
""",
    "dense_forward": _FUNCTIONAL_PRELUDE + """
for dtype in ("float32", "float64"):
    for size, (n, k, m) in SHAPES.items():
        rng, X, W, b = layer(dtype, n, k, m)
        key = f"{dtype}_{size}_"
        out.update({key + "X": X, key + "W": W, key + "b": b})
        for act in F.ACTIVATIONS:
            out[key + "pre_" + act], out[key + "post_" + act] = F.dense_forward(X, W, b, act)
np.savez(sys.argv[1], **out)
""",
    "dense_backward": _FUNCTIONAL_PRELUDE + """
for dtype in ("float32", "float64"):
    for size, (n, k, m) in SHAPES.items():
        rng, X, W, b = layer(dtype, n, k, m)
        delta = rng.standard_normal((n, m)).astype(dtype)
        key = f"{dtype}_{size}_"
        out.update({key + "X": X, key + "W": W, key + "delta": delta})
        for act in ("linear", "sigmoid", "tanh", "relu"):
            _, post = F.dense_forward(X, W, b, act)
            gW, gb, gX = F.dense_backward(delta, post, X, W, act)
            out.update({key + "post_" + act: post, key + "gW_" + act: gW, key + "gb_" + act: gb,
                        key + "gX_" + act: gX})
np.savez(sys.argv[1], **out)
""",
    "softmax_cross_entropy": _FUNCTIONAL_PRELUDE + """
for dtype in ("float32", "float64"):
    for size, (n, k, m) in SHAPES.items():
        rng, X, W, b = layer(dtype, n, k, m)
        logits, _ = F.dense_forward(X, W, b, "linear")  # the (large) product, then the loss
        labels = rng.integers(0, m, n)
        key = f"{dtype}_{size}_"
        out.update({key + "logits": logits, key + "labels": labels})
        for kind, y in (("index", labels), ("onehot", np.eye(m, dtype=dtype)[labels])):
            r = F.softmax_cross_entropy(logits, y)
            out.update({key + "loss_" + kind: r.loss, key + "acc_" + kind: r.accuracy,
                        key + "delta_" + kind: r.delta, key + "probs_" + kind: r.probs})
np.savez(sys.argv[1], **out)
""",
}


def _cases():
    for dtype in DTYPES:
        for size in SHAPES:
            yield dtype, size, f"{dtype}_{size}_"


def _check_kernels(r, what):
    for dtype, _size, key in _cases():
        A, B, Z = _f64(r[key + "A"]), _f64(r[key + "B"]), _f64(r[key + "Z"])
        _close(r[key + "C"], A @ B, dtype, f"{what}: {key}gemm")
        _close(r[key + "sigmoid"], _sigmoid(Z), dtype, f"{what}: {key}sigmoid")
        _close(r[key + "softmax"], _softmax(Z), dtype, f"{what}: {key}softmax")


def _check_dense_forward(r, what):
    for dtype, _size, key in _cases():
        pre = _f64(r[key + "X"]) @ _f64(r[key + "W"]) + _f64(r[key + "b"])
        for act in ("linear", "sigmoid", "tanh", "relu", "softmax"):
            _close(r[key + "pre_" + act], pre, dtype, f"{what}: {key}pre_{act}")
            _close(r[key + "post_" + act], _act(act, pre), dtype, f"{what}: {key}post_{act}")


def _check_dense_backward(r, what):
    for dtype, _size, key in _cases():
        X, W, delta = _f64(r[key + "X"]), _f64(r[key + "W"]), _f64(r[key + "delta"])
        for act in ("linear", "sigmoid", "tanh", "relu"):
            dpre = delta * _deriv(act, _f64(r[key + "post_" + act]))
            _close(r[key + "gW_" + act], X.T @ dpre, dtype, f"{what}: {key}gW_{act}")
            _close(r[key + "gb_" + act], dpre.sum(axis=0), dtype, f"{what}: {key}gb_{act}")
            _close(r[key + "gX_" + act], dpre @ W.T, dtype, f"{what}: {key}gX_{act}")


def _check_softmax_cross_entropy(r, what):
    for dtype, _size, key in _cases():
        Z, labels = _f64(r[key + "logits"]), r[key + "labels"]
        n, m = Z.shape
        P = _softmax(Z)
        loss = -np.log(P[np.arange(n), labels]).sum()
        for kind in ("index", "onehot"):
            _close(r[key + "probs_" + kind], P, dtype, f"{what}: {key}probs_{kind}")
            _close(r[key + "delta_" + kind], P - np.eye(m)[labels], dtype, f"{what}: {key}delta_{kind}")
            np.testing.assert_allclose(r[key + "loss_" + kind], loss, rtol=tol(dtype)["rtol"],
                                       err_msg=f"{what}: {key}loss_{kind}")
            assert r[key + "acc_" + kind] == np.mean(Z.argmax(axis=1) == labels), f"{what}: {key}acc_{kind}"


FUNCTIONAL_CHECKS = {"kernels": _check_kernels, "dense_forward": _check_dense_forward,
                     "dense_backward": _check_dense_backward, "softmax_cross_entropy": _check_softmax_cross_entropy}


def _scripted(name, script, tmp_path):
    """A label -> command line map for ``script``, which writes its arrays to the .npz named on its command
    line (tmp_path/<label>-<name>.npz, one per process)."""
    return lambda label: _python(script, tmp_path / f"{label}-{name}.npz")


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("entry", ["dense_forward", "dense_backward", "softmax_cross_entropy"])
def test_functional_entry_point_in_process_orders(entry, order, tmp_path):
    """fastnn.functional.dense_forward / dense_backward / softmax_cross_entropy, float32 and float64, a product
    split over two threads and a small one, in each process order (the callee runs the raw _core.gemm and
    the activations). Every process exits 0, its numbers match NumPy within the dtype's tolerance, and the
    processes that ran the entry point wrote bitwise the same arrays."""
    callee, caller = "kernels", entry
    results = _in_order(order, tmp_path, _scripted(callee, FUNCTIONAL_SCRIPTS[callee], tmp_path),
                        _scripted(caller, FUNCTIONAL_SCRIPTS[caller], tmp_path))
    arrays = {}
    for label in results:
        name = callee if label == "callee" else caller
        arrays[label] = _npz(tmp_path / f"{label}-{name}.npz")
        FUNCTIONAL_CHECKS[name](arrays[label], f"process '{label}' ({name})")
    callers = [label for label in results if label != "callee"]
    for label in callers[1:]:
        _assert_same_bits(arrays, label, callers[0])


# --------------------------------------------------------------------------- the drop-in fastnn.nn API

NN_LR, NN_BATCH = 1e-2, 32
NN_SCRIPT = f"""
import sys
import numpy as np
import fastnn.functional as F
from fastnn.nn import (backwards, compute_loss_and_acc, forward, get_random_batches, initialize_weights,
                       linear_deriv, sigmoid, sigmoid_deriv, softmax)

F.set_num_threads(2)  # the 32x1024 @ 1024x64 products are cut over two threads
np.random.seed(0)  # the coursework's global generator: weights and batches
rng = np.random.default_rng(0)
x = rng.random((96, 1024))
y = np.eye(10)[rng.integers(0, 10, 96)]
params = {{}}
initialize_weights(1024, 64, params, "layer1")
initialize_weights(64, 10, params, "output")
out = {{"init_" + k: params[k].copy() for k in ("Wlayer1", "blayer1", "Woutput", "boutput")}}
batches = get_random_batches(x, y, {NN_BATCH})
losses, accs = [], []
for xb, yb in batches:
    h1 = forward(xb, params, "layer1", sigmoid)
    probs = forward(h1, params, "output", softmax)
    loss, acc = compute_loss_and_acc(yb, probs)
    losses.append(loss)
    accs.append(acc)
    delta = backwards(probs - yb, params, "output", linear_deriv)
    backwards(delta, params, "layer1", sigmoid_deriv)
    for k in ("layer1", "output"):
        params["W" + k] -= {NN_LR} * params["grad_W" + k]
        params["b" + k] -= {NN_LR} * params["grad_b" + k]
out.update({{"final_" + k: params[k] for k in ("Wlayer1", "blayer1", "Woutput", "boutput")}})
np.savez(sys.argv[1], x=x, y=y, xb=np.vstack([b[0] for b in batches]), yb=np.vstack([b[1] for b in batches]),
         losses=losses, accs=accs, **out)
"""


def _check_nn(r, what):
    """The coursework's loop in NumPy from the process's initial weights, over its batches."""
    x, y, xb, yb = r["x"], r["y"], r["xb"], r["yb"]
    rows = {row.tobytes(): i for i, row in enumerate(x)}
    idx = [rows.get(row.tobytes(), -1) for row in xb]
    assert sorted(idx) == list(range(len(x))), f"{what}: the batches are not a permutation of the rows"
    assert np.array_equal(yb, y[idx]), f"{what}: the batches' labels do not follow their rows"
    p = {k: r["init_" + k].copy() for k in ("Wlayer1", "blayer1", "Woutput", "boutput")}
    losses, accs = [], []
    for s in range(0, len(xb), NN_BATCH):
        xs, ys = xb[s:s + NN_BATCH], yb[s:s + NN_BATCH]
        h = _sigmoid(xs @ p["Wlayer1"] + p["blayer1"])
        probs = _softmax(h @ p["Woutput"] + p["boutput"])
        losses.append(-np.sum(ys * np.log(probs)))
        accs.append(np.mean(probs.argmax(axis=1) == ys.argmax(axis=1)))
        d2 = probs - ys
        d1 = (d2 @ p["Woutput"].T) * h * (1 - h)
        grads = {"Woutput": h.T @ d2, "boutput": d2.sum(axis=0), "Wlayer1": xs.T @ d1, "blayer1": d1.sum(axis=0)}
        for k in p:
            p[k] -= NN_LR * grads[k]
    np.testing.assert_allclose(r["losses"], losses, rtol=1e-10, err_msg=f"{what}: losses")
    np.testing.assert_array_equal(r["accs"], accs, err_msg=f"{what}: accuracies")
    for k in p:
        np.testing.assert_allclose(r["final_" + k], p[k], rtol=1e-9, atol=1e-12, err_msg=f"{what}: final {k}")
    assert not np.array_equal(r["final_Wlayer1"], r["init_Wlayer1"])  # it trained


@pytest.mark.parametrize("order", ORDERS)
def test_drop_in_nn_api_in_process_orders(order, tmp_path):
    """fastnn.nn's initialize_weights, forward, backwards, compute_loss_and_acc and get_random_batches for three
    float64 batches of a 1024-64-10 network (products split over two threads), in each process order (the
    callee runs fastnn.functional's dense_backward, on which fastnn.nn is built). Every process exits 0, the
    losses and the trained weights match the coursework's NumPy loop, and the fastnn.nn processes wrote
    bitwise the same numbers."""
    results = _in_order(order, tmp_path, _scripted("functional", FUNCTIONAL_SCRIPTS["dense_backward"], tmp_path),
                        _scripted("nn", NN_SCRIPT, tmp_path))
    arrays = {}
    for label in results:
        if label == "callee":
            _check_dense_backward(_npz(tmp_path / "callee-functional.npz"), "process 'callee'")
            continue
        arrays[label] = _npz(tmp_path / f"{label}-nn.npz")
        _check_nn(arrays[label], f"process '{label}'")
    callers = list(arrays)
    for label in callers[1:]:
        _assert_same_bits(arrays, label, callers[0])


# --------------------------------------------------------------------------- the trainer's fused epoch

_TRAIN_SCRIPT = """
import hashlib
import numpy as np
from fastnn.models import MLP
from fastnn.train import Trainer

rng = np.random.default_rng(0)
X = rng.random((150, 256))  # 4 full batches of 32 and one of 22
y = rng.integers(0, 10, 150)
model = MLP([256, 64, 10], ["sigmoid", "softmax"], dtype="float32", seed=0)
hist = Trainer(model, lr=1e-2, batch_size=32, progress=False, threads=2, fused=FUSED).fit(X, y, 2)
print(repr(hist.train_loss))
print(repr(hist.train_acc))
print(repr(float(model.theta.sum(dtype=np.float64))))
print(hashlib.sha256(model.theta.tobytes()).hexdigest())
"""
FUSED_EPOCH_SCRIPT = "FUSED = True\n" + _TRAIN_SCRIPT
STEP_EPOCH_SCRIPT = "FUSED = False\n" + _TRAIN_SCRIPT  # the same epochs batch by batch through fastnn.functional


def _in_this_process(script):
    """What ``script`` prints when it runs here, in the test's own process."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(script, {"__name__": "__fastnn_test__"})
    return buf.getvalue()


def _training_lines(stdout):
    loss, acc, total, digest = stdout.splitlines()
    return ast.literal_eval(loss), ast.literal_eval(acc), float(total), digest


@pytest.mark.parametrize("order", ORDERS)
def test_fused_epoch_in_process_orders(order, tmp_path):
    """Trainer(...).fit of MLP([256, 64, 10], float32) for two fused epochs on two threads (layer 0's products
    split), in each process order (the callee trains the same model batch by batch through fastnn.functional).
    Every process exits 0; every fused process prints exactly what the same code prints in this process
    (same seed, same machine: the losses, accuracies, parameter sum and parameter hash bitwise equal), the
    values are finite and the loss fell; the step-by-step callee agrees within float32 tolerance."""
    expected = _in_this_process(FUSED_EPOCH_SCRIPT)
    loss, acc, total, _ = _training_lines(expected)
    assert all(math.isfinite(v) for v in [*loss, *acc, total]) and loss[1] < loss[0]
    results = _in_order(order, tmp_path, lambda label: _python(STEP_EPOCH_SCRIPT),
                        lambda label: _python(FUSED_EPOCH_SCRIPT))
    for label, proc in results.items():
        if label == "callee":
            step_loss, step_acc, step_total, _ = _training_lines(proc.stdout)
            np.testing.assert_allclose(step_loss, loss, rtol=2e-4, err_msg=_describe(proc, label))
            np.testing.assert_allclose(step_total, total, rtol=2e-4, err_msg=_describe(proc, label))
        else:
            assert proc.stdout == expected, _describe(proc, label, _differs(expected))


# --------------------------------------------------------------------------- the command line

def _console_script():
    assert FASTNN_SCRIPT.is_file(), f"the fastnn console script is not installed beside {sys.executable}"
    return str(FASTNN_SCRIPT)


@pytest.mark.parametrize("order", ORDERS)
def test_cli_toy_in_process_orders(order, tmp_path):
    """`fastnn toy` (the coursework's toy network through fastnn.nn) in each process order (the callee runs
    the fastnn.nn script). Every process exits 0 and every `fastnn toy` prints exactly the lines that
    fastnn.cli.main(["toy"]) prints in this process, ending in finite `loss: ...` and `accuracy: ...`."""
    from fastnn.cli import main

    state = np.random.get_state()  # the toy seeds NumPy's global generator: leave it as it was
    try:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            assert main(["toy"]) == 0
    finally:
        np.random.set_state(state)
    expected = buf.getvalue()
    last = expected.splitlines()[-2:]
    assert [line.split(":")[0] for line in last] == ["loss", "accuracy"], expected
    assert all(math.isfinite(float(line.split(":")[1])) for line in last), expected
    toy = _console_script()
    results = _in_order(order, tmp_path, _scripted("nn", NN_SCRIPT, tmp_path), lambda label: [toy, "toy"])
    for label, proc in results.items():
        if label == "callee":
            _check_nn(_npz(tmp_path / "callee-nn.npz"), "process 'callee'")
        else:
            assert proc.stdout == expected, _describe(proc, label, _differs(expected))


def _write_page(path):
    """A small photo-like page: five dark strokes and blobs (I, L, T, a ring, a filled oval) on white paper
    with a little noise, saved as PNG."""
    rng = np.random.default_rng(7)
    page = np.full((140, 420), 235.0) + rng.normal(0, 4, (140, 420))
    ink = np.zeros(page.shape, bool)
    ink[35:100, 40:49] = True  # I
    ink[35:100, 90:99] = True  # L
    ink[91:100, 90:130] = True
    ink[35:44, 160:212] = True  # T
    ink[35:100, 182:191] = True
    yy, xx = np.mgrid[0:140, 0:420]
    r = np.hypot(yy - 67.0, xx - 270.0)
    ink |= (r > 22) & (r < 31)  # a ring, an O
    ink |= ((yy - 67.0) / 32) ** 2 + ((xx - 360.0) / 16) ** 2 < 1  # a filled oval
    page[ink] = 30.0 + rng.normal(0, 4, int(ink.sum()))
    from PIL import Image

    Image.fromarray(np.clip(page, 0, 255).astype(np.uint8)).save(path)
    return path


@pytest.mark.parametrize("order", ORDERS)
def test_cli_ocr_in_process_orders(order, tmp_path):
    """`fastnn ocr PAGE --model MODEL` on a generated PNG with an untrained MLP([1024, 16, 36]) saved by
    MLP.save, in each process order (the callee calls fastnn.ocr.read_text, the function behind the command).
    Every process exits 0 and prints the text that read_text gives in this process; the page has
    characters, so every process ran the model (the text itself is meaningless for an untrained model)."""
    from fastnn import ocr
    from fastnn.models import MLP

    page = _write_page(tmp_path / "page.png")
    model_path = MLP([1024, 16, 36], ["relu", "softmax"], dtype="float32").save(tmp_path / "model.npz")
    text = ocr.read_text(ocr.load_image(page), MLP.load(model_path)).text
    assert len(text.replace(" ", "").replace("\n", "")) >= 3, f"too few characters found on the page: {text!r}"
    fastnn = _console_script()
    read_text = ("import sys; from fastnn import ocr; from fastnn.models import MLP; "
                 "print(ocr.read_text(ocr.load_image(sys.argv[1]), MLP.load(sys.argv[2])).text)")
    results = _in_order(order, tmp_path, lambda label: _python(read_text, page, model_path),
                        lambda label: [fastnn, "ocr", str(page), "--model", str(model_path)])
    for label, proc in results.items():
        assert proc.stdout == text + "\n", _describe(proc, label, _differs(text + "\n"))


# --------------------------------------------------------------------------- what a fresh process imports

def test_common_imports_load_no_jit_and_the_installed_fastnn(tmp_path):
    """A fresh process that imports fastnn, fastnn.functional, fastnn.nn, fastnn.models and fastnn.train loads
    neither numba nor llvmlite (no JIT compilation, and so no JIT cache, can creep back into the common
    commands), and the fastnn that the processes of this file import is the installed package, not the source
    tree beside the tests."""
    script = ("import json, sys, sysconfig; import fastnn, fastnn.functional, fastnn.nn, fastnn.models, fastnn.train; "
              "print(json.dumps({'jit': sorted(m for m in sys.modules if m.split('.')[0] in ('numba', 'llvmlite')), "
              "'file': fastnn.__file__, 'installed': [sysconfig.get_paths()[k] for k in ('purelib', 'platlib')]}))")
    proc = _run(_python(script), tmp_path)
    _assert_ok(proc, "imports")
    info = json.loads(proc.stdout)
    assert info["jit"] == [], f"importing fastnn loaded {info['jit']}"
    where = Path(info["file"]).resolve()
    assert not where.is_relative_to(SOURCE_PACKAGE), f"the processes import the source tree: {where}"
    assert any(where.is_relative_to(Path(p).resolve()) for p in info["installed"]), (
        f"the processes import fastnn from {where}, not from the installed packages {info['installed']}: "
        "install it with `pip install .`")


def test_thread_setting_follows_the_environment(tmp_path):
    """The team's size is FASTNN_NUM_THREADS, else OMP_NUM_THREADS (its first entry when a list), else the
    CPUs the process may use; set_num_threads changes it for the process."""
    script = ("import fastnn.functional as F; a = F.get_num_threads(); F.set_num_threads(3); "
              "print(a, F.get_num_threads())")
    for variables, expected in (({"OMP_NUM_THREADS": "1"}, "1"), ({"OMP_NUM_THREADS": "2"}, "2"),
                                ({"OMP_NUM_THREADS": "5,2"}, "5"),
                                ({"OMP_NUM_THREADS": "2", "FASTNN_NUM_THREADS": "7"}, "7")):
        env = _fresh_env(tmp_path)
        env.pop("FASTNN_NUM_THREADS", None)
        env.update(variables)
        proc = subprocess.run(_python(script), cwd=tmp_path / "home", env=env, capture_output=True, text=True,
                              timeout=TIMEOUT)
        _assert_ok(proc, f"{variables}")
        assert proc.stdout.split() == [expected, "3"], _describe(proc, f"{variables}", ", wrong count")


def test_source_tree_without_its_core_fails_at_import_saying_what_to_do(tmp_path):
    """Python run from a checkout imports the checkout's fastnn/, which has no compiled core: the import
    must stop with a message that names the source tree and the fix, not with a bare ModuleNotFoundError."""
    import shutil

    checkout = tmp_path / "checkout"
    shutil.copytree(SOURCE_PACKAGE, checkout / "fastnn", ignore=shutil.ignore_patterns("*.so", "*.c", "__pycache__"))
    for name in ("setup.py", "pyproject.toml"):
        shutil.copy(SOURCE_PACKAGE.parent / name, checkout / name)
    proc = subprocess.run([sys.executable, "-m", "fastnn", "toy"], cwd=checkout, env=_fresh_env(tmp_path),
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 2, _describe(proc, "python -m fastnn toy in a checkout", ", expected exit 2")
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "source tree" in proc.stderr and "pip install -e ." in proc.stderr, proc.stderr[-2000:]


def test_glibc_malloc_thresholds_are_set_unless_the_user_chose(tmp_path):
    """On glibc, importing fastnn fixes malloc's thresholds so that a training loop's large temporaries are
    not handed back to the kernel and zero-filled again every batch; FASTNN_MALLOPT=0 or the user's own
    malloc settings leave malloc alone."""
    import platform

    if platform.system() != "Linux" or not platform.libc_ver()[0] == "glibc":
        pytest.skip("the malloc thresholds are glibc's")
    script = "import fastnn._kernels as k; print(k.MALLOPT_SET)"
    cases = (({}, "True"), ({"FASTNN_MALLOPT": "0"}, "False"), ({"MALLOC_TRIM_THRESHOLD_": "1000000"}, "False"))
    for extra, want in cases:
        env = {**_fresh_env(tmp_path), **extra}
        proc = subprocess.run(_python(script), cwd=tmp_path / "home", env=env, capture_output=True, text=True,
                              timeout=TIMEOUT)
        _assert_ok(proc, f"import with {extra}")
        assert proc.stdout.strip() == want, _describe(proc, f"import with {extra}", f", expected {want}")
