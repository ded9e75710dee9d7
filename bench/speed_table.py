"""Every row of issue 24's speed table in one command: fastnn and its baselines, each in its own fresh processes.

    python bench/speed_table.py [--rows mlp cnn dropin predict] [--processes 6] [--rounds 5] [--calls 2000]
                                [--json OUT] [--no-save] [--against LABEL=PYTHON ...]
                                [--baselines-without-fastnn-malloc]

(``make bench-speed SPEED_ARGS="..."``.)  The rows (``--rows`` takes row names or the groups mlp, cnn, predict):

* ``mlp32``, ``mlp1024``: one epoch of the 1024-64-36 sigmoid/softmax classifier, fastnn's fused epoch in
  float32 against PyTorch eager (float32, its default threads) and the coursework's NumPy loop (float64), as
  ``epoch_processes.py`` times them; the fraction is of the products' floor (``epoch_processes.epoch_flops``);
* ``cnn32``, ``cnn256``: one epoch of ``bench_conv.py``'s network (1x32x32, conv 16, pool, conv 32, pool,
  128, 36; float32) by fastnn's compiled epoch and by PyTorch eager (default threads); the fraction is of
  the peak (``bench_conv.epoch_flops``);
* ``dropin``: one epoch of the coursework's loop (``fastnn.coursework``, 1024-64-36, float64, batch 32)
  on ``fastnn.nn`` against the plain NumPy ``nn.py`` it replaces;
* ``predict1``, ``predict32``, ``predict1024``: ``MLP.predict_proba`` (1024-64-36, float32) against
  onnxruntime on fastnn's own ONNX export with one intra-op and one inter-op thread (``inference.py``).

Every child process imports one contender's library, does one warm-up and ``--rounds`` timed rounds, and
prints its times as JSON; it runs in a temporary directory, so it imports the installed fastnn (or the one
on PYTHONPATH), not the source tree.  The parent runs the children round by round, every row's contenders
one after another (their order rotated each round), so that a slow phase of a shared machine hits all
alike, and reports per row and contender the median over processes of the per-process medians and their
spread (max/min).  The same-run peak is a 2048^3 float32 ``numpy.matmul`` on all cores
(``epoch_processes.gemm_peak``), measured at the start, in the middle and at the end; the best is the peak.

The ratios are baseline / fastnn (>1: fastnn faster); :data:`GOALS` holds the issue's goal for each, and
for the fraction of the floor or of the peak.  A contender whose library (torch, onnxruntime and onnx) is
missing is skipped with a note.  ``--against main=/path/to/python`` adds another build of fastnn as a
contender in every row (its children run by that Python, with PYTHONPATH's fastnn trees removed, so that it
imports its own fastnn).  Each run is saved as ``bench/.speed/speed_<time>.json`` (git-ignored; ``--no-save``
not), the whole result: settings, machine (CPU, cores, fastnn's loaded core, library versions, BLAS threads,
load), the peak, per-row medians, spreads, ratios, fractions and goals, and every child's times.
``compare.py --speed`` (``make bench-compare``) compares two saved tables.  A measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import epoch_processes as EP  # noqa: E402  (beside this file; standard library only at import)
import inference  # noqa: E402

SCRIPT = os.path.abspath(__file__)
#: Where every run is saved, for ``compare.py --speed``.
SAVE_DIR = os.path.join(os.path.dirname(SCRIPT), ".speed")
#: The document kind written in every saved table.
KIND = "fastnn speed table"


@dataclass(frozen=True)
class Row:
    """One row of the table: its work (mlp, cnn, dropin, predict) at one batch size, and its baselines."""

    title: str
    work: str
    batch: int
    baselines: tuple
    basis: str | None = None  # what the fastnn time is a fraction of: 'floor', 'peak' or nothing


ROWS = {
    "mlp32": Row("MLP 1024-64-36 epoch, float32, batch 32", "mlp", 32, ("torch", "numpy"), "floor"),
    "mlp1024": Row("MLP 1024-64-36 epoch, float32, batch 1024", "mlp", 1024, ("torch", "numpy"), "floor"),
    "cnn32": Row("CNN epoch (1x32x32, conv 16, pool, conv 32, pool, 128, 36), batch 32", "cnn", 32, ("torch",),
                 "peak"),
    "cnn256": Row("the same CNN epoch, batch 256", "cnn", 256, ("torch",), "peak"),
    "dropin": Row("drop-in fastnn.nn coursework loop, float64, batch 32", "dropin", 32, ("numpy",)),
    "predict1": Row("MLP.predict_proba 1024-64-36, float32, batch 1", "predict", 1, ("onnxruntime",)),
    "predict32": Row("MLP.predict_proba, batch 32", "predict", 32, ("onnxruntime",)),
    "predict1024": Row("MLP.predict_proba, batch 1024", "predict", 1024, ("onnxruntime",)),
}

#: Issue 24's goals: {row: {baseline: least ratio baseline / fastnn, 'peak': least fraction of the row's basis}}.
#: The issue sets none for predict_proba at batch 1024 (reported, not judged).
GOALS = {
    "mlp32": {"torch": 8.0, "peak": 0.75},
    "mlp1024": {"torch": 1.3, "peak": 0.75},
    "cnn32": {"torch": 3.0, "peak": 0.65},
    "cnn256": {"torch": 2.0, "peak": 0.65},
    "dropin": {"numpy": 1.7},
    "predict1": {"onnxruntime": 1.0},
    "predict32": {"onnxruntime": 1.3},
    "predict1024": {},
}

#: What each contender is, per work.
LABELS = {
    ("mlp", "fastnn"): "fastnn fused float32", ("mlp", "torch"): "torch eager float32",
    ("mlp", "numpy"): "numpy loop float64",
    ("cnn", "fastnn"): "fastnn compiled epoch", ("cnn", "torch"): "torch eager float32",
    ("dropin", "fastnn"): "fastnn.nn float64", ("dropin", "numpy"): "numpy nn.py float64",
    ("predict", "fastnn"): "fastnn predict_proba", ("predict", "onnxruntime"): "onnxruntime, 1 thread",
}

#: The modules a baseline needs (a missing one skips it).
NEEDS = {"torch": ("torch",), "onnxruntime": ("onnxruntime", "onnx"), "numpy": ()}

N_SAMPLES = EP.N_SAMPLES
HIDDEN = EP.SIZES[1]


def expand_rows(names) -> list:
    """Row names in the table's order from names and groups (mlp, cnn, dropin, predict)."""
    wanted = set()
    for name in names:
        hits = [r for r, row in ROWS.items() if name in (r, row.work)]
        if not hits:
            raise ValueError(f"unknown row {name!r}: choose from {', '.join(ROWS)} or mlp, cnn, dropin, predict")
        wanted.update(hits)
    return [r for r in ROWS if r in wanted]


