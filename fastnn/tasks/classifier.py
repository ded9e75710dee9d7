"""The 36-class character classifier and its studies: ``fastnn classify``, ``weights``, ``lr-study``, ``confusion``.

Each task trains (or takes) the classifier on hw36 from ``data`` (or ``$FASTNN_DATA``), or on the generated
set when no data folder is configured, and writes its plots and its report into ``out``.
"""

from __future__ import annotations

import numpy as np

from ..recipes import RECIPES
from .common import (curve_style, epoch_axis, image_grid, out_folder, plot_curves, pyplot, save_figure, upright,
                     write_report)
from .registry import Option, positive_float, positive_int, register

__all__ = ["RECIPES", "train_classifier", "classify", "first_layer_weights", "lr_study", "confusion_matrix",
           "plot_confusion", "confused_pairs", "confusion"]


def hw36_extra(data):
    """hw36's 'extra' split of the real data folder, or None (generated data, or no such split)."""
    from .. import data as data_sets
    data_dir = data_sets.find_data_dir(data)
    if data_dir is None:
        return None
    try:
        return data_sets.load_hw36(data_dir, "extra")
    except FileNotFoundError:
        return None


def train_classifier(dataset, recipe="coursework", *, seed=42, epochs=None, lr=None, hidden=None, batch_size=None,
                     extra=None, progress=None, label=None):
    """Train the 36-class MLP with a recipe of ``fastnn.recipes.RECIPES``; return (model, history, trainer, settings).

    ``epochs``, ``lr``, ``hidden`` (units of the hidden layer) and ``batch_size``, when given, replace the
    recipe's (a sweep varies them).  ``label`` names the progress bar's unit when the trainer's own
    bar is shown ("lr 0.02 epoch 3/50"; default: "epoch").

    The 'coursework' recipe follows the coursework's protocol exactly: ``np.random.seed(seed)``-style
    draws (a ``RandomState``) for the Xavier weights, then one permutation for batches reused every
    epoch, plain SGD on the summed loss. 'strong' adds the hw36 'extra' letters when given.
    """
    from ..models import MLP
    from ..train import Trainer

    if recipe not in RECIPES:
        raise ValueError(f"recipe: expected one of {tuple(RECIPES)}, got {recipe!r}")
    s = dict(RECIPES[recipe])
    if epochs is not None:
        s["epochs"] = int(epochs)
    if lr is not None:
        s["lr"] = float(lr)
    if hidden is not None:
        s["hidden"] = int(hidden)
    if batch_size is not None:
        s["batch_size"] = int(batch_size)
    X, Y = dataset["train"]
    if s["extra"] and extra is not None:
        X, Y = np.vstack([X, extra[0]]), np.vstack([Y, extra[1]])
    s["train_rows"] = int(X.shape[0])
    model = MLP([X.shape[1], s["hidden"], Y.shape[1]], [s["activation"], "softmax"], dtype=s["dtype"])
    order = None
    if recipe == "coursework":
        rs = np.random.RandomState(seed)
        model.init("xavier", rng=rs)
        order = rs.permutation(X.shape[0])
    else:
        model.init("xavier", seed=seed)
    if label is not None and progress is not False and not hasattr(progress, "update"):
        from ..progress import ProgressBar

        progress = ProgressBar(s["epochs"], label)
    trainer = Trainer(model, optimizer=s["optimizer"], lr=s["lr"], batch_size=s["batch_size"], shuffle=s["shuffle"],
                      seed=seed, progress=progress)
    hist = trainer.fit(X, Y, s["epochs"], valid=dataset["valid"], order=order)
    if recipe != "coursework":
        trainer.restore_best()
    return model, hist, trainer, s


def classify(data=None, out="fastnn-output", *, recipe="coursework", seed=42, epochs=None, lr=None, hidden=None,
             batch_size=None, progress=None, dataset=None):
    """Train and evaluate the 36-class character classifier (1024-64-36 sigmoid + softmax by default).

    ``epochs``, ``lr``, ``hidden`` and ``batch_size`` replace the recipe's when given.

    Writes ``classify_curves.png`` (accuracy and average loss, training and validation, per epoch),
    ``classify_model.npz`` and the report ``classify.json`` / ``classify.md``.

    Returns
    -------
    dict
        ``headline`` (valid_accuracy, test_accuracy), ``model``, ``history``, ``init_weights``.
    """
    from .. import data as data_sets
    from ..models import MLP

    out = out_folder(out)
    dataset = dataset or data_sets.load_dataset(data, seed=seed)
    extra = hw36_extra(data) if RECIPES.get(recipe, {}).get("extra") else None
    model0 = None
    model, hist, trainer, s = train_classifier(dataset, recipe, seed=seed, epochs=epochs, lr=lr, hidden=hidden,
                                               batch_size=batch_size, extra=extra, progress=progress)
    if recipe == "coursework":
        rs = np.random.RandomState(seed)
        model0 = MLP(model.sizes, model.activations, dtype=model.dtype).init("xavier", rng=rs)
    valid_loss, valid_acc = model.evaluate(*dataset["valid"])
    test_loss, test_acc = model.evaluate(*dataset["test"])
    plots = [plot_curves(hist, out / "classify_curves.png", f"{recipe} recipe")]
    model.save(out / "classify_model.npz")
    headline = {"valid_accuracy": valid_acc, "test_accuracy": test_acc}
    details = {"data": dataset["source"], "recipe": recipe, "settings": s, "seed": seed,
               "valid_loss": valid_loss, "test_loss": test_loss, "seconds_per_epoch": float(np.median(hist.seconds)),
               "history": hist.as_dict()}
    write_report(out, "classify", f"36-class classifier ({recipe} recipe)", headline, details, plots)
    return {"headline": headline, "model": model, "history": hist, "init_model": model0, "dataset": dataset,
            "plots": plots}


