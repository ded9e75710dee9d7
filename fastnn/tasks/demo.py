"""The main job (``fastnn demo``, ``make demo``): classifier, weights, confusion matrix and autoencoder, one folder."""

from __future__ import annotations

from .classifier import classify, confusion, first_layer_weights
from .common import out_folder, write_report
from .reconstruction import autoencoder
from .registry import Option, positive_int, register

__all__ = ["demo"]


def demo(data=None, out="fastnn-output", *, seed=42, progress=None, epochs=None, autoencoder_epochs=100):
    """The main job: classify, confusion matrix and autoencoder on the available data, into one folder.

    ``epochs`` (a quick look: ``fastnn demo --epochs 1``) replaces both trainings' epochs, the classifier's
    recipe's (50) and ``autoencoder_epochs``.
    """
    from .. import data as data_sets

    out = out_folder(out)
    dataset = data_sets.load_dataset(data, seed=seed)
    if epochs is not None:
        autoencoder_epochs = epochs
    res = classify(data, out, seed=seed, progress=progress, dataset=dataset, epochs=epochs)
    first_layer_weights(data, out, model=res["model"], init_model=res["init_model"])
    conf = confusion(data, out, model=res["model"], dataset=dataset)
    ae = autoencoder(data, out, seed=seed, progress=progress, dataset=dataset, epochs=autoencoder_epochs)
    headline = {"valid_accuracy": res["headline"]["valid_accuracy"], "test_accuracy": res["headline"]["test_accuracy"],
                "psnr_db": ae["headline"]["psnr_db"]}
    plots = res["plots"] + [out / "weights_init.png", out / "weights_trained.png"] + conf["plots"] + ae["plots"]
    details = {"data": dataset["source"], "top_confused_pairs": [f"{a}<->{b}: {n}" for a, b, n in conf["pairs"]]}
    write_report(out, "demo", "fastnn demo: classifier, confusion matrix, autoencoder", headline, details, plots)
    return {"headline": headline, "plots": plots}


register("demo", demo, help="the main job: classify + weights + confusion + autoencoder into one output folder",
         options=[Option("--epochs", type=positive_int,
                         help="epochs of both trainings, the classifier and the autoencoder (default: 50 and 100)")],
         data_line=True)
