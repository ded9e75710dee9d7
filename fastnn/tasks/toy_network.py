"""The coursework's toy problem (``fastnn toy``): four 2-D Gaussian classes, a 2-25-4 network, ``fastnn.nn``.

This is the coursework's own script, written against the drop-in API: it uses
NumPy's global generator, seeded once, exactly as the plain version does.  It needs no
data folder; it writes files (a report and the loss and accuracy curves) only when given ``out``.
"""

from __future__ import annotations

import numpy as np

from .common import curve_style, epoch_axis, out_folder, pyplot, save_figure, write_report
from .registry import Option, positive_float, positive_int, register

__all__ = ["TOY_CLASSES", "make_toy_data", "train_toy", "toy"]

#: (mean, diagonal covariance) of the four classes.
TOY_CLASSES = (
    ((3.6, 40.0), (0.05, 10.0)),
    ((3.9, 10.0), (0.01, 5.0)),
    ((3.4, 30.0), (0.25, 5.0)),
    ((2.0, 10.0), (0.5, 10.0)),
)


def make_toy_data(points_per_class: int = 10):
    """Draw the toy data set from NumPy's global generator.

    Returns
    -------
    x : (4 * points_per_class, 2) ndarray
    y : (4 * points_per_class, 4) one-hot ndarray
    """
    groups = [np.random.multivariate_normal(m, np.diag(c), points_per_class) for m, c in TOY_CLASSES]
    x = np.vstack(groups)
    y = np.zeros((x.shape[0], len(TOY_CLASSES)))
    y[np.arange(x.shape[0]), np.repeat(np.arange(len(TOY_CLASSES)), points_per_class)] = 1
    return x, y


def train_toy(seed: int = 42, epochs: int = 500, batch_size: int = 5, lr: float = 1e-3, hidden: int = 25,
              log_every: int = 100, log=print):
    """Train the 2-hidden-4 sigmoid/softmax network on the toy data with the coursework's loop.

    Parameters
    ----------
    seed : int
        Seeds NumPy's global generator once, before the data, the weights and the batches are drawn.
    epochs, batch_size, lr, hidden
        The coursework's settings by default (500, 5, 1e-3, 25).
    log_every : int
        Print ``itr``, the summed loss and the mean batch accuracy every this many epochs (0: never).
    log : callable
        Where the progress lines go.

    Returns
    -------
    dict
        ``history`` (list of (loss, accuracy) per epoch), ``loss`` and ``accuracy`` of the last epoch, ``params``.
    """
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("hidden", hidden)):
        if isinstance(value, bool) or int(value) != value or value <= 0:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr: expected a finite learning rate > 0, got {lr!r}")
    from .. import coursework
    from ..coursework import nn  # fastnn.nn, where its code lives

    np.random.seed(seed)
    x, y = make_toy_data()
    history, params = coursework.train(nn, x, y, hidden, batch_size, lr, epochs, log_every=log_every, log=log)
    return {"history": history, "loss": history[-1][0], "accuracy": history[-1][1], "params": params}


def toy(out=None, *, seed: int = 42, epochs: int = 500, batch_size: int = 5, lr: float = 1e-3, hidden: int = 25,
        progress=None):
    """The ``fastnn toy`` task: :func:`train_toy`, printing its progress lines, and a report when ``out`` is given.

    Parameters
    ----------
    out : path, optional
        Folder for ``toy.json``, ``toy.md`` and ``toy_curves.png`` (summed loss and mean batch accuracy
        per epoch); None writes nothing.
    seed, epochs, batch_size, lr, hidden
        As :func:`train_toy`.
    progress : bool, optional
        False drops the ``itr: ...`` lines printed every 100 epochs (on stdout, as the coursework prints them).

    Returns
    -------
    dict
        ``headline`` (loss and accuracy of the last epoch), ``history``, ``params``, ``plots``.
    """
    res = train_toy(seed=seed, epochs=epochs, batch_size=batch_size, lr=lr, hidden=hidden,
                    log_every=0 if progress is False else 100)
    headline = {"loss": float(res["loss"]), "accuracy": float(res["accuracy"])}
    plots = []
    if out is not None:
        out = out_folder(out)
        history = np.asarray(res["history"], dtype=np.float64)
        plt = pyplot()
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
        ep = np.arange(1, len(history) + 1)
        ax1.plot(ep, history[:, 1], **curve_style(len(ep)))
        ax1.set(xlabel="epoch", ylabel="mean batch accuracy", title="toy network: accuracy")
        ax2.plot(ep, history[:, 0], **curve_style(len(ep)))
        ax2.set(xlabel="epoch", ylabel="loss summed over the batches", title="toy network: loss")
        for ax in (ax1, ax2):
            ax.grid(alpha=0.3)
        epoch_axis(ax1, ax2)
        fig.tight_layout()
        plots = [save_figure(fig, out / "toy_curves.png")]
        details = {"data": "four 2-D Gaussian classes, 10 points each", "seed": seed, "epochs": epochs,
                   "batch_size": batch_size, "lr": lr, "hidden": hidden,
                   "history": {"loss": history[:, 0], "accuracy": history[:, 1]}}
        write_report(out, "toy", f"Toy network 2-{hidden}-4 (fastnn.nn)", headline, details, plots)
    return {"headline": headline, "history": res["history"], "params": res["params"], "plots": plots}


register("toy", toy, help="train the coursework's 2-25-4 network on the 4-class Gaussian toy problem",
         description="Train the coursework's toy network with the drop-in fastnn.nn API and print loss and "
                     "accuracy every 100 epochs; with --out, also write a report and the curves.",
         options=[Option("--epochs", type=positive_int, help="training epochs (default %(default)s)"),
                  Option("--batch-size", type=positive_int, help="mini-batch size (default %(default)s)"),
                  Option("--lr", type=positive_float, help="learning rate (default %(default)g)"),
                  Option("--hidden", type=positive_int, help="hidden units (default %(default)s)")],
         common_help={"out": "folder for a report and the loss and accuracy curves (default: no files)",
                      "seed": "seed of NumPy's global generator (default %(default)s)",
                      "progress": ("print the itr: lines every 100 epochs (the default)",
                                   "do not print the itr: lines")})
