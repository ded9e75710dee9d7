"""The OCR model fastnn ships: present in the package, small, safe to load, of this recipe, and able to
read the photographed pages with no data folder and an empty cache."""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import ocr
from fastnn.cnn import CNN
from fastnn.cnn_recipe import CNN_RECIPES
from fastnn.models import MLP
from fastnn.ocr import model as ocr_model

SHARED = Path(os.environ.get("FASTNN_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
PAGES = sorted((SHARED / "ocr").glob("*.jpg")) if (SHARED / "ocr").is_dir() else []
needs_pages = pytest.mark.skipif(not PAGES, reason=f"the photographed pages are not in {SHARED / 'ocr'}")


def test_the_model_ships_small_and_describes_itself():
    path = ocr_model.SHIPPED_MODEL
    assert path.is_file(), f"{path} is missing from the package (build it with fastnn ocr-train; see the README)"
    assert path.stat().st_size <= 10 * 2**20
    model = ocr_model.OCRModel.load(path)  # header-checked, nothing unpickled
    mlp, cnn = model.members
    assert isinstance(mlp, MLP) and mlp.sizes == [1024, *ocr_model.HIDDEN, 36] and mlp.dtype == np.float32
    assert isinstance(cnn, CNN) and cnn.input_shape == (32, 32, 1) and cnn.dtype == np.float32
    meta = model.meta
    assert meta["recipe_version"] == ocr_model.RECIPE_VERSION
    recipe = meta["recipe"]
    assert recipe["members"] == list(ocr_model.MEMBERS) and recipe["per_page"] == ocr_model.PER_PAGE
    assert recipe["mlp"]["hidden"] == list(ocr_model.HIDDEN) and recipe["mlp"]["epochs"] == ocr_model.EPOCHS
    assert recipe["cnn"]["recipe"] == ocr_model.CNN_RECIPE
    assert recipe["cnn"]["conv"] == list(CNN_RECIPES[ocr_model.CNN_RECIPE]["conv"])
    assert meta["data"]["held_out"] == list(ocr_model.HELD_OUT)
    assert "test" not in meta["data"]["hw36"]
    scores = meta["scores"]
    assert 0.85 < scores["hw36_test_accuracy"] <= 1
    assert all(0.8 < scores[f"hw36_test_accuracy_{name}"] <= 1 for name in ocr_model.MEMBERS)
    assert all(page["cer"] <= 0.02 for page in scores["pages"].values())


def test_load_ocr_model_prefers_the_shipped_model_to_training(tmp_path, monkeypatch):
    monkeypatch.delenv("FASTNN_OCR_MODEL", raising=False)
    monkeypatch.delenv("FASTNN_DATA", raising=False)
    monkeypatch.setenv("FASTNN_CACHE", str(tmp_path / "empty-cache"))

    def refuse(*args, **kwargs):
        raise AssertionError("trained although a model ships with fastnn")

    monkeypatch.setattr(ocr_model, "train_ocr_model", refuse)
    model = ocr.load_ocr_model()
    shipped = ocr_model.OCRModel.load(ocr_model.SHIPPED_MODEL)
    for mine, theirs in zip(model.members, shipped.members, strict=True):
        np.testing.assert_array_equal(mine.theta, theirs.theta)
    other = tmp_path / "other.npz"
    MLP([1024, 36], ["softmax"], seed=1).save(other)  # a single network is an OCR model too
    monkeypatch.setenv("FASTNN_OCR_MODEL", str(other))  # the user's choice still wins
    (chosen,) = ocr.load_ocr_model().members
    np.testing.assert_array_equal(chosen.theta, MLP.load(other).theta)


def test_a_shipped_model_of_another_recipe_is_not_used(tmp_path, monkeypatch):
    stale = tmp_path / "ocr_model.npz"
    MLP([1024, 36], ["softmax"], dtype="float32").save(stale, storage="float16", meta={"recipe_version": 1})
    monkeypatch.setattr(ocr_model, "SHIPPED_MODEL", stale)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert ocr_model.shipped_model() is None
    assert any("recipe version 1" in str(w.message) for w in caught)


@needs_pages
@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_the_shipped_model_reads_the_pages(page):
    model = ocr_model.shipped_model()
    text = ocr.read_text(ocr.load_image(page), model).text
    expected = page.with_suffix(".txt").read_text(encoding="utf-8")
    assert ocr.cer(text, expected) <= 0.02, text


@needs_pages
def test_a_fresh_process_reads_a_page_with_no_data_and_an_empty_cache(tmp_path):
    """What a user gets right after `pip install .`: no data folder, no cache, nothing to train."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTNN_")}
    env.update(HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "home" / ".cache"),
               PYTHONPATH=str(Path(fastnn.__file__).resolve().parents[1]))
    page = PAGES[0]
    out = subprocess.run([sys.executable, "-m", "fastnn", "ocr", str(page), "--no-progress"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    expected = page.with_suffix(".txt").read_text(encoding="utf-8")
    assert ocr.cer(out.stdout, expected) <= 0.02, out.stdout
    assert not (tmp_path / "home" / ".cache").exists()  # nothing trained, nothing cached