def label(row: str, contender: str) -> str:
    """A contender's name in the table: ``fastnn@LABEL`` for another build."""
    if "@" in contender:
        return f"fastnn {contender.split('@', 1)[1]}"
    return LABELS.get((ROWS[row].work, contender), contender)


# ------------------------------------------------------------------------------ children

def probe() -> dict:
    """This process's libraries: epoch_processes' probe, plus onnx, onnxruntime, fastnn's core and the BLAS."""
    info = EP.probe()
    for name in ("onnx", "onnxruntime"):
        try:
            info[name] = __import__(name).__version__
        except Exception as exc:  # noqa: BLE001 - ImportError, or a broken install
            info[name] = None
            info[f"{name}_error"] = f"{type(exc).__name__}: {exc}"
    try:
        import fastnn.functional as F

        info["core_info"] = F.core_info()
    except Exception as exc:  # noqa: BLE001 - an older build without core_info
        info["core_info"] = f"{type(exc).__name__}: {exc}"
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [{k: p.get(k) for k in ("user_api", "internal_api", "num_threads", "version")}
                        for p in threadpool_info()]
    except Exception:  # noqa: BLE001 - threadpoolctl is optional
        info["blas"] = None
    return info


def _dropin_epoch(contender: str):
    import epoch_benchmark as B

    from fastnn import coursework

    if contender == "numpy":
        from fastnn.coursework import numpy_nn as nn
    else:
        import fastnn.nn as nn
    X, Y = B.make_data(N_SAMPLES, seed=EP.SEED)
    params, batches = coursework.setup(nn, X, Y, HIDDEN, 32, EP.SEED)
    return lambda: coursework.epoch(nn, params, batches, EP.LR)


