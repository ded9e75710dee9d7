"""Single and small-batch predictions: ``MLP.predict_proba`` against onnxruntime on fastnn's own ONNX export.

    python bench/inference.py [--batches 1 32 1024] [--processes 4] [--calls 2000] [--base DIR] [--json OUT]

The issue's network (1024-64-36, sigmoid/softmax, float32, seed 0).  Each contender runs in its own fresh
processes, alternating (fastnn, onnxruntime, [base], fastnn, ...) so that a slow phase of a shared machine
hits all alike; each process times ``--calls`` calls per batch size (fewer for large batches) in rounds and
prints its median per call.  The table gives the median over processes and the ratio onnxruntime / fastnn
(>1: fastnn faster).  onnxruntime runs with one intra-op and one inter-op thread, as a single prediction's
caller would set it; fastnn with its default threads (a product too small to split runs on one).  ``--base
DIR`` adds the fastnn of another source tree (its compiled core built) as a third contender, e.g. the build
before a change.  Needs onnx and onnxruntime (``pip install 'fastnn[onnx]'``).  A measurement, not a test.
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
from pathlib import Path

SCRIPT = os.path.abspath(__file__)


def predict_times(contender: str, batches, calls: int, rounds: int = 7) -> dict:
    """{batch: median seconds per call} of ``contender`` ('fastnn': ``MLP.predict_proba``; 'onnxruntime': fastnn's
    own export, one intra-op and one inter-op thread) in this process, ``rounds`` rounds of calls per batch."""
    import numpy as np

    from fastnn.models import MLP

    model = MLP([1024, 64, 36], ["sigmoid", "softmax"], dtype="float32", seed=0)
    rng = np.random.default_rng(0)
    if contender == "onnxruntime":
        import onnxruntime as ort

        from fastnn.onnx import to_onnx

        path = to_onnx(model, os.path.join(tempfile.mkdtemp(), "m.onnx"))
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name

        def predict(X):
            return session.run(None, {name: X})[0]
    else:
        predict = model.predict_proba
    out = {}
    for n in batches:
        X = rng.random((n, 1024), dtype=np.float32)
        k = max(5, calls * 32 // max(n, 32))
        predict(X)
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            for _ in range(k):
                predict(X)
            times.append((time.perf_counter() - t0) / k)
        out[n] = statistics.median(times)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 32, 1024])
    p.add_argument("--processes", type=int, default=4)
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--base", help="another source tree's fastnn, as a third contender")
    p.add_argument("--json")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(predict_times(args.child, args.batches, args.calls)))
        return 0
    here = str(Path(__file__).resolve().parents[1])
    contenders = {"fastnn": here, "onnxruntime": here}
    if args.base:
        contenders["base"] = str(Path(args.base).resolve())
    times = {c: [] for c in contenders}
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as cwd:  # (not a source tree's folder: PYTHONPATH picks the fastnn)
        for _ in range(args.processes):
            for name, tree in contenders.items():
                env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [tree, os.environ.get("PYTHONPATH")])))
                proc = subprocess.run([sys.executable, SCRIPT, "--child", name, "--batches", *map(str, args.batches),
                                       "--calls", str(args.calls)], capture_output=True, text=True, env=env, cwd=cwd)
                if proc.returncode:
                    print(f"inference: {name} failed:\n{proc.stderr}", file=sys.stderr)
                    return 1
                times[name].append({int(k): v for k, v in json.loads(proc.stdout).items()})
    print(f"1024-64-36 float32, median over {args.processes} processes of each one's median per call "
          f"(load {load[0]:.2f} -> {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs)")
    rows = {}
    for n in args.batches:
        med = {c: statistics.median(t[n] for t in times[c]) for c in contenders}
        rows[n] = med
        extra = f"   base {med['base'] * 1e6:9.1f} us" if "base" in med else ""
        print(f"batch {n:>5}: fastnn {med['fastnn'] * 1e6:9.1f} us   onnxruntime {med['onnxruntime'] * 1e6:9.1f} us"
              f"   onnxruntime / fastnn {med['onnxruntime'] / med['fastnn']:.2f}{extra}")
    if args.json:
        Path(args.json).write_text(json.dumps({"load": load, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
