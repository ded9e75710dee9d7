"""Epoch benchmarks: fastnn's fused epoch against the plain NumPy coursework loop and PyTorch eager.

    python bench/epoch_benchmark.py [--out DIR] [--seed N] [--batch-size N] [--dtype float32|float64]
                                    [--hidden N] [--epochs N] [--no-torch] [--baseline-threads N]

(``make bench-epoch BENCH_EPOCH_ARGS="..."``), run from a checkout against the installed fastnn: it prints
the headline figures as ``name: value`` lines on stdout, and on stderr the threads each contender used and
the load (see :func:`main`).  This harness and its baselines are not part of the installed package; they use
fastnn's public API (``fastnn.models.MLP``, ``fastnn.train.Trainer``, ``fastnn.functional.core_info``,
``fastnn.tasks.common``'s report) and the coursework wing (``fastnn.coursework``), each imported inside the
functions that use it: importing this module loads only NumPy.

The functions here are also the building blocks of the rest of ``bench/`` (pytest-benchmark and the
one-process-per-contender runs), and ``tests/test_benchmark.py`` tests them from the checkout.  The
baselines are written out in full, so that the numbers compare like with like:

* :func:`numpy_epoch` is the coursework's NumPy training loop for the
  1024-H-36 sigmoid/softmax classifier, always in float64 as the coursework runs it
  (forward, softmax, summed cross-entropy, backward including the unused input
  gradient of the first layer, plain SGD);
* :func:`torch_epoch` is the same network and loop in PyTorch CPU eager mode
  (``nn.Linear``, ``sigmoid``, ``cross_entropy(reduction='sum')``, ``optim.SGD``);
* :func:`numpy_autoencoder_epoch` is the coursework's 1024-32-32-32-1024
  autoencoder loop (squared error, momentum 0.9).

The fused side is one call of the compiled epoch (``Trainer.run_epoch``), exactly
what ``Trainer.fit`` times in ``History.seconds``: the data are converted and checked
once, outside the timing; ``train_epoch``'s own checks (shapes, the order's range)
take microseconds.

Times are the best of the measured epochs, after one warm-up epoch that keeps
first-touch page faults and thread-pool start-up (and the previous implementation's
still-spinning worker threads) out of the numbers.

The NumPy baselines run with one BLAS thread unless asked otherwise (``baseline_threads``):
a threaded BLAS stalls when the machine is busy, and the speedup then measures the load,
not the code (issue 21: 64.9, 22.3 and 3.8 within minutes on one machine).  The limit is
threadpoolctl's ``threadpool_limits(user_api='blas')``, only around the baseline's epochs;
without threadpoolctl the baseline runs with its BLAS's own setting and the result says so.
Each result's ``conditions`` record the threads every contender used and the load average
before and after the run.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import os
import sys
import time
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from fastnn.models import MLP

__all__ = [
    "make_data",
    "init_params",
    "numpy_epoch",
    "numpy_autoencoder_epoch",
    "torch_mlp",
    "torch_epoch",
    "FusedEpoch",
    "bench_epoch",
    "bench_autoencoder_epoch",
    "main",
]

#: The coursework's hw36 data: 32x32 images of 36 characters.
N_PIXELS = 1024
N_CLASSES = 36
#: The coursework's autoencoder widths and activations.
AUTOENCODER_SIZES = (1024, 32, 32, 32, 1024)
AUTOENCODER_ACTIVATIONS = ("relu", "relu", "relu", "sigmoid")


# ------------------------------------------------------------------------- arguments

def _dtype(dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype: expected 'float32' or 'float64', got {dtype!r}")
    return dt


def _positive(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


def _rate(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not (
            np.isfinite(value) and value > 0):
        raise ValueError(f"{name}: expected a positive finite number, got {value!r}")
    return float(value)


def _order(order, n: int) -> np.ndarray:
    if order is None:
        return np.random.default_rng().permutation(n)
    order = np.asarray(order, dtype=np.int64)
    if order.shape != (n,):
        raise ValueError(f"order: expected a permutation of shape ({n},), got shape {order.shape}")
    return order


def _best_each(fns: dict, epochs: int) -> dict:
    """Shortest wall time (seconds) of each function in ``fns``: one warm-up run, then ``epochs`` runs.

    Each implementation runs its epochs back to back.  Interleaving them (a, b, a, b) would be
    worse, not fairer: OpenBLAS's and OpenMP's worker threads keep spinning for a while after a
    call, and steal a core from the next implementation.  The warm-up run absorbs that hand-over too.
    """
    best = {}
    for name, fn in fns.items():
        fn()
        times = []
        for _ in range(epochs):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        best[name] = min(times)
    return best


def _load_average():
    """The 1-minute load average, or None where the system has none (Windows)."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def _start_conditions() -> dict:
    """The conditions of a run, as it starts: fastnn's threads, the CPUs it may use, the load average."""
    from fastnn import functional as F

    info = F.core_info()
    return {"fastnn_threads": info["threads"], "cpus": info["cpus"], "load_start": _load_average()}


