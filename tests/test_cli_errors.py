"""The command line never shows a traceback: every failure is one line on stderr and a non-zero exit."""

import os
from pathlib import Path

import pytest

from fastnn import cli
from fastnn.models import MLP

SHARED = Path(os.environ.get("FASTNN_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")


def _one_error_line(capsys, *words):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    return err


@pytest.mark.parametrize("argv, word", [
    (["toy", "--lr", "nan"], "--lr"),
    (["toy", "--lr", "0"], "--lr"),
    (["toy", "--epochs", "0"], "--epochs"),
    (["classify", "--lr", "inf"], "--lr"),
])
def test_bad_arguments_are_refused_before_anything_runs(argv, word, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert word in capsys.readouterr().err


def test_ocr_eval_refuses_an_endless_expected_file(tmp_path, capsys):
    """/dev/zero as the expected text used to end in a MemoryError or OverflowError traceback."""
    assert cli.main(["ocr-eval", str(tmp_path / "page.png"), "/dev/zero"]) == 2
    _one_error_line(capsys, "/dev/zero")


def test_ocr_eval_refuses_a_binary_expected_file(tmp_path, capsys):
    bad = tmp_path / "expected.txt"
    bad.write_bytes(b"\xff\xfe\x00 not text")
    assert cli.main(["ocr-eval", str(tmp_path / "page.png"), str(bad)]) == 2
    _one_error_line(capsys, "expected.txt", "UTF-8")


def test_missing_model_file_is_one_line(tmp_path, capsys):
    assert cli.main(["confusion", "--model", str(tmp_path / "none.npz"), "--out", str(tmp_path)]) == 2
    _one_error_line(capsys, "none.npz")


@pytest.mark.skipif(not (SHARED / "hw36").is_dir(), reason="needs the shared hw36 data (../shared/data)")
@pytest.mark.parametrize("sizes, acts", [([1024, 8, 40], ["relu", "softmax"]), ([1024, 8, 1024], ["relu", "sigmoid"]),
                                         ([1024, 8, 10], ["relu", "softmax"])])
def test_confusion_refuses_a_model_that_does_not_fit_the_classes(sizes, acts, tmp_path, capsys):
    """40 outputs or an autoencoder gave an IndexError; 10 classes silently gave a 36x36 report."""
    path = MLP(sizes, acts).save(tmp_path / "m.npz")
    assert cli.main(["confusion", "--model", str(path), "--data", str(SHARED), "--out", str(tmp_path / "o"),
                     "--no-progress"]) == 2
    _one_error_line(capsys, "model", "36 classes")


def _replace_task(monkeypatch, name, function):
    """Make `fastnn NAME` call ``function`` (with the task's usual keyword arguments)."""
    import dataclasses

    from fastnn.tasks.registry import TASKS, load_tasks

    load_tasks()
    monkeypatch.setitem(TASKS, name, dataclasses.replace(TASKS[name], function=function))


def test_an_internal_error_is_one_line_with_the_way_to_its_traceback(monkeypatch, capsys):
    def broken(**kwargs):
        raise IndexError("index 40 is out of bounds")

    _replace_task(monkeypatch, "toy", broken)
    monkeypatch.delenv("FASTNN_DEBUG", raising=False)
    assert cli.main(["toy"]) == 3
    _one_error_line(capsys, "internal error", "IndexError", "FASTNN_DEBUG=1")
    monkeypatch.setenv("FASTNN_DEBUG", "1")
    with pytest.raises(IndexError):
        cli.main(["toy"])


def test_a_task_says_on_screen_when_it_uses_the_generated_data(monkeypatch, tmp_path, capsys):
    """With no data folder the 36-class tasks train on synthetic font glyphs: the screen says so, not only
    the report (the headline's test_accuracy: 0.89 would otherwise read like handwriting)."""
    monkeypatch.delenv("FASTNN_DATA", raising=False)
    _replace_task(monkeypatch, "confusion", lambda **kwargs: {"headline": {"test_accuracy": 0.5}, "pairs": []})
    assert cli.main(["confusion", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "data: generated (synthetic fonts), not handwriting" in captured.err
    assert captured.out.strip() == "test_accuracy: 0.5000"  # stdout keeps only the headline lines
