"""The convolutional 36-class classifier: ``fastnn cnn``.

Trains a :class:`fastnn.models.CNN` with a recipe of :data:`fastnn.recipes.CNN_RECIPES` and, for the
comparison, the MLP of the matching recipe (:data:`fastnn.recipes.MLP_RECIPE_OF`): the coursework
MLP (1024-64-36 sigmoid, SGD) beside the 'plain' CNN, which keeps the coursework's protocol (no
augmentation, no extra letters), and the 'strong' MLP (1024-256-36 ReLU, Adam, hw36's extra letters)
beside the augmented 'small' CNN, which trains on the extra letters too.  Both models train on hw36 from
``data`` (or ``$FASTNN_DATA``), or on the generated set when no data folder is configured.
"""

from __future__ import annotations

import numpy as np

from ..recipes import CNN_RECIPES, MLP_RECIPE_OF, RECIPES
from .classifier import (confused_pairs, confused_pairs_line, confusion_matrix, hw36_extra, plot_confusion,
                         train_classifier)
from .common import curve_style, epoch_axis, out_folder, pyplot, save_figure, write_report
from .registry import Option, positive_float, positive_int, register

__all__ = ["MLP_RECIPE_OF", "cnn", "plot_two_models"]

#: The CNN recipes the task offers, by name: those of ``fastnn.recipes.CNN_RECIPES`` (each with its MLP in
#: ``fastnn.recipes.MLP_RECIPE_OF``, which is also importable from here).
CNN_RECIPE_NAMES = tuple(sorted(CNN_RECIPES))


