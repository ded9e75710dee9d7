"""Convolution kernels and the compiled CNN epoch, against NumPy and PyTorch eager in the same run.

pytest-benchmark (``make bench BENCH_ARGS="-k conv"``, or from this folder ``python -m pytest
bench_conv.py --benchmark-only``): one group per kernel and per epoch setting, fastnn beside its
NumPy reference (the plain expressions of tests/_reference.py) and PyTorch when it is installed.

As a script (``python bench/bench_conv.py [--rounds 5] [--batch 32 256]``): the issue's network
(1x32x32 -> conv3x3(16, same, relu) -> pool -> conv3x3(32, same, relu) -> pool -> 2048 -> 128 relu
-> 36 softmax, float32, 10800 images, SGD) trained one epoch at a time by fastnn's compiled epoch and by
PyTorch eager, both on 2 threads, in interleaved rounds, with a large sgemm through fastnn's BLAS on 2
threads measured in the same rounds as the machine's peak.  Prints medians: seconds per epoch, GFLOP
per epoch (counted from the shapes), GFLOP/s and the fraction of the measured sgemm peak; ``--phases``
adds where one thread's time goes, kernel by kernel.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import pytest

import fastnn.functional as F
from fastnn._kernels import _core

N_IMAGES = 10800
SHAPE = (32, 32, 1)
CLASSES = 36
LR = 1e-4
LAYERS = [("conv", 1, 16, 3, 1, "same", "relu"), ("pool", 2), ("conv", 16, 32, 3, 1, "same", "relu"), ("pool", 2),
          ("flatten",), ("dense", 2048, 128, "relu"), ("dense", 128, CLASSES, "softmax")]


# ------------------------------------------------------------------------- the network

def epoch_flops(layers=LAYERS, shape=SHAPE, n=N_IMAGES) -> float:
    """Multiply-add flops (2 per multiply-add) of one training epoch: every product of the forward, the
    weight gradients and the input gradients (none for the first layer)."""
    total, cur = 0.0, shape
    for i, layer in enumerate(layers):
        if layer[0] == "conv":
            k = layer[3]
            OH, OW, Fo = F.conv2d_output_shape(cur, (k, k, cur[2], layer[2]), layer[4], layer[5])
            per = 2.0 * OH * OW * k * k * cur[2] * Fo
            total += per * (2 if i == 0 else 3)
            cur = (OH, OW, Fo)
        elif layer[0] == "pool":
            cur = (cur[0] // layer[1], cur[1] // layer[1], cur[2])
        elif layer[0] == "dense":
            total += 2.0 * layer[1] * layer[2] * (2 if i == 0 else 3)
    return total * n


def make_data(n=N_IMAGES, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n,) + SHAPE, dtype=np.float32)
    T = np.eye(CLASSES, dtype=np.float32)[rng.integers(0, CLASSES, n)]
    return X, T


class FastnnEpoch:
    """fastnn's compiled epoch: one train_epoch call per epoch, from the same parameters each time."""

    def __init__(self, X, T, batch_size, threads=2, seed=0):
        self.plan = F.network_plan(LAYERS, SHAPE, "cross_entropy", batch_size=batch_size, dtype="float32")
        rng = np.random.default_rng(seed)
        self.theta0 = (rng.standard_normal(self.plan.n_params) * 0.05).astype(np.float32)
        self.X, self.T, self.threads = X, T, threads
        self.order = np.arange(len(X))

    def __call__(self):
        theta, state = self.theta0.copy(), self.plan.new_state()
        return F.train_epoch(self.plan, self.X, self.T, self.order, theta, state, lr=LR, threads=self.threads)


def torch_net():
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = torch.nn.Conv2d(1, 16, 3, padding="same")
            self.c2 = torch.nn.Conv2d(16, 32, 3, padding="same")
            self.pool = torch.nn.MaxPool2d(2)
            self.l1 = torch.nn.Linear(2048, 128)
            self.l2 = torch.nn.Linear(128, CLASSES)

        def forward(self, x):
            x = self.pool(torch.relu(self.c1(x)))
            x = self.pool(torch.relu(self.c2(x)))
            return self.l2(torch.relu(self.l1(x.flatten(1))))

    return Net()


class TorchEpoch:
    """PyTorch eager: the same network (NCHW), summed cross-entropy, SGD, the same batches in order."""

    def __init__(self, X, T, batch_size, threads=2):
        import torch

        torch.set_num_threads(threads)
        self.torch = torch
        self.x = torch.from_numpy(np.ascontiguousarray(X.transpose(0, 3, 1, 2)))
        self.y = torch.from_numpy(T.argmax(axis=1))
        self.bs = batch_size
        torch.manual_seed(0)
        self.state0 = {k: v.clone() for k, v in torch_net().state_dict().items()}

    def __call__(self):
        torch = self.torch
        net = torch_net()
        net.load_state_dict(self.state0)
        opt = torch.optim.SGD(net.parameters(), lr=LR)
        total = 0.0
        for s in range(0, len(self.x), self.bs):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(self.x[s:s + self.bs]), self.y[s:s + self.bs],
                                                     reduction="sum")
            loss.backward()
            opt.step()
            total += loss.item()
        return total


