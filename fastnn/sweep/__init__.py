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

The package sits above :mod:`fastnn.tasks` (it runs them; no task imports it), one module per concern:

- :mod:`~fastnn.sweep.grid`: the grid (``--grid NAME=V1,V2`` checked as the task's own options), the runs'
  keys, the task by name (:func:`resolve_task`);
- :mod:`~fastnn.sweep.cluster`: the Dask cluster and its security (TLS on 127.0.0.1, no HTTP server);
- :mod:`~fastnn.sweep.runs`: :func:`run_sweep`, each result written as it arrives, resume;
- :mod:`~fastnn.sweep.report`: the table, ``sweep.json`` and the heatmap;
- :mod:`~fastnn.sweep.ocr_pages`: :func:`run_ocr`, a folder of pages read on the cluster;
- :mod:`~fastnn.sweep.command`: the ``fastnn sweep`` command, which ``fastnn.cli`` imports besides the tasks.
"""

from .cluster import DASK_EXTRA
from .grid import parse_grid, parse_values, resolve_task, run_key
from .ocr_pages import run_ocr
from .report import HEATMAP_NAME, sweep_table
from .runs import run_sweep

__all__ = ["DASK_EXTRA", "HEATMAP_NAME", "parse_grid", "parse_values", "run_key", "resolve_task", "run_sweep",
           "run_ocr", "sweep_table"]
