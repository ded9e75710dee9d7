"""One training epoch of the 1024-64-36 classifier, each contender timed in its own fresh process.

    python bench/epoch_processes.py [--processes 12] [--rounds 5] [--batch-sizes 32 1024] [--json OUT]
                                    [--against LABEL=PYTHON ...] [--threads N] [--only fastnn]

The contenders are fastnn's fused epoch in float32 (``FusedEpoch`` of ``epoch_benchmark.py``, beside this file),
the coursework's NumPy float64 loop (``numpy_epoch``) and PyTorch eager in float32 (``torch_epoch``,
skipped with a note when torch cannot be imported).  All train the same network: sigmoid hidden
layer, softmax output, summed cross-entropy, SGD with lr 2e-3, on ``make_data(10800, seed=0)``
in one fixed sample order.

Why processes: the thread pools of OpenBLAS, OpenMP and PyTorch keep spinning after a call and
steal cores from whoever runs next in the same process.  Here every child process imports one
library, runs one warm-up epoch and then ``--rounds`` timed epochs, and prints those times as
JSON.  The parent runs the children one after another, contenders interleaved (fastnn, numpy,
torch, fastnn, numpy, torch, ...), so that a slow phase of a shared, noisy machine hits all of
them alike.  It reports, per contender and batch size, the median over processes of the
per-process medians and the spread of the per-process medians (min, max, max/min), and the
speedups of fastnn (ratios of those medians).

The products' floor: an epoch needs three matrix products per layer per batch (forward, weight
gradient, input gradient) except the first layer's input gradient, i.e. for 1024-64-36
``2 N (1024*64*2 + 64*36*3)`` flops.  Dividing that by the epoch time and by a single-precision
GEMM peak measured in the same run (a child timing a 2048^3 float32 ``numpy.matmul``, best of
several, on all cores as numpy's BLAS uses them) gives the fraction of the floor that each
contender reaches (1.0 would mean the epoch costs no more than its products at peak speed).

``--against main=/path/to/venv/bin/python`` adds another build of fastnn as a contender, its children
run by that interpreter (another checkout's venv): the same epoch, interleaved with the others, so a
change is measured against the build it replaces in the same run.  ``--threads N`` sets
FASTNN_NUM_THREADS (and OMP_NUM_THREADS) in every fastnn child; ``--only`` keeps some contenders.

The children run with a temporary directory as working directory, so that they import the
installed fastnn, not the source tree; the probe line printed first shows which one it is.
This is a measurement, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

SIZES = (1024, 64, 36)
N_SAMPLES = 10800
LR = 2e-3
SEED = 0
CONTENDERS = ("fastnn", "numpy", "torch")
LABELS = {"fastnn": "fastnn fused float32", "numpy": "numpy loop float64", "torch": "torch eager float32"}
GEMM_N = 2048
GEMM_REPEATS = 8
SCRIPT = os.path.abspath(__file__)


def epoch_flops(sizes=SIZES, n=N_SAMPLES) -> float:
    """Flops of one epoch's matrix products: 3 per layer and batch, minus layer 0's input gradient."""
    macs = 0
    for l in range(len(sizes) - 1):
        macs += sizes[l] * sizes[l + 1] * (2 if l == 0 else 3)
    return 2.0 * n * macs


# ------------------------------------------------------------------------ child side

def probe() -> dict:
    """The child's versions: fastnn (and where it was loaded from), numpy, python, torch (None when missing)."""
    import numpy as np

    import fastnn

    info = {"fastnn": getattr(fastnn, "__version__", "?"), "fastnn_file": os.path.dirname(fastnn.__file__),
            "numpy": np.__version__, "python": platform.python_version()}
    try:
        import torch
    except Exception as exc:  # ImportError, or a broken install
        info["torch"] = None
        info["torch_error"] = f"{type(exc).__name__}: {exc}"
    else:
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    return info


def gemm_peak() -> dict:
    """Times of a 2048^3 float32 ``numpy.matmul`` on all cores (after a warm-up) and the best GFLOP/s."""
    import numpy as np

    rng = np.random.default_rng(SEED)
    a = rng.random((GEMM_N, GEMM_N), dtype=np.float32)
    b = rng.random((GEMM_N, GEMM_N), dtype=np.float32)
    c = np.empty_like(a)
    np.matmul(a, b, out=c)  # warm-up: thread pool start, page faults
    times = []
    for _ in range(GEMM_REPEATS):
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        times.append(time.perf_counter() - t0)
    flops = 2.0 * GEMM_N ** 3
    return {"times": times, "flops": flops, "gflops_best": flops / min(times) / 1e9}


