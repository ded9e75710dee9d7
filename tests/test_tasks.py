"""The tasks end to end: small generated data for the mechanics, the real data for the headline numbers."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from fastnn import cli, tasks
from fastnn.data import generated_splits

SHARED = Path(os.environ.get("FASTNN_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
needs_hw36 = pytest.mark.skipif(not (SHARED / "hw36").is_dir(),
                                reason=f"real hw36 data not found at {SHARED / 'hw36'} (set FASTNN_DATA)")
needs_mnist = pytest.mark.skipif(not (SHARED / "mnist").is_dir(),
                                 reason=f"real MNIST data not found at {SHARED / 'mnist'} (set FASTNN_DATA)")


@pytest.fixture(scope="module")
def small():
    ds = generated_splits(seed=3, sizes=dict(train=12, valid=4, test=4))
    ds["source"] = "generated (test)"
    return ds


def _report(out, task):
    content = json.loads((out / f"{task}.json").read_text())
    assert (out / f"{task}.md").read_text().startswith("# ")
    for plot in content["plots"]:
        assert Path(plot).stat().st_size > 1000, plot
    return content


def test_classify_writes_curves_model_and_report(tmp_path, small):
    res = tasks.classify(out=tmp_path, dataset=small, epochs=3, progress=False)
    content = _report(tmp_path, "classify")
    assert set(content["headline"]) == {"valid_accuracy", "test_accuracy"}
    assert len(content["history"]["train_loss"]) == 3
    assert (tmp_path / "classify_model.npz").exists()
    assert 0 <= res["headline"]["test_accuracy"] <= 1


def test_weights_lr_study_confusion(tmp_path, small):
    res = tasks.classify(out=tmp_path, dataset=small, epochs=2, progress=False)
    w = tasks.first_layer_weights(out=tmp_path, model=res["model"], init_model=res["init_model"])
    assert w["headline"]["relative_weight_change"] > 0
    _report(tmp_path, "weights")
    lr = tasks.lr_study(out=tmp_path, dataset=small, epochs=2, progress=False)
    assert lr["headline"]["best_lr"] in (0.02, 0.002, 0.0002)
    _report(tmp_path, "lr_study")
    conf = tasks.confusion(out=tmp_path, model=res["model"], dataset=small)
    cm = conf["matrix"]
    assert cm.shape == (36, 36) and cm.sum() == small["test"][0].shape[0]
    assert conf["headline"]["test_accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    _report(tmp_path, "confusion")


def test_autoencoder_small(tmp_path, small):
    res = tasks.autoencoder(out=tmp_path, dataset=small, epochs=2, progress=False, classes="A7")
    assert np.isfinite(res["headline"]["psnr_db"])
    _report(tmp_path, "autoencoder")


def test_confusion_matrix_and_psnr():
    cm = tasks.confusion_matrix([0, 1, 1, 2], [0, 2, 1, 2], 3)
    np.testing.assert_array_equal(cm, [[1, 0, 0], [0, 1, 1], [0, 0, 1]])
    ref = np.zeros((2, 4))
    est = np.array([[0.1, 0.1, 0.1, 0.1], [0.0, 0.0, 0.0, 0.0]])
    p = tasks.psnr(ref, est)
    assert p[0] == pytest.approx(20.0) and np.isinf(p[1])
    with pytest.raises(ValueError, match="shape"):
        tasks.psnr(ref, est[:1])


def test_cli_prints_headline_lines(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FASTNN_DATA", raising=False)
    assert cli.main(["toy", "--epochs", "50"]) == 0
    out = capsys.readouterr().out
    assert "itr: 000" in out and "\nloss: " in out and "\naccuracy: " in out
    assert cli.main(["classify", "--epochs", "1", "--out", str(tmp_path), "--no-progress"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2].startswith("valid_accuracy: ") and lines[-1].startswith("test_accuracy: ")
    assert cli.main(["mnist-binary", "--data", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


@needs_hw36
def test_classify_coursework_recipe_reaches_the_numpy_reference(tmp_path):
    """The coursework protocol (seed 42) on hw36: the plain NumPy code gets 72.0% valid / 73.1% test."""
    res = tasks.classify(SHARED, tmp_path, progress=False)
    assert res["headline"]["valid_accuracy"] >= 0.7199
    assert res["headline"]["test_accuracy"] >= 0.7305


@needs_hw36
def test_autoencoder_psnr_on_hw36(tmp_path):
    res = tasks.autoencoder(SHARED, tmp_path, progress=False)
    assert res["headline"]["psnr_db"] >= 15.0


@needs_mnist
def test_mnist_binary(tmp_path):
    res = tasks.mnist_binary(SHARED, tmp_path, progress=False)
    assert res["headline"]["test_accuracy"] >= 0.95
    assert _report(tmp_path, "mnist_binary")["confusion"]["tp"] > 0


def test_report_values_keep_small_numbers_and_point_to_arrays(tmp_path):
    """autoencoder.md showed lr: 0.0000 for 3e-5, and confusion.md a truncated NumPy printout full of '...'."""
    from fastnn import tasks

    tasks._report(tmp_path, "t", "T", {"acc": 0.5}, {"lr": 3e-5, "matrix": np.ones((36, 36), int)}, [])
    md = (tmp_path / "t.md").read_text()
    assert "lr: 3e-05" in md and "..." not in md and "matrix: an array of shape (36, 36), in full in `t.json`" in md