def _baseline_blas_threads(info) -> int | None:
    """The most threads of the BLAS libraries in threadpoolctl's ``info`` other than fastnn's private
    OpenBLAS (scipy-openblas32, which the baselines do not call); None when threadpoolctl sees none."""
    spec = importlib.util.find_spec("scipy_openblas32")
    private = os.path.dirname(spec.origin) if spec is not None and spec.origin else None
    threads = [lib["num_threads"] for lib in info if lib.get("user_api") == "blas"
               and not (private and os.path.abspath(lib["filepath"]).startswith(os.path.abspath(private) + os.sep))]
    return max(threads) if threads else None


def _best_each_baseline(fns: dict, epochs: int, threads: int, conditions: dict) -> dict:
    """:func:`_best_each` of baselines whose BLAS libraries are limited to ``threads`` threads (threadpoolctl's
    ``threadpool_limits(user_api='blas')``, only while they run: fastnn's team is not a BLAS and is never
    limited).  Records in ``conditions`` the BLAS threads threadpoolctl reports inside the limit
    (``numpy_blas_threads``), or why they could not be set (``baseline_threads_note``)."""
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        conditions["numpy_blas_threads"] = None
        conditions["baseline_threads_note"] = ("threadpoolctl is not installed: the baseline's BLAS threads could "
                                               "not be set (pip install threadpoolctl)")
        return _best_each(fns, epochs)
    with threadpool_limits(limits=threads, user_api="blas"):
        conditions["numpy_blas_threads"] = _baseline_blas_threads(threadpool_info())
        if conditions["numpy_blas_threads"] is None:
            conditions["baseline_threads_note"] = ("threadpoolctl sees no BLAS library: the baseline's BLAS "
                                                   "threads are unknown")
        return _best_each(fns, epochs)


# ------------------------------------------------------------------------------ data

def make_data(n_samples: int = 10800, *, n_features: int = N_PIXELS, n_classes: int = N_CLASSES, seed: int = 0,
              dtype="float64"):
    """Random data of the coursework's hw36 shape.

    Parameters
    ----------
    n_samples : int
    n_features, n_classes : int
        1024 pixels and 36 classes by default.
    seed : int
        Seeds ``np.random.default_rng``.
    dtype : {'float32', 'float64'}

    Returns
    -------
    X : (n_samples, n_features) ndarray
        Uniform values in [0, 1), like normalised images.
    Y : (n_samples, n_classes) ndarray
        One-hot rows of uniformly drawn classes.

    Examples
    --------
    >>> X, Y = make_data(10, seed=0)
    >>> X.shape, Y.shape, Y.sum(axis=1).tolist() == [1.0] * 10
    ((10, 1024), (10, 36), True)
    """
    n_samples = _positive(n_samples, "n_samples")
    dt = _dtype(dtype)
    rng = np.random.default_rng(seed)
    X = rng.random((n_samples, n_features)).astype(dt, copy=False)
    Y = np.zeros((n_samples, n_classes), dtype=dt)
    Y[np.arange(n_samples), rng.integers(0, n_classes, n_samples)] = 1
    return X, Y


