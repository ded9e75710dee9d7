"""Compare the speedup ratios of two saved benchmark runs; exit 1 when one dropped by more than 15%.

    python bench/compare.py [--base RUN] [--new RUN] [--stat median] [--threshold 0.15] [--dir DIR] [--list]
    python bench/compare.py --speed [BASE.json [NEW.json]] [--threshold 0.15] [--speed-dir DIR]
    python bench/compare.py --both [the options of either]      (``make bench-compare``)

``make bench`` saves every run of the pytest-benchmark suite under ``bench/.benchmarks``
(``<machine>/<NNNN>_<name>.json``).  By default this compares the two most recent saved runs;
``--base`` names the older one (its number ``0001``, a part of its file name, or a path) and
``--new`` the newer one (default: the most recent run).

The ratios are formed as at the end of a run (``_ratios.py``, shared with ``conftest.py``): in
each group, baseline time / fastnn time for every fastnn row and every baseline of the same
dtype (or of any dtype, for the NumPy float64 loop).  Ratios, not absolute times, are compared,
because on a shared machine both sides of a ratio slow down together.  A ratio has *dropped*
when new < (1 - threshold) * old; any drop makes the exit status 1.  Pairs present in only one
of the runs (a partial run, ``-k``) are listed but not judged; no pair in common exits with 2.

``--speed`` compares two tables of ``speed_table.py`` (issue 24's rows, each contender in its own processes)
instead: by default the two latest it saved under ``bench/.speed``.  Its ratios are baseline / fastnn for
every row and baseline, and fastnn's fraction of the products' floor or of the GEMM peak, both measured in
the same run; the same threshold judges them, and the new table's goals (``speed_table.GOALS``) are listed,
met or not.  ``--both`` does the two comparisons one after the other, each when there is something to compare.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _ratios import STATS, rows_from_saved, speedups  # noqa: E402
import speed_table  # noqa: E402  (standard library only at import)

DEFAULT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".benchmarks")


class Run:
    """One saved pytest-benchmark run."""

    def __init__(self, path: str, root: str):
        self.path = path
        self.name = os.path.relpath(path, root)
        self.base = os.path.basename(path)
        with open(path) as fh:
            self.data = json.load(fh)
        self.datetime = str(self.data.get("datetime", ""))

    def describe(self) -> str:
        commit = self.data.get("commit_info") or {}
        cid = str(commit.get("id") or "")
        cid = cid[:12] if re.fullmatch(r"[0-9a-f]{40}", cid) else cid
        dirty = " + uncommitted changes" if commit.get("dirty") else ""
        n = len(self.data.get("benchmarks", []))
        return f"{self.name}  ({self.datetime[:19]}, {n} benchmarks{', commit ' + cid + dirty if cid else ''})"


def saved_runs(root: str) -> list:
    """Every saved run under ``root``, oldest first (by the time pytest-benchmark recorded, then name)."""
    runs = []
    for path in glob.glob(os.path.join(root, "**", "*.json"), recursive=True):
        try:
            run = Run(path, root)
        except (OSError, ValueError) as exc:
            print(f"note: skipping {path}: {exc}", file=sys.stderr)
            continue
        if isinstance(run.data, dict) and "benchmarks" in run.data:
            runs.append(run)
    runs.sort(key=lambda r: (r.datetime, r.base, r.name))
    return runs


def find_run(runs: list, spec: str, root: str, prefer_dir: str | None = None) -> Run:
    """The run named by ``spec``: a path, a file-name prefix such as ``0001``, or a part of a file name."""
    if os.path.isfile(spec):
        return Run(spec, root)
    for test in (lambda r: r.base.startswith(spec), lambda r: spec in r.name):
        hits = [r for r in runs if test(r)]
        if len(hits) > 1 and prefer_dir is not None:
            same = [r for r in hits if os.path.dirname(r.path) == prefer_dir]
            hits = same or hits
        if len(hits) == 1:
            return hits[0]
        if hits:
            raise LookupError(f"compare.py: {spec!r} names several saved runs; be more specific:\n  "
                             + "\n  ".join(r.name for r in hits))
    raise LookupError(f"compare.py: no saved run matches {spec!r} under {root}"
                     + ("; saved runs:\n  " + "\n  ".join(r.name for r in runs) if runs else ""))


def compare(old: dict, new: dict, stat: str, threshold: float):
    """Rows (key, old ratio, new ratio, verdict) over the union of pairs; verdict is 'DROP', 'ok' or 'only ...'."""
    k = STATS.index(stat)
    return judge({key: v[k] for key, v in old.items()}, {key: v[k] for key, v in new.items()}, threshold)


def judge(old: dict, new: dict, threshold: float):
    """Rows (key, old value, new value, verdict) over the union of keys of two {key: ratio} dicts (higher is
    better); verdict is 'DROP' when new < (1 - threshold) * old, else 'ok', or 'only in base' / 'only in new'."""
    rows = []
    for key in list(old) + [key for key in new if key not in old]:
        o, n = old.get(key), new.get(key)
        if o is None or n is None:
            verdict = "only in base" if n is None else "only in new"
        else:
            verdict = "DROP" if n < (1.0 - threshold) * o else "ok"
        rows.append((key, o, n, verdict))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", help="the older run: its number (0001), part of its file name, or a path "
                                   "(default: the run before --new)")
    ap.add_argument("--new", help="the newer run (default: the most recent one)")
    ap.add_argument("--stat", choices=STATS + ("all",), default="median",
                    help="which time the ratios divide (default median; 'all' judges mean, median and min)")
    ap.add_argument("--threshold", type=float, default=0.15,
                    help="largest tolerated relative drop of a ratio (default 0.15: fail when new < 0.85 old)")
    ap.add_argument("--dir", default=DEFAULT_DIR, help=f"pytest-benchmark storage (default {DEFAULT_DIR})")
    ap.add_argument("--list", action="store_true", help="list the saved runs (and speed tables) and exit")
    ap.add_argument("--speed", nargs="*", metavar="TABLE",
                    help="compare two speed tables of speed_table.py instead: none given, the two latest under "
                         "--speed-dir; one, it against the latest; two, BASE NEW")
    ap.add_argument("--speed-dir", default=speed_table.SAVE_DIR,
                    help=f"where speed_table.py saves its tables (default {speed_table.SAVE_DIR})")
    ap.add_argument("--both", action="store_true",
                    help="the saved pytest-benchmark runs, then the speed tables (each skipped with a note when "
                         "fewer than two are saved); exit 1 if a ratio of either dropped, 2 if neither compared")
    args = ap.parse_args(argv)
    if not 0 <= args.threshold < 1:
        ap.error("--threshold must lie in [0, 1)")
    if args.speed is not None and len(args.speed) > 2:
        ap.error("--speed takes at most two tables: BASE NEW")
    root = os.path.abspath(args.dir)
    runs = saved_runs(root)
    if args.list:
        for r in runs:
            print(r.describe())
        for path in speed_table.saved_tables(args.speed_dir):
            print(path)
        return 0

    codes = []
    if args.speed is None or args.both:
        try:
            codes.append(_compare_runs(args, runs, root))
        except LookupError as exc:
            print(exc, file=sys.stderr)
            codes.append(2)
    if args.speed is not None or args.both:
        if args.both:
            print()
        try:
            codes.append(compare_speed(_speed_tables(args.speed or [], args.speed_dir), args.threshold))
        except (LookupError, OSError, ValueError) as exc:
            print(exc, file=sys.stderr)
            codes.append(2)
    if 1 in codes:
        return 1
    return 0 if 0 in codes else 2


# ------------------------------------------------------------------------ speed tables

def _speed_tables(given: list, folder: str):
    """(base path, new path) from 0, 1 or 2 given tables and the ones saved in ``folder``."""
    if len(given) == 2:
        return tuple(given)
    saved = speed_table.saved_tables(folder)
    if given:
        if not saved:
            raise LookupError(f"compare.py: no saved speed table under {folder} to compare {given[0]} with")
        return given[0], saved[-1]
    if len(saved) < 2:
        raise LookupError(f"compare.py: {len(saved)} saved speed table(s) under {folder}; run `make bench-speed` "
                          "(it saves each run) twice first")
    return saved[-2], saved[-1]


def _load_table(path: str) -> dict:
    with open(path) as fh:
        doc = json.load(fh)
    if not isinstance(doc, dict) or doc.get("kind") != speed_table.KIND:
        raise ValueError(f"compare.py: {path} is not a table of speed_table.py")
    return doc


def _value(key, v) -> str:
    if v is None:
        return f"{'-':>8}"
    return f"{v:7.1%} " if key[1] == "peak" else f"{v:7.2f}x"


def compare_speed(paths, threshold: float) -> int:
    """Compare two speed tables' ratios (baseline / fastnn, and fastnn's fraction of the floor or peak); print
    the new table's goal status.  Returns 1 when a ratio dropped by more than ``threshold``, 2 when the two
    tables share none, else 0."""
    base_path, new_path = paths
    if os.path.abspath(base_path) == os.path.abspath(new_path):
        print(f"compare.py: base and new are the same speed table ({new_path})")
        return 2
    base, new = _load_table(base_path), _load_table(new_path)
    for name, path, doc in (("base", base_path, base), ("new: ", new_path, new)):
        m = doc.get("machine", {})
        print(f"speed {name} {path}  ({doc.get('started')}, {m.get('cores')} cores, load {m.get('load_start')} -> "
              f"{m.get('load_end')}, peak {doc.get('peak', {}).get('peak_flops', 0) / 1e9:.0f} GFLOP/s)")
    print(f"ratio = baseline / fastnn (>1: fastnn faster), and fastnn's fraction of the floor or peak; "
          f"DROP when new < {1 - threshold:.2f} x base")
    rows = judge(speed_table.table_ratios(base), speed_table.table_ratios(new), threshold)
    width = max([len(speed_table.describe_key(*key)) for key, *_ in rows] + [5])
    print(f"{'ratio':<{width}}  {'base':>8} {'new':>8} {'change':>8}")
    drops, common = [], 0
    for key, o, n, verdict in rows:
        change = f"{n / o - 1:+7.1%}" if o and n is not None else f"{'':>8}"
        print(f"{speed_table.describe_key(*key):<{width}}  {_value(key, o)} {_value(key, n)} {change}  "
              f"{verdict if verdict != 'ok' else ''}")
        drops += [(key, o, n)] if verdict == "DROP" else []
        common += verdict in ("ok", "DROP")
    print()
    print("goals (issue 24) in the new table:")
    for row, r in new.get("rows", {}).items():
        status = speed_table.goal_status(row, r.get("ratios", {}), r.get("fraction_of_peak"))
        for key, g in status.items():
            got = "not measured" if g["value"] is None else _value((row, key), g["value"]).strip()
            want = f"{g['goal']:.0%}" if key == "peak" else f"{g['goal']:g}x"
            met = "-" if g["met"] is None else ("met" if g["met"] else "NOT met")
            print(f"  {speed_table.describe_key(row, key):<{width}}  {got:>12} (goal >= {want}): {met}")
    print()
    if not common:
        print("no ratio is in both speed tables: nothing compared")
        return 2
    if drops:
        print(f"{len(drops)} speed-table ratio(s) dropped by more than {threshold:.0%}:")
        for key, o, n in drops:
            print(f"  {speed_table.describe_key(*key)}: {_value(key, o).strip()} -> {_value(key, n).strip()} "
                  f"({n / o - 1:+.1%})")
        print("(the machine is noisy: re-run `make bench-speed` and compare again before believing a single drop)")
        return 1
    print(f"no speed-table ratio dropped by more than {threshold:.0%} ({common} compared)")
    return 0


def _compare_runs(args, runs, root) -> int:
    if args.new:
        new = find_run(runs, args.new, root)
    elif runs:
        new = runs[-1]
    else:
        print(f"compare.py: no saved runs under {root}; run `make bench` (it saves each run) twice first")
        return 2
    if args.base:
        base = find_run(runs, args.base, root, prefer_dir=os.path.dirname(new.path))
    else:
        older = [r for r in runs if r.path != new.path and (r.datetime, r.base) <= (new.datetime, new.base)]
        if not older:
            print(f"compare.py: only one saved run under {root} ({new.name}); nothing to compare it with")
            return 2
        base = older[-1]
    if os.path.abspath(base.path) == os.path.abspath(new.path):
        print(f"compare.py: base and new are the same run ({new.name})")
        return 2

    old_ratios, new_ratios = speedups(rows_from_saved(base.data)), speedups(rows_from_saved(new.data))
    print(f"base: {base.describe()}")
    print(f"new:  {new.describe()}")
    stats = STATS if args.stat == "all" else (args.stat,)
    print(f"speedup = baseline time / fastnn time (>1: fastnn faster); DROP when new < {1 - args.threshold:.2f} x base")

    drops, common = [], 0
    for stat in stats:
        rows = compare(old_ratios, new_ratios, stat, args.threshold)
        if not rows:
            continue
        wg = max(len(key[0]) for key, *_ in rows)
        wf = max(len(key[1]) for key, *_ in rows)
        wb = max(len(key[2]) for key, *_ in rows)
        print()
        print(f"by {stat}:")
        print(f"{'group':<{wg}}  {'fastnn':<{wf}}  {'baseline':<{wb}}  {'base':>8} {'new':>8} {'change':>8}")
        for (group, fl, bl), o, n, verdict in rows:
            fo = f"{o:7.2f}x" if o is not None else f"{'-':>8}"
            fn = f"{n:7.2f}x" if n is not None else f"{'-':>8}"
            ch = f"{n / o - 1:+7.1%}" if o is not None and n is not None else f"{'':>8}"
            print(f"{group:<{wg}}  {fl:<{wf}}  {bl:<{wb}}  {fo} {fn} {ch}  {verdict if verdict != 'ok' else ''}")
            if verdict == "DROP":
                drops.append((stat, group, fl, bl, o, n))
            common += verdict in ("ok", "DROP")
    print()
    if not common:
        print("no speedup ratio is in both runs: nothing compared")
        return 2
    if drops:
        print(f"{len(drops)} ratio(s) dropped by more than {args.threshold:.0%}:")
        for stat, group, fl, bl, o, n in drops:
            print(f"  {group}: {fl} vs {bl} by {stat}: {o:.2f}x -> {n:.2f}x ({n / o - 1:+.1%})")
        print("(the machine is noisy: re-run `make bench` and compare again before believing a single drop)")
        return 1
    print(f"no ratio dropped by more than {args.threshold:.0%} ({common} compared)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
