"""One line means one line (issue 20): a warning during a command is one `fastnn TASK: warning: ...` line on
stderr, never Python's file, line number and source line; warnings that speak to programmers are kept out; an
OSError names its file, or the output being written when the exception carries no file name.

The damaged images are built here: a JPEG whose EXIF block is cut short (Pillow warns "Corrupt EXIF data"), a
JPEG cut in half (its pixels fail to decode) and a TIFF whose first directory lies past its end (Pillow warns,
tifffile logs). The model is an untrained MLP saved to .npz and given with --model, as in tests/test_ocr_cli.py.
"""

import contextlib
import errno
import logging
import os
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fastnn
import fastnn._io
from fastnn import cli, ocr

ROOT = Path(fastnn.__file__).resolve().parents[1]


def _page():
    """A white page with two black bars, two characters for the reader."""
    img = np.full((200, 400), 255, np.uint8)
    img[60:130, 60:75] = 0
    img[60:130, 160:175] = 0
    return img


def _corrupt_exif_jpeg(path):
    """A JPEG whose EXIF directory claims 65535 entries: Pillow warns "Corrupt EXIF data" and reads the pixels."""
    exif = Image.Exif()
    exif[0x0112] = 1  # orientation: upright
    Image.fromarray(_page()).convert("RGB").save(path, quality=90, exif=exif.tobytes())
    data = bytearray(path.read_bytes())
    tiff = data.index(b"Exif\0\0") + 6  # the TIFF header inside the APP1 segment; its first directory follows
    data[tiff + 8: tiff + 10] = b"\xff\xff"
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def images(tmp_path):
    """good.png, exif.jpg (corrupt EXIF, readable), cut.jpg (its header whole, its pixels cut off)."""
    Image.fromarray(_page()).save(tmp_path / "good.png")
    _corrupt_exif_jpeg(tmp_path / "exif.jpg")
    Image.fromarray(_page()).convert("RGB").save(tmp_path / "whole.jpg", quality=90)
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    return tmp_path


@pytest.fixture(autouse=True)
def no_debug(monkeypatch):
    monkeypatch.delenv("FASTNN_DEBUG", raising=False)


def _stderr_lines(err, task="ocr"):
    lines = err.strip().splitlines()
    assert all(line.startswith(f"fastnn {task}: ") for line in lines), err
    assert "Traceback" not in err and ".py:" not in err and "warnings.warn" not in err, err
    return lines


def _run_fastnn(args, cwd, **kwargs):
    """`python -m fastnn ARGS` in a fresh interpreter with Python's default warning filters."""
    env = {k: v for k, v in os.environ.items() if k not in ("FASTNN_DEBUG", "PYTHONWARNINGS", "PYTHONDEVMODE")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, *kwargs.pop("python_options", []), "-m", "fastnn", *map(str, args)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300, **kwargs)


# ------------------------------------------------------------------------------------------------ warnings


def test_a_reader_warning_is_one_line_that_names_the_image(images, model_path, capsys):
    exif = images / "exif.jpg"
    with pytest.warns(UserWarning, match="Corrupt EXIF"):  # the reader's own warning, with no file name
        ocr.load_image(exif)
    assert cli.main(["ocr", str(exif), str(images / "good.png"), "--model", model_path, "--no-progress"]) == 0
    captured = capsys.readouterr()
    [line] = _stderr_lines(captured.err)
    assert line.startswith(f"fastnn ocr: warning: image {str(exif)!r}: Corrupt EXIF data."), line
    assert "  " not in line and not line.endswith(" "), line  # the message's own runs of spaces are collapsed
    assert f"== {exif}" in captured.out and f"== {images / 'good.png'}" in captured.out


