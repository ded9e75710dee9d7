"""Stage 6: the OCR model as fastnn ships it: trained by the recipe, scored, and described in its file.

``fastnn ocr-train`` runs :func:`build_ocr_model` and saves the result in half precision with its
description (``OCRModel.save(storage='float16', meta=meta)``); the file in the package
(:data:`fastnn.ocr.model.SHIPPED_MODEL`) was made so, with seed 0 on the shared data (see the README).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import __version__
from .. import data as _data
from ..recipes import CNN_RECIPES
from .crops import recrop_rows
from .image import load_image
from .model import (CNN_RECIPE, COPIES, EPOCHS, HELD_OUT, HIDDEN, LR, MEMBERS, PER_PAGE, RECIPE_VERSION,
                    progress_steps, train_ocr_model)
from .read import read_text
from .score import cer
from .synth import page_crops

__all__ = ["build_ocr_model"]

#: Added to the recipe's seed for the pages the held-out characters are cut from (pages unlike the training's).
SCORE_PAGES_SEED = 1_000


def build_ocr_model(data=None, *, seed: int = 0, progress=None):
    """Train the recipe's model as fastnn ships it; return (model, histories, meta).

    The parameters are rounded to half precision (as ``OCRModel.save(storage='float16')`` stores them)
    before the scores are taken, so that ``meta`` describes the model as saved: its recipe, the data it was
    trained on, and its scores on the held-out hw36 splits and on the photographed pages in ``<data>/ocr``
    (character error rates), when present. A held-out split is scored three ways: on its characters cut
    from generated pages (``page_crops``, the form a page's characters take; also per network), re-cropped
    (``recrop_rows``) and as stored.
    """
    trained, histories = train_ocr_model(data, seed=seed, progress=progress)
    for net in trained.members:
        net.theta[...] = net.theta.astype(np.float16)
    data_dir = Path(_data.find_data_dir(data))
    steps = progress_steps(progress)
    scores = {}
    for split in HELD_OUT:
        steps.say(f"evaluating on hw36 {split}")
        X, Y = _data.load_hw36(data_dir, split)
        crops, _ = page_crops(X, seed=seed + SCORE_PAGES_SEED, per_page=PER_PAGE)
        scores[f"hw36_{split}_accuracy"] = round(trained.accuracy(crops, Y), 6)
        for name, net in zip(MEMBERS, trained.members):
            alone = type(trained)([net])
            scores[f"hw36_{split}_accuracy_{name}"] = round(alone.accuracy(crops, Y), 6)
        scores[f"hw36_{split}_accuracy_recropped"] = round(trained.accuracy(recrop_rows(X), Y), 6)
        scores[f"hw36_{split}_accuracy_as_stored"] = round(trained.accuracy(X, Y), 6)
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
        "recipe": {"members": list(MEMBERS), "seed": seed, "per_page": PER_PAGE,
                   "mlp": {"hidden": list(HIDDEN), "epochs": EPOCHS, "copies": COPIES, "lr": LR, "optimizer": "adam",
                           "batch_size": 128},
                   "cnn": {"recipe": CNN_RECIPE, **{k: list(v) if isinstance(v, tuple) else v
                                                    for k, v in CNN_RECIPES[CNN_RECIPE].items()}}},
        "data": {"hw36": [name for name in _data.HW36_SPLITS if name not in HELD_OUT],
                 "mnist": "1000 training digits per class, minus those equal to an hw36 row",
                 "held_out": list(HELD_OUT)},
        "scores": scores,
        "built_by": f"fastnn {__version__} ocr-train",
    }
    return trained, histories, meta
