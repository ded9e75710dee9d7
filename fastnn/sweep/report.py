"""What a sweep writes at the end: ``sweep.md`` (every run, best first), ``sweep.json`` and the heatmap of the
metric over the two grid axes with the most values (averaged over the others)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from .._io import atomic_write
from ..tasks.common import format_value, pyplot, save_figure
from .grid import value_text

__all__ = ["HEATMAP_NAME", "LOWER_IS_BETTER", "plain", "write_json", "choose_metric", "sweep_table", "write_summary"]

#: The heatmap's file name in ``out``.
HEATMAP_NAME = "sweep_heatmap.png"
#: Metric names for which lower is better (the table is sorted ascending).
LOWER_IS_BETTER = re.compile(r"(loss|error|cer)(_|$)")


def plain(value):
    """``value`` as JSON can hold it (NumPy scalars as numbers, anything else unknown as text)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return plain(value.item())
    return str(value)


def write_json(path: Path, content) -> None:
    """``content`` as indented JSON in ``path``, written atomically."""
    with atomic_write(path, "w") as fh:
        fh.write(json.dumps(content, indent=2) + "\n")


def choose_metric(metric, records):
    """``metric`` when given, else the runs' ``valid_accuracy``, else their first figure whose name holds
    ``valid``, else their first figure (None when no run succeeded)."""
    heads = [r["headline"] for r in records if r["status"] == "ok"]
    if metric is not None or not heads:
        return metric
    keys = list(heads[0])
    for pick in ([k for k in keys if k == "valid_accuracy"], [k for k in keys if "valid" in k], keys):
        if pick:
            return pick[0]
    return None


def sweep_table(records, metric) -> list:
    """The records best first by ``metric`` (runs without it after those with it), failed runs last."""
    lower = bool(metric and LOWER_IS_BETTER.search(metric))

    def rank(r):
        value = r.get("headline", {}).get(metric) if r["status"] == "ok" else None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return (1 if r["status"] == "ok" else 2, 0.0)
        return (0, value if lower else -value)
    return sorted(records, key=rank)


def _heatmap_axes(grid):
    """The two axes with the most values (the first in grid order on ties), or one, or none."""
    axes = sorted((k for k in grid if len(grid[k]) > 1), key=lambda k: -len(grid[k]))[:2]
    return [k for k in grid if k in axes]


def _heatmap(out: Path, task_name, grid, metric, ok):
    """The mean of ``metric`` over the other axes, on the two axes of :func:`_heatmap_axes`; its path and grid."""
    import numpy as np

    axes = _heatmap_axes(grid)
    if not axes or metric is None:
        return None, None
    ys, xs = (axes if len(axes) == 2 else [None, axes[0]])
    xv = grid[xs]
    yv = grid[ys] if ys else [None]
    sums = np.zeros((len(yv), len(xv)))
    counts = np.zeros((len(yv), len(xv)), dtype=int)
    for r in ok:
        value = r["headline"].get(metric)
        if not isinstance(value, (int, float)):
            continue
        i = yv.index(r["grid"][ys]) if ys else 0
        j = xv.index(r["grid"][xs])
        sums[i, j] += value
        counts[i, j] += 1
    with np.errstate(invalid="ignore"):
        mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    others = [k for k in grid if k not in axes and len(grid[k]) > 1]
    how = f"mean over {', '.join(others)}" if others else "one run per cell"
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(xv), 1.4 + 0.8 * len(yv)))
    im = ax.imshow(mean, cmap="viridis", aspect="auto")
    for i in range(len(yv)):
        for j in range(len(xv)):
            text = "failed" if counts[i, j] == 0 else f"{mean[i, j]:.3f}"
            ax.text(j, i, text, ha="center", va="center", color="w" if counts[i, j] == 0 or mean[i, j] <
                    np.nanmean(mean) else "k", fontsize=9)
    ax.set_xticks(range(len(xv)), [value_text(v) for v in xv])
    ax.set_xlabel(xs)
    if ys:
        ax.set_yticks(range(len(yv)), [value_text(v) for v in yv])
        ax.set_ylabel(ys)
    else:
        ax.set_yticks([])
    ax.set_title(f"{task_name}: {metric} ({how})", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    path = save_figure(fig, out / HEATMAP_NAME)
    cells = {"x": xs, "y": ys, "x_values": plain(xv), "y_values": plain(yv) if ys else None, "reduce": how,
             "values": [[None if counts[i, j] == 0 else float(mean[i, j]) for j in range(len(xv))]
                        for i in range(len(yv))]}
    return path, cells


def write_summary(out: Path, task_name, grid, fixed, metric, records) -> dict:
    """``sweep.md``, ``sweep.json`` and the heatmap; return their paths."""
    ranked = sweep_table(records, metric)
    ok = [r for r in ranked if r["status"] == "ok"]
    failed = [r for r in ranked if r["status"] != "ok"]
    heatmap, cells = _heatmap(out, task_name, grid, metric, ok)
    figures = []
    for r in ok:
        figures += [k for k, v in r["headline"].items() if k not in figures and not isinstance(v, (dict, list))]
    if metric in figures:
        figures.remove(metric)
        figures.insert(0, metric)
    lines = [f"# Sweep of {task_name}: {len(ok) + len(failed)} runs, {len(failed)} failed", ""]
    if fixed:
        lines += ["Every run: " + ", ".join(f"{k}={value_text(v)}" for k, v in fixed.items()), ""]
    if metric:
        order = "ascending" if LOWER_IS_BETTER.search(metric) else "descending"
        lines += [f"Sorted by {metric} ({order}).", ""]
    columns = ["#", *grid, *figures, "seconds"]
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for n, r in enumerate(ok, 1):
        row = [str(n), *(value_text(r["grid"][k]) for k in grid),
               *(format_value(r["headline"].get(k, "")) for k in figures), f"{r.get('seconds', 0):.1f}"]
        lines.append("| " + " | ".join(row) + " |")
    for r in failed:
        lines.append("| failed | " + " | ".join(value_text(r["grid"][k]) for k in grid) + " | " + r["error"]
                     .replace("|", "\\|") + " |")
    if heatmap is not None:
        lines += ["", f"![{metric} over {cells['x']}{' and ' + cells['y'] if cells['y'] else ''}]({HEATMAP_NAME})"
                      f" ({cells['reduce']})"]
    if failed:
        lines += ["", "Failed runs (their errors and tracebacks are in runs/<key>.failed.json; they run again when "
                      "the sweep is resumed):", ""] + [f"- {r['key']}: {r['error']}" for r in failed]
    with atomic_write(out / "sweep.md", "w") as fh:
        fh.write("\n".join(lines) + "\n")
    write_json(out / "sweep.json", {"task": task_name, "grid": plain(grid), "fixed": plain(fixed), "metric": metric,
                                     "runs": ranked, "heatmap": cells})
    files = {"table": out / "sweep.md", "json": out / "sweep.json"}
    if heatmap is not None:
        files["heatmap"] = heatmap
    return files
