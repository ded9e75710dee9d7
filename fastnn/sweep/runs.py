"""Sweeps on Dask: a grid of trainings, each one a Dask task, and OCR of a folder of pages on the same cluster.

:func:`run_sweep` runs a task (``classify``, any function returning a dict with a ``headline``) once per point
of a grid of its options (learning rates, hidden sizes, seeds...), each run one ``client.submit`` on a Dask
cluster: by default a local cluster of worker processes, one thread each (the kernels of a run use
``threads`` cores, 1 by default, so that the runs share the machine's cores instead of fighting over them), or an
existing cluster at ``scheduler``.  Results stream back with ``as_completed``, and each is written the moment it
arrives, atomically, as ``OUT/runs/<key>.json``; a sweep started again with the same ``out`` skips the runs whose
file exists (resume).  A run that raises is written as ``OUT/runs/<key>.failed.json`` (the error and its
traceback) and reported, the others go on; it is tried again when the sweep is resumed.  At the end:
``OUT/sweep.md`` (a table of every run, best first), ``OUT/sweep.json`` and ``OUT/sweep_heatmap.png`` (the
metric over the two grid axes with the most values, averaged over the other axes).

The local cluster listens on 127.0.0.1 only, over TLS with throw-away credentials that only the sweep holds,
and serves no HTTP (no dashboard): no other user of the machine can connect to it.  A cluster at
``scheduler`` is its owner's to secure; the client uses Dask's security configuration (``distributed.comm.tls.*``).

Each run's own files (the task's plots, model and report) are written by its worker into ``OUT/runs/<key>/``:
on a cluster of several machines, that is on the worker's disk unless ``OUT`` is on a shared file system.
``data`` must be a folder the workers can read (the same path on every machine).

:func:`run_ocr` reads a folder of pages, one task per page: the client reads each image file and sends its
bytes, so the workers need no shared file system; it writes what ``fastnn ocr --out-dir`` writes.

Dask, distributed and cryptography (the local cluster's TLS credentials) are an optional extra
(``pip install 'fastnn[dask]'``), imported only when a sweep starts.
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import json
import math
import os
import re
import sys
import time
import traceback
from pathlib import Path

__all__ = ["DASK_EXTRA", "HEATMAP_NAME", "parse_grid", "parse_values", "run_key", "resolve_task", "run_sweep",
           "run_ocr", "sweep_table"]

#: What to install when dask is missing.
DASK_EXTRA = "pip install 'fastnn[dask]' (dask, distributed and cryptography)"
#: The heatmap's file name in ``out``.
HEATMAP_NAME = "sweep_heatmap.png"
#: Parameters a grid or ``fixed`` cannot set: the sweep sets them for every run.
_RESERVED = ("out", "progress", "dataset")
#: Metric names for which lower is better (the table is sorted ascending).
_LOWER_IS_BETTER = re.compile(r"(loss|error|cer)(_|$)")


def _distributed():
    """The ``distributed`` package, or an ImportError naming the extra to install."""
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(f"fastnn sweep needs Dask: {DASK_EXTRA} ({exc})") from None
    return distributed


# --------------------------------------------------------------------------------------------- the grid

def _literal(text: str):
    """A grid value with no declared type: an integer, else a number, else True/False/None, else the text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def _converter(function, name: str, options=()):
    """How the text of option ``name`` becomes the value passed to ``function``.

    The task's command-line option when it has one (its ``type`` and ``choices``: ``lr=-1`` is refused as
    ``fastnn classify --lr -1`` is), else the type of the parameter's default, else :func:`_literal`.
    """
    for opt in options:
        if opt.param == name and ("type" in opt.kwargs or "choices" in opt.kwargs):
            kind, choices = opt.kwargs.get("type"), opt.kwargs.get("choices")

            def convert(text, kind=kind, choices=choices):
                value = kind(text) if kind is not None else text
                if choices is not None and value not in choices:
                    raise ValueError(f"expected one of {', '.join(map(str, choices))}, got {text!r}")
                return value
            return convert
    default = inspect.signature(function).parameters[name].default
    if isinstance(default, bool):
        def convert(text):
            value = _literal(text)
            if not isinstance(value, bool):
                raise ValueError(f"expected true or false, got {text!r}")
            return value
        return convert
    if isinstance(default, (int, float, str)):
        return type(default)
    return _literal


