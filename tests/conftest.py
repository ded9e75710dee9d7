"""Fixtures several test files share."""

import os
from pathlib import Path

import numpy as np
import pytest

from fastnn.models import MLP

SEED = 1234  # the rng fixture's


@pytest.fixture
def rng():
    """A NumPy Generator seeded with SEED, new for each test: every test draws the same numbers on every run."""
    return np.random.default_rng(SEED)


@pytest.fixture(scope="session")
def model_path(tmp_path_factory):
    """An untrained 1024-16-36 MLP file: a classifier `fastnn ocr --model` takes, for tests of the command
    line's plumbing, not of reading."""
    return str(MLP([1024, 16, 36], ["relu", "softmax"], seed=3).save(tmp_path_factory.mktemp("model") / "m.npz"))


@pytest.fixture
def no_model(monkeypatch):
    """load_ocr_model and train_ocr_model fail loudly: the test proves nothing slow ran (an OCR command that
    must refuse its arguments before it loads or trains a model)."""
    import fastnn.ocr.model

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded or trained before the arguments were checked")

    monkeypatch.setattr(fastnn.ocr.model, "load_ocr_model", refuse)
    monkeypatch.setattr(fastnn.ocr.model, "train_ocr_model", refuse)


@pytest.fixture(scope="session")
def texts():
    """Each shared photographed page's text (by path) as `fastnn ocr FILE` prints it with the shipped model:
    what the tests of other inputs and formats of the same pages compare with (read once a session)."""
    import fastnn.ocr.model
    from fastnn import ocr

    shared = Path(os.environ.get("FASTNN_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
    model = fastnn.ocr.model.load_ocr_model(fastnn.ocr.model.SHIPPED_MODEL)
    return {p: ocr.read_text(ocr.load_image(p), model).text for p in sorted((shared / "ocr").glob("*.jpg"))}
