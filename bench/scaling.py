"""What speed-up to expect from more cores: a per-part cost model from measured per-part times.

    python bench/scaling.py [--rounds 5] [--cores 2 4 8 16] [--json OUT]

This machine has 2 cores, so the epochs cannot be timed on 8 or 16; but the work is cut into parts by the
shapes alone (``plan.work_parts``), and each part's time can be measured here on one thread.  For each
workload (the 1024-64-36 classifier at batch 32 and 1024, and bench/bench_conv.py's CNN at batch 32 and
256, float32, SGD, 10800 samples) the script measures:

* ``T1``, ``T2``: the epoch on 1 and 2 threads (the best of ``--rounds`` epochs, same process: this
  machine is shared and noisy, and other work only ever adds time);
* ``t_i``: the time of the largest part of every step that the team shares, on one thread: a product's
  part is timed as the product of its block (``_core.gemm`` on the part's shape), the optimizer's as an
  update of its values; the CNN's conv/pool stack (forward and backward, one step here) is what the CNN's
  one-thread epoch takes beyond an MLP epoch of its dense layers, shared evenly by its parts of images;
* the serial rest per batch, ``S = T1/batches - sum_i parts_i t_i``: what only the first thread runs
  (bias, activations, the loss, small products, the gather);
* a cost per shared step ``c``, fitted so that the model gives the measured ``T2``.

The model of one batch on P cores is ``S + sum_i (ceil(parts_i / P) t_i + c)``: a step takes as long as
its busiest thread, and parts are never split further.  It leaves out what more cores change besides the
count (memory bandwidth and the shared cache, which favour fewer cores; the larger total cache, which
favours more), so it says what the cut allows, not a promise.  Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

import fastnn.functional as F
from fastnn._kernels import _core

N = 10800
PART_ALIGN = 16
CNN_LAYERS = [("conv", 1, 16, 3, 1, "same", "relu"), ("pool", 2), ("conv", 16, 32, 3, 1, "same", "relu"), ("pool", 2),
              ("flatten",), ("dense", 2048, 128, "relu"), ("dense", 128, 36, "softmax")]


def _best_time(fn, rounds):
    fn()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _largest_part(extent, parts):
    bounds = [0] + [(extent * p // parts) // PART_ALIGN * PART_ALIGN for p in range(1, parts)] + [extent]
    return max(b - a for a, b in zip(bounds, bounds[1:]))


def _product_part_time(step, rounds, rng):
    m, k, n = step["shape"]
    parts = step["parts"]
    if step["cut"] == "rows":
        m = _largest_part(m, parts)
    elif step["cut"] == "cols":
        n = _largest_part(n, parts)
    elif step["cut"] == "k":
        k = _largest_part(k, parts)
    A = rng.random((m, k), dtype=np.float32)
    B = rng.random((k, n), dtype=np.float32)
    C = np.zeros((m, n), np.float32)
    reps = max(1, int(2e6 / max(1.0, 2.0 * m * n * k / 1e3)))
    return _best_time(lambda: [_core.gemm(A, B, C, 1.0, 1.0) for _ in range(reps)], rounds) / reps


def _vector_part_time(step, rounds, rng):
    """A part of a step over values, timed as the kernel that runs it on one part's block: the optimizer's
    update, bias and activation (the activation alone), the loss; a derivative or a bias gradient (the
    same memory-bound pass over the values) as the activation's derivative."""
    size = -(-step["values"] // step["parts"])
    reps = 50
    if step["step"] == "optimizer":
        p, g = rng.random(size, dtype=np.float32), rng.random(size, dtype=np.float32)
        return _best_time(lambda: [F.sgd_update([p], [g], 1e-9) for _ in range(reps)], rounds) / reps
    m = max(1, step["values"] // step["rows"])
    rows = -(-step["rows"] // step["parts"])
    Z = rng.standard_normal((rows, m)).astype(np.float32)
    out = np.empty_like(Z)
    if step["step"] == "loss":
        Y = np.eye(m, dtype=np.float32)[rng.integers(0, m, rows)]
        return _best_time(lambda: [F.softmax_cross_entropy(Z, Y) for _ in range(reps)], rounds) / reps
    if step["step"].endswith("bias and activation"):
        return _best_time(lambda: [_core.activate(Z, _core.ACTIVATIONS["sigmoid"], out) for _ in range(reps)],
                          rounds) / reps
    return _best_time(lambda: [_core.activation_deriv(Z, _core.ACTIVATIONS["sigmoid"], out) for _ in range(reps)],
                      rounds) / reps


def _epoch_time(plan, X, T, threads, rounds):
    rng = np.random.default_rng(0)
    order = np.arange(X.shape[0], dtype=np.int64)
    theta0 = (rng.standard_normal(plan.n_params) * 0.05).astype(np.float32)

    def epoch():
        theta = theta0.copy()
        return F.train_epoch(plan, X, T, order, theta, plan.new_state(), lr=1e-4, threads=threads)

    return _best_time(epoch, rounds)


def measure(name, plan, X, T, rounds, cores, dense_plan=None):
    """The model of ``plan``; for a CNN, ``dense_plan`` is an MLP plan of its dense layers (see the top)."""
    rng = np.random.default_rng(0)
    T1 = T2 = float("inf")
    for _ in range(rounds):  # interleaved, the best of each: a noisy phase of the machine hits both
        T1 = min(T1, _epoch_time(plan, X, T, 1, 1))
        T2 = min(T2, _epoch_time(plan, X, T, 2, 1))
    batches = -(-X.shape[0] // plan.batch_size)
    old = _core.set_num_threads(1)
    try:
        steps = []
        for s in plan.work_parts(1):
            if s["parts"] < 2 or s["step"] == "conv stack backward":
                continue
            if "shape" in s:
                t = _product_part_time(s, rounds, rng)
            elif "values" in s:
                t = _vector_part_time(s, rounds, rng)
            else:  # the conv stack, forward and backward
                rows = X.reshape(X.shape[0], -1)
                reps = -(-dense_plan.sizes[0] // rows.shape[1])
                flat = np.ascontiguousarray(np.tile(rows, (1, reps))[:, :dense_plan.sizes[0]])
                dense = _epoch_time(dense_plan, flat, T, 1, rounds)
                t = max(0.0, T1 - dense) / batches / s["parts"]
                s = {**s, "step": "conv stack (forward, backward)"}
            steps.append({**s, "part_s": t})
    finally:
        _core.set_num_threads(old)
    per_batch1 = T1 / batches
    shared = sum(s["parts"] * s["part_s"] for s in steps)
    serial = max(0.0, per_batch1 - shared)

    def model(P, c):
        return serial + sum(math.ceil(s["parts"] / P) * s["part_s"] + c for s in steps)

    c = max(0.0, (T2 / batches - model(2, 0.0)) / max(1, len(steps)))
    predicted = {P: model(P, c) * batches for P in cores}
    return {"name": name, "T1": T1, "T2": T2, "batches": batches, "serial_per_batch": serial,
            "shared_per_batch": shared, "step_cost": c, "steps": steps, "predicted": predicted,
            "speedup": {P: T1 / predicted[P] for P in cores}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cores", type=int, nargs="+", default=[2, 4, 8, 16])
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    X = rng.random((N, 1024), dtype=np.float32)
    T = np.eye(36, dtype=np.float32)[rng.integers(0, 36, N)]
    Xc = X  # the CNN's images as rows (N, 32*32*1)
    work = []
    for bs in (32, 1024):
        plan = F.epoch_plan([1024, 64, 36], ["sigmoid", "softmax"], "cross_entropy", batch_size=bs, dtype="float32")
        work.append((f"MLP 1024-64-36, batch {bs}", plan, X, T))
    for bs in (32, 256):
        plan = F.network_plan(CNN_LAYERS, (32, 32, 1), "cross_entropy", batch_size=bs, dtype="float32")
        dense = F.epoch_plan([2048, 128, 36], ["relu", "softmax"], "cross_entropy", batch_size=bs, dtype="float32")
        work.append((f"CNN (bench_conv), batch {bs}", plan, Xc, T, dense))
    print(f"{os.cpu_count()} CPUs, load {' '.join(f'{x:.2f}' for x in os.getloadavg())}; core {F.core_info()['core']}")
    out = []
    for name, plan, Xw, Tw, *dense in work:
        r = measure(name, plan, Xw, Tw, args.rounds, args.cores, *dense)
        out.append(r)
        print(f"\n{name}: T1 {r['T1'] * 1e3:.1f} ms, T2 {r['T2'] * 1e3:.1f} ms ({r['T1'] / r['T2']:.2f}x); per batch "
              f"{r['T1'] / r['batches'] * 1e6:.0f} us on one thread: serial {r['serial_per_batch'] * 1e6:.0f} us, "
              f"shared {r['shared_per_batch'] * 1e6:.0f} us; cost per shared step {r['step_cost'] * 1e6:.1f} us")
        for s in r["steps"]:
            what = s.get("shape") or s.get("values") or f"{s.get('images')} images"
            print(f"  {s['step']:<28} {str(what):<18} {s['cut']:<7} {s['parts']:>3} parts x "
                  f"{s['part_s'] * 1e6:8.1f} us")
        print("  predicted: " + ", ".join(f"{P} cores {r['predicted'][P] * 1e3:.1f} ms ({r['speedup'][P]:.2f}x)"
                                          for P in args.cores))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