def plot_two_models(runs, path, title):
    """Accuracy and average loss per epoch, training (solid) and validation (dashed), of several models on
    the same two panels: ``runs`` is [(label, History)]."""
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for label, hist in runs:
        ep = np.arange(1, len(hist.train_loss) + 1)
        style = curve_style(len(ep))
        for ax, tr, va in ((ax1, hist.train_acc, hist.valid_acc), (ax2, hist.train_loss, hist.valid_loss)):
            line, = ax.plot(ep, tr, label=f"{label} training", **style)
            ax.plot(ep, va, "--", color=line.get_color(), label=f"{label} validation", **style)
    ax1.set(xlabel="epoch", ylabel="accuracy", title=f"{title}: accuracy")
    ax2.set(xlabel="epoch", ylabel="average loss per sample", title=f"{title}: loss")
    epoch_axis(ax1, ax2)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def cnn(data=None, out="fastnn-output", *, recipe="small", seed=0, epochs=None, lr=None, save=None, progress=None,
        dataset=None):
    """Train the convolutional classifier and, for comparison, the MLP of the matching recipe.

    Writes ``cnn_curves.png`` (both models' training and validation accuracy and loss per epoch, on the
    same axes), ``cnn_confusion.png`` (the CNN's test confusion matrix) and the report ``cnn.json`` /
    ``cnn.md``; with ``save`` also the trained CNN (``CNN.save``; it takes ``rows_to_images(X)``).

    Parameters
    ----------
    recipe : {'small', 'wide', 'plain', 'regular'}
        The CNN recipe (``fastnn.recipes.CNN_RECIPES``); the MLP's is ``fastnn.recipes.MLP_RECIPE_OF`` of it.
    epochs : int, optional
        Training epochs of both models (default: each recipe's).
    lr : float, optional
        The CNN's peak learning rate (default: the recipe's); the MLP keeps its recipe's.

    Returns
    -------
    dict
        ``headline`` (valid_accuracy, test_accuracy, mlp_test_accuracy, s_per_epoch), ``model``,
        ``history``, ``mlp``, ``mlp_history``, ``matrix``, ``pairs``, ``plots``.
    """
    from .. import data as data_sets
    from ..models.layers import rows_to_images
    from ..recipes import train_cnn

    if recipe not in CNN_RECIPES or recipe not in MLP_RECIPE_OF:
        raise ValueError(f"recipe: expected one of {CNN_RECIPE_NAMES}, got {recipe!r}")
    mlp_recipe = MLP_RECIPE_OF[recipe]
    out = out_folder(out)
    given = dataset is not None
    dataset = dataset or data_sets.load_dataset(data, seed=seed)
    wants_extra = CNN_RECIPES[recipe]["extra"] or RECIPES[mlp_recipe]["extra"]
    # the extra letters only beside hw36 itself (not beside the generated set, or a dataset handed in)
    extra = hw36_extra(data) if wants_extra and not given else None

    model, hist, s = train_cnn(dataset, recipe=recipe, seed=seed, epochs=epochs, lr=lr, extra=extra,
                               progress=progress)
    mlp, mlp_hist, _, mlp_s = train_classifier(dataset, mlp_recipe, seed=seed, epochs=epochs, extra=extra,
                                               progress=progress, label=f"MLP {mlp_recipe} epoch")
    (Xv, Yv), (Xt, Yt) = dataset["valid"], dataset["test"]
    valid_loss, valid_acc = model.evaluate(rows_to_images(Xv), Yv)
    test_loss, test_acc = model.evaluate(rows_to_images(Xt), Yt)
    mlp_valid_loss, mlp_valid_acc = mlp.evaluate(Xv, Yv)
    mlp_test_loss, mlp_test_acc = mlp.evaluate(Xt, Yt)

    names = data_sets.CLASSES[:Yt.shape[1]]
    cm = confusion_matrix(Yt.argmax(axis=1), model.predict(rows_to_images(Xt)), Yt.shape[1])
    pairs = confused_pairs(cm, names)
    plots = [plot_two_models([(f"CNN ({recipe})", hist), (f"MLP ({mlp_recipe})", mlp_hist)],
                             out / "cnn_curves.png", f"CNN '{recipe}' and MLP '{mlp_recipe}'"),
             plot_confusion(cm, names, out / "cnn_confusion.png", f"CNN '{recipe}': test confusion matrix")]
    if save is not None:
        model.save(save)

    s_per_epoch = float(np.median(hist.seconds))
    headline = {"valid_accuracy": valid_acc, "test_accuracy": test_acc, "mlp_test_accuracy": mlp_test_acc,
                "s_per_epoch": s_per_epoch}
    details = {"data": dataset["source"], "recipe": recipe, "settings": s, "seed": seed,
               "network": repr(model).splitlines(), "parameters": int(model.theta.size),
               "rows_per_epoch": int(s["train_rows"] * (1 + int(s["copies"]))),
               "best_epoch": hist.best_epoch + 1, "valid_loss": valid_loss, "test_loss": test_loss,
               "mlp_recipe": mlp_recipe, "mlp_settings": mlp_s, "mlp_valid_accuracy": mlp_valid_acc,
               "mlp_test_loss": mlp_test_loss, "mlp_s_per_epoch": float(np.median(mlp_hist.seconds)),
               "top_confused_pairs": [f"{a}<->{b}: {n}" for a, b, n in pairs], "matrix": cm,
               "history": hist.as_dict(), "mlp_history": mlp_hist.as_dict()}
    if save is not None:
        details["model_file"] = str(save)
    write_report(out, "cnn", f"Convolutional classifier ('{recipe}' recipe) beside the MLP ('{mlp_recipe}')",
                 headline, details, plots)
    return {"headline": headline, "model": model, "history": hist, "mlp": mlp, "mlp_history": mlp_hist,
            "dataset": dataset, "matrix": cm, "pairs": pairs, "plots": plots}


register("cnn", cnn,
         help="train the convolutional 36-class classifier beside the MLP: curves, confusion matrix and report",
         options=[Option("--recipe", choices=CNN_RECIPE_NAMES,
                         help="small: 5x5 conv16/conv32 + pools, 128 ReLU, Adam with a cosine rate, 20 epochs, hw36 "
                              "extra letters and one distorted copy per epoch, beside the 'strong' MLP; wide: small "
                              "with twice the channels and units (5x5 conv32/conv64, 256 ReLU), 16 epochs, the OCR "
                              "model's CNN, beside the 'strong' MLP; plain: 3x3 conv16/conv32 + pools, 128 ReLU, SGD "
                              "lr 0.002, batch 64, 50 epochs, no augmentation, beside the coursework MLP; regular: "
                              "small's 5x5 conv16/conv32 + pools and 128 ReLU with BatchNorm after each conv, AdamW "
                              "(weight decay 0.05) with a one-cycle rate peaking at 2e-3, 20 epochs, the same data "
                              "and copies, beside the 'strong' MLP (default %(default)s)"),
                  Option("--epochs", type=positive_int, help="training epochs of both models (default: the recipes')"),
                  Option("--lr", type=positive_float, help="the CNN's peak learning rate (default: the recipe's)"),
                  Option("--save", metavar="MODEL.npz", output=True,
                         help="also save the trained CNN here (default: not saved)")],
         data_line=True, lines=confused_pairs_line)
