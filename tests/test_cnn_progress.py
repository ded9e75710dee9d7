"""`fastnn cnn`'s progress (issue 21): each model's bar is named after it, the CNN's moves within each epoch
on a terminal and writes a plain line per epoch elsewhere, and showing it changes no number trained."""

import io
import re
import sys

import pytest

import fastnn.data.augmentation
from fastnn.cnn_recipe import train_cnn
from fastnn.data import generated_splits
from fastnn.tasks import cnn as cnn_task

TINY = dict(conv=(3, 4), hidden=8, batch_size=8)  # 144 training rows: 18 batches an epoch ('small': 36)


class Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self):
        return True


@pytest.fixture(scope="module")
def small():
    ds = generated_splits(seed=5, sizes=dict(train=4, valid=2, test=2))
    ds["source"] = "generated (test)"
    return ds


def test_plain_lines_name_each_model_and_come_once_an_epoch_when_stderr_is_no_terminal(tmp_path, small, capsys):
    """The task's default (neither --progress nor --no-progress) on a log file: a line at the end of every
    CNN epoch, with its number, loss and seconds (the rate limit alone wrote the first and the last)."""
    cnn_task.cnn(out=tmp_path, dataset=small, recipe="plain", epochs=3)
    err = capsys.readouterr().err
    assert "\r" not in err
    for ep in (1, 2, 3):
        line, = [line for line in err.splitlines()
                 if line.startswith(f"CNN plain epoch {ep}/3 ") and "valid_acc" in line]
        assert re.search(r" loss \d\.\d+ .*\(\d+\.\d+s\)$", line), line
    assert "MLP coursework epoch 3/3 " in err
    assert not re.search(r"^epoch \d", err, re.M)  # no bar is left without its model's name


def test_no_progress_prints_nothing(tmp_path, small, capsys):
    cnn_task.cnn(out=tmp_path, dataset=small, recipe="plain", epochs=1, progress=False)
    assert capsys.readouterr().err == ""


def test_the_bar_is_redrawn_within_each_epoch_on_a_terminal(small, monkeypatch):
    monkeypatch.setattr(sys, "stderr", Terminal())
    monkeypatch.setattr(fastnn.data.augmentation, "REPORT_ROWS", 50)  # so that 144 rows report within
    train_cnn(small, recipe="small", epochs=2, progress=True, **TINY)
    draws = sys.stderr.getvalue().split("\r")[1:]
    for ep in (1, 2):
        mine = [d for d in draws if d.startswith(f"CNN small epoch {ep}/2 ")]
        within = [d for d in mine if "valid_acc" not in d]
        assert len(mine) > 2 and any(" distorting " in d for d in within) and any(" training loss " in d
                                                                                   for d in within), mine
        assert len(mine) - len(within) == 1  # and once at its end
    fractions = [d.count("#") for d in draws]
    assert fractions == sorted(fractions) and fractions[-1] == 24


def test_the_task_labels_both_bars_on_a_terminal(tmp_path, small, monkeypatch):
    monkeypatch.setattr(sys, "stderr", Terminal())
    cnn_task.cnn(out=tmp_path, dataset=small, recipe="small", epochs=2, progress=True)
    draws = sys.stderr.getvalue().split("\r")
    assert any(d.startswith("CNN small epoch 2/2 ") for d in draws)
    assert any(d.startswith("MLP strong epoch 2/2 ") for d in draws)
    assert not any(d.startswith("epoch ") for d in draws)


@pytest.mark.parametrize("recipe", ["small", "plain"])
def test_progress_changes_no_bit_of_the_trained_model(small, monkeypatch, recipe):
    """The epoch in slices of batches (the bar within it) trains the same bits as in one call."""
    quiet, quiet_hist, _ = train_cnn(small, recipe=recipe, epochs=2, progress=False, **TINY)
    monkeypatch.setattr(sys, "stderr", Terminal())
    shown, shown_hist, _ = train_cnn(small, recipe=recipe, epochs=2, progress=True, **TINY)
    assert "training loss" in sys.stderr.getvalue()  # the epochs did run in slices
    assert quiet.theta.tobytes() == shown.theta.tobytes()
    assert quiet_hist.train_loss == shown_hist.train_loss and quiet_hist.valid_acc == shown_hist.valid_acc
