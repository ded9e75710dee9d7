"""What a new user hit in the first hour (issue 21): `fastnn ... | head` is not an error, one-epoch curves
show their points, and a sweep refused for a missing Dask leaves no folder behind.

The pipes are real: a `python -m fastnn` child whose stdout is a pipe the test closes, run outside the checkout
with PYTHONPATH set to the fastnn under test (as in tests/test_cli_warnings.py). The OCR model is an untrained
MLP saved to .npz and given with --model, as in tests/test_ocr_cli.py.
"""

import dataclasses
import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fastnn
from fastnn import cli
from fastnn.sweep import ocr_pages as sweep_ocr_pages
from fastnn.sweep import runs as sweep_runs
from fastnn.tasks import common
from fastnn.train import History

ROOT = Path(fastnn.__file__).resolve().parents[1]
#: What a quiet end must not print on stderr.
_NOISE = ("error", "Broken pipe", "BrokenPipeError", "Exception ignored", "Traceback")


def _env():
    env = {k: v for k, v in os.environ.items() if k not in ("FASTNN_DEBUG", "PYTHONWARNINGS", "PYTHONDEVMODE")}
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.fixture
def page(tmp_path):
    """A white page with two black bars, two characters for the reader."""
    img = np.full((200, 400), 255, np.uint8)
    img[60:130, 60:75] = 0
    img[60:130, 160:175] = 0
    Image.fromarray(img).save(tmp_path / "page.png")
    return tmp_path / "page.png"


# ------------------------------------------------------------------------------------ a reader closes the pipe


#: `fastnn toy` with a line-buffered stdout: the task's own first print meets the closed pipe (not the
#: command line's printer of the headline).
_TOY_OWN_PRINT = ("import sys; sys.stdout.reconfigure(line_buffering=True); from fastnn.cli import main; "
                  "sys.exit(main(['toy']))")