def init_params(sizes, *, seed: int = 0) -> dict:
    """Xavier-uniform float64 weights and zero biases, as the coursework's ``initialize_weights``.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, e.g. ``(1024, 64, 36)``.
    seed : int
        Seeds ``np.random.default_rng`` (the same draws as ``MLP(sizes, ..., seed=seed)``).

    Returns
    -------
    params : dict
        ``W1, b1, W2, b2, ...``: ``W<l>`` of shape (sizes[l-1], sizes[l]), ``b<l>`` of shape (sizes[l],).
    """
    rng = np.random.default_rng(seed)
    params = {}
    for l in range(1, len(sizes)):
        k, m = int(sizes[l - 1]), int(sizes[l])
        limit = np.sqrt(6.0 / (k + m))
        params[f"W{l}"] = rng.uniform(-limit, limit, (k, m))
        params[f"b{l}"] = np.zeros(m)
    return params


# -------------------------------------------------------------------- NumPy baselines

def numpy_epoch(X, Y, params, batch_size: int, lr: float, *, order=None):
    """One epoch of the coursework's plain NumPy training loop (float64) for a 1024-H-36 classifier.

    Mini-batches are rows ``order[i:i + batch_size]`` (as ``get_random_batches`` draws them), then
    :func:`fastnn.coursework.epoch` on :mod:`fastnn.coursework.numpy_nn`, the coursework's plain NumPy module:
    sigmoid hidden layer, softmax output, summed cross-entropy and accuracy, backward through both
    layers (including the first layer's input gradient, which the coursework computes and discards)
    and a plain SGD step.

    Parameters
    ----------
    X : (N, d) ndarray
        Converted to float64 if it is not.
    Y : (N, c) one-hot ndarray
    params : dict
        ``W1 (d, H), b1 (H,), W2 (H, c), b2 (c,)`` float64 arrays, updated in place.
    batch_size : int
    lr : float
        Learning rate for the gradient of the loss summed over a batch.
    order : (N,) ndarray of int, optional
        The sample order; a fresh random permutation when omitted.

    Returns
    -------
    loss : float
        Cross-entropy summed over the epoch.
    accuracy : float
        Mean of the per-batch accuracies (the coursework's ``total_acc / len(batches)``).

    Examples
    --------
    >>> X, Y = make_data(64, seed=0)
    >>> params = init_params((1024, 8, 36), seed=0)
    >>> loss, acc = numpy_epoch(X, Y, params, 16, 1e-3, order=np.arange(64))
    >>> bool(loss > 0)
    True
    """
    from fastnn import coursework
    from fastnn.coursework import numpy_nn

    batch_size = _positive(batch_size, "batch_size")
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    N = X.shape[0]
    idx = _order(order, N)
    batches = [(X[idx[s:s + batch_size]], Y[idx[s:s + batch_size]]) for s in range(0, N, batch_size)]
    # The coursework's keys, as views of the caller's arrays (updated in place).
    nn_params = {"Wlayer1": params["W1"], "blayer1": params["b1"], "Woutput": params["W2"], "boutput": params["b2"]}
    loss, acc = coursework.epoch(numpy_nn, nn_params, batches, lr)
    return float(loss), float(acc)


