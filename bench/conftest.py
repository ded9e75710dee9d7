"""Shared pieces of the benchmarks: tagging each benchmark, and the speedup table printed at the end.

Every benchmark records in ``benchmark.extra_info`` which implementation it times (``impl``),
its dtype and whether it is the fastnn side or a baseline.  Each group holds one
measurement setting (kernel, batch, width, dtype), with fastnn and its baselines side by side;
at the end of the session the table below divides each baseline's time by fastnn's.
"""

import os
import sys

import numpy as np
import pytest

if os.path.dirname(os.path.abspath(__file__)) not in sys.path:  # _ratios beside this file, whatever the pythonpath
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _ratios import pairs as _pairs, result_row, speedup  # noqa: E402  (shared with compare.py)

#: The numbers the team reports: (label, group, fastnn label, baseline label, target speedup).
HEADLINES = [
    ("drop-in fastnn.nn vs NumPy nn.py, batch 32 float64", "dropin b=32 float64",
     "fastnn.nn float64", "numpy float64", 2.0),
    ("fused float32 vs NumPy float64 loop, batch 32", "epoch b=32", "fused float32", "numpy float64", 6.0),
    ("fused float32 vs torch eager float32, batch 32", "epoch b=32", "fused float32", "torch float32", 5.0),
    ("fused float64 vs torch eager float64, batch 32", "epoch b=32", "fused float64", "torch float64", None),
    ("fused float32 vs torch eager float32, batch 1024", "epoch b=1024", "fused float32", "torch float32", 1.0),
    ("fused float64 vs torch eager float64, batch 1024", "epoch b=1024", "fused float64", "torch float64", 1.0),
    ("fused float32 vs sklearn MLPClassifier float32, batch 32", "epoch b=32", "fused float32", "sklearn float32",
     None),
    ("autoencoder fused float32 vs NumPy float64, batch 36", "autoencoder b=36", "fused float32", "numpy float64",
     None),
    ("autoencoder fused float64 vs NumPy float64, batch 36", "autoencoder b=36", "fused float64", "numpy float64",
     None),
]


@pytest.fixture
def rng():
    """A fresh generator per test (never the global one)."""
    return np.random.default_rng(20240)


@pytest.fixture
def tag(benchmark):
    """tag(group, impl, dtype, fastnn=False, any_dtype=False): name this benchmark's group and side.

    ``any_dtype`` marks a baseline that is compared with fastnn in every dtype (the NumPy
    coursework loop always runs in float64); other baselines pair with fastnn of their own dtype.
    """
    def _tag(group, impl, dtype, *, fastnn=False, any_dtype=False):
        benchmark.group = group
        benchmark.extra_info.update(impl=impl, dtype=str(np.dtype(dtype)), role="fastnn" if fastnn else "baseline",
                                    label=f"{impl} {np.dtype(dtype)}", any_dtype=any_dtype)
    return _tag


def _results(config):
    session = getattr(config, "_benchmarksession", None)  # pytest-benchmark's session (its own display uses it)
    out = []
    for b in getattr(session, "benchmarks", []) or []:
        info = b.extra_info or {}
        if "impl" not in info or not b.stats:
            continue
        out.append(result_row(b.group, info, b.stats))
    return out


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, config):
    """After pytest-benchmark's tables: the speedups (baseline mean / fastnn mean) of every group."""
    results = _results(config)
    if not results:
        return
    tr = terminalreporter
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    tr.write_sep("=", "fastnn speedups: baseline time / fastnn time (>1: fastnn faster), by mean, median and min")
    tr.write_line(f"load average now (1, 5, 15 min): {load} on {os.cpu_count()} cores; a high load makes these noisy")
    width = max(len(g) for g, _, _ in _pairs(results)) if any(True for _ in _pairs(results)) else 10
    tr.write_line(f"{'group':<{width}}  {'fastnn':<18} {'baseline':<18} {'mean':>7} {'median':>7} {'min':>7}"
                  f"  {'fastnn mean':>12}")
    table = {}
    for group, f, b in _pairs(results):
        ratios = speedup(f, b)
        table[(group, f["label"], b["label"])] = ratios
        tr.write_line(f"{group:<{width}}  {f['label']:<18} {b['label']:<18} "
                      + " ".join(f"{r:>6.2f}x" for r in ratios) + f"  {f['mean'] * 1e3:>10.3f}ms")
    tr.write_sep("-", "headline numbers: speedup by mean (median, min)")
    for label, group, fl, bl, target in HEADLINES:
        hit = table.get((group, fl, bl))
        goal = f"target >= {target:g}x" if target else ""
        if hit is None:
            tr.write_line(f"{label:<58} not measured (skipped or deselected) {goal}")
            continue
        verdict = "" if target is None else ("met" if hit[0] >= target else "MISSED")
        tr.write_line(f"{label:<58} {hit[0]:6.2f}x ({hit[1]:.2f}x, {hit[2]:.2f}x)  {goal} {verdict}")