def sgemm_peak_gflops(n=2048, repeat=3, threads=2) -> float:
    """GFLOP/s of the best of ``repeat`` (n, n) @ (n, n) float32 products through fastnn's BLAS (cut into parts
    for the thread team)."""
    rng = np.random.default_rng(1)
    A = rng.standard_normal((n, n), dtype=np.float32)
    B = rng.standard_normal((n, n), dtype=np.float32)
    C = np.empty((n, n), np.float32)
    old = _core.set_num_threads(threads)
    try:
        _core.gemm(A, B, C)
        best = min(_timed(lambda: _core.gemm(A, B, C)) for _ in range(repeat))
    finally:
        _core.set_num_threads(old)
    return 2.0 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# ----------------------------------------------------------------------- pytest-benchmark

def _reference():
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    import _reference as R

    return R


@pytest.fixture(scope="module")
def conv_case():
    """conv2 of the issue's network at batch 32: (32, 16, 16, 16) images, 3x3x16x32 kernels, 'same'."""
    rng = np.random.default_rng(3)
    X = rng.random((32, 16, 16, 16), dtype=np.float32)
    W = (rng.standard_normal((3, 3, 16, 32)) * 0.1).astype(np.float32)
    b = np.zeros(32, np.float32)
    return X, W, b


@pytest.mark.parametrize("impl", ["fastnn", "numpy", "torch"])
@pytest.mark.benchmark(group="conv2d_forward b=32 16x16x16 -> 3x3x32 same")
def bench_conv2d_forward(benchmark, tag, conv_case, impl):
    X, W, b = conv_case
    tag("conv2d_forward b=32 16x16x16 -> 3x3x32 same", impl, "float32", fastnn=impl == "fastnn")
    if impl == "fastnn":
        out = (np.empty((32, 16, 16, 32), np.float32), np.empty((32, 16, 16, 32), np.float32))
        fn = lambda: F.conv2d_forward(X, W, b, "relu", padding="same", out=out)  # noqa: E731
    elif impl == "numpy":
        R = _reference()
        fn = lambda: R.conv2d_forward(X, W, b, "relu", 1, "same")  # noqa: E731
    else:
        torch = pytest.importorskip("torch", reason="PyTorch is not installed")
        torch.set_num_threads(2)
        conv = torch.nn.Conv2d(16, 32, 3, padding="same")
        x = torch.from_numpy(np.ascontiguousarray(X.transpose(0, 3, 1, 2)))

        def fn():
            with torch.no_grad():
                return torch.relu(conv(x))
    fn()
    benchmark(fn)


@pytest.mark.parametrize("impl", ["fastnn", "numpy", "torch"])
@pytest.mark.benchmark(group="conv2d_backward b=32 16x16x16 -> 3x3x32 same")
def bench_conv2d_backward(benchmark, tag, conv_case, impl):
    X, W, b = conv_case
    tag("conv2d_backward b=32 16x16x16 -> 3x3x32 same", impl, "float32", fastnn=impl == "fastnn")
    _, post = F.conv2d_forward(X, W, b, "relu", padding="same")
    delta = np.random.default_rng(4).standard_normal(post.shape).astype(np.float32)
    if impl == "fastnn":
        out = (np.empty_like(W), np.empty_like(b), np.empty_like(X))
        fn = lambda: F.conv2d_backward(delta, post, X, W, "relu", padding="same", out=out)  # noqa: E731
    elif impl == "numpy":
        R = _reference()
        fn = lambda: R.conv2d_backward(delta, post, X, W, "relu", 1, "same")  # noqa: E731
    else:
        torch = pytest.importorskip("torch", reason="PyTorch is not installed")
        torch.set_num_threads(2)
        conv = torch.nn.Conv2d(16, 32, 3, padding="same")
        x = torch.from_numpy(np.ascontiguousarray(X.transpose(0, 3, 1, 2))).requires_grad_()
        d = torch.from_numpy(np.ascontiguousarray(delta.transpose(0, 3, 1, 2)))

        def fn():
            y = torch.relu(conv(x))  # torch's backward needs its own forward graph: both are timed
            y.backward(d)
    fn()
    benchmark(fn)