def numpy_autoencoder_epoch(X, params, batch_size: int, lr: float, *, momentum: float = 0.9, order=None) -> float:
    """One epoch of the coursework's NumPy autoencoder loop (float64): 1024-32-32-32-1024, relu/relu/relu/sigmoid.

    Squared error summed over the batch; coursework momentum ``M = mu M - lr g; p += M``.

    Parameters
    ----------
    X : (N, d) ndarray
        Inputs and targets; converted to float64 if it is not.
    params : dict
        ``W1..W4, b1..b4`` float64 arrays, updated in place; the momentum buffers ``M_W1..M_b4``
        are created (as zeros) on the first call and kept in ``params``.
    batch_size : int
    lr : float
    momentum : float
    order : (N,) ndarray of int, optional

    Returns
    -------
    loss : float
        Squared error summed over the epoch.
    """
    from fastnn.coursework import numpy_nn

    batch_size = _positive(batch_size, "batch_size")
    X = np.asarray(X, dtype=np.float64)
    N = X.shape[0]
    idx = _order(order, N)
    names = [f"{p}{l}" for l in range(1, 5) for p in ("W", "b")]
    for k in names:
        if "M_" + k not in params:
            params["M_" + k] = np.zeros_like(params[k])
    total = 0.0
    for s in range(0, N, batch_size):
        xb = X[idx[s:s + batch_size]]
        h1 = np.maximum(xb @ params["W1"] + params["b1"], 0)
        h2 = np.maximum(h1 @ params["W2"] + params["b2"], 0)
        h3 = np.maximum(h2 @ params["W3"] + params["b3"], 0)
        out = numpy_nn.sigmoid(h3 @ params["W4"] + params["b4"])
        total += np.sum((out - xb) ** 2)
        grads = {}
        d = 2 * (out - xb) * (out * (1.0 - out))
        for l, inp in ((4, h3), (3, h2), (2, h1), (1, xb)):
            grads[f"W{l}"] = inp.T @ d
            grads[f"b{l}"] = np.sum(d, axis=0)
            gX = d @ params[f"W{l}"].T
            if l > 1:
                d = gX * (inp > 0).astype(inp.dtype)
        for k in names:
            M = params["M_" + k]
            M[...] = momentum * M - lr * grads[k]
            params[k] += M
    return float(total)


# ---------------------------------------------------------------------- PyTorch eager

def _import_torch():
    try:
        import torch
    except ImportError as exc:
        raise ImportError("torch is not installed; the PyTorch baseline is optional (install a CPU build of "
                          "PyTorch to time it)") from exc
    return torch


def torch_mlp(params, dtype="float32"):
    """The 1024-H-36 classifier as a ``torch.nn.Sequential(Linear, Sigmoid, Linear)`` with weights from ``params``.

    Parameters
    ----------
    params : dict
        ``W1 (d, H), b1, W2 (H, c), b2`` as from :func:`init_params`.
    dtype : {'float32', 'float64'}

    Returns
    -------
    torch.nn.Sequential

    Raises
    ------
    ImportError
        When PyTorch is not installed.
    """
    torch = _import_torch()
    tdt = torch.float32 if _dtype(dtype) == np.float32 else torch.float64
    W1, W2 = params["W1"], params["W2"]
    model = torch.nn.Sequential(torch.nn.Linear(W1.shape[0], W1.shape[1]), torch.nn.Sigmoid(),
                                torch.nn.Linear(W2.shape[0], W2.shape[1])).to(tdt)
    with torch.no_grad():
        for layer, l in ((model[0], 1), (model[2], 2)):
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(params[f"W{l}"].T)))
            layer.bias.copy_(torch.from_numpy(params[f"b{l}"]))
    return model