def test_the_exit_2_batch_prints_one_line_per_message(images, model_path, capsys):
    """The issue's exit-2 run: a warning (once, though the image is checked and then read), the image that
    could not be read, the count: three lines."""
    args = [str(images / "exif.jpg"), str(images / "cut.jpg"), str(images / "good.png"), "--model", model_path,
            "--no-progress"]
    assert cli.main(["ocr", *args]) == 2
    warning, error, count = _stderr_lines(capsys.readouterr().err)
    assert warning.startswith("fastnn ocr: warning: image ") and "exif.jpg" in warning and "EXIF" in warning
    assert error.startswith("fastnn ocr: error: cannot read image ") and "cut.jpg" in error
    assert count == "fastnn ocr: 1 of 3 images could not be read"


def test_the_real_stderr_of_a_damaged_batch(images, model_path, tmp_path):
    """The command as a user runs it: nothing but `fastnn ocr: ` lines on the process's stderr."""
    proc = _run_fastnn(["ocr", "exif.jpg", "cut.jpg", "good.png", "--model", model_path, "--no-progress"],
                       cwd=images)
    assert proc.returncode == 2, proc.stderr
    lines = _stderr_lines(proc.stderr)
    assert len(lines) == 3 and "warning: image 'exif.jpg': Corrupt EXIF data" in lines[0], proc.stderr