def mlp_epoch_times(contender: str, batch_size: int, rounds: int) -> dict:
    """One warm-up and ``rounds`` timed epochs of ``contender`` (fastnn, numpy or torch) in this process."""
    import numpy as np

    import epoch_benchmark as B  # beside this file: the script's folder is on sys.path

    X, Y = B.make_data(N_SAMPLES, seed=SEED)
    order = np.random.default_rng(SEED).permutation(N_SAMPLES)
    info = {}
    if contender == "fastnn":
        from fastnn.models import MLP

        model = MLP(list(SIZES), ["sigmoid", "softmax"], dtype="float32", seed=SEED)
        fn = B.FusedEpoch(model, X, Y, order, lr=LR, batch_size=batch_size)
    elif contender == "numpy":
        params = B.init_params(SIZES, seed=SEED)

        def fn():
            return B.numpy_epoch(X, Y, params, batch_size, LR, order=order)
    elif contender == "torch":
        import torch

        net = B.torch_mlp(B.init_params(SIZES, seed=SEED), "float32")
        Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
        yt = torch.from_numpy(Y.argmax(axis=1))
        info["torch_threads"] = torch.get_num_threads()

        def fn():
            return B.torch_epoch(Xt, yt, net, batch_size, LR, order=order)
    else:
        raise SystemExit(f"unknown contender {contender!r}")
    timed = timed_rounds(fn, rounds)
    timed["first_epoch_loss"] = float(timed.pop("first")[0])  # same initial weights and order: all should agree
    return {"contender": contender, "batch_size": batch_size, **timed, **info}


def timed_rounds(fn, rounds: int) -> dict:
    """``fn()`` once as a warm-up (thread pools, first-touch pages, lazy initialisation), then ``rounds`` timed
    calls: {'times', 'warmup_s', 'first' (the warm-up's return value), 'load1' (the load average now)}."""
    t0 = time.perf_counter()
    first = fn()
    warmup = time.perf_counter() - t0
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"times": times, "warmup_s": warmup, "first": first, "load1": load}


def _child_main(args) -> int:
    if args.child == "probe":
        out = probe()
    elif args.child == "gemm":
        out = gemm_peak()
    else:
        out = mlp_epoch_times(args.child, args.batch_size, args.rounds)
    print(json.dumps(out))
    return 0


# ----------------------------------------------------------------------- parent side