def torch_epoch(X, labels, model, batch_size: int, lr: float, *, order=None):
    """One epoch of the same loop in PyTorch CPU eager mode: summed cross-entropy, plain SGD.

    Parameters
    ----------
    X : (N, d) ndarray or torch.Tensor
        In the model's dtype (an ndarray of that dtype is shared, not copied).
    labels : (N,) ndarray or torch.Tensor of int class indices
    model : torch.nn.Module
        From :func:`torch_mlp`; trained in place.
    batch_size : int
    lr : float
    order : (N,) ndarray of int, optional

    Returns
    -------
    loss : float
        Cross-entropy summed over the epoch.
    accuracy : float
        Fraction of correct predictions over the epoch.

    Raises
    ------
    ImportError
        When PyTorch is not installed.
    """
    torch = _import_torch()
    batch_size = _positive(batch_size, "batch_size")
    Xt = X if isinstance(X, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(X))
    yt = labels if isinstance(labels, torch.Tensor) else torch.from_numpy(np.asarray(labels, dtype=np.int64))
    N = Xt.shape[0]
    idx = torch.from_numpy(_order(order, N))
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = torch.nn.functional.cross_entropy
    total = torch.zeros((), dtype=torch.float64)
    correct = torch.zeros((), dtype=torch.int64)
    for s in range(0, N, batch_size):
        sel = idx[s:s + batch_size]
        xb = Xt[sel]
        yb = yt[sel]
        logits = model(xb)
        loss = loss_fn(logits, yb, reduction="sum")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.detach()
        correct += (logits.detach().argmax(1) == yb).sum()
    return float(total), int(correct) / N


# ---------------------------------------------------------------------- fastnn fused

class FusedEpoch:
    """One fused epoch of an :class:`~fastnn.models.MLP` per call, timed like ``Trainer.fit`` times it.

    The inputs are validated and converted once, here; each call is then one call of the
    compiled epoch (``Trainer.run_epoch``, i.e. ``fastnn.functional.train_epoch``) over the fixed
    sample ``order``.

    Parameters
    ----------
    model : MLP
    X : (N, d) ndarray
    T : (N, c) ndarray or None
        Targets (one-hot or class indices); None for an autoencoder (targets are ``X``).
    order : (N,) ndarray of int
    **trainer_kwargs
        Passed to :class:`~fastnn.train.Trainer` (optimizer, lr, momentum, batch_size, ...).

    Examples
    --------
    >>> X, Y = make_data(64, seed=0)
    >>> epoch = FusedEpoch(MLP([1024, 8, 36], ["sigmoid", "softmax"]), X, Y, np.arange(64), lr=1e-3, batch_size=16)
    >>> loss, correct = epoch()
    """

    def __init__(self, model: MLP, X, T, order, **trainer_kwargs):
        from fastnn.train import Trainer

        trainer_kwargs.setdefault("progress", False)
        self.trainer = Trainer(model, fused=True, **trainer_kwargs)
        self.X = model.check_inputs(X)
        n = self.X.shape[0]
        self.T = self.X if (T is None and model.loss == "squared_error") else self.trainer.targets(T, n)
        self.order = _order(order, n)

    def __repr__(self):
        return f"FusedEpoch({self.trainer!r}, n_samples={self.X.shape[0]})"

    def __call__(self):
        """Run one epoch; return (summed loss, number of correct predictions)."""
        return self.trainer.run_epoch(self.X, self.T, self.order)


# ---------------------------------------------------------------------------- benches