def _weight_images(W):
    """First-layer weights (1024, h) as h upright 32x32 images, each scaled to its own range."""
    imgs = upright(W.T)
    lo = imgs.min(axis=(1, 2), keepdims=True)
    hi = imgs.max(axis=(1, 2), keepdims=True)
    return (imgs - lo) / np.maximum(hi - lo, 1e-12)


def first_layer_weights(data=None, out="fastnn-output", *, seed=42, model=None, init_model=None, progress=None,
                        epochs=None):
    """The 64 first-layer weight vectors as an 8x8 grid of 32x32 images, at initialisation and after training.

    Trains the coursework classifier (``epochs``: default the recipe's) unless a trained ``model`` (and its
    ``init_model``) is given. Writes ``weights_init.png`` and ``weights_trained.png``.
    """
    from ..models import MLP

    out = out_folder(out)
    if model is None:
        res = classify(data, out, seed=seed, progress=progress, epochs=epochs)
        model, init_model = res["model"], res["init_model"]
    if init_model is None:
        init_model = MLP(model.sizes, model.activations, dtype=model.dtype).init("xavier", seed=seed)
    h = model.sizes[1]
    ncols = int(np.ceil(np.sqrt(h)))
    nrows = int(np.ceil(h / ncols))
    plots = [
        image_grid(_weight_images(init_model.weights[0]), out / "weights_init.png",
                    f"first-layer weights at initialisation ({h})", nrows, ncols),
        image_grid(_weight_images(model.weights[0]), out / "weights_trained.png",
                    f"first-layer weights after training ({h})", nrows, ncols),
    ]
    change = float(np.linalg.norm(model.weights[0] - init_model.weights[0]) / np.linalg.norm(init_model.weights[0]))
    headline = {"relative_weight_change": change}
    write_report(out, "weights", "First-layer weights", headline, {"hidden_units": h}, plots)
    return {"headline": headline, "plots": plots}


