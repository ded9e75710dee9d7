"""A sweep's runs: :func:`run_sweep`, each run one task on the cluster, each result written as it arrives.

Each result is written atomically as ``OUT/runs/<key>.json`` the moment it arrives; a sweep started again
with the same ``out`` skips the runs whose file exists (resume).  A run that raises is written as
``OUT/runs/<key>.failed.json`` (the error and its traceback) and reported, the others go on; it is tried again
when the sweep is resumed.
"""

from __future__ import annotations

import inspect
import itertools
import json
import os
import sys
import time
import traceback
from pathlib import Path

from .cluster import Cluster, check_cluster_packages, use_threads
from .grid import check_name, resolve_task, run_key, value_text
from .report import choose_metric, plain, sweep_table, write_json, write_summary

__all__ = ["run_sweep"]


def _run_one(function, kwargs: dict, threads: int) -> dict:
    """One run, on a worker: ``function(**kwargs)`` with its kernels on ``threads`` threads."""
    use_threads(threads)
    start = time.perf_counter()
    result = function(**kwargs)
    if not isinstance(result, dict) or not isinstance(result.get("headline"), dict):
        raise TypeError(f"{getattr(function, '__name__', function)} returned no dict with a 'headline'")
    return {"headline": plain(result["headline"]), "seconds": time.perf_counter() - start,
            "worker": f"{os.uname().nodename}:{os.getpid()}"}


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a run of a fastnn sweep ({exc}); delete it to run that point again") from None