def _closed_pipe_run(python_args, cwd):
    """`python PYTHON_ARGS` with stdout a pipe whose reader has gone before anything is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone: every write to stdout fails with EPIPE
    try:
        with open(cwd / "stderr.txt", "w+") as err:
            proc = subprocess.run([sys.executable, *map(str, python_args)], cwd=cwd, env=_env(),
                                  stdout=write_end, stderr=err, timeout=300)
            err.seek(0)
            return proc.returncode, err.read()
    finally:
        os.close(write_end)


@pytest.mark.parametrize("command", ["toy", "toy's own print", "ocr"])
def test_a_reader_that_closes_the_pipe_ends_the_command_quietly(command, page, model_path, tmp_path):
    python_args = {"toy": ["-m", "fastnn", "toy"], "toy's own print": ["-c", _TOY_OWN_PRINT],
                   "ocr": ["-m", "fastnn", "ocr", page, "--model", model_path]}[command]
    status, err = _closed_pipe_run(python_args, tmp_path)
    assert status == 0, err
    assert not any(word in err for word in _NOISE), err


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("head") is None, reason="needs bash and head")
def test_head_in_a_pipefail_pipeline(tmp_path):
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", f"'{sys.executable}' -m fastnn toy | head -1"],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("itr: ") and len(proc.stdout.splitlines()) == 1, proc.stdout
    assert not any(word in proc.stderr for word in _NOISE), proc.stderr


def test_a_broken_pipe_that_is_not_stdout_is_still_an_error(monkeypatch, capsys):
    from fastnn.tasks.registry import TASKS, load_tasks

    def fail(**kwargs):
        raise BrokenPipeError(32, "Broken pipe")  # a subprocess's or a socket's, not stdout's

    load_tasks()
    monkeypatch.setitem(TASKS, "toy", dataclasses.replace(TASKS["toy"], function=fail))
    assert cli.main(["toy"]) == 2
    assert "fastnn toy: error: " in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ one-epoch curves


def _one_epoch():
    return History(train_loss=[0.9], train_acc=[0.6], valid_loss=[1.0], valid_acc=[0.55])


def _figures(monkeypatch, module):
    """Keep the figures ``module`` saves (it closes them otherwise)."""
    kept = []
    monkeypatch.setattr(module, "save_figure", lambda fig, path, **kw: kept.append(fig) or Path(path))
    return kept


def _assert_every_point_shows(figures):
    lines = [line for fig in figures for ax in fig.axes for line in ax.get_lines()]
    assert lines
    for line in lines:
        assert line.get_marker() not in (None, "None", "", " "), line.get_label()


def test_one_epoch_curves_show_their_points(monkeypatch, tmp_path):
    common.pyplot()
    kept = _figures(monkeypatch, common)
    common.plot_curves(_one_epoch(), tmp_path / "curves.png", "one epoch")
    _assert_every_point_shows(kept)


def test_one_epoch_cnn_curves_show_their_points(monkeypatch, tmp_path):
    tasks_cnn = importlib.import_module("fastnn.tasks.cnn")
    kept = _figures(monkeypatch, tasks_cnn)
    tasks_cnn.plot_two_models([("CNN", _one_epoch()), ("MLP", _one_epoch())], tmp_path / "cnn.png", "one epoch")
    _assert_every_point_shows(kept)


# ------------------------------------------------------------------------------------- a sweep without Dask


@pytest.mark.parametrize("missing", ["distributed", "cryptography.x509"])
def test_a_sweep_without_dask_leaves_no_folder(missing, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, missing, None)  # `import distributed` (or cryptography's) raises ImportError
    monkeypatch.setattr(sweep_runs, "Cluster", None)  # nothing may start
    out = tmp_path / "fastnn-sweep-classify"
    assert cli.main(["sweep", "classify", "--grid", "lr=0.01,0.1", "--epochs", "1", "--out", str(out)]) == 2
    assert not out.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fastnn sweep: error: fastnn sweep needs "), err
    assert "pip install 'fastnn[dask]'" in err[0], err


def test_a_sweep_of_pages_without_dask_leaves_no_folder(page, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)
    monkeypatch.setattr(sweep_ocr_pages, "Cluster", None)
    out = tmp_path / "text"
    assert cli.main(["sweep", "ocr", str(page), "--out-dir", str(out)]) == 2
    assert not out.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fastnn sweep needs Dask" in err[0], err


# ---------------------------------------------------------------------------------------- --epochs


@pytest.mark.parametrize("task", ["demo", "weights"])
def test_demo_and_weights_take_epochs(task, tmp_path, monkeypatch, capsys):
    """`fastnn demo --epochs 1` and `fastnn weights --epochs 1` are a quick look (they had no --epochs): every
    training of the run is one epoch long."""
    import json

    monkeypatch.delenv("FASTNN_DATA", raising=False)  # the generated set: no data needed, and fast
    out = tmp_path / "out"
    assert cli.main([task, "--epochs", "1", "--out", str(out), "--no-progress"]) == 0
    classify = json.loads((out / "classify.json").read_text())
    assert classify["settings"]["epochs"] == 1 and len(classify["history"]["train_loss"]) == 1
    assert (out / "weights_trained.png").is_file()
    if task == "demo":
        autoencoder = json.loads((out / "autoencoder.json").read_text())
        assert len(autoencoder["history"]["train_loss"]) == 1


def test_cnn_help_describes_every_recipe_as_it_is():
    """`fastnn cnn --help` says what each recipe is (it listed 'wide' without a word): its name, its
    convolutions, units and epochs as fastnn.cnn_recipe.CNN_RECIPES holds them, and the MLP beside it."""
    from fastnn.cnn_recipe import CNN_RECIPES
    from fastnn.tasks.cnn import MLP_RECIPE_OF

    text = " ".join(cli.build_parser()._subparsers._group_actions[0].choices["cnn"].format_help().split())
    for name, r in CNN_RECIPES.items():
        start = text.index(f"{name}: ")
        part = text[start:text.find(";", start) if ";" in text[start:] else len(text)]
        k = r["kernel"]
        assert f"{k}x{k} conv{r['conv'][0]}/conv{r['conv'][1]}" in part, (name, part)
        assert f"{r['hidden']} ReLU" in part and f"{r['epochs']} epochs" in part, (name, part)
        assert ("coursework MLP" if MLP_RECIPE_OF[name] == "coursework" else f"'{MLP_RECIPE_OF[name]}' MLP") in part


def test_training_on_the_generated_set_is_said_before_it_trains(tmp_path, monkeypatch, capsys):
    """Without real data, the 36-class tasks say so when the data is loaded, before the training (it was said
    only after it), in one warning line; and once more beside the output at the end."""
    import warnings

    from fastnn.data import GeneratedDataWarning

    monkeypatch.delenv("FASTNN_DATA", raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("default", GeneratedDataWarning)  # (pytest's configuration hides it elsewhere)
        assert cli.main(["weights", "--epochs", "2", "--out", str(tmp_path), "--progress"]) == 0
    lines = capsys.readouterr().err.replace("\r", "\n").splitlines()
    assert lines[0].startswith("fastnn weights: warning: no real data") and "generated set" in lines[0], lines[:3]
    assert any("epoch" in line for line in lines[1:]), lines  # the training's progress came after it
    assert sum("no real data" in line for line in lines) == 1
    assert "data: generated (synthetic fonts), not handwriting" in lines


def test_the_lr_study_bars_say_which_rate_they_train(tmp_path, monkeypatch, capsys):
    """`fastnn lr-study` trains three rates one after another; each bar says which (they were all 'epoch')."""
    monkeypatch.delenv("FASTNN_DATA", raising=False)
    assert cli.main(["lr-study", "--epochs", "1", "--lr", "0.002", "--out", str(tmp_path), "--progress"]) == 0
    err = capsys.readouterr().err
    for rate in ("0.02", "0.002", "0.0002"):
        assert f"lr {rate} epoch 1/1" in err, err


def test_the_boxes_picture_is_at_most_2000_pixels_across(tmp_path):
    """What the README and `--boxes`' help say: a page wider than 2000 pixels is drawn at 1/k of its size."""
    from fastnn.ocr import draw_boxes

    binary = np.zeros((900, 4100), bool)
    binary[100:200, 300:360] = True
    path = draw_boxes(binary, np.array([[100, 300, 200, 360]]), [[[0]]], tmp_path / "boxes.png")
    width, height = Image.open(path).size
    assert abs(width - 4100 / 3) <= 1 and abs(height - 900 / 3) <= 1, (width, height)