def _cnn_epoch(contender: str, batch: int):
    import bench_conv as C

    X, T = C.make_data()
    if contender == "torch":
        import torch

        return C.TorchEpoch(X, T, batch, threads=torch.get_num_threads()), {"torch_threads": torch.get_num_threads()}
    return C.FastnnEpoch(X, T, batch, threads=None), {}


def child(row: str, contender: str, rounds: int, calls: int) -> dict:
    """One process's measurement of ``contender`` ('fastnn', 'numpy', 'torch', 'onnxruntime') on ``row``."""
    spec = ROWS[row]
    if spec.work == "mlp":
        return EP.mlp_epoch_times(contender, spec.batch, rounds)
    if spec.work == "predict":
        per_call = inference.predict_times(contender, [spec.batch], calls, rounds)[spec.batch]
        return {"times": [per_call], "load1": os.getloadavg()[0]}
    info = {}
    if spec.work == "cnn":
        import bench_conv as C

        fn, info = _cnn_epoch(contender, spec.batch)
        info["flops"] = C.epoch_flops()
    elif spec.work == "dropin":
        fn = _dropin_epoch(contender)
    else:
        raise SystemExit(f"unknown work {spec.work!r}")
    timed = EP.timed_rounds(fn, rounds)
    first = timed.pop("first")
    timed["first_epoch_loss"] = float(first[0] if isinstance(first, tuple) else getattr(first, "loss", first))
    return {**timed, **info}


# -------------------------------------------------------------------------------- summary

def row_flops(row: str, runs) -> float | None:
    """Flops of the row's basis: the MLP's products' floor, or the CNN's products (from its children)."""
    spec = ROWS[row]
    if spec.basis == "floor":
        return EP.epoch_flops()
    if spec.basis == "peak":
        return next((r["flops"] for r in runs if "flops" in r), None)
    return None


def summarise(rows: dict, peak_flops: float | None, flops: dict) -> dict:
    """Per row: each contender's median of per-process medians and spread, the ratios baseline / fastnn, the
    fraction of the floor or peak, and the goals' status.

    ``rows`` is {row: {contender: [per-process median seconds, ...]}}, ``flops`` {row: flops of its basis}.
    """
    out = {}
    for row, per in rows.items():
        spec = ROWS[row]
        contenders = {}
        for c, meds in per.items():
            if not meds:
                continue
            med = statistics.median(meds)
            contenders[c] = {"label": label(row, c), "median_s": med, "min_s": min(meds), "max_s": max(meds),
                             "spread": max(meds) / min(meds), "per_process": list(meds)}
            if flops.get(row) and peak_flops:
                contenders[c]["fraction_of_peak"] = flops[row] / med / peak_flops
        fast = contenders.get("fastnn")
        ratios = {c: s["median_s"] / fast["median_s"] for c, s in contenders.items() if fast and c != "fastnn"}
        fraction = fast.get("fraction_of_peak") if fast else None
        out[row] = {"title": spec.title, "batch": spec.batch, "basis": spec.basis, "contenders": contenders,
                    "ratios": ratios, "fraction_of_peak": fraction, "basis_flops": flops.get(row),
                    "goals": goal_status(row, ratios, fraction)}
    return out


def goal_status(row: str, ratios: dict, fraction: float | None) -> dict:
    """{'torch' / 'peak' / ...: {'goal', 'value', 'met'}} for each of the row's goals (value None: not measured)."""
    status = {}
    for key, goal in GOALS.get(row, {}).items():
        value = fraction if key == "peak" else ratios.get(key)
        status[key] = {"goal": goal, "value": value, "met": None if value is None else value >= goal}
    return status


