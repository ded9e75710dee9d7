"""The MNIST tasks: ``fastnn mnist-binary`` (5 vs 8) and ``fastnn mnist-multiclass`` (10 digits).

Both need the real MNIST idx files (``data`` or ``$FASTNN_DATA``); there is no generated stand-in.
"""

from __future__ import annotations

import numpy as np

from .common import image_grid, out_folder, plot_curves, write_report
from .registry import Option, positive_float, positive_int, register

__all__ = ["mnist_binary", "mnist_multiclass"]


def _mnist(data):
    """The MNIST train and test (images, labels) from the real data folder."""
    from .. import data as data_sets

    data_dir = data_sets.find_data_dir(data)
    if data_dir is None:
        raise FileNotFoundError("the MNIST tasks need the MNIST idx files: pass --data DIR (or set FASTNN_DATA) "
                                "to a folder holding mnist/ or the four idx files")
    return data_sets.load_mnist(data_dir, "train"), data_sets.load_mnist(data_dir, "test")


def mnist_binary(data=None, out="fastnn-output", *, seed=0, epochs=300, lr=0.5, progress=None):
    """MNIST 5 vs 8: 1000 training images of each, 784-256-1 sigmoid, averaged BCE, full-batch gradient descent.

    N(0, 0.01) initialisation; ``lr`` applies to the gradient of the *averaged* loss. Writes
    ``mnist_binary_curves.png`` and ``mnist_binary_outcomes.png`` (true/false positives/negatives).
    """
    from .. import data as data_sets
    from ..models import MLP
    from ..train import Trainer

    out = out_folder(out)
    (tri, trl), (tei, tel) = _mnist(data)
    X, y = data_sets.mnist_binary(tri, trl, 5, 8, 1000, seed=seed)
    Xt, yt = data_sets.mnist_binary(tei, tel, 5, 8, None, seed=seed)
    model = MLP([784, 256, 1], ["sigmoid", "sigmoid"], init="normal", sigma=0.01, seed=seed, dtype="float32")
    trainer = Trainer(model, lr=lr / X.shape[0], batch_size=X.shape[0], shuffle="none", progress=progress)
    hist = trainer.fit(X, y, epochs, valid=(Xt, yt))
    test_loss, test_acc = model.evaluate(Xt, yt)
    curves = plot_curves(hist, out / "mnist_binary_curves.png", "MNIST 5 vs 8 (validation = test set)")
    pred = model.predict(Xt)
    truth = yt[:, 0].astype(int)
    picks, titles = [], []
    for name, mask in (("TP", (pred == 1) & (truth == 1)), ("FP", (pred == 1) & (truth == 0)),
                       ("TN", (pred == 0) & (truth == 0)), ("FN", (pred == 0) & (truth == 1))):
        for i in np.flatnonzero(mask)[:6]:
            picks.append(Xt[i].reshape(28, 28))
            titles.append(name)
    grid = image_grid(picks, out / "mnist_binary_outcomes.png", "positive = 5: true/false positives/negatives",
                      max(1, int(np.ceil(len(picks) / 6))), 6, titles)
    headline = {"test_accuracy": test_acc, "train_accuracy": hist.train_acc[-1]}
    details = {"test_loss": test_loss, "epochs": epochs, "lr": lr, "history": hist.as_dict(),
               "confusion": {"tp": int(((pred == 1) & (truth == 1)).sum()),
                             "fp": int(((pred == 1) & (truth == 0)).sum()),
                             "tn": int(((pred == 0) & (truth == 0)).sum()),
                             "fn": int(((pred == 0) & (truth == 1)).sum())}}
    write_report(out, "mnist_binary", "MNIST 5 vs 8", headline, details, [curves, grid])
    return {"headline": headline, "model": model, "plots": [curves, grid]}


def mnist_multiclass(data=None, out="fastnn-output", *, seed=0, epochs=100, lr=0.5, strong_epochs=20,
                     progress=None):
    """MNIST 10 digits: 784-256-10 sigmoid + softmax, 1000 images per digit, full-batch gradient descent.

    Also trains the better documented setting (ReLU, Adam lr 1e-3, batch 64 reshuffled every epoch,
    ``strong_epochs`` epochs, same 10000 images) and evaluates both on the 10000 test images.
    """
    from .. import data as data_sets
    from ..models import MLP
    from ..train import Trainer

    out = out_folder(out)
    (tri, trl), (tei, tel) = _mnist(data)
    X, Y = data_sets.mnist_multiclass(tri, trl, 1000, seed=seed)
    Xt, Yt = data_sets.mnist_multiclass(tei, tel, None, seed=seed)
    model = MLP([784, 256, 10], ["sigmoid", "softmax"], init="normal", sigma=0.01, seed=seed, dtype="float32")
    hist = Trainer(model, lr=lr / X.shape[0], batch_size=X.shape[0], shuffle="none",
                   progress=progress).fit(X, Y, epochs, valid=(Xt, Yt))
    strong = MLP([784, 256, 10], ["relu", "softmax"], seed=seed, dtype="float32")
    hist_s = Trainer(strong, optimizer="adam", lr=1e-3, batch_size=64, shuffle="epoch", seed=seed,
                     progress=progress).fit(X, Y, strong_epochs, valid=(Xt, Yt))
    plots = [plot_curves(hist, out / "mnist_multiclass_curves.png", "full-batch GD (validation = test set)"),
             plot_curves(hist_s, out / "mnist_multiclass_strong_curves.png", "ReLU + Adam (validation = test set)")]
    headline = {"test_accuracy": model.evaluate(Xt, Yt)[1], "strong_test_accuracy": strong.evaluate(Xt, Yt)[1]}
    details = {"epochs": epochs, "lr": lr, "strong_setting": "784-256-10 relu/softmax, Adam lr 1e-3, batch 64, "
               f"reshuffled, {strong_epochs} epochs", "history": hist.as_dict(), "strong_history": hist_s.as_dict()}
    write_report(out, "mnist_multiclass", "MNIST digits", headline, details, plots)
    return {"headline": headline, "plots": plots}


_MNIST_HELP = {"data": "folder with the real MNIST data (mnist/ or the four idx files); default: $FASTNN_DATA "
                       "(these tasks need real data)"}
_EPOCHS = Option("--epochs", type=positive_int, help="training epochs (default %(default)s)")
_LR = Option("--lr", type=positive_float, help="learning rate (default %(default)g)")

register("mnist-binary", mnist_binary,
         help="MNIST 5 vs 8 with a 784-256-1 sigmoid network, full-batch gradient descent",
         options=[_EPOCHS, _LR], common_help=_MNIST_HELP)
register("mnist-multiclass", mnist_multiclass,
         help="MNIST digits with 784-256-10, full-batch gradient descent, plus a stronger setting",
         options=[_EPOCHS, _LR], common_help=_MNIST_HELP)