def _check_name(function, name: str, what: str, task_name: str) -> str:
    """The parameter ``name`` (dashes as underscores) of ``function``, or a ValueError listing those it takes."""
    param = name.strip().replace("-", "_")
    params = inspect.signature(function).parameters
    takes = [p for p, v in params.items() if p not in _RESERVED and v.kind in (v.KEYWORD_ONLY, v.POSITIONAL_OR_KEYWORD)]
    if param in _RESERVED:
        raise ValueError(f"{what} {name}: the sweep sets {param} itself for every run")
    if param not in takes:
        raise ValueError(f"{what} {name}: {task_name} takes no option {param!r}; it takes {', '.join(takes)}")
    return param


def parse_values(function, param: str, texts, *, options=(), what="--grid") -> list:
    """The values of ``param`` from their texts, each checked as the task's option checks it (ValueError)."""
    convert = _converter(function, param, options)
    values = []
    for text in texts:
        try:
            values.append(convert(text.strip()))
        except Exception as exc:  # ValueError, or argparse.ArgumentTypeError from the task's option type
            raise ValueError(f"{what} {param}={text.strip()}: {exc}") from None
    return values


def parse_grid(specs, function, *, task_name=None, options=(), what="--grid") -> dict:
    """``["lr=0.001,0.002", "hidden=32,64"]`` -> ``{"lr": [0.001, 0.002], "hidden": [32, 64]}``.

    Each spec is ``NAME=V1,V2,...``: ``NAME`` a keyword of ``function`` (``batch-size`` is ``batch_size``),
    the values separated by commas, each converted and checked like the task's own command-line option
    (see :func:`parse_values`).  ValueError, naming the spec, for a spec without ``=``, an empty or repeated
    value, a name given twice or one the task does not take.
    """
    task_name = task_name or getattr(function, "__name__", "the task")
    grid = {}
    for spec in specs:
        name, sep, rest = spec.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{what} {spec}: expected NAME=VALUE,VALUE,... (e.g. lr=0.001,0.002)")
        param = _check_name(function, name, what, task_name)
        if param in grid:
            raise ValueError(f"{what} {spec}: {param} is given twice; give all its values in one {what}")
        texts = rest.split(",")
        if any(not t.strip() for t in texts):
            raise ValueError(f"{what} {spec}: an empty value (values are separated by single commas)")
        values = parse_values(function, param, texts, options=options, what=what)
        if len(set(map(repr, values))) != len(values):
            raise ValueError(f"{what} {spec}: a value is given twice")
        grid[param] = values
    return grid


def _text(value) -> str:
    return f"{value:g}" if isinstance(value, float) and repr(value) == repr(float(f"{value:g}")) else str(value)


def run_key(point: dict) -> str:
    """The file name (without ``.json``) of the run at grid ``point``: ``lr=0.002_hidden=64_seed=0``.

    Characters other than letters, digits and ``.=+_-`` become ``-``; a short hash of the point is added
    when that changed anything (or a value holds ``_`` or ``=``), so that two points never share a key.
    """
    texts = [_text(v) for v in point.values()]
    raw = "_".join(f"{k}={t}" for k, t in zip(point, texts)) or "run"
    safe = re.sub(r"[^A-Za-z0-9.=+_-]", "-", raw)
    if safe != raw or len(safe) > 150 or any("_" in t or "=" in t for t in texts):
        safe = safe[:150] + "-" + hashlib.sha1(raw.encode()).hexdigest()[:8]
    return safe


# --------------------------------------------------------------------------------------------- workers