def run_child(workdir: str, *child_args, env=None, python=None, script=SCRIPT) -> dict:
    """Run ``script --child ARGS...`` (by ``python``, in ``workdir``) and return the last JSON line it printed."""
    cmd = [python or sys.executable, script, "--child", *map(str, child_args)]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"child {' '.join(cmd[2:])} failed with exit code {proc.returncode}:\n{proc.stderr}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith("{")]
    if not lines:
        raise RuntimeError(f"child {' '.join(cmd[2:])} printed no JSON:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(lines[-1])


def load_average() -> str:
    """The load average over 1, 5 and 15 minutes, as text."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def _ms(s: float) -> str:
    return f"{s * 1e3:9.2f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--processes", type=int, default=12, help="processes per contender and batch size (12)")
    ap.add_argument("--rounds", type=int, default=5, help="timed epochs per process, after one warm-up (5)")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 1024], help="batch sizes (32 1024)")
    ap.add_argument("--json", metavar="OUT", help="also write every measurement to this JSON file")
    ap.add_argument("--baselines-without-fastnn-malloc", action="store_true",
                    help="run the NumPy and PyTorch children with FASTNN_MALLOPT=0: glibc malloc as in a process "
                         "that never imported fastnn (importing fastnn fixes malloc's thresholds, which speeds up "
                         "their loops too)")
    ap.add_argument("--against", action="append", default=[], metavar="LABEL=PYTHON",
                    help="another build of fastnn as a contender, run by that Python (repeatable)")
    ap.add_argument("--threads", type=int, help="FASTNN_NUM_THREADS and OMP_NUM_THREADS of the fastnn children")
    ap.add_argument("--only", nargs="+", help="keep only these contenders (fastnn, numpy, torch, or a LABEL)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return _child_main(args)
    if args.processes < 1 or args.rounds < 1 or min(args.batch_sizes) < 1:
        ap.error("--processes, --rounds and --batch-sizes must be positive")

    started = time.time()
    load_start = load_average()
    with tempfile.TemporaryDirectory(prefix="fastnn-epoch-processes-") as workdir:
        probe = run_child(workdir, "probe")
        print(f"python {probe['python']} ({sys.executable}), numpy {probe['numpy']}, "
              f"fastnn {probe['fastnn']} from {probe['fastnn_file']}")
        contenders = list(CONTENDERS)
        if probe.get("torch") is None:
            contenders.remove("torch")
            print(f"note: torch is not importable ({probe.get('torch_error')}); skipping the PyTorch contender")
        else:
            print(f"torch {probe['torch']} ({probe['torch_threads']} threads)")
        pythons = {}
        for spec in args.against:
            label, _, python = spec.partition("=")
            if not label or not python:
                ap.error(f"--against: expected LABEL=PYTHON, got {spec!r}")
            name = f"fastnn@{label}"
            pythons[name] = python
            LABELS[name] = f"fastnn {label} float32"
            contenders.insert(1, name)
            other = run_child(workdir, "probe", python=python)
            print(f"{name}: fastnn {other['fastnn']} from {other['fastnn_file']} ({python})")
        if args.only:
            contenders = [c for c in contenders if c in args.only or c.split("@")[-1] in args.only]
        print(f"{os.cpu_count()} cores, load average (1, 5, 15 min) at start: {load_start}")
        n_runs = args.processes * len(args.batch_sizes) * len(contenders)
        print(f"{n_runs} epoch processes ({args.processes} per contender and batch size, interleaved), "
              f"1 warm-up + {args.rounds} timed epochs each; GEMM peak children at the start, middle and end",
              flush=True)

        gemm = [run_child(workdir, "gemm")]
        runs = {(c, bs): [] for c in contenders for bs in args.batch_sizes}
        for p in range(args.processes):
            for bs in args.batch_sizes:
                for c in contenders:
                    env = None
                    if not c.startswith("fastnn") and args.baselines_without_fastnn_malloc:
                        env = {**os.environ, "FASTNN_MALLOPT": "0"}  # malloc as in a process without fastnn
                    if c.startswith("fastnn") and args.threads:
                        env = {**os.environ, "FASTNN_NUM_THREADS": str(args.threads),
                               "OMP_NUM_THREADS": str(args.threads)}
                    runs[(c, bs)].append(run_child(workdir, c.split("@")[0], "--batch-size", bs, "--rounds",
                                                    args.rounds, env=env, python=pythons.get(c)))
            if p == (args.processes - 1) // 2:
                gemm.append(run_child(workdir, "gemm"))
            print(f"  round {p + 1}/{args.processes} done ({time.time() - started:.0f} s, load {load_average()})",
                  flush=True)
        gemm.append(run_child(workdir, "gemm"))

    load_end = load_average()
    peak = max(g["gflops_best"] for g in gemm) * 1e9
    flops = epoch_flops()
    summary = {}
    for (c, bs), rs in runs.items():
        meds = [statistics.median(r["times"]) for r in rs]
        summary[(c, bs)] = dict(median=statistics.median(meds), min=min(meds), max=max(meds),
                                spread=max(meds) / min(meds), medians=meds,
                                loss=statistics.median(r["first_epoch_loss"] for r in rs))

    print()
    print(f"GEMM peak: {GEMM_N}^3 float32 numpy.matmul, best of {GEMM_REPEATS} in each of {len(gemm)} children: "
          + ", ".join(f"{g['gflops_best']:.1f}" for g in gemm) + f" GFLOP/s; peak used: {peak / 1e9:.1f} GFLOP/s")
    print(f"epoch products' floor: {flops / 1e9:.3f} GFLOP per epoch = {flops / peak * 1e3:.2f} ms at that peak")
    print()
    print("seconds per epoch: median over processes of each process's median; spread of the per-process medians")
    head = (f"{'batch':>5}  {'contender':<22}{'median ms':>10}{'min ms':>10}{'max ms':>10}{'max/min':>8}"
            f"{'GFLOP/s':>9}{'of floor':>9}  first-epoch loss")
    print(head)
    print("-" * len(head))
    for bs in args.batch_sizes:
        for c in contenders:
            s = summary[(c, bs)]
            print(f"{bs:>5}  {LABELS[c]:<22}{_ms(s['median']):>10}{_ms(s['min']):>10}{_ms(s['max']):>10}"
                  f"{s['spread']:>7.2f}x{flops / s['median'] / 1e9:>9.1f}{flops / s['median'] / peak:>8.1%}"
                  f"  {s['loss']:.2f}")
    print()
    print("speedup of fastnn: baseline median / fastnn median (>1: fastnn faster)")
    speedups = {}
    for bs in args.batch_sizes:
        f = summary[("fastnn", bs)]["median"]
        parts = []
        for c in contenders[1:]:
            r = summary[(c, bs)]["median"] / f
            speedups[(c, bs)] = r
            parts.append(f"vs {LABELS[c]}: {r:6.2f}x")
        print(f"  batch {bs:>5}: " + "   ".join(parts))
    elapsed = time.time() - started
    print()
    print(f"load average (1, 5, 15 min): {load_start} at start, {load_end} at end; {elapsed:.0f} s in all")

    if args.json:
        out = {
            "settings": {"sizes": SIZES, "n_samples": N_SAMPLES, "lr": LR, "seed": SEED,
                         "processes": args.processes, "rounds": args.rounds, "batch_sizes": args.batch_sizes},
            "environment": {**probe, "executable": sys.executable, "cpu_count": os.cpu_count(),
                            "platform": platform.platform(), "load_start": load_start, "load_end": load_end,
                            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
                            "elapsed_s": elapsed},
            "gemm": {"n": GEMM_N, "children": gemm, "peak_flops": peak},
            "epoch_flops": flops,
            "runs": [r for rs in runs.values() for r in rs],
            "summary": [{"contender": c, "batch_size": bs, **{k: v for k, v in s.items()},
                         "fraction_of_floor": flops / s["median"] / peak} for (c, bs), s in summary.items()],
            "speedups": [{"baseline": c, "batch_size": bs, "speedup": r} for (c, bs), r in speedups.items()],
        }
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
        print(f"measurements written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
