"""Two builds of fastnn on the same work, each run in its own fresh processes, interleaved.

    python bench/ab.py --a new=.venv/bin/python --b main=../main-build/.venv/bin/python \
        [--work mlp32 mlp1024 cnn32 cnn256 dropin ocr] [--processes 6] [--rounds 5] [--threads 2] [--json OUT]

A change to the compiled core is measured against the build it replaces: build the current main in
another checkout's venv, then give both interpreters here.  For every piece of work the parent runs
``--processes`` children per build, alternating A, B, A, B, ... (so that a slow phase of a shared,
noisy machine hits both alike); each child imports the fastnn of its interpreter, does one warm-up
round and ``--rounds`` timed rounds, and prints its times as JSON.  The parent reports, per work and
build, the median over processes of the per-process medians, the spread of those medians (max/min),
and the ratio B / A (>1: A faster).  The load average is printed at the start and the end.

The work uses only the public API that both builds have:

* ``mlp32``, ``mlp1024``: one fused epoch of the 1024-64-36 sigmoid/softmax classifier in float32
  (10800 rows, SGD), as ``bench/epoch_processes.py`` times it, at batch 32 and 1024;
* ``cnn32``, ``cnn256``: one compiled epoch of ``bench/bench_conv.py``'s network (conv3x3 16 and 32,
  pools, 128 ReLU, 36 softmax; 10800 images of 32x32, float32, SGD) at batch 32 and 256;
* ``dropin``: one epoch of the coursework's loop through ``fastnn.nn`` (1024-64-36, float64, batch 32,
  forward, loss, backward and update per batch from Python);
* ``ocr``: ``fastnn.ocr.read_text`` of the first shared page (``--data``; skipped without it).

``--threads N`` sets FASTNN_NUM_THREADS and OMP_NUM_THREADS in every child; ``--a-env`` and ``--b-env``
set variables for one build's children only, so that one build can be compared with itself under two
settings (``--a t8=PY --b t2=PY --a-env FASTNN_NUM_THREADS=8 --b-env FASTNN_NUM_THREADS=2``: eight threads on
a machine of two against two).  Children run from a
temporary directory, so that each imports its installed fastnn, not a source tree.  This is a
measurement, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

SCRIPT = os.path.abspath(__file__)
WORK = ("mlp32", "mlp1024", "cnn32", "cnn256", "dropin", "ocr")
N_ROWS = 10800
CNN_LAYERS = [("conv", 1, 16, 3, 1, "same", "relu"), ("pool", 2), ("conv", 16, 32, 3, 1, "same", "relu"), ("pool", 2),
              ("flatten",), ("dense", 2048, 128, "relu"), ("dense", 128, 36, "softmax")]


# ----------------------------------------------------------------------------- children

def _mlp(batch):
    import numpy as np

    import fastnn.functional as F

    rng = np.random.default_rng(0)
    X = rng.random((N_ROWS, 1024), dtype=np.float32)
    T = np.eye(36, dtype=np.float32)[rng.integers(0, 36, N_ROWS)]
    order = rng.permutation(N_ROWS).astype(np.int64)
    plan = F.epoch_plan([1024, 64, 36], ["sigmoid", "softmax"], "cross_entropy", batch_size=batch, dtype="float32")
    theta0 = (rng.standard_normal(plan.n_params) * 0.05).astype(np.float32)

    def run():
        theta = theta0.copy()
        return F.train_epoch(plan, X, T, order, theta, plan.new_state(), lr=2e-3).loss

    return run


def _cnn(batch):
    import numpy as np

    import fastnn.functional as F

    rng = np.random.default_rng(0)
    X = rng.random((N_ROWS, 32, 32, 1), dtype=np.float32)
    T = np.eye(36, dtype=np.float32)[rng.integers(0, 36, N_ROWS)]
    plan = F.network_plan(CNN_LAYERS, (32, 32, 1), "cross_entropy", batch_size=batch, dtype="float32")
    theta0 = (rng.standard_normal(plan.n_params) * 0.05).astype(np.float32)
    order = np.arange(N_ROWS, dtype=np.int64)

    def run():
        theta = theta0.copy()
        return F.train_epoch(plan, X, T, order, theta, plan.new_state(), lr=1e-4).loss

    return run


def _dropin():
    import numpy as np

    from fastnn import nn

    rng = np.random.default_rng(0)
    X = rng.random((N_ROWS, 1024))
    Y = np.eye(36)[rng.integers(0, 36, N_ROWS)]
    np.random.seed(0)
    params = {}
    nn.initialize_weights(1024, 64, params, "layer1")
    nn.initialize_weights(64, 36, params, "output")
    start = {k: v.copy() for k, v in params.items()}

    def run():
        params.update({k: v.copy() for k, v in start.items()})
        total = 0.0
        for s in range(0, N_ROWS, 32):
            xb, yb = X[s:s + 32], Y[s:s + 32]
            h1 = nn.forward(xb, params, "layer1", nn.sigmoid)
            probs = nn.forward(h1, params, "output", nn.softmax)
            loss, _ = nn.compute_loss_and_acc(yb, probs)
            total += loss
            delta = nn.backwards(probs - yb, params, "output", nn.linear_deriv)
            nn.backwards(delta, params, "layer1", nn.sigmoid_deriv)
            for k in ("layer1", "output"):
                params["W" + k] -= 2e-3 * params["grad_W" + k]
                params["b" + k] -= 2e-3 * params["grad_b" + k]
        return total

    return run


def _ocr(data):
    import glob

    import fastnn.ocr

    pages = sorted(glob.glob(os.path.join(data, "ocr", "*.jpg")))
    image = fastnn.ocr.load_image(pages[0])

    def run():
        return len(fastnn.ocr.read_text(image).text)

    return run


def _child(work, rounds, data):
    if work.startswith("mlp"):
        fn = _mlp(int(work[3:]))
    elif work.startswith("cnn"):
        fn = _cnn(int(work[3:]))
    elif work == "dropin":
        fn = _dropin()
    elif work == "ocr":
        fn = _ocr(data)
    else:
        raise SystemExit(f"unknown work {work!r}")
    t0 = time.perf_counter()
    check = fn()
    warm = time.perf_counter() - t0
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    import fastnn

    info = {"file": os.path.dirname(fastnn.__file__)}
    try:
        import fastnn.functional as F

        info["threads"] = F.get_num_threads()
    except Exception:  # noqa: BLE001 - an older build: the thread count is not essential
        pass
    return {"work": work, "times": times, "warmup_s": warm, "check": float(check), **info}


# ------------------------------------------------------------------------------- parent

def _load():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _run(python, work, rounds, data, threads, workdir, extra=()):
    env = dict(os.environ)
    if threads:
        env.update(FASTNN_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    env.update(dict(v.split("=", 1) for v in extra))
    cmd = [python, SCRIPT, "--child", work, "--rounds", str(rounds)] + (["--data", data] if data else [])
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{python} {work}: exit {proc.returncode}\n{proc.stderr}")
    return json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", metavar="LABEL=PYTHON", help="the build under test")
    ap.add_argument("--b", metavar="LABEL=PYTHON", help="the build it is compared with")
    ap.add_argument("--work", nargs="+", default=list(WORK), choices=WORK)
    ap.add_argument("--processes", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="FASTNN_NUM_THREADS of the children (default: unset)")
    ap.add_argument("--a-env", nargs="*", default=[], metavar="KEY=VALUE", help="environment of A's children only")
    ap.add_argument("--b-env", nargs="*", default=[], metavar="KEY=VALUE", help="environment of B's children only")
    ap.add_argument("--data", default=os.environ.get("FASTNN_DATA", ""), help="the shared data folder (for ocr)")
    ap.add_argument("--json", help="write every measurement here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args.rounds, args.data)))
        return 0
    if not (args.a and args.b):
        ap.error("--a and --b are required")
    builds = []
    for spec in (args.a, args.b):
        label, _, python = spec.partition("=")
        if not label or not python:
            ap.error(f"expected LABEL=PYTHON, got {spec!r}")
        builds.append((label, os.path.abspath(python) if os.sep in python else python))
    envs = {builds[0][0]: args.a_env, builds[1][0]: args.b_env}
    work = [w for w in args.work if w != "ocr" or args.data]
    if "ocr" in args.work and not args.data:
        print("note: no --data (or FASTNN_DATA): the ocr work is skipped")
    start_load, started = _load(), time.time()
    print(f"{os.cpu_count()} CPUs, load average at start {start_load}; {args.processes} processes per build and "
          f"work, 1 warm-up + {args.rounds} rounds each; threads {args.threads or 'default'}", flush=True)
    runs = {(w, label): [] for w in work for label, _ in builds}
    with tempfile.TemporaryDirectory(prefix="fastnn-ab-") as workdir:
        for p in range(args.processes):
            for w in work:
                for label, python in (builds if p % 2 == 0 else builds[::-1]):
                    runs[(w, label)].append(_run(python, w, args.rounds, args.data, args.threads, workdir,
                                                 envs[label]))
            print(f"  round {p + 1}/{args.processes} ({time.time() - started:.0f} s, load {_load()})", flush=True)
    print(f"\n{'work':<8}{'build':<10}{'median ms':>10}{'min ms':>9}{'max ms':>9}{'spread':>8}   check")
    summary = []
    for w in work:
        meds = {}
        for label, _ in builds:
            per = [statistics.median(r["times"]) for r in runs[(w, label)]]
            meds[label] = statistics.median(per)
            print(f"{w:<8}{label:<10}{meds[label] * 1e3:>10.2f}{min(per) * 1e3:>9.2f}{max(per) * 1e3:>9.2f}"
                  f"{max(per) / min(per):>7.2f}x   {runs[(w, label)][0]['check']:.6g}")
            summary.append({"work": w, "build": label, "median_s": meds[label], "per_process": per})
        (la, _), (lb, _) = builds
        print(f"{'':<8}{lb} / {la}: {meds[lb] / meds[la]:.3f}x")
    print(f"\nload average at start {start_load}, at end {_load()}; {time.time() - started:.0f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"builds": builds, "summary": summary, "runs": {f"{w}|{b}": r for (w, b), r in runs.items()},
                       "load_start": start_load, "load_end": _load()}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