def lr_study(data=None, out="fastnn-output", *, seed=42, lr=0.002, epochs=None, progress=None, dataset=None):
    """Train the coursework classifier at the tuned learning rate, 10x and 0.1x; plot the six curves.

    Writes ``lr_study.png`` (training and validation accuracy and loss for each rate) and reports the
    test accuracy of the rate with the best final validation accuracy.
    """
    from .. import data as data_sets

    out = out_folder(out)
    dataset = dataset or data_sets.load_dataset(data, seed=seed)
    rates = [lr * 10, lr, lr / 10]
    runs = {}
    for rate in rates:  # each run's bar says the rate it trains ("lr 0.02 epoch 3/50")
        model, hist, _, _ = train_classifier(dataset, "coursework", seed=seed, epochs=epochs, lr=rate,
                                             progress=progress, label=f"lr {rate:g} epoch")
        runs[rate] = (model, hist)
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for rate, (_, hist) in runs.items():
        ep = np.arange(1, len(hist.train_acc) + 1)
        for ax, tr, va, name in ((ax1, hist.train_acc, hist.valid_acc, "accuracy"),
                                 (ax2, hist.train_loss, hist.valid_loss, "average loss")):
            line, = ax.plot(ep, tr, label=f"lr={rate:g} training", **curve_style(len(ep)))
            ax.plot(ep, va, "--", color=line.get_color(), label=f"lr={rate:g} validation",
                    **curve_style(len(ep)))
            ax.set(xlabel="epoch", ylabel=name, title=f"learning rates: {name}")
    epoch_axis(ax1, ax2)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = save_figure(fig, out / "lr_study.png")
    best = max(rates, key=lambda r: runs[r][1].valid_acc[-1])
    test_acc = runs[best][0].evaluate(*dataset["test"])[1]
    headline = {"best_lr": best, "best_valid_accuracy": runs[best][1].valid_acc[-1], "test_accuracy": test_acc}
    details = {"data": dataset["source"], "final_valid_accuracy": {f"{r:g}": runs[r][1].valid_acc[-1] for r in rates}}
    write_report(out, "lr_study", "Learning-rate study", headline, details, [path])
    return {"headline": headline, "plots": [path]}


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Counts (n_classes, n_classes): rows are the true class, columns the predicted class."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def plot_confusion(cm, names, path, title="test confusion matrix"):
    """The confusion matrix ``cm`` (rows true, columns predicted) as an image with ``names`` as ticks."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 8))
    im = ax.imshow(cm, cmap="viridis")
    ax.set_xticks(range(len(names)), list(names), fontsize=7)
    ax.set_yticks(range(len(names)), list(names), fontsize=7)
    ax.set(xlabel="predicted", ylabel="true", title=f"{title} ({cm.trace() / cm.sum():.1%} correct)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return save_figure(fig, path)


def confused_pairs(cm, names, top=10) -> list:
    """The ``top`` most confused pairs of classes, both directions added: [(name, name, count)], most first."""
    off = cm.copy()
    np.fill_diagonal(off, 0)
    pair = off + off.T
    iu = np.triu_indices(len(names), 1)
    order = np.argsort(pair[iu])[::-1][:top]
    return [(names[iu[0][k]], names[iu[1][k]], int(pair[iu][k])) for k in order if pair[iu][k] > 0]


def confusion(data=None, out="fastnn-output", *, seed=42, model=None, progress=None, dataset=None, top=10):
    """The 36x36 test confusion matrix as an image (A-Z/0-9 ticks) and the most confused pairs."""
    from .. import data as data_sets

    out = out_folder(out)
    dataset = dataset or data_sets.load_dataset(data, seed=seed)
    X, Y = dataset["test"]
    if model is None:
        model = classify(data, out, seed=seed, progress=progress, dataset=dataset)["model"]
    elif model.loss != "cross_entropy" or model.sizes[0] != X.shape[1] or model.sizes[-1] != Y.shape[1]:
        raise ValueError(f"model: the confusion matrix needs a softmax classifier of {X.shape[1]} inputs and "
                         f"{Y.shape[1]} classes like the data, got {model!r}")
    cm = confusion_matrix(Y.argmax(axis=1), model.predict(X), Y.shape[1])
    names = data_sets.CLASSES[:Y.shape[1]]
    path = plot_confusion(cm, names, out / "confusion.png")
    pairs = confused_pairs(cm, names, top)
    headline = {"test_accuracy": float(cm.trace() / cm.sum())}
    details = {"data": dataset["source"], "top_confused_pairs": [f"{a}<->{b}: {n}" for a, b, n in pairs],
               "matrix": cm}
    write_report(out, "confusion", "Test confusion matrix", headline, details, [path])
    return {"headline": headline, "pairs": pairs, "matrix": cm, "plots": [path]}


# -------------------------------------------------------------------- the command line

def _load_model(path):
    from ..models import MLP

    return None if path is None else MLP.load(path)


def confused_pairs_line(result) -> list:
    """Confusion's most confused pairs, in one line (unlike the headline's `name: value` lines)."""
    pairs = result["pairs"]
    return ["most confused pairs (test rows): " + ", ".join(f"{a}<->{b} {n}" for a, b, n in pairs)] if pairs else []


_EPOCHS = Option("--epochs", type=positive_int, help="training epochs (default: the recipe's)")

register("classify", classify,
         help="train and evaluate the 36-class classifier (1024-64-36 by default); curves and report",
         options=[_EPOCHS, Option("--lr", type=positive_float, help="learning rate (default: the recipe's)"),
                  Option("--hidden", type=positive_int, help="units of the hidden layer (default: the recipe's)"),
                  Option("--batch-size", type=positive_int, help="rows per batch (default: the recipe's)"),
                  Option("--recipe", choices=tuple(RECIPES),
                         help="coursework: 1024-64-36 sigmoid, SGD lr 0.002, batch 64, 50 epochs; strong: "
                              "1024-256-36 ReLU, Adam, reshuffled, hw36 extra letters added (default %(default)s)")],
         data_line=True)
register("weights", first_layer_weights,
         help="the first-layer weights as an 8x8 grid of images, at initialisation and after training",
         options=[_EPOCHS], data_line=True)
register("lr-study", lr_study,
         help="the classifier at the tuned learning rate, 10x and 0.1x: six curves and the best's test accuracy",
         options=[_EPOCHS, Option("--lr", type=positive_float, help="the tuned learning rate (default %(default)g)")],
         data_line=True)
register("confusion", confusion,
         help="the 36x36 test confusion matrix as an image, and the most confused pairs",
         options=[Option("--model", convert=_load_model, metavar="MODEL.npz",
                         help="a trained classifier .npz (default: train one)")],
         data_line=True, lines=confused_pairs_line)