def bench_epoch(batch_size: int = 32, dtype="float32", hidden: int = 64, n_samples: int = 10800, epochs: int = 3,
                seed: int = 0, torch: bool = True, lr: float = 2e-3, out=None, baseline_threads: int = 1) -> dict:
    """Seconds per training epoch of the 1024-H-36 classifier: fastnn fused vs NumPy (float64) vs PyTorch.

    Parameters
    ----------
    batch_size : int
    dtype : {'float32', 'float64'}
        Of the fused epoch and of PyTorch; the NumPy loop is always float64, as the coursework.
    hidden : int
        Hidden width H.
    n_samples : int
        Random hw36-shaped samples (the coursework's training set has 10800).
    epochs : int
        Measured epochs, after one warm-up epoch; the best is reported.
    seed : int
        Seeds the data, the weights (the same for every implementation) and the sample order.
    torch : bool
        Also time PyTorch eager (skipped, with ``torch_skipped`` set, when it is not installed).
    lr : float
    out : path, optional
        Folder to write the report into (``bench_epoch.json`` and ``bench_epoch.md``); None writes nothing.
    baseline_threads : int
        BLAS threads of the NumPy baseline (one by default: a threaded BLAS stalls on a busy machine).
        Set with threadpoolctl while the baseline runs; without threadpoolctl, ``conditions`` says they
        could not be set.

    Returns
    -------
    dict
        ``fused_s_per_epoch``, ``numpy_s_per_epoch``, ``speedup_vs_numpy``, and with PyTorch
        ``torch_s_per_epoch``, ``speedup_vs_torch``, ``torch_threads``; plus the arguments; and
        ``conditions``: ``fastnn_threads``, ``numpy_blas_threads`` (as threadpoolctl reports them inside
        the limit; None when unknown, with ``baseline_threads_note``), ``torch_threads`` with PyTorch,
        ``cpus``, and the 1-minute load average at the start and the end (``load_start``, ``load_end``).

    Raises
    ------
    ValueError
        For a non-positive ``batch_size``, ``hidden``, ``n_samples``, ``epochs``, ``lr`` or
        ``baseline_threads``, or an unknown dtype.

    Examples
    --------
    >>> r = bench_epoch(batch_size=32, n_samples=256, epochs=1, torch=False)
    >>> sorted(k for k in r if k.endswith("per_epoch"))
    ['fused_s_per_epoch', 'numpy_s_per_epoch']
    """
    from fastnn.models import MLP

    batch_size = _positive(batch_size, "batch_size")
    hidden = _positive(hidden, "hidden")
    n_samples = _positive(n_samples, "n_samples")
    epochs = _positive(epochs, "epochs")
    lr = _rate(lr, "lr")
    baseline_threads = _positive(baseline_threads, "baseline_threads")
    dt = _dtype(dtype)
    conditions = _start_conditions()
    X, Y = make_data(n_samples, seed=seed)
    sizes = (N_PIXELS, hidden, N_CLASSES)
    params = init_params(sizes, seed=seed)
    order = np.random.default_rng(seed).permutation(n_samples)

    model = MLP(sizes, ["sigmoid", "softmax"], dtype=dt, seed=seed)
    for W, b, l in zip(model.weights, model.biases, (1, 2)):
        W[...] = params[f"W{l}"]
        b[...] = params[f"b{l}"]
    fused = FusedEpoch(model, X.astype(dt), Y.astype(dt), order, optimizer="sgd", lr=lr, batch_size=batch_size)
    np_params = {k: v.copy() for k, v in params.items()}
    baseline = {"numpy": lambda: numpy_epoch(X, Y, np_params, batch_size, lr, order=order)}
    fns = {"fused": fused}
    result = {"batch_size": batch_size, "dtype": dt.name, "hidden": hidden, "n_samples": n_samples,
              "epochs": epochs, "baseline_threads": baseline_threads}
    if torch:
        try:
            tmod = _import_torch()
        except ImportError as exc:
            result["torch_skipped"] = str(exc)
        else:
            net = torch_mlp(params, dt)
            Xt = tmod.from_numpy(np.ascontiguousarray(X, dtype=dt))
            yt = tmod.from_numpy(Y.argmax(axis=1))
            fns["torch"] = lambda: torch_epoch(Xt, yt, net, batch_size, lr, order=order)
            result["torch_threads"] = conditions["torch_threads"] = tmod.get_num_threads()
    best = _best_each({"fused": fns.pop("fused")}, epochs)
    best.update(_best_each_baseline(baseline, epochs, baseline_threads, conditions))
    best.update(_best_each(fns, epochs))
    conditions["load_end"] = _load_average()
    result["fused_s_per_epoch"] = best["fused"]
    result["numpy_s_per_epoch"] = best["numpy"]
    result["speedup_vs_numpy"] = best["numpy"] / best["fused"]
    if "torch" in best:
        result["torch_s_per_epoch"] = best["torch"]
        result["speedup_vs_torch"] = best["torch"] / best["fused"]
    result["conditions"] = conditions
    if out is not None:
        from fastnn.tasks.common import out_folder, write_report

        timed = [k for k in result if k.endswith(("_per_epoch", "speedup_vs_numpy", "speedup_vs_torch"))]
        write_report(out_folder(out), "bench_epoch", f"One training epoch of 1024-{hidden}-36, batch {batch_size}",
                     {k: result[k] for k in timed},
                     {"seed": seed, "lr": lr, **{k: v for k, v in result.items() if k not in timed + ["conditions"]},
                      **conditions}, [])
    return result