def test_a_reader_log_record_is_one_line_too(model_path, tmp_path):
    """A TIFF whose first directory lies past its end: Pillow warns, tifffile logs (through logging's handler of
    last resort, which printed the bare message), and the file is refused."""
    Image.fromarray(_page()).save(tmp_path / "page.tif")
    data = (tmp_path / "page.tif").read_bytes()
    (tmp_path / "gone.tif").write_bytes(data[:4] + struct.pack("<I", len(data) + 1000) + data[8:])
    proc = _run_fastnn(["ocr", "gone.tif", "--model", model_path], cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = _stderr_lines(proc.stderr)
    assert lines[-1].startswith("fastnn ocr: error: cannot read image 'gone.tif'"), proc.stderr
    assert len(lines) >= 2 and all(": warning: " in line for line in lines[:-1]), proc.stderr


def test_minus_w_error_still_makes_a_warning_an_error(images, model_path):
    proc = _run_fastnn(["ocr", "exif.jpg", "--model", model_path], cwd=images,
                       python_options=["-W", "error::UserWarning"])
    assert proc.returncode == 2, proc.stderr
    [line] = _stderr_lines(proc.stderr)
    assert line.startswith("fastnn ocr: error: cannot read image 'exif.jpg': Corrupt EXIF data"), line


def test_fastnn_s_own_warning_is_one_line_once(tmp_path, model_path, capsys):
    """find_letters warns about an image too thin to hold characters: once, though the image is read twice."""
    Image.fromarray(np.full((4, 2000), 255, np.uint8)).save(tmp_path / "thin.png")
    args = ["ocr", str(tmp_path / "thin.png"), str(tmp_path / "thin.png"), "--model", model_path, "--no-progress"]
    assert cli.main(args) == 0
    [line] = _stderr_lines(capsys.readouterr().err)
    assert line.startswith(f"fastnn ocr: warning: image {str(tmp_path / 'thin.png')!r}: find_letters: the 2000x4 "
                           "image is too thin to hold characters"), line


def _replace_task(monkeypatch, name, function):
    """Make `fastnn NAME` call ``function`` (as in tests/test_cli_errors.py)."""
    import dataclasses

    from fastnn.tasks.registry import TASKS, load_tasks

    load_tasks()
    monkeypatch.setitem(TASKS, name, dataclasses.replace(TASKS[name], function=function))


def _warns(**kwargs):
    warnings.warn("fastnn: the first line\n  and the second", RuntimeWarning, stacklevel=1)
    warnings.warn("fastnn: the first line\n  and the second", RuntimeWarning, stacklevel=1)  # the same line: once
    warnings.warn_explicit("an old API", DeprecationWarning, "thirdparty.py", 1, module="thirdparty")
    warnings.warn_explicit("fastnn.old is going away", DeprecationWarning, "fastnn/old.py", 1, module="fastnn.old")
    warnings.warn("unclosed file", ResourceWarning, stacklevel=1)
    warnings.warn("a note", UserWarning, stacklevel=1)
    return {"headline": {"loss": 0.5}}


def test_warnings_of_a_task_are_one_line_each_and_programmers_warnings_stay_out(monkeypatch, capsys):
    _replace_task(monkeypatch, "toy", _warns)
    showwarning, filters, last_resort = warnings.showwarning, list(warnings.filters), logging.lastResort
    assert cli.main(["toy"]) == 0
    captured = capsys.readouterr()
    assert _stderr_lines(captured.err, "toy") == ["fastnn toy: warning: the first line and the second",
                                                  "fastnn toy: warning: fastnn.old is going away",
                                                  "fastnn toy: warning: a note"]
    assert captured.out == "loss: 0.5000\n"
    assert (warnings.showwarning, warnings.filters, logging.lastResort) == (showwarning, filters, last_resort)


@pytest.mark.filterwarnings("ignore")  # the other warnings pytest.warns passes on
def test_fastnn_debug_keeps_python_s_own_warnings(monkeypatch, capsys):
    _replace_task(monkeypatch, "toy", _warns)
    monkeypatch.setenv("FASTNN_DEBUG", "1")
    with pytest.warns(UserWarning, match="a note"):  # Python's machinery (here pytest's) gets them, unchanged
        assert cli.main(["toy"]) == 0
    assert "warning:" not in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ OSError


def test_a_full_disk_names_the_file_being_written(images, model_path, monkeypatch, capsys):
    """atomic_write's fsync fails as on a full disk: the OSError it gets names no file ("[Errno 28] No space
    left on device" named none), so atomic_write names the file it was writing; nothing is left behind."""
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(fastnn._io.os, "fsync", full)
    out = images / "out"
    assert cli.main(["ocr", str(images / "good.png"), "--model", model_path, "--out-dir", str(out)]) == 2
    [line] = _stderr_lines(capsys.readouterr().err)
    assert line == f"fastnn ocr: error: {out / 'good.txt'}: {os.strerror(errno.ENOSPC)}", line
    assert list(out.iterdir()) == []


def test_a_full_disk_without_a_file_name_names_the_output_option(monkeypatch, capsys):
    """A write's error that names no file (not through atomic_write) names the command's output options."""
    def fail(**kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    _replace_task(monkeypatch, "toy", fail)
    assert cli.main(["toy", "--out", "somewhere"]) == 2
    [line] = _stderr_lines(capsys.readouterr().err, "toy")
    assert line == f"fastnn toy: error: {os.strerror(errno.ENOSPC)} (writing --out somewhere)", line


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_full_standard_output_is_named(images, model_path, monkeypatch, capsys):
    full = open("/dev/full", "w")  # every write to it fails with ENOSPC
    try:
        monkeypatch.setattr(sys, "stdout", full)
        assert cli.main(["ocr", str(images / "good.png"), "--model", model_path]) == 2
    finally:
        with contextlib.suppress(OSError):
            full.close()
    [line] = _stderr_lines(capsys.readouterr().err)
    assert line == f"fastnn ocr: error: standard output: {os.strerror(errno.ENOSPC)}", line


@pytest.mark.parametrize("exc, expected", [
    (PermissionError(errno.EACCES, "Permission denied", "/srv/out/report.json"),
     "/srv/out/report.json: Permission denied"),
    (OSError(errno.EXDEV, "Invalid cross-device link", "/a/x.part", None, "/b/x"),
     "/a/x.part -> /b/x: Invalid cross-device link"),
    (OSError(errno.EIO, "Input/output error"), "[Errno 5] Input/output error"),  # no file, not a write's error
    (OSError("--out-dir x: not writable"), "--out-dir x: not writable"),  # fastnn's own message
])
def test_an_os_error_is_its_file_and_its_reason(exc, expected, monkeypatch, capsys):
    def fail(**kwargs):
        raise exc

    _replace_task(monkeypatch, "toy", fail)
    assert cli.main(["toy", "--out", "somewhere"]) == 2
    assert _stderr_lines(capsys.readouterr().err, "toy") == [f"fastnn toy: error: {expected}"]
