"""``fastnn sweep``: a grid of trainings of one task on Dask, or OCR of a folder of pages (``fastnn sweep ocr``).

The work is the rest of :mod:`fastnn.sweep`'s (Dask is imported when a sweep starts); this module only checks
the command line and registers the command.  It sits above the tasks it runs, so it is not one of them:
``fastnn.cli`` imports it besides ``fastnn.tasks.registry.load_tasks()``.
"""

from __future__ import annotations

from ..tasks.registry import Option, positive_float, positive_int, register
from .grid import parse_grid, resolve_task
from .ocr_pages import SWEEP_FORMATS, run_ocr
from .runs import run_sweep

__all__ = ["sweep"]


def sweep(task, pages=(), *, grid=None, fixed=None, epochs=None, data=None, out=None, workers=None, scheduler=None,
          threads=1, metric=None, out_dir=None, fmt=None, model=None, lexicon=None, connect_timeout=10.0,
          progress=None) -> dict:
    """Run ``task`` once per point of the ``--grid`` on a Dask cluster (``fastnn.sweep.run_sweep``), or, for
    ``task == "ocr"``, read the ``pages`` into ``out_dir`` (``fastnn.sweep.run_ocr``)."""
    common = dict(scheduler=scheduler, workers=workers, threads=threads, progress=progress,
                  connect_timeout=connect_timeout)
    if task == "ocr":
        for given, name in ((grid, "--grid"), (fixed, "--set"), (epochs, "--epochs"), (metric, "--metric"),
                            (out, "--out"), (data, "--data")):
            if given:
                raise ValueError(f"{name}: not an option of `fastnn sweep ocr` (it reads PAGES into --out-dir)")
        result = run_ocr(pages, out_dir=out_dir, fmt=fmt or "text", model=model, lexicon=lexicon, **common)
        result["lines"] = []
        return result
    for given, name in ((pages, "PAGES"), (out_dir, "--out-dir"), (fmt, "--format"), (model, "--model"),
                        (lexicon, "--lexicon")):
        if given:
            raise ValueError(f"{name}: only `fastnn sweep ocr` takes it")
    function, name, options = resolve_task(task)
    axes = parse_grid(grid or [], function, task_name=name, options=options)
    if not axes:
        raise ValueError("give at least one --grid NAME=V1,V2,... (e.g. --grid lr=0.001,0.002)")
    settings = {}
    for spec in fixed or []:
        key, sep, value = spec.partition("=")
        if not sep or not key.strip() or "," in value:
            raise ValueError(f"--set {spec}: expected NAME=VALUE (one value; a grid axis is --grid NAME=V1,V2)")
        settings.update(parse_grid([spec], function, task_name=name, options=options, what="--set"))
    settings = {k: v[0] for k, v in settings.items()}
    if epochs is not None:
        if "epochs" in settings:
            raise ValueError("--epochs and --set epochs=...: give one of them")
        settings["epochs"] = epochs
    if data is not None:
        settings["data"] = data
    given_out, out = out, out or f"fastnn-sweep-{name}"
    result = run_sweep(task, axes, out=out, fixed=settings, metric=metric, **common)
    table = result["files"]["table"]
    result["lines"] = table.read_text(encoding="utf-8").splitlines()
    notes = [f"ran {result['ran']} runs on {result['cluster']}" if result["ran"] else "nothing to run"]
    if result["skipped"]:
        notes[0] += f"; {result['skipped']} found done in {out}, skipped"
    if result["failed"]:
        notes.append(f"fastnn sweep: {len(result['failed'])} of {result['headline']['runs']} runs failed "
                     f"(their errors: {out}/runs/*.failed.json; they run again when the sweep is resumed)")
    if given_out is None:  # else the command line says `output: OUT`
        notes.append(f"output: {table.parent.resolve()}")
    result["notes"] = notes
    return result


register("sweep", sweep,
         help="a grid of trainings of one task (learning rates, sizes, seeds...) on Dask, or OCR of pages (sweep ocr)",
         description="Run TASK once per point of the grid, each run one task on a Dask cluster: a local cluster of "
                     "worker processes by default, or the running one at --scheduler. Each result is written to "
                     "OUT/runs/<key>.json as it arrives; started again with the same --out, the sweep skips the "
                     "runs already done. A run that fails is reported (OUT/runs/<key>.failed.json) and the others "
                     "go on; the exit status is then 2. At the end: OUT/sweep.md (the table, best first), "
                     "OUT/sweep.json and OUT/sweep_heatmap.png (the metric over the two grid axes with the most "
                     "values, averaged over the others). `fastnn sweep ocr PAGES --out-dir DIR` reads pages "
                     "instead, one task per page, writing what `fastnn ocr --out-dir` writes. Needs the dask "
                     "extra: pip install 'fastnn[dask]'.",
         options=[Option("target", param="task", metavar="TASK",
                         help="the task to run (classify, lr-study, ...), or ocr"),
                  Option("pages", nargs="*", metavar="PAGES",
                         help="ocr: image files and folders of them"),
                  Option("--grid", action="append", metavar="NAME=V1,V2,...",
                         help="an axis of the grid: an option of TASK and its values, e.g. lr=0.001,0.002 "
                              "(repeat for more axes: the runs are every combination); each value is checked "
                              "as TASK's own option checks it"),
                  Option("--set", dest="fixed", action="append", metavar="NAME=VALUE",
                         help="an option of TASK given to every run, e.g. recipe=strong (repeatable)"),
                  Option("--epochs", type=positive_int, help="training epochs of every run (default: TASK's)"),
                  Option("--workers", type=positive_int,
                         help="worker processes of the local cluster (default: the cores, at most one per run)"),
                  Option("--scheduler", metavar="ADDRESS",
                         help="run on the Dask cluster whose scheduler is at ADDRESS (tls://host:8786, with Dask's "
                              "TLS configuration) instead of a local one"),
                  Option("--threads", type=positive_int,
                         help="kernel threads of each run (default %(default)s: one run per core)"),
                  Option("--metric", metavar="NAME",
                         help="the headline figure that ranks the runs (default valid_accuracy; lower is better "
                              "for names ending in loss, error or cer)"),
                  Option("--connect-timeout", type=positive_float, metavar="SECONDS",
                         help="seconds to wait for --scheduler (default %(default)s)"),
                  Option("--out-dir", metavar="DIR", output=True, help="ocr: write one file per page into DIR"),
                  Option("--format", param="fmt", choices=SWEEP_FORMATS,
                         help="ocr: the format of the files (text, json, tsv, hocr, alto, page), as for `fastnn ocr` "
                              "(default text)"),
                  Option("--model", metavar="MODEL.npz", help="ocr: the OCR classifier (default: fastnn ocr's)"),
                  Option("--lexicon", metavar="WORDS.txt", help="ocr: a word list, one word per line")],
         common_help={"data": "folder with the real data for every run (hw36/, mnist/), readable by the workers; "
                              "default: $FASTNN_DATA, else the generated set",
                      "out": "the sweep's folder: runs/, sweep.md, sweep.json, the heatmap (default "
                             "fastnn-sweep-TASK)",
                      "progress": ("always draw the bar across the runs", "show only failures and the table")},
         lines=lambda result: result["lines"], notes=lambda result: result.get("notes", []))