def bench_autoencoder_epoch(batch_size: int = 36, dtype="float32", n_samples: int = 10800, epochs: int = 3,
                            seed: int = 0, lr: float = 3e-5, momentum: float = 0.9, baseline_threads: int = 1) -> dict:
    """Seconds per epoch of the coursework's 1024-32-32-32-1024 autoencoder: fastnn fused vs NumPy (float64).

    relu/relu/relu/sigmoid layers, summed squared error, momentum SGD (``M = mu M - lr g``).

    Parameters
    ----------
    batch_size : int
    dtype : {'float32', 'float64'}
        Of the fused epoch; the NumPy loop is always float64.
    n_samples : int
    epochs : int
        Measured epochs, after one warm-up epoch; the best is reported.
    seed : int
    lr, momentum : float
    baseline_threads : int
        BLAS threads of the NumPy baseline, as in :func:`bench_epoch`.

    Returns
    -------
    dict
        ``fused_s_per_epoch``, ``numpy_s_per_epoch``, ``speedup_vs_numpy``; plus the arguments; and
        ``conditions`` as in :func:`bench_epoch`.

    Raises
    ------
    ValueError
        For a non-positive ``batch_size``, ``n_samples``, ``epochs``, ``lr`` or ``baseline_threads``, a
        momentum outside [0, 1), or an unknown dtype.

    Examples
    --------
    >>> r = bench_autoencoder_epoch(n_samples=144, epochs=1)
    >>> r["speedup_vs_numpy"] > 0
    True
    """
    from fastnn.models import MLP

    batch_size = _positive(batch_size, "batch_size")
    n_samples = _positive(n_samples, "n_samples")
    epochs = _positive(epochs, "epochs")
    lr = _rate(lr, "lr")
    momentum = float(momentum)
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum: expected a number in [0, 1), got {momentum!r}")
    baseline_threads = _positive(baseline_threads, "baseline_threads")
    dt = _dtype(dtype)
    conditions = _start_conditions()
    X, _ = make_data(n_samples, seed=seed)
    params = init_params(AUTOENCODER_SIZES, seed=seed)
    order = np.random.default_rng(seed).permutation(n_samples)

    model = MLP(AUTOENCODER_SIZES, AUTOENCODER_ACTIVATIONS, dtype=dt, seed=seed)
    for l, (W, b) in enumerate(zip(model.weights, model.biases), start=1):
        W[...] = params[f"W{l}"]
        b[...] = params[f"b{l}"]
    fused = FusedEpoch(model, X.astype(dt), None, order, optimizer="momentum", lr=lr, momentum=momentum,
                       batch_size=batch_size)
    np_params = {k: v.copy() for k, v in params.items()}
    best = _best_each({"fused": fused}, epochs)
    best.update(_best_each_baseline(
        {"numpy": lambda: numpy_autoencoder_epoch(X, np_params, batch_size, lr, momentum=momentum, order=order)},
        epochs, baseline_threads, conditions))
    conditions["load_end"] = _load_average()
    result = {"batch_size": batch_size, "dtype": dt.name, "n_samples": n_samples, "epochs": epochs,
              "baseline_threads": baseline_threads, "fused_s_per_epoch": best["fused"],
              "numpy_s_per_epoch": best["numpy"], "speedup_vs_numpy": best["numpy"] / best["fused"],
              "conditions": conditions}
    return result


# ---------------------------------------------------------------------- the command line