def _plain(value):
    """``value`` as JSON can hold it (NumPy scalars as numbers, anything else unknown as text)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return _plain(value.item())
    return str(value)


def _use_threads(threads: int) -> None:
    """On a worker: the kernels of this run on ``threads`` threads (the process's OpenMP setting)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)  # for what the run starts; the loaded runtime needs the call
    from .functional import set_num_threads

    set_num_threads(threads)


def _run_one(function, kwargs: dict, threads: int) -> dict:
    """One run, on a worker: ``function(**kwargs)`` with its kernels on ``threads`` threads."""
    _use_threads(threads)
    start = time.perf_counter()
    result = function(**kwargs)
    if not isinstance(result, dict) or not isinstance(result.get("headline"), dict):
        raise TypeError(f"{getattr(function, '__name__', function)} returned no dict with a 'headline'")
    return {"headline": _plain(result["headline"]), "seconds": time.perf_counter() - start,
            "worker": f"{os.uname().nodename}:{os.getpid()}"}


# --------------------------------------------------------------------------------------------- the cluster

def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _plain_remote(address: str) -> bool:
    """Whether the scheduler at ``address`` is reached unencrypted over the network: a ``tcp://`` or ``ws://``
    address (or one with no scheme, which Dask reads as ``tcp://``) of a host other than this machine's
    loopback (``localhost``, ``127.x.x.x``, ``::1``).  Host names are not resolved; an address Dask cannot
    parse is not judged (connecting to it fails)."""
    import ipaddress

    from distributed.comm import parse_address, parse_host_port

    try:
        scheme, location = parse_address(address, strict=False)
        host, _ = parse_host_port(location, default_port=8786)
    except ValueError:
        return False
    if scheme not in ("tcp", "ws") or not host or host.lower() == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        return True


def _without_http(server_class):
    """``server_class`` (Dask's Scheduler or Worker) that starts no HTTP server.

    Dask starts one on every scheduler (port 8787, else another) and worker whether or not a dashboard is
    asked for, and it answers anyone (``/json/identity.json``, ``/info/...``); a sweep shows no dashboard.
    """
    def start_http_server(self, *args, **kwargs):
        self.http_server = None

    namespace = {"start_http_server": start_http_server, "__module__": __name__}
    return type(server_class.__name__, (server_class,), namespace)


def _scheduler_without_http(**options):
    """The local cluster's scheduler (SpecCluster's ``cls``): Dask's, without its HTTP server."""
    return _without_http(_distributed().Scheduler)(**options)


def _worker_without_http(**options):
    """In a worker process, the worker its Nanny starts (the Nanny's ``worker_class``): Dask's, without its
    HTTP server."""
    return _without_http(_distributed().Worker)(**options)


def _no_cryptography(exc: ImportError) -> ImportError:
    """The ImportError of a missing cryptography, naming the extra to install."""
    return ImportError(f"fastnn sweep needs cryptography for its local cluster's TLS: {DASK_EXTRA} ({exc})")


def _temporary_security(distributed):
    """Throw-away TLS credentials, in memory, for a local cluster and its client (``Security.temporary()``)."""
    try:
        return distributed.Security.temporary()
    except ImportError as exc:  # cryptography is missing: never fall back to an open cluster
        raise _no_cryptography(exc) from None


def _check_cluster_packages(scheduler) -> None:
    """Import what the cluster needs (distributed; cryptography for a local cluster's TLS) before anything is
    written, so that a sweep refused for a missing package leaves no folder behind."""
    _distributed()
    if scheduler is None:
        try:
            import cryptography.x509  # noqa: F401  (what Security.temporary() uses)
        except ImportError as exc:
            raise _no_cryptography(exc) from None


class _Cluster:
    """A Dask client: on ``scheduler`` when given, else on a new local cluster (closed at the end).

    The local cluster listens on 127.0.0.1 only, over TLS with throw-away credentials that only this client
    and the cluster's own processes hold (``require_encryption``: another local user can neither submit work
    nor talk to a worker), and it runs no HTTP server.  On ``scheduler``, the client uses Dask's own security
    configuration (``distributed.comm.tls.*``, or ``distributed.client.security-loader``), as ``Client``
    does by default; a plain ``tcp://`` address of another machine is warned about.
    """

    def __init__(self, scheduler, workers, runs, threads, connect_timeout):
        distributed = _distributed()
        self.cluster = None
        if scheduler is not None:
            if workers is not None:
                raise ValueError("--workers sets the local cluster's size; with --scheduler, the cluster's own "
                                 "workers run the sweep")
            if _plain_remote(scheduler):
                import warnings

                warnings.warn(f"fastnn: --scheduler {scheduler} is plain tcp:// to another machine: the runs "
                              "and their results cross the network unencrypted, and whoever reaches that port can "
                              "run code on the cluster; give a tls:// address with Dask's TLS configuration "
                              "(distributed.comm.tls.*)", RuntimeWarning, stacklevel=3)
            try:
                self.client = distributed.Client(scheduler, timeout=connect_timeout, set_as_default=False)
            except (OSError, ValueError, TypeError) as exc:
                text = " ".join(str(exc).split()) or type(exc).__name__
                raise OSError(f"--scheduler {scheduler}: cannot connect to a Dask scheduler there ({text})") from None
            self.description = f"the Dask cluster at {scheduler}"
        else:
            import logging

            n = workers or max(1, min(_cores(), runs))
            security = _temporary_security(distributed)
            node = {"host": "127.0.0.1", "protocol": "tls://", "security": security, "dashboard": False,
                    "dashboard_address": None}
            scheduler_spec = {"cls": _scheduler_without_http, "options": {**node, "port": 0}}
            # memory_limit: each worker a 1/n share of the memory, as LocalCluster gives
            worker_spec = {"cls": distributed.Nanny,
                           "options": {**node, "nthreads": 1, "worker_class": _worker_without_http,
                                       "memory_limit": 1 / n, "silence_logs": logging.ERROR,
                                       "env": {"OMP_NUM_THREADS": str(threads)}}}
            self.cluster = distributed.SpecCluster(
                scheduler=scheduler_spec, workers=dict.fromkeys(range(n), worker_spec), worker=worker_spec,
                security=security, silence_logs=logging.ERROR)
            self.client = distributed.Client(self.cluster, security=security, set_as_default=False)
            self.description = f"a local Dask cluster of {n} worker processes"

    def close(self):
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


    def as_completed(self, futures):
        """The futures as they finish (``distributed.as_completed`` on this client's loop)."""
        return _distributed().as_completed(futures, loop=self.client.loop)


# --------------------------------------------------------------------------------------------- the sweep

def resolve_task(task):
    """(function, name, command-line options) of a registered task's name or of a function; ValueError for an
    unknown name."""
    if callable(task):
        return task, getattr(task, "__name__", str(task)), ()
    from .tasks.registry import load_tasks

    tasks = load_tasks()
    if task not in tasks or task == "sweep":
        names = [n for n in tasks if n != "sweep"]
        raise ValueError(f"task {task!r}: expected one of {', '.join(names)}")
    return tasks[task].function, task, tasks[task].options


def _write_json(path: Path, content) -> None:
    from ._io import atomic_write

    with atomic_write(path, "w") as fh:
        fh.write(json.dumps(content, indent=2) + "\n")


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a run of a fastnn sweep ({exc}); delete it to run that point again") from None


def _choose_metric(metric, records):
    heads = [r["headline"] for r in records if r["status"] == "ok"]
    if metric is not None or not heads:
        return metric
    keys = list(heads[0])
    for pick in ([k for k in keys if k == "valid_accuracy"], [k for k in keys if "valid" in k], keys):
        if pick:
            return pick[0]
    return None


def run_sweep(task, grid: dict, *, out, fixed=None, scheduler=None, workers=None, threads: int = 1, metric=None,
              progress=None, connect_timeout: float = 10.0, stream=None) -> dict:
    """Run ``task`` once per point of ``grid`` on a Dask cluster; write each result as it arrives.

    Parameters
    ----------
    task : str or callable
        A registered task (``"classify"``) or a function returning a dict with a ``headline`` dict.  It
        must be importable on the workers (a module-level function of an installed module).
    grid : dict of str -> sequence
        The values of each keyword to vary (see :func:`parse_grid` for text); the runs are their product.
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
        _check_name(function, name, "--grid" if name in grid else "option", task_name)
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
        arguments = _plain({k: v for k, v in kwargs.items() if k not in ("out", "progress")})
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
        _check_cluster_packages(scheduler)
    runs_dir.mkdir(parents=True, exist_ok=True)

    failed_now = []
    started = time.perf_counter()
    description = "nothing to run"
    if todo:
        from .train import ProgressBar

        cluster = _Cluster(scheduler, workers, len(todo), int(threads), connect_timeout)
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
                record = {"key": key, "task": task_name, "grid": _plain(point), "arguments": arguments}
                try:
                    result = future.result()
                except Exception as exc:  # the run's own error, or its worker's death (KilledWorker)
                    record.update(status="failed", error=f"{type(exc).__name__}: {' '.join(str(exc).split())}",
                                  traceback="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
                    _write_json(runs_dir / f"{key}.failed.json", record)
                    failed_now.append(record)
                    stream.write(f"fastnn sweep: run {key} failed: {record['error']}\n")
                    info = f"{key}: failed"
                else:
                    record.update(status="ok", **result)
                    _write_json(runs_dir / f"{key}.json", record)
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
    metric = _choose_metric(metric, ok)
    records = ok + failed_now
    files = _write_summary(out, task_name, grid, fixed, metric, records)
    best = sweep_table(records, metric)[0] if ok else None
    headline = {"runs": len(plans), "ran": len(todo), "failed": len(failed_now)}
    if best is not None:
        headline.update({f"best_{k}": _text(v) for k, v in best["grid"].items()})  # as given, not to 4 decimals
        if metric in best["headline"]:
            headline[f"best_{metric}"] = best["headline"][metric]
    return {"headline": headline, "runs": sweep_table(records, metric), "failed": failed_now, "ran": len(todo),
            "skipped": len(plans) - len(todo), "metric": metric, "best": best, "files": files,
            "heatmap": files.get("heatmap"), "cluster": description, "seconds": time.perf_counter() - started,
            "exit_status": 2 if failed_now else 0}


def sweep_table(records, metric) -> list:
    """The records best first by ``metric`` (runs without it after those with it), failed runs last."""
    lower = bool(metric and _LOWER_IS_BETTER.search(metric))

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

    from .tasks.common import pyplot, save_figure

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
    ax.set_xticks(range(len(xv)), [_text(v) for v in xv])
    ax.set_xlabel(xs)
    if ys:
        ax.set_yticks(range(len(yv)), [_text(v) for v in yv])
        ax.set_ylabel(ys)
    else:
        ax.set_yticks([])
    ax.set_title(f"{task_name}: {metric} ({how})", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    path = save_figure(fig, out / HEATMAP_NAME)
    cells = {"x": xs, "y": ys, "x_values": _plain(xv), "y_values": _plain(yv) if ys else None, "reduce": how,
             "values": [[None if counts[i, j] == 0 else float(mean[i, j]) for j in range(len(xv))]
                        for i in range(len(yv))]}
    return path, cells


def _write_summary(out: Path, task_name, grid, fixed, metric, records) -> dict:
    """``sweep.md``, ``sweep.json`` and the heatmap; return their paths."""
    from .tasks.common import format_value

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
        lines += ["Every run: " + ", ".join(f"{k}={_text(v)}" for k, v in fixed.items()), ""]
    if metric:
        order = "ascending" if _LOWER_IS_BETTER.search(metric) else "descending"
        lines += [f"Sorted by {metric} ({order}).", ""]
    columns = ["#", *grid, *figures, "seconds"]
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for n, r in enumerate(ok, 1):
        row = [str(n), *(_text(r["grid"][k]) for k in grid),
               *(format_value(r["headline"].get(k, "")) for k in figures), f"{r.get('seconds', 0):.1f}"]
        lines.append("| " + " | ".join(row) + " |")
    for r in failed:
        lines.append("| failed | " + " | ".join(_text(r["grid"][k]) for k in grid) + " | " + r["error"]
                     .replace("|", "\\|") + " |")
    if heatmap is not None:
        lines += ["", f"![{metric} over {cells['x']}{' and ' + cells['y'] if cells['y'] else ''}]({HEATMAP_NAME})"
                      f" ({cells['reduce']})"]
    if failed:
        lines += ["", "Failed runs (their errors and tracebacks are in runs/<key>.failed.json; they run again when "
                      "the sweep is resumed):", ""] + [f"- {r['key']}: {r['error']}" for r in failed]
    from ._io import atomic_write

    with atomic_write(out / "sweep.md", "w") as fh:
        fh.write("\n".join(lines) + "\n")
    _write_json(out / "sweep.json", {"task": task_name, "grid": _plain(grid), "fixed": _plain(fixed), "metric": metric,
                                     "runs": ranked, "heatmap": cells})
    files = {"table": out / "sweep.md", "json": out / "sweep.json"}
    if heatmap is not None:
        files["heatmap"] = heatmap
    return files


# --------------------------------------------------------------------------------------------- OCR

_WORKER_MODELS = {}


def _read_page(content: bytes, name: str, number: int, fmt: str, classifier, lexicon, threads: int) -> str:
    """On a worker: the ``--out-dir`` file of one page, from the image file's bytes."""
    import tempfile

    from . import ocr
    from .tasks.pages import page_content

    _use_threads(threads)
    with tempfile.TemporaryDirectory(prefix="fastnn-page-") as folder:
        path = Path(folder) / ("page" + Path(name).suffix)
        path.write_bytes(content)
        try:
            image = ocr.load_image(path)
        except ValueError as exc:  # name the page, not the temporary copy
            raise ValueError(str(exc).replace(str(path), name)) from None
    height, width = image.shape[:2]
    result = ocr.read_text(image, classifier, lexicon=lexicon)
    return page_content(result, name, number, width, height, fmt)


def run_ocr(images, *, out_dir, fmt="text", model=None, lexicon=None, scheduler=None, workers=None,
            threads: int = 1, progress=None, connect_timeout: float = 10.0, stream=None) -> dict:
    """Read the pages ``images`` (files and folders) on a Dask cluster, one task per page, into ``out_dir``.

    Writes what ``fastnn ocr --out-dir DIR --format FMT`` writes, ``<image stem>.txt`` / ``.json`` / ``.tsv``,
    each file atomically as its page is read.  A page whose output file exists is skipped (resume; delete
    the file to read it again).  The model and the word list are loaded once, here, and sent to the
    workers with the pages' bytes, so that the workers need none of the files.  A page that fails is
    reported and the others are read; ``exit_status`` is then 2.

    Returns
    -------
    dict
        ``read`` (paths), ``skipped`` (paths), ``failed`` (path, message) pairs, ``notes``, ``exit_status``
        and ``headline`` (pages, read, skipped, failed).
    """
    from .tasks.pages import FORMATS, check_images, image_paths

    stream = stream if stream is not None else sys.stderr
    if fmt not in FORMATS:
        raise ValueError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if out_dir is None:
        raise ValueError("fastnn sweep ocr: give --out-dir DIR (the pages' text files go there)")
    paths = image_paths(images)
    check_images(paths)
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--out-dir {out_dir}: is a file, not a folder")
    outputs = [folder / (p.stem + FORMATS[fmt]) for p in paths]
    seen = {}
    for path, output in zip(paths, outputs):
        if output in seen:
            raise ValueError(f"--out-dir: {seen[output]} and {path} would both write {output}; rename one")
        seen[output] = path
    todo = [(n, p, o) for n, (p, o) in enumerate(zip(paths, outputs), 1) if not o.exists()]
    if todo:
        _check_cluster_packages(scheduler)
    folder.mkdir(parents=True, exist_ok=True)
    skipped = [p for p, o in zip(paths, outputs) if o.exists()]
    words = None
    if lexicon is not None:
        from .ocr import Lexicon

        words = Lexicon.from_file(lexicon)
    read, failed = [], []
    if todo:
        from ._io import atomic_write
        from .ocr.model import load_ocr_model
        from .train import ProgressBar

        classifier = load_ocr_model(model, progress=progress)
        cluster = _Cluster(scheduler, workers, len(todo), int(threads), connect_timeout)
        bar = ProgressBar(len(todo), "page", stream=stream) if progress is not False else None
        try:
            shared = cluster.client.scatter([classifier, words], broadcast=True)
            futures = {}
            for number, path, output in todo:
                future = cluster.client.submit(_read_page, path.read_bytes(), str(path), number, fmt, *shared,
                                               int(threads), pure=False)
                futures[future] = (path, output)
            for count, future in enumerate(cluster.as_completed(list(futures)), 1):
                path, output = futures.pop(future)
                try:
                    content = future.result()
                except Exception as exc:  # the page's own error, or its worker's death
                    text = " ".join(str(exc).split()) or type(exc).__name__
                    message = text if str(path) in text else f"{path}: {text}"
                    failed.append((path, message))
                    stream.write(f"fastnn sweep ocr: error: {message}\n")
                else:
                    with atomic_write(output, "w") as fh:
                        fh.write(content)
                    read.append(path)
                if bar is not None:
                    bar.update(count, path.name)
        finally:
            for future in futures:
                future.cancel()
            cluster.close()
    notes = [f"output: {folder.resolve()} ({len(read)} {FORMATS[fmt]} files written, {len(skipped)} already there)"]
    if failed:
        notes.append(f"fastnn sweep ocr: {len(failed)} of {len(paths)} pages could not be read")
    return {"headline": {"pages": len(paths), "read": len(read), "skipped": len(skipped), "failed": len(failed)},
            "read": read, "skipped": skipped, "failed": failed, "notes": notes, "exit_status": 2 if failed else 0}