@pytest.mark.parametrize("impl", ["fastnn", "numpy", "torch"])
@pytest.mark.benchmark(group="max_pool2d_forward b=32 32x32x16")
def bench_max_pool2d_forward(benchmark, tag, impl):
    X = np.random.default_rng(5).random((32, 32, 32, 16), dtype=np.float32)
    tag("max_pool2d_forward b=32 32x32x16", impl, "float32", fastnn=impl == "fastnn")
    if impl == "fastnn":
        out = (np.empty((32, 16, 16, 16), np.float32), np.empty((32, 16, 16, 16), np.int32))
        fn = lambda: F.max_pool2d_forward(X, out=out)  # noqa: E731
    elif impl == "numpy":
        R = _reference()
        fn = lambda: R.max_pool2d_forward(X)  # noqa: E731
    else:
        torch = pytest.importorskip("torch", reason="PyTorch is not installed")
        torch.set_num_threads(2)
        pool = torch.nn.MaxPool2d(2, return_indices=True)
        x = torch.from_numpy(np.ascontiguousarray(X.transpose(0, 3, 1, 2)))

        def fn():
            with torch.no_grad():
                return pool(x)
    fn()
    benchmark(fn)


@pytest.fixture(scope="module")
def hw36_images():
    return make_data()


@pytest.mark.parametrize("batch", [32, 256])
@pytest.mark.parametrize("impl", ["fastnn", "torch"])
def bench_cnn_epoch(benchmark, tag, hw36_images, impl, batch):
    """One epoch of the issue's CNN (float32, 10800 images, SGD, 2 threads each)."""
    X, T = hw36_images
    group = f"cnn epoch b={batch}"
    benchmark.group = group
    tag(group, impl, "float32", fastnn=impl == "fastnn")
    if impl == "torch":
        pytest.importorskip("torch", reason="PyTorch is not installed")
        fn = TorchEpoch(X, T, batch)
    else:
        fn = FastnnEpoch(X, T, batch)
    benchmark.pedantic(fn, rounds=3, iterations=1, warmup_rounds=1)


# ------------------------------------------------------------------------ the comparison

def phases(batch: int, repeat=5) -> dict:
    """Seconds per epoch of each kernel of the network on one thread, from the functional calls at this
    batch size (best of ``repeat``; the compiled epoch runs the same kernels, without the validation)."""
    rng = np.random.default_rng(2)
    X = rng.random((batch,) + SHAPE, dtype=np.float32)
    W1 = (rng.standard_normal((3, 3, 1, 16)) * 0.3).astype(np.float32)
    W2 = (rng.standard_normal((3, 3, 16, 32)) * 0.1).astype(np.float32)
    W3 = (rng.standard_normal((2048, 128)) * 0.03).astype(np.float32)
    W4 = (rng.standard_normal((128, 36)) * 0.1).astype(np.float32)
    b1, b2, b3, b4 = (np.zeros(n, np.float32) for n in (16, 32, 128, 36))
    T = np.eye(36, dtype=np.float32)[rng.integers(0, 36, batch)]
    _, a1 = F.conv2d_forward(X, W1, b1, "relu", padding="same")
    p1, i1 = F.max_pool2d_forward(a1)
    _, a2 = F.conv2d_forward(p1, W2, b2, "relu", padding="same")
    p2, i2 = F.max_pool2d_forward(a2)
    flat = p2.reshape(batch, -1)
    _, h = F.dense_forward(flat, W3, b3, "relu")
    z, _ = F.dense_forward(h, W4, b4, "linear")
    r = F.softmax_cross_entropy(z, T)
    _, _, gh = F.dense_backward(r.delta, z, h, W4, "linear")
    _, _, gflat = F.dense_backward(gh, h, flat, W3, "relu")
    ga2 = F.max_pool2d_backward(gflat.reshape(p2.shape), i2, a2.shape)
    _, _, gp1 = F.conv2d_backward(ga2, a2, p1, W2, "relu", padding="same")
    ga1 = F.max_pool2d_backward(gp1, i1, a1.shape)
    steps = {
        "conv1 forward (im2col, product, bias, relu)": lambda: F.conv2d_forward(X, W1, b1, "relu", padding="same"),
        "pool1 forward": lambda: F.max_pool2d_forward(a1),
        "conv2 forward": lambda: F.conv2d_forward(p1, W2, b2, "relu", padding="same"),
        "pool2 forward": lambda: F.max_pool2d_forward(a2),
        "dense layers forward + loss": lambda: (F.dense_forward(flat, W3, b3, "relu"),
                                                F.softmax_cross_entropy(F.dense_forward(h, W4, b4, "linear")[0], T)),
        "dense layers backward": lambda: (F.dense_backward(r.delta, z, h, W4, "linear"),
                                          F.dense_backward(gh, h, flat, W3, "relu")),
        "pool2 backward": lambda: F.max_pool2d_backward(gflat.reshape(p2.shape), i2, a2.shape),
        "conv2 backward (+ im2col again, as the epoch at b > 45)": lambda: F.conv2d_backward(ga2, a2, p1, W2, "relu",
                                                                                           padding="same"),
        "pool1 backward": lambda: F.max_pool2d_backward(gp1, i1, a1.shape),
        "conv1 backward (weights only)": lambda: F.conv2d_backward(ga1, a1, X, W1, "relu", padding="same",
                                                                   need_grad_X=False),
    }
    old = _core.set_num_threads(1)
    try:
        out = {}
        for name, fn in steps.items():
            fn()
            out[name] = min(_timed(fn) for _ in range(repeat)) * N_IMAGES / batch
    finally:
        _core.set_num_threads(old)
    return out