def table_ratios(doc: dict) -> dict:
    """{(row, key): value} of a saved table: every ratio baseline / fastnn (key: the baseline) and fastnn's
    fraction of the floor or peak (key 'peak'); the numbers ``compare.py --speed`` guards."""
    out = {}
    for row, r in doc.get("rows", {}).items():
        for c, v in r.get("ratios", {}).items():
            out[(row, c)] = v
        if r.get("fraction_of_peak") is not None:
            out[(row, "peak")] = r["fraction_of_peak"]
    return out


def describe_key(row: str, key: str) -> str:
    """'mlp32: torch / fastnn' or 'mlp32: fastnn of floor'."""
    if key == "peak":
        return f"{row}: fastnn of {ROWS[row].basis if row in ROWS else 'peak'}"
    return f"{row}: {key} / fastnn"


def saved_tables(folder: str = SAVE_DIR) -> list:
    """Paths of the saved tables in ``folder``, oldest first (by the start time they record, then name)."""
    found = []
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            if not name.endswith(".json"):
                continue
            try:
                with open(path) as fh:
                    doc = json.load(fh)
            except (OSError, ValueError) as exc:
                print(f"note: skipping {path}: {exc}", file=sys.stderr)
                continue
            if isinstance(doc, dict) and doc.get("kind") == KIND:
                found.append((str(doc.get("started", "")), name, path))
    return [p for *_, p in sorted(found)]


# --------------------------------------------------------------------------------- parent

def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _env_without_fastnn_trees() -> dict:
    """The environment for another build's children: PYTHONPATH without folders that hold a fastnn package."""
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
             if p and not os.path.isfile(os.path.join(p, "fastnn", "__init__.py"))]
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def _missing(info: dict, contender: str) -> str | None:
    for module in NEEDS.get(contender, ()):
        if info.get(module) is None:
            return f"{module} is not importable ({info.get(module + '_error', 'not installed')})"
    return None


def _time(s: float) -> str:
    return f"{s * 1e3:9.2f} ms" if s >= 1e-3 else f"{s * 1e6:9.1f} us"


def print_table(result: dict, peak_flops: float | None) -> None:
    """The table: per row fastnn's time and fraction, and per baseline its time, ratio, goal and whether met."""
    peak = f"{peak_flops / 1e9:.0f}" if peak_flops else "-"
    head = (f"{'row':<12}{'contender':<24}{'median':>13}{'spread':>8}{'ratio':>9}{'goal':>8}  {'met':<5}"
            f"{'fastnn of':>11}{'goal':>7}  {'met':<5}{'peak GFLOP/s':>13}")
    print(head)
    print("-" * len(head))
    for row, r in result.items():
        cs = r["contenders"]
        goals = r["goals"]
        print(f"{row:<12}{r['title']}")
        for c, s in cs.items():
            ratio = r["ratios"].get(c)
            g = goals.get(c) if c != "fastnn" else None
            line = (f"{'':<12}{s['label']:<24}{_time(s['median_s']):>13}{s['spread']:>7.2f}x"
                    f"{(f'{ratio:.2f}x' if ratio is not None else ''):>9}"
                    f"{_goal(g, 'x'):>8}  {_met(g):<5}")
            if c == "fastnn" and r["fraction_of_peak"] is not None:
                gp = goals.get("peak")
                line += (f"{r['fraction_of_peak']:>5.0%} {r['basis']:<5}"
                         f"{_goal(gp, '%'):>7}  {_met(gp):<5}{peak:>13}")
            print(line)
        for c in ROWS[row].baselines:
            if c not in cs:
                print(f"{'':<12}{LABELS.get((ROWS[row].work, c), c):<24}{'not measured':>13}"
                      + (f"{'':>17}{_goal(goals[c], 'x'):>8}  {'-':<5}" if c in goals else ""))
    print("ratio: baseline / fastnn (>1: fastnn faster); fastnn of floor: the products' floor at the peak / fastnn's "
          "time; of peak: fastnn's GFLOP/s / the peak")


