"""Stage 6: the OCR model as fastnn ships it: trained by the recipe, scored, and described in its file.

``fastnn ocr-train`` runs :func:`build_ocr_model` and saves the result in half precision with its
description (``MLP.save(storage='float16', meta=meta)``); the file in the package
(:data:`fastnn.ocr.model.SHIPPED_MODEL`) was made so, with seed 0 on the shared data (see the README).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import __version__
from .. import data as _data
from .crops import recrop_rows
from .image import load_image
from .model import COPIES, EPOCHS, HELD_OUT, HIDDEN, LR, RECIPE_VERSION, progress_steps, train_ocr_model
from .read import read_text
from .score import cer

__all__ = ["build_ocr_model"]


def build_ocr_model(data=None, *, seed: int = 0, progress=None):
    """Train the recipe's model as fastnn ships it; return (model, history, meta).

    The parameters are rounded to half precision (as ``MLP.save(storage='float16')`` stores them) before
    the scores are taken, so that ``meta`` describes the model as saved: its recipe, the data it was trained
    on, and its scores on the held-out hw36 splits (re-cropped, the form a page's characters take, and as
    stored) and on the photographed pages in ``<data>/ocr`` (character error rates), when present.
    """
    trained, hist = train_ocr_model(data, seed=seed, progress=progress)
    trained.theta[...] = trained.theta.astype(np.float16)
    data_dir = Path(_data.find_data_dir(data))
    steps = progress_steps(progress)
    scores = {}
    for split in HELD_OUT:
        steps.say(f"evaluating on hw36 {split}")
        X, Y = _data.load_hw36(data_dir, split)
        scores[f"hw36_{split}_accuracy"] = round(float(trained.evaluate(recrop_rows(X), Y)[1]), 6)
        scores[f"hw36_{split}_accuracy_as_stored"] = round(float(trained.evaluate(X, Y)[1]), 6)
    pages = {}
    for image in sorted((data_dir / "ocr").glob("*.jpg")):
        expected = image.with_suffix(".txt")
        if expected.is_file():
            steps.say(f"reading {image.name}")
            text = read_text(load_image(image), trained).text
            truth = expected.read_text(encoding="utf-8")
            pages[image.stem] = {"cer": round(cer(text, truth), 6), "cer_nospace": round(cer(text, truth, True), 6)}
    scores["pages"] = pages
    meta = {
        "recipe_version": RECIPE_VERSION,
        "recipe": {"hidden": list(HIDDEN), "epochs": EPOCHS, "copies": COPIES, "lr": LR, "optimizer": "adam",
                   "batch_size": 128, "seed": seed},
        "data": {"hw36": [name for name in _data.HW36_SPLITS if name not in HELD_OUT],
                 "mnist": "1000 training digits per class, minus those equal to an hw36 row",
                 "held_out": list(HELD_OUT)},
        "scores": scores,
        "built_by": f"fastnn {__version__} ocr-train",
    }
    return trained, hist, meta
