"""`fastnn sweep` (issue 14): a grid of runs on a small Dask LocalCluster, results written as they arrive, resume,
a failing run reported without stopping the others, the table and the heatmap, the grid's errors, a bad
--scheduler, and OCR of a folder of pages on the same cluster.

Most tests run ``tests/_sweep_tasks.fake_train`` (milliseconds a run, a log line per run) on one 2-worker
cluster shared by the module, given as --scheduler; one runs the real ``classify`` (1 epoch, 8 hidden units) on
the default local cluster.  The tests that need Dask skip without it (``pip install 'fastnn[dask]'``).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import _sweep_tasks
from fastnn import cli
from fastnn import sweep as sweeps
from fastnn.sweep import runs as sweep_runs
from fastnn.tasks import classify

REPO = Path(sweeps.__file__).resolve().parents[2]


def _distributed():
    return pytest.importorskip("distributed", reason="dask is not installed: pip install 'fastnn[dask]'")


@pytest.fixture(scope="module")
def scheduler():
    """The address of a LocalCluster of 2 worker processes, one thread each, for the module."""
    distributed = _distributed()
    import logging

    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                       silence_logs=logging.ERROR)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def _log_lines(log):
    return sorted(Path(log).read_text().splitlines()) if Path(log).exists() else []


GRID = {"lr": [0.001, 0.01, 0.1], "hidden": [8, 16], "seed": [0, 1]}


def _expected(lr, hidden, seed):
    return _sweep_tasks.fake_train(lr, hidden, seed)["headline"]["valid_accuracy"]


def test_a_grid_runs_every_point_once_and_writes_the_table_and_heatmap(scheduler, tmp_path):
    log = tmp_path / "log"
    res = sweeps.run_sweep(_sweep_tasks.fake_train, GRID, out=tmp_path / "s", fixed={"log": str(log)},
                           scheduler=scheduler, progress=False)
    assert res["exit_status"] == 0 and res["ran"] == 12 and res["skipped"] == 0 and not res["failed"]
    assert len(_log_lines(log)) == 12 and len(set(_log_lines(log))) == 12  # each point once
    runs = sorted(p.name for p in (tmp_path / "s" / "runs").glob("*.json"))
    assert len(runs) == 12 and "lr=0.01_hidden=16_seed=1.json" in runs, runs
    record = json.loads((tmp_path / "s" / "runs" / "lr=0.01_hidden=16_seed=1.json").read_text())
    assert record["status"] == "ok" and record["grid"] == {"lr": 0.01, "hidden": 16, "seed": 1}
    assert record["headline"]["valid_accuracy"] == pytest.approx(_expected(0.01, 16, 1))
    # the table: every run, best first
    values = [r["headline"]["valid_accuracy"] for r in res["runs"]]
    assert values == sorted(values, reverse=True) and len(values) == 12
    assert res["best"]["grid"] == {"lr": 0.01, "hidden": 16, "seed": 1}
    assert res["headline"]["best_lr"] == "0.01" and res["headline"]["best_valid_accuracy"] == max(values)
    table = (tmp_path / "s" / "sweep.md").read_text().splitlines()
    rows = [line for line in table if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 12 and rows[0].startswith("| 1 | 0.01 | 16 | 1 |"), table
    # the heatmap: the axes with most values (lr: 3, then hidden: 2 before seed: 2), the mean over seed
    assert (tmp_path / "s" / sweeps.HEATMAP_NAME).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cells = json.loads((tmp_path / "s" / "sweep.json").read_text())["heatmap"]
    assert (cells["y"], cells["x"], cells["reduce"]) == ("lr", "hidden", "mean over seed")
    want = [[np.mean([_expected(lr, h, s) for s in (0, 1)]) for h in (8, 16)] for lr in (0.001, 0.01, 0.1)]
    np.testing.assert_allclose(cells["values"], want, rtol=1e-12)


@pytest.mark.parametrize("threads", [1, 2])
def test_each_run_s_kernels_use_the_threads_asked_for(scheduler, tmp_path, threads):
    res = sweeps.run_sweep(_sweep_tasks.fake_train, {"lr": [0.01, 0.1]}, out=tmp_path / "s", scheduler=scheduler,
                           threads=threads, progress=False)
    assert [r["headline"]["threads"] for r in res["runs"]] == [threads, threads]


def test_each_result_is_written_as_it_arrives(scheduler, tmp_path):
    """The slow run waits until the fast run's JSON is on disk: a sweep writing only at the end would hang it
    (it then fails with a TimeoutError)."""
    res = sweeps.run_sweep(_sweep_tasks.fake_train, {"wait": [True, False]}, out=tmp_path / "s",
                           scheduler=scheduler, progress=False)
    assert res["exit_status"] == 0 and not res["failed"], res["failed"]


def test_a_second_call_redoes_nothing_and_a_deleted_run_is_redone(scheduler, tmp_path):
    log = tmp_path / "log"
    kwargs = dict(out=tmp_path / "s", fixed={"log": str(log)}, scheduler=scheduler, progress=False)
    first = sweeps.run_sweep(_sweep_tasks.fake_train, GRID, **kwargs)
    assert first["ran"] == 12 and len(_log_lines(log)) == 12
    again = sweeps.run_sweep(_sweep_tasks.fake_train, GRID, **kwargs)
    assert (again["ran"], again["skipped"]) == (0, 12) and len(_log_lines(log)) == 12  # nothing executed
    assert [r["key"] for r in again["runs"]] == [r["key"] for r in first["runs"]]
    (tmp_path / "s" / "runs" / "lr=0.1_hidden=8_seed=0.json").unlink()
    third = sweeps.run_sweep(_sweep_tasks.fake_train, GRID, **kwargs)
    assert third["ran"] == 1 and len(_log_lines(log)) == 13
    assert Path(log).read_text().splitlines()[-1] == "lr=0.1 hidden=8 seed=0 wait=False"


def test_other_settings_in_the_same_out_are_refused_before_anything_runs(scheduler, tmp_path):
    log = tmp_path / "log"
    sweeps.run_sweep(_sweep_tasks.fake_train, {"lr": [0.01, 0.1]}, out=tmp_path / "s",
                     fixed={"log": str(log), "hidden": 8}, scheduler=scheduler, progress=False)
    with pytest.raises(ValueError, match=r"holds a run of fake_train with hidden=8 .*not fake_train with hidden=32"):
        sweeps.run_sweep(_sweep_tasks.fake_train, {"lr": [0.01, 0.1]}, out=tmp_path / "s",
                         fixed={"log": str(log), "hidden": 32}, scheduler=scheduler, progress=False)
    assert len(_log_lines(log)) == 2


def test_a_failing_run_is_reported_and_the_others_finish(scheduler, tmp_path):
    log = tmp_path / "log"
    out = tmp_path / "s"
    kwargs = dict(out=out, fixed={"log": str(log), "fail_lr": 0.1}, scheduler=scheduler)
    import io

    stream = io.StringIO()
    res = sweeps.run_sweep(_sweep_tasks.fake_train, GRID, **kwargs, stream=stream)
    assert res["exit_status"] == 2 and res["ran"] == 12 and len(res["failed"]) == 4
    assert len(list((out / "runs").glob("*.failed.json"))) == 4
    assert len([p for p in (out / "runs").glob("*.json") if not p.name.endswith(".failed.json")]) == 8
    failed = json.loads((out / "runs" / "lr=0.1_hidden=16_seed=0.failed.json").read_text())
    assert failed["status"] == "failed" and failed["error"] == "ValueError: lr=0.1: the loss diverged"
    assert "fake_train" in failed["traceback"]
    assert stream.getvalue().count("failed: ValueError: lr=0.1: the loss diverged") == 4
    table = (out / "sweep.md").read_text()
    assert "4 failed" in table and table.count("| failed | 0.1 |") == 4
    assert [r["status"] for r in res["runs"]] == ["ok"] * 8 + ["failed"] * 4
    # a resumed sweep tries only the failed runs again
    again = sweeps.run_sweep(_sweep_tasks.fake_train, GRID, **kwargs, progress=False)
    assert again["ran"] == 4 and len(_log_lines(log)) == 16


def test_the_cli_sweeps_classify_on_a_local_cluster(tmp_path, capsys):
    """The real task on the default LocalCluster: 2 runs of 1 epoch, 8 hidden units, on generated data."""
    _distributed()
    out = tmp_path / "s"
    argv = ["sweep", "classify", "--grid", "lr=0.002,0.02", "--set", "hidden=8", "--epochs", "1", "--workers", "2",
            "--out", str(out), "--no-progress"]
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    assert "| # | lr | valid_accuracy | test_accuracy | seconds |" in captured.out
    assert "best_lr: 0.002" in captured.out or "best_lr: 0.02" in captured.out, captured.out
    assert "ran 2 runs on a local Dask cluster of 2 worker processes" in captured.err
    record = json.loads((out / "runs" / "lr=0.02.json").read_text())
    assert record["arguments"]["hidden"] == 8 and record["arguments"]["epochs"] == 1
    from fastnn.models import MLP

    assert MLP.load(out / "runs" / "lr=0.02" / "classify_model.npz").sizes == [1024, 8, 36]  # the run's own files
    assert (out / "sweep_heatmap.png").is_file() and (out / "sweep.md").is_file()
    # the same figure as `fastnn classify` itself
    alone = classify(None, tmp_path / "alone", seed=42, epochs=1, lr=0.02, hidden=8, progress=False)
    assert record["headline"]["valid_accuracy"] == pytest.approx(alone["headline"]["valid_accuracy"], abs=1e-9)
    assert cli.main(argv) == 0
    assert "nothing to run; 2 found done" in capsys.readouterr().err


@pytest.mark.parametrize("grid, word", [
    (["lr"], "expected NAME=VALUE,VALUE"),
    (["=0.1"], "expected NAME=VALUE,VALUE"),
    (["lr="], "an empty value"),
    (["lr=0.1,,0.2"], "an empty value"),
    (["lr=abc"], "--grid lr=abc: expected a positive number"),
    (["lr=-1"], "--grid lr=-1: expected a finite number > 0"),
    (["recipe=coursework,bogus"], "--grid recipe=bogus: expected one of coursework, strong"),
    (["hidden=0"], "--grid hidden=0: expected a positive integer"),
    (["nosuch=1,2"], "classify takes no option 'nosuch'; it takes data, recipe, seed"),
    (["out=a,b"], "the sweep sets out itself"),
    (["lr=0.1,0.1"], "a value is given twice"),
    (["lr=0.1", "lr=0.2"], "lr is given twice"),
    ([], "give at least one --grid"),
])
def test_grid_errors_are_one_line_before_anything_starts(grid, word, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sweep_runs, "Cluster", None)  # nothing may start
    argv = ["sweep", "classify", *[a for g in grid for a in ("--grid", g)], "--out", str(tmp_path / "s")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fastnn sweep: error: ") and word in err[0], err
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("extra, word", [
    (["--set", "lr=0.1,0.2"], "--set lr=0.1,0.2: expected NAME=VALUE (one value"),
    (["--set", "seed=x"], "--set seed=x"),
    (["--set", "lr=0.1"], "given both as a grid axis and as a fixed option"),
    (["--epochs", "2", "--set", "epochs=3"], "--epochs and --set epochs"),
    (["--data", "/nonexistent/data"], "--data /nonexistent/data: no such folder"),
    (["--out-dir", "x"], "--out-dir: only `fastnn sweep ocr` takes it"),
])
def test_bad_options_are_one_line(extra, word, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sweep_runs, "Cluster", None)
    assert cli.main(["sweep", "classify", "--grid", "lr=0.01,0.1", *extra, "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and word in err[0], err


def test_an_unknown_task_is_refused(tmp_path, capsys):
    assert cli.main(["sweep", "clasify", "--grid", "lr=0.1", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "task 'clasify': expected one of" in err[0] and "classify" in err[0], err


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:1", "not-an-address::"])
def test_a_bad_scheduler_address_fails_in_one_line(address, tmp_path, capsys):
    _distributed()
    argv = ["sweep", "classify", "--grid", "lr=0.01,0.1", "--scheduler", address, "--connect-timeout", "1",
            "--out", str(tmp_path / "s")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"fastnn sweep: error: --scheduler {address}: cannot connect" in err[0], err
    assert not list((tmp_path / "s" / "runs").glob("*.json"))


def test_workers_with_a_scheduler_is_refused(tmp_path):
    _distributed()
    with pytest.raises(ValueError, match="--workers sets the local cluster's size"):
        sweeps.run_sweep(_sweep_tasks.fake_train, {"lr": [0.1]}, out=tmp_path, scheduler="tcp://127.0.0.1:1",
                         workers=2)


def test_without_dask_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'fastnn\[dask\]'"):
        sweeps.run_sweep(_sweep_tasks.fake_train, {"lr": [0.1]}, out=tmp_path)


def test_import_fastnn_imports_no_dask():
    script = ("import sys, fastnn, fastnn.cli, fastnn.sweep; fastnn.cli.build_parser(); "
              "print(' '.join(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [], proc.stdout


def test_run_keys_are_file_names_and_distinct():
    assert sweeps.run_key({"lr": 0.001, "batch_size": 64}) == "lr=0.001_batch_size=64"
    odd = [{"name": "a/b"}, {"name": "a-b"}, {"name": "a_b=1"}, {"name": "a", "b": "1"}]
    keys = [sweeps.run_key(p) for p in odd]
    assert len(set(keys)) == 4 and all("/" not in k for k in keys), keys


# ------------------------------------------------------------------------------------------------ OCR

def _page(widths):
    img = np.full((200, 180 + 50 * sum(widths) + 100 * len(widths)), 255, np.uint8)
    x = 60
    for n in widths:
        for _ in range(n):
            img[60:130, x:x + 15] = 0
            x += 40
        x += 100
    return img


def test_ocr_of_a_folder_writes_what_fastnn_ocr_writes(scheduler, tmp_path, capsys):
    from PIL import Image

    from fastnn.models import MLP

    model = str(MLP([1024, 16, 36], ["relu", "softmax"], seed=3).save(tmp_path / "m.npz"))
    pages = tmp_path / "pages"
    pages.mkdir()
    for name, widths in (("a.png", (5, 3)), ("b.png", (4,)), ("c.png", (2, 2))):
        Image.fromarray(_page(widths)).save(pages / name)
    for fmt, suffix in (("json", ".json"), ("hocr", ".hocr"), ("tsv", ".tsv")):  # tsv last: resumed below
        alone, swept = tmp_path / f"alone-{fmt}", tmp_path / f"swept-{fmt}"
        assert cli.main(["ocr", str(pages), "--model", model, "--format", fmt, "--out-dir", str(alone),
                         "--no-progress"]) == 0
        assert cli.main(["sweep", "ocr", str(pages), "--model", model, "--format", fmt, "--out-dir", str(swept),
                         "--scheduler", scheduler, "--no-progress"]) == 0
        names = sorted(p.name for p in swept.iterdir())
        assert names == [f"a{suffix}", f"b{suffix}", f"c{suffix}"]
        for name in names:
            assert (swept / name).read_text() == (alone / name).read_text(), name
    assert "read: 3" in capsys.readouterr().out
    # resume: the pages already read are skipped; a page that cannot be decoded is reported, the others read
    data = (pages / "a.png").read_bytes()
    (pages / "d.png").write_bytes(data[: len(data) // 2])
    (swept / "b.tsv").unlink()
    assert cli.main(["sweep", "ocr", str(pages), "--model", model, "--format", "tsv", "--out-dir", str(swept),
                     "--scheduler", scheduler, "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert "read: 1" in captured.out and "skipped: 2" in captured.out and "failed: 1" in captured.out
    assert f"cannot read image '{pages / 'd.png'}'" in captured.err and "truncated" in captured.err, captured.err
    assert "1 of 4 pages could not be read" in captured.err
    assert sorted(p.name for p in swept.iterdir()) == ["a.tsv", "b.tsv", "c.tsv"]


def test_ocr_refuses_grid_options(tmp_path, capsys):
    assert cli.main(["sweep", "ocr", str(tmp_path), "--grid", "lr=0.1", "--out-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--grid: not an option of `fastnn sweep ocr`" in err[0], err