def _goal(g, unit: str) -> str:
    if not g:
        return ""
    return f">={g['goal']:.0%}" if unit == "%" else f">={g['goal']:g}x"


def _met(g) -> str:
    if not g:
        return ""
    return "-" if g["met"] is None else ("yes" if g["met"] else "no")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--rows", nargs="+", default=["all"], metavar="ROW",
                    help=f"rows or groups (mlp, cnn, dropin, predict); default all: {' '.join(ROWS)}")
    ap.add_argument("--processes", type=int, default=6, help="processes per contender and row (6)")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds per process, after one warm-up (5)")
    ap.add_argument("--calls", type=int, default=2000, help="predict_proba calls per round at batch <= 32 (2000)")
    ap.add_argument("--json", metavar="OUT", help="also write the whole result to this file")
    ap.add_argument("--no-save", action="store_true", help=f"do not save the result under {SAVE_DIR}")
    ap.add_argument("--against", action="append", default=[], metavar="LABEL=PYTHON",
                    help="another build of fastnn as a contender in every row, run by that Python (repeatable)")
    ap.add_argument("--baselines-without-fastnn-malloc", action="store_true",
                    help="run the baselines' children with FASTNN_MALLOPT=0 (glibc malloc as in a process that "
                         "never imported fastnn)")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        row, contender = args.child
        if row in ("probe", "gemm"):
            print(json.dumps(probe() if row == "probe" else EP.gemm_peak()))
        else:
            print(json.dumps(child(row, contender, args.rounds, args.calls)))
        return 0
    try:
        rows = list(ROWS) if args.rows == ["all"] else expand_rows(args.rows)
    except ValueError as exc:
        ap.error(str(exc))
    if args.processes < 1 or args.rounds < 1 or args.calls < 1:
        ap.error("--processes, --rounds and --calls must be positive")
    pythons = {}
    for spec in args.against:
        name, _, python = spec.partition("=")
        if not name or not python or "@" in name:
            ap.error(f"--against: expected LABEL=PYTHON, got {spec!r}")
        pythons[f"fastnn@{name}"] = python

    started = time.time()
    load_start = EP.load_average()
    with tempfile.TemporaryDirectory(prefix="fastnn-speed-table-") as workdir:
        def run(*child_args, python=None, env=None):
            return EP.run_child(workdir, *child_args, "--rounds", args.rounds, "--calls", args.calls,
                                python=python, env=env, script=SCRIPT)

        info = run("probe", "-")
        print(f"python {info['python']} ({sys.executable}), numpy {info['numpy']}, fastnn {info['fastnn']} from "
              f"{info['fastnn_file']}; core {info.get('core_info')}")
        torch = f"{info['torch']} ({info.get('torch_threads')} threads)" if info.get("torch") else "not importable"
        print(f"torch {torch}, onnxruntime {info.get('onnxruntime') or 'not importable'}, onnx "
              f"{info.get('onnx') or 'not importable'}; BLAS {info.get('blas')}")
        skipped = {}
        for c in ("torch", "onnxruntime"):
            why = _missing(info, c)
            if why and any(c in ROWS[r].baselines for r in rows):
                skipped[c] = why
                print(f"note: {why}; skipping the {c} contender")
        others = {}
        against_env = _env_without_fastnn_trees()
        for name, python in pythons.items():
            try:
                others[name] = run("probe", "-", python=python, env=against_env)
            except (RuntimeError, OSError) as exc:
                skipped[name] = str(exc).splitlines()[0]
                print(f"note: {name} ({python}) does not run: {skipped[name]}; skipping it")
                continue
            print(f"{name}: fastnn {others[name]['fastnn']} from {others[name]['fastnn_file']} ({python}), "
                  f"core {others[name].get('core_info')}")
        contenders = {r: ["fastnn", *others, *(c for c in ROWS[r].baselines if c not in skipped)] for r in rows}
        n_runs = args.processes * sum(len(c) for c in contenders.values())
        print(f"{os.cpu_count()} cores ({_cpu_model()}), load average at start {load_start}; {n_runs} processes "
              f"({args.processes} per contender and row, interleaved), 1 warm-up + {args.rounds} rounds each; "
              "GEMM peak at the start, middle and end", flush=True)

        runs = {r: {c: [] for c in cs} for r, cs in contenders.items()}
        failures = []
        gemm = [run("gemm", "-")]
        for p in range(args.processes):
            for r in rows:
                cs = contenders[r]
                for c in cs[p % len(cs):] + cs[:p % len(cs)]:  # rotated each round
                    env = None
                    if c in pythons:
                        env = against_env
                    elif c != "fastnn" and args.baselines_without_fastnn_malloc:
                        env = {**os.environ, "FASTNN_MALLOPT": "0"}
                    try:
                        runs[r][c].append(run(r, c.split("@")[0], python=pythons.get(c), env=env))
                    except RuntimeError as exc:
                        failures.append({"row": r, "contender": c, "error": str(exc)})
                        print(f"note: {r} {c} failed: {str(exc).strip().splitlines()[-1]}", flush=True)
            if p == (args.processes - 1) // 2:
                gemm.append(run("gemm", "-"))
            print(f"  round {p + 1}/{args.processes} done ({time.time() - started:.0f} s, load "
                  f"{EP.load_average()})", flush=True)
        gemm.append(run("gemm", "-"))

    load_end = EP.load_average()
    peak = max(g["gflops_best"] for g in gemm) * 1e9
    medians = {r: {c: [statistics.median(x["times"]) for x in rs] for c, rs in per.items()}
               for r, per in runs.items()}
    flops = {r: row_flops(r, [x for rs in per.values() for x in rs]) for r, per in runs.items()}
    result = summarise(medians, peak, flops)
    print()
    print(f"GEMM peak: {EP.GEMM_N}^3 float32 numpy.matmul on all cores, best of {EP.GEMM_REPEATS} in each of "
          f"{len(gemm)} children: " + ", ".join(f"{g['gflops_best']:.1f}" for g in gemm)
          + f" GFLOP/s; peak used: {peak / 1e9:.1f} GFLOP/s")
    print("times: median over processes of each process's median; spread: max/min of those medians")
    print()
    print_table(result, peak)
    elapsed = time.time() - started
    print()
    print(f"load average (1, 5, 15 min): {load_start} at start, {load_end} at end; {elapsed:.0f} s in all")

    doc = {
        "kind": KIND,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "elapsed_s": elapsed,
        "settings": {"rows": rows, "processes": args.processes, "rounds": args.rounds, "calls": args.calls,
                     "against": pythons, "baselines_without_fastnn_malloc": args.baselines_without_fastnn_malloc},
        "machine": {"cpu_model": _cpu_model(), "cores": os.cpu_count(), "platform": platform.platform(),
                    "executable": sys.executable, "core_info": info.get("core_info"), "libraries": info,
                    "against": others, "load_start": load_start, "load_end": load_end},
        "peak": {"n": EP.GEMM_N, "gflops_best": [g["gflops_best"] for g in gemm], "peak_flops": peak,
                 "children": gemm},
        "goals": {r: GOALS[r] for r in rows},
        "skipped": skipped,
        "failures": failures,
        "rows": result,
        "runs": {r: {c: rs for c, rs in per.items()} for r, per in runs.items()},
    }
    paths = [] if args.no_save else [os.path.join(SAVE_DIR, time.strftime("speed_%Y%m%d-%H%M%S.json",
                                                                          time.localtime(started)))]
    if args.json:
        paths.append(args.json)
    for path in paths:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as fh:
            json.dump(doc, fh, indent=1)
        print(f"result written to {path}")
    return 1 if failures and not any(x for per in runs.values() for rs in per.values() for x in rs) else 0


if __name__ == "__main__":
    sys.exit(main())