def run_sweep(task, grid: dict, *, out, fixed=None, scheduler=None, workers=None, threads: int = 1, metric=None,
              progress=None, connect_timeout: float = 10.0, stream=None) -> dict:
    """Run ``task`` once per point of ``grid`` on a Dask cluster; write each result as it arrives.

    Parameters
    ----------
    task : str or callable
        A registered task (``"classify"``) or a function returning a dict with a ``headline`` dict.  It
        must be importable on the workers (a module-level function of an installed module).
    grid : dict of str -> sequence
        The values of each keyword to vary (:func:`~fastnn.sweep.grid.parse_grid` reads them from text); the
        runs are their product.
    out : path
        The sweep's folder: ``runs/<key>.json`` per run, ``sweep.md``, ``sweep.json``, the heatmap.
    fixed : dict, optional
        Keywords passed to every run (``epochs=5``, ``data=...``).
    scheduler : str, optional
        Address of a running Dask scheduler (``tls://host:8786``), reached with Dask's security
        configuration (``distributed.comm.tls.*``); a plain ``tcp://`` address of another machine is warned
        about.  Default: a new local cluster, TLS on 127.0.0.1 with throw-away credentials, no HTTP server.
    workers : int, optional
        Worker processes of the local cluster (default: the cores, at most one per run to do).
    threads : int
        Threads of each run's kernels (default 1: one run per core).
    metric : str, optional
        The headline figure that ranks the runs (default ``valid_accuracy``, else the first whose name
        holds ``valid``); higher is better unless its name ends in ``loss``, ``error`` or ``cer``.
    progress : bool, optional
        A bar across the runs on ``stream`` (plain lines off a terminal); None: shown; False: only failures.
    connect_timeout : float
        Seconds to wait for ``scheduler``.

    Returns
    -------
    dict
        ``runs`` (each run's record, best first, failed last), ``failed`` (the failed records), ``ran``
        (runs executed now), ``skipped`` (found done in ``out``), ``metric``, ``best``, ``files``,
        ``heatmap`` (its path, or None when the grid has no axis of two values), ``exit_status`` (2 when a
        run failed) and ``headline``.

    Raises
    ------
    ValueError
        For an option the task does not take, an out folder holding runs of other settings, a bad
        ``workers``; ImportError when dask is not installed; OSError when ``scheduler`` cannot be reached.

    Examples
    --------
    >>> run_sweep("classify", {"lr": [0.0002, 0.002, 0.02], "seed": [0, 1]}, out="lr-sweep",
    ...           fixed={"epochs": 20})  # doctest: +SKIP
    """
    stream = stream if stream is not None else sys.stderr
    function, task_name, _ = resolve_task(task)
    fixed = dict(fixed or {})
    for name in list(grid) + list(fixed):
        check_name(function, name, "--grid" if name in grid else "option", task_name)
    both = set(grid) & set(fixed)
    if both:
        raise ValueError(f"{', '.join(sorted(both))}: given both as a grid axis and as a fixed option")
    grid = {k: list(v) for k, v in grid.items()}
    for k, v in grid.items():
        if not v:
            raise ValueError(f"--grid {k}: no values")
    if workers is not None and (isinstance(workers, bool) or int(workers) != workers or workers < 1):
        raise ValueError(f"--workers: expected a positive integer, got {workers!r}")
    if isinstance(threads, bool) or int(threads) != threads or threads < 1:
        raise ValueError(f"--threads: expected a positive integer, got {threads!r}")
    params = inspect.signature(function).parameters
    if fixed.get("data") is not None:
        fixed["data"] = os.path.abspath(fixed["data"])
        if not os.path.isdir(fixed["data"]):
            raise ValueError(f"--data {fixed['data']}: no such folder")

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: is a file, not a folder")
    runs_dir = out / "runs"

    points = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    plans, done = [], {}
    for point in points:
        key = run_key(point)
        kwargs = {**fixed, **point}
        if "out" in params:
            kwargs["out"] = str((runs_dir / key).resolve())
        if "progress" in params:
            kwargs["progress"] = False
        arguments = plain({k: v for k, v in kwargs.items() if k not in ("out", "progress")})
        path = runs_dir / f"{key}.json"
        if path.exists():
            record = _read_json(path)
            if record.get("task") != task_name or record.get("arguments") != arguments:
                theirs = record.get("arguments") if isinstance(record.get("arguments"), dict) else {}
                differ = sorted(k for k in set(theirs) | set(arguments) if theirs.get(k) != arguments.get(k))
                was = ", ".join(f"{k}={theirs.get(k)}" for k in differ)
                now = ", ".join(f"{k}={arguments.get(k)}" for k in differ)
                raise ValueError(f"--out {out} holds a run of {record.get('task')} with {was or 'other options'} "
                                 f"({path.name}), not {task_name} with {now or 'these options'}: give another "
                                 f"--out, or delete {runs_dir} to start again")
            done[key] = record
        plans.append((key, point, kwargs, arguments))
    todo = [p for p in plans if p[0] not in done]
    if todo:
        check_cluster_packages(scheduler)
    runs_dir.mkdir(parents=True, exist_ok=True)

    failed_now = []
    started = time.perf_counter()
    description = "nothing to run"
    if todo:
        from ..progress import ProgressBar

        cluster = Cluster(scheduler, workers, len(todo), int(threads), connect_timeout)
        description = cluster.description
        bar = ProgressBar(len(todo), "run", stream=stream) if progress is not False else None
        try:
            futures = {}
            for key, point, kwargs, arguments in todo:
                future = cluster.client.submit(_run_one, function, kwargs, int(threads), pure=False,
                                               key=f"fastnn-sweep-{key}-{os.urandom(4).hex()}")
                futures[future] = (key, point, arguments)
            for count, future in enumerate(cluster.as_completed(list(futures)), 1):
                key, point, arguments = futures.pop(future)
                record = {"key": key, "task": task_name, "grid": plain(point), "arguments": arguments}
                try:
                    result = future.result()
                except Exception as exc:  # the run's own error, or its worker's death (KilledWorker)
                    record.update(status="failed", error=f"{type(exc).__name__}: {' '.join(str(exc).split())}",
                                  traceback="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
                    write_json(runs_dir / f"{key}.failed.json", record)
                    failed_now.append(record)
                    stream.write(f"fastnn sweep: run {key} failed: {record['error']}\n")
                    info = f"{key}: failed"
                else:
                    record.update(status="ok", **result)
                    write_json(runs_dir / f"{key}.json", record)
                    (runs_dir / f"{key}.failed.json").unlink(missing_ok=True)
                    done[key] = record
                    shown = {k: v for k, v in record["headline"].items() if isinstance(v, float)}
                    info = f"{key}: " + " ".join(f"{k}={v:.4f}" for k, v in list(shown.items())[:2])
                if bar is not None:
                    bar.update(count, info)
        finally:
            for future in futures:
                future.cancel()
            cluster.close()

    ok = [done[key] for key, *_ in plans if key in done]
    metric = choose_metric(metric, ok)
    records = ok + failed_now
    files = write_summary(out, task_name, grid, fixed, metric, records)
    best = sweep_table(records, metric)[0] if ok else None
    headline = {"runs": len(plans), "ran": len(todo), "failed": len(failed_now)}
    if best is not None:
        headline.update({f"best_{k}": value_text(v) for k, v in best["grid"].items()})  # as given, not to 4 decimals
        if metric in best["headline"]:
            headline[f"best_{metric}"] = best["headline"][metric]
    return {"headline": headline, "runs": sweep_table(records, metric), "failed": failed_now, "ran": len(todo),
            "skipped": len(plans) - len(todo), "metric": metric, "best": best, "files": files,
            "heatmap": files.get("heatmap"), "cluster": description, "seconds": time.perf_counter() - started,
            "exit_status": 2 if failed_now else 0}