def compare(batches, rounds, threads=2, json_path=None, with_phases=False):
    X, T = make_data()
    flops = epoch_flops()
    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
        print("PyTorch is not installed: fastnn's numbers only", file=sys.stderr)
    runners = {}
    for bs in batches:
        runners[("fastnn", bs)] = FastnnEpoch(X, T, bs, threads)
        if have_torch:
            runners[("torch", bs)] = TorchEpoch(X, T, bs, threads)
    for fn in runners.values():  # warm-up: first touches, thread pools, torch's kernels
        fn()
    times = {k: [] for k in runners}
    reduced = {bs: 0 for bs in batches}
    peaks = []
    for r in range(rounds):
        peaks.append(sgemm_peak_gflops(threads=threads))
        for bs in batches:
            for impl in ("fastnn", "torch"):
                if (impl, bs) not in runners:
                    continue
                t = time.perf_counter()
                res = runners[(impl, bs)]()
                times[(impl, bs)].append(time.perf_counter() - t)
                if impl == "fastnn" and res.reduced_from >= 0:
                    reduced[bs] += 1
        print(f"round {r + 1}/{rounds}: " + ", ".join(f"{i} b={b} {t[-1]:.2f}s" for (i, b), t in times.items())
              + f", sgemm {peaks[-1]:.0f} GFLOP/s", file=sys.stderr, flush=True)
    peak = statistics.median(peaks)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nCNN epoch, {N_IMAGES} images 1x32x32, float32, {threads} threads; {flops / 1e9:.1f} GFLOP per epoch; "
          f"sgemm peak (2048^3 through fastnn's BLAS, {threads} threads) median {peak:.0f} GFLOP/s; "
          f"{rounds} interleaved rounds, medians; load average now {load}")
    print(f"{'batch':>5} {'impl':>7} {'s/epoch':>8} {'min':>6} {'GFLOP/s':>8} {'of peak':>7} {'speedup':>8}")
    rows = []
    for bs in batches:
        f_med = statistics.median(times[("fastnn", bs)])
        for impl in ("fastnn", "torch"):
            if (impl, bs) not in times:
                continue
            med = statistics.median(times[(impl, bs)])
            rate = flops / med / 1e9
            sp = med / f_med if impl == "torch" else 1.0
            print(f"{bs:>5} {impl:>7} {med:>8.3f} {min(times[(impl, bs)]):>6.2f} {rate:>8.1f} {rate / peak:>6.0%} "
                  f"{'' if impl == 'fastnn' else f'{sp:.2f}x':>8}")
            rows.append(dict(batch=bs, impl=impl, median_s=med, times=times[(impl, bs)], gflops=rate,
                             fraction_of_peak=rate / peak, torch_over_fastnn=sp))
        if reduced[bs]:
            print(f"      (fastnn b={bs}: {reduced[bs]} of {rounds} epochs went on with fewer threads part-way: the "
                  "team was slowed by other work)")
    result = dict(flops_per_epoch=flops, sgemm_peak_gflops=peaks, threads=threads, rows=rows)
    if with_phases:
        for bs in batches:
            ph = phases(bs)
            total = sum(ph.values())
            print(f"\nwhere one thread's time goes at batch {bs} (functional kernels, s per epoch; sum {total:.2f} s):")
            for name, t in ph.items():
                print(f"  {name:<56} {t:6.3f}  {t / total:5.1%}")
            result[f"phases_b{bs}"] = ph
    if json_path:
        with open(json_path, "w") as fh:
            json.dump(result, fh, indent=1)
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, nargs="+", default=[32, 256])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--phases", action="store_true", help="also time each kernel on one thread")
    ap.add_argument("--json", help="write the measurements here")
    a = ap.parse_args(argv)
    compare(a.batch, a.rounds, a.threads, a.json, a.phases)


if __name__ == "__main__":
    main()