def _headline(result) -> dict:
    """Every number of the result (the arguments, the times, the speedups), as before there was a report."""
    return {k: v for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _notes(result) -> list:
    """On stderr: why PyTorch was skipped; the threads of each contender and the load, in one line; why the
    baseline's BLAS threads are unknown."""
    c = result["conditions"]
    lines = [f"torch: skipped: {result['torch_skipped']}"] if "torch_skipped" in result else []
    blas = "unknown" if c["numpy_blas_threads"] is None else c["numpy_blas_threads"]
    threads = f"fastnn {c['fastnn_threads']}, numpy BLAS {blas}"
    if "torch_threads" in c:
        threads += f", torch {c['torch_threads']}"
    load = ("unknown" if c["load_start"] is None or c["load_end"] is None
            else f"{c['load_start']:.2f} -> {c['load_end']:.2f}")
    lines.append(f"threads: {threads}; load {load} ({c['cpus']} CPUs)")
    if "baseline_threads_note" in c:
        lines.append(f"note: {c['baseline_threads_note']}")
    return lines


def _positive_int(text: str) -> int:
    """argparse type: an integer > 0."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The options of :func:`bench_epoch`, their defaults read from its signature."""
    defaults = {k: p.default for k, p in inspect.signature(bench_epoch).parameters.items()}
    p = argparse.ArgumentParser(
        prog="python bench/epoch_benchmark.py",
        description="Time one training epoch of the 1024-HIDDEN-36 classifier (10800 random samples of the hw36 "
                    "shape) with the fused kernel, the plain NumPy loop and, when installed, PyTorch eager, in one "
                    "run.")
    p.add_argument("--out", metavar="DIR", default=defaults["out"],
                   help="folder for the report, bench_epoch.json and bench_epoch.md (default: no files)")
    p.add_argument("--seed", type=int, default=defaults["seed"],
                   help="seed of the random data, the initial weights and the sample order (default %(default)s)")
    p.add_argument("--batch-size", type=_positive_int, default=defaults["batch_size"],
                   help="mini-batch size (default %(default)s)")
    p.add_argument("--dtype", choices=("float32", "float64"), default=defaults["dtype"],
                   help="fused dtype (default %(default)s)")
    p.add_argument("--hidden", type=_positive_int, default=defaults["hidden"],
                   help="hidden units (default %(default)s)")
    p.add_argument("--epochs", type=_positive_int, default=defaults["epochs"],
                   help="timed epochs, best is reported (default %(default)s)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch baseline")
    p.add_argument("--baseline-threads", type=_positive_int, metavar="N", default=defaults["baseline_threads"],
                   help="BLAS threads of the NumPy baseline, set with threadpoolctl (default %(default)s: a "
                        "threaded BLAS stalls when the machine is busy)")
    return p


def main(argv=None) -> int:
    """Run :func:`bench_epoch` with the options of ``argv``; print its result as the ``fastnn`` commands print theirs.

    On stderr the notes (:func:`_notes`: the threads of each contender and the load) and ``output: DIR``
    when ``--out`` is given; last, on stdout, the numbers of the result as ``name: value`` lines, floats to
    4 decimals.  A refused argument is one line on stderr and exit status 2.
    """
    args = build_parser().parse_args(argv)
    try:
        result = bench_epoch(batch_size=args.batch_size, dtype=args.dtype, hidden=args.hidden, epochs=args.epochs,
                             seed=args.seed, torch=not args.no_torch, out=args.out,
                             baseline_threads=args.baseline_threads)
    except (ValueError, TypeError, ImportError, OSError) as exc:
        print(f"epoch_benchmark: error: {' '.join(str(exc).split()) or type(exc).__name__}", file=sys.stderr)
        return 2
    for line in _notes(result):
        print(line, file=sys.stderr)
    if args.out is not None:
        print(f"output: {os.path.abspath(args.out)}", file=sys.stderr)
    for key, value in _headline(result).items():
        print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
