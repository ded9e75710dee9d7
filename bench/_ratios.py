"""How the benchmarks' speedup ratios are formed; shared by ``conftest.py`` (the table at the end of a run)
and ``compare.py`` (two saved runs side by side).  Standard library only.

A result row is a dict with ``group``, ``label``, ``role`` ('fastnn' or 'baseline'), ``dtype``,
``any_dtype`` and the times ``mean``, ``median``, ``min`` (seconds).  In each group, every fastnn
row is paired with every baseline row of the same dtype, or with any dtype when the baseline is
marked ``any_dtype`` (the NumPy coursework loop, always float64); the speedup of a pair is the
baseline's time divided by fastnn's (>1: fastnn faster).
"""

from __future__ import annotations

from collections.abc import Mapping

#: The statistics a ratio is formed of, in the order the tables print them.
STATS = ("mean", "median", "min")


def result_row(group, info, stats) -> dict:
    """One result row from a benchmark's group, its ``extra_info`` and its stats (a mapping or an object)."""
    get = stats.get if isinstance(stats, Mapping) else (lambda k: getattr(stats, k))
    return dict(group=group, label=info["label"], role=info["role"], dtype=info["dtype"],
                any_dtype=info.get("any_dtype", False), **{k: get(k) for k in STATS})


def rows_from_saved(data: Mapping) -> list:
    """The result rows of a run saved by pytest-benchmark (``--benchmark-save`` / ``--benchmark-autosave``).

    Benchmarks that were not tagged by the ``tag`` fixture (no ``impl`` in ``extra_info``) or that
    have no stats (failed, skipped) are left out, as in the table at the end of a run.
    """
    out = []
    for b in data.get("benchmarks", []):
        info = b.get("extra_info") or {}
        if "impl" not in info or not b.get("stats"):
            continue
        out.append(result_row(b.get("group"), info, b["stats"]))
    return out


def pairs(results):
    """(group, fastnn row, baseline row) for every fastnn row and every baseline it is compared with."""
    groups = {}
    for r in results:
        groups.setdefault(r["group"], []).append(r)
    for group, rows in groups.items():
        for f in (r for r in rows if r["role"] == "fastnn"):
            for b in (r for r in rows if r["role"] == "baseline"):
                if b["any_dtype"] or b["dtype"] == f["dtype"]:
                    yield group, f, b


def speedup(f: Mapping, b: Mapping) -> tuple:
    """Baseline time / fastnn time by mean, median and min (the order of :data:`STATS`)."""
    return tuple(b[k] / f[k] for k in STATS)


def speedups(results) -> dict:
    """{(group, fastnn label, baseline label): (by mean, by median, by min)} over all :func:`pairs`."""
    return {(group, f["label"], b["label"]): speedup(f, b) for group, f, b in pairs(results)}
