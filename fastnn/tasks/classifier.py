"""The coursework's tasks, end to end: train, evaluate, and write plots and a report for each.

Each task is a function returning a dict of results and writing, into ``out``,
PNG plots plus ``<task>.json`` and ``<task>.md``.  The ``fastnn`` command line
runs them as subcommands and prints their headline figures as ``name: value``
lines.  Data: the real hw36 / MNIST files from ``data`` (or ``$FASTNN_DATA``);
the 36-class tasks fall back to the generated set when no data folder is
configured.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .. import data as _data
from .._io import atomic_write
from ..models import MLP
from ..train import Trainer

__all__ = [
    "RECIPES",
    "classify",
    "first_layer_weights",
    "lr_study",
    "confusion",
    "autoencoder",
    "mnist_binary",
    "mnist_multiclass",
    "demo",
    "psnr",
]

#: Settings of the 36-class classifier: the coursework's, and a stronger one measured on hw36.
RECIPES = {
    "coursework": dict(hidden=64, activation="sigmoid", optimizer="sgd", lr=0.002, batch_size=64, epochs=50,
                       shuffle="once", dtype="float64", extra=False),
    "strong": dict(hidden=256, activation="relu", optimizer="adam", lr=1e-3, batch_size=64, epochs=30,
                   shuffle="epoch", dtype="float32", extra=True),
}


# ------------------------------------------------------------------------- helpers

def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _out(out) -> Path:
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _report(out: Path, task: str, title: str, headline: dict, details: dict, plots: list) -> dict:
    """Write <task>.json and <task>.md; return the JSON content."""
    content = {"task": task, "headline": headline, **details, "plots": [str(p) for p in plots]}
    with atomic_write(out / f"{task}.json", "w") as fh:
        fh.write(json.dumps(content, indent=2, default=_jsonable) + "\n")
    lines = [f"# {title}", ""]
    lines += [f"- **{k}**: {_fmt(v)}" for k, v in headline.items()]
    lines += [""] + [f"- {k}: {_fmt(v)}" for k, v in details.items()
                     if not isinstance(v, (list, dict, np.ndarray))]
    lines += [f"- {k}: an array of shape {v.shape}, in full in `{task}.json`" for k, v in details.items()
              if isinstance(v, np.ndarray)]
    lines += [""] + [f"![{Path(p).stem}]({Path(p).name})" for p in plots]
    with atomic_write(out / f"{task}.md", "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return content


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def _fmt(v):
    """A report value: floats to 4 decimals, or 4 significant digits when that would hide them (3e-05)."""
    if isinstance(v, (float, np.floating)):
        return f"{v:.4f}" if v == 0 or 1e-3 <= abs(v) < 1e7 else f"{v:.4g}"
    return str(v)


def _hw36_extra(data):
    data_dir = _data.find_data_dir(data)
    if data_dir is None:
        return None
    try:
        return _data.load_hw36(data_dir, "extra")
    except FileNotFoundError:
        return None


def _curves(hist, path: Path, title: str, lr_label: str = "") -> Path:
    """Accuracy and average loss per epoch, training and validation, side by side."""
    plt = _plt()
    epochs = np.arange(1, len(hist.train_loss) + 1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot(epochs, hist.train_acc, label="training" + lr_label)
    if hist.valid_acc:
        ax1.plot(epochs, hist.valid_acc, label="validation" + lr_label)
    ax1.set(xlabel="epoch", ylabel="accuracy", title=f"{title}: accuracy")
    ax2.plot(epochs, hist.train_loss, label="training" + lr_label)
    if hist.valid_loss:
        ax2.plot(epochs, hist.valid_loss, label="validation" + lr_label)
    ax2.set(xlabel="epoch", ylabel="average loss per sample", title=f"{title}: loss")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _image_grid(images, path: Path, title: str, nrows: int, ncols: int, labels=None, cmap="gray") -> Path:
    plt = _plt()
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * 1.1, nrows * 1.2 + 0.4))
    for i, ax in enumerate(np.ravel(axes)):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i], cmap=cmap, interpolation="nearest")
            if labels is not None:
                ax.set_title(labels[i], fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _upright(rows, side=32):
    """NIST36 rows (n, side*side), stored transposed, as upright (n, side, side) images."""
    return np.asarray(rows).reshape(-1, side, side).transpose(0, 2, 1)


def psnr(reference, estimate, data_range: float = 1.0) -> np.ndarray:
    """Peak signal-to-noise ratio in dB of each row: 10 log10(range^2 / MSE).

    Parameters
    ----------
    reference, estimate : (n, d) ndarrays

    Returns
    -------
    (n,) ndarray of float64 (inf for a perfect reconstruction)
    """
    reference = np.asarray(reference, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64)
    if reference.shape != estimate.shape:
        raise ValueError(f"estimate: expected shape {reference.shape} like the reference, got {estimate.shape}")
    mse = np.mean((reference - estimate) ** 2, axis=1)
    with np.errstate(divide="ignore"):
        return 10 * np.log10(data_range**2 / mse)


# ---------------------------------------------------------------------------- tasks

def train_classifier(dataset, recipe="coursework", *, seed=42, epochs=None, lr=None, extra=None, progress=None):
    """Train the 36-class MLP with a recipe from RECIPES; return (model, history, trainer, settings).

    The 'coursework' recipe follows the coursework's protocol exactly: ``np.random.seed(seed)``-style
    draws (a ``RandomState``) for the Xavier weights, then one permutation for batches reused every
    epoch, plain SGD on the summed loss. 'strong' adds the hw36 'extra' letters when given.
    """
    if recipe not in RECIPES:
        raise ValueError(f"recipe: expected one of {tuple(RECIPES)}, got {recipe!r}")
    s = dict(RECIPES[recipe])
    if epochs is not None:
        s["epochs"] = int(epochs)
    if lr is not None:
        s["lr"] = float(lr)
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
    trainer = Trainer(model, optimizer=s["optimizer"], lr=s["lr"], batch_size=s["batch_size"], shuffle=s["shuffle"],
                      seed=seed, progress=progress)
    hist = trainer.fit(X, Y, s["epochs"], valid=dataset["valid"], order=order)
    if recipe != "coursework":
        trainer.restore_best()
    return model, hist, trainer, s


def classify(data=None, out="fastnn-output", *, recipe="coursework", seed=42, epochs=None, lr=None, progress=None,
             dataset=None):
    """Train and evaluate the 36-class character classifier (1024-64-36 sigmoid + softmax by default).

    Writes ``classify_curves.png`` (accuracy and average loss, training and validation, per epoch),
    ``classify_model.npz`` and the report ``classify.json`` / ``classify.md``.

    Returns
    -------
    dict
        ``headline`` (valid_accuracy, test_accuracy), ``model``, ``history``, ``init_weights``.
    """
    out = _out(out)
    dataset = dataset or _data.load_dataset(data, seed=seed)
    extra = _hw36_extra(data) if RECIPES.get(recipe, {}).get("extra") else None
    model0 = None
    model, hist, trainer, s = train_classifier(dataset, recipe, seed=seed, epochs=epochs, lr=lr, extra=extra,
                                               progress=progress)
    if recipe == "coursework":
        rs = np.random.RandomState(seed)
        model0 = MLP(model.sizes, model.activations, dtype=model.dtype).init("xavier", rng=rs)
    valid_loss, valid_acc = model.evaluate(*dataset["valid"])
    test_loss, test_acc = model.evaluate(*dataset["test"])
    plots = [_curves(hist, out / "classify_curves.png", f"{recipe} recipe")]
    model.save(out / "classify_model.npz")
    headline = {"valid_accuracy": valid_acc, "test_accuracy": test_acc}
    details = {"data": dataset["source"], "recipe": recipe, "settings": s, "seed": seed,
               "valid_loss": valid_loss, "test_loss": test_loss, "seconds_per_epoch": float(np.median(hist.seconds)),
               "history": hist.as_dict()}
    _report(out, "classify", f"36-class classifier ({recipe} recipe)", headline, details, plots)
    return {"headline": headline, "model": model, "history": hist, "init_model": model0, "dataset": dataset,
            "plots": plots}


def _weight_images(W):
    """First-layer weights (1024, h) as h upright 32x32 images, each scaled to its own range."""
    imgs = _upright(W.T)
    lo = imgs.min(axis=(1, 2), keepdims=True)
    hi = imgs.max(axis=(1, 2), keepdims=True)
    return (imgs - lo) / np.maximum(hi - lo, 1e-12)


def first_layer_weights(data=None, out="fastnn-output", *, seed=42, model=None, init_model=None, progress=None):
    """The 64 first-layer weight vectors as an 8x8 grid of 32x32 images, at initialisation and after training.

    Trains the coursework classifier unless a trained ``model`` (and its ``init_model``) is given.
    Writes ``weights_init.png`` and ``weights_trained.png``.
    """
    out = _out(out)
    if model is None:
        res = classify(data, out, seed=seed, progress=progress)
        model, init_model = res["model"], res["init_model"]
    if init_model is None:
        init_model = MLP(model.sizes, model.activations, dtype=model.dtype).init("xavier", seed=seed)
    h = model.sizes[1]
    ncols = int(np.ceil(np.sqrt(h)))
    nrows = int(np.ceil(h / ncols))
    plots = [
        _image_grid(_weight_images(init_model.weights[0]), out / "weights_init.png",
                    f"first-layer weights at initialisation ({h})", nrows, ncols),
        _image_grid(_weight_images(model.weights[0]), out / "weights_trained.png",
                    f"first-layer weights after training ({h})", nrows, ncols),
    ]
    change = float(np.linalg.norm(model.weights[0] - init_model.weights[0]) / np.linalg.norm(init_model.weights[0]))
    headline = {"relative_weight_change": change}
    _report(out, "weights", "First-layer weights", headline, {"hidden_units": h}, plots)
    return {"headline": headline, "plots": plots}


def lr_study(data=None, out="fastnn-output", *, seed=42, lr=0.002, epochs=None, progress=None, dataset=None):
    """Train the coursework classifier at the tuned learning rate, 10x and 0.1x; plot the six curves.

    Writes ``lr_study.png`` (training and validation accuracy and loss for each rate) and reports the
    test accuracy of the rate with the best final validation accuracy.
    """
    out = _out(out)
    dataset = dataset or _data.load_dataset(data, seed=seed)
    rates = [lr * 10, lr, lr / 10]
    runs = {}
    for rate in rates:
        model, hist, _, _ = train_classifier(dataset, "coursework", seed=seed, epochs=epochs, lr=rate,
                                             progress=progress)
        runs[rate] = (model, hist)
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for rate, (_, hist) in runs.items():
        ep = np.arange(1, len(hist.train_acc) + 1)
        for ax, tr, va, name in ((ax1, hist.train_acc, hist.valid_acc, "accuracy"),
                                 (ax2, hist.train_loss, hist.valid_loss, "average loss")):
            line, = ax.plot(ep, tr, label=f"lr={rate:g} training")
            ax.plot(ep, va, "--", color=line.get_color(), label=f"lr={rate:g} validation")
            ax.set(xlabel="epoch", ylabel=name, title=f"learning rates: {name}")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = out / "lr_study.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    best = max(rates, key=lambda r: runs[r][1].valid_acc[-1])
    test_acc = runs[best][0].evaluate(*dataset["test"])[1]
    headline = {"best_lr": best, "best_valid_accuracy": runs[best][1].valid_acc[-1], "test_accuracy": test_acc}
    details = {"data": dataset["source"], "final_valid_accuracy": {f"{r:g}": runs[r][1].valid_acc[-1] for r in rates}}
    _report(out, "lr_study", "Learning-rate study", headline, details, [path])
    return {"headline": headline, "plots": [path]}


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Counts (n_classes, n_classes): rows are the true class, columns the predicted class."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def confusion(data=None, out="fastnn-output", *, seed=42, model=None, progress=None, dataset=None, top=10):
    """The 36x36 test confusion matrix as an image (A-Z/0-9 ticks) and the most confused pairs."""
    out = _out(out)
    dataset = dataset or _data.load_dataset(data, seed=seed)
    X, Y = dataset["test"]
    if model is None:
        model = classify(data, out, seed=seed, progress=progress, dataset=dataset)["model"]
    elif model.loss != "cross_entropy" or model.sizes[0] != X.shape[1] or model.sizes[-1] != Y.shape[1]:
        raise ValueError(f"model: the confusion matrix needs a softmax classifier of {X.shape[1]} inputs and "
                         f"{Y.shape[1]} classes like the data, got {model!r}")
    cm = confusion_matrix(Y.argmax(axis=1), model.predict(X), Y.shape[1])
    names = _data.CLASSES[:Y.shape[1]]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 8))
    im = ax.imshow(cm, cmap="viridis")
    ax.set_xticks(range(len(names)), list(names), fontsize=7)
    ax.set_yticks(range(len(names)), list(names), fontsize=7)
    ax.set(xlabel="predicted", ylabel="true", title=f"test confusion matrix ({cm.trace() / cm.sum():.1%} correct)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    path = out / "confusion.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    pair = off + off.T
    iu = np.triu_indices(len(names), 1)
    order = np.argsort(pair[iu])[::-1][:top]
    pairs = [(names[iu[0][k]], names[iu[1][k]], int(pair[iu][k])) for k in order if pair[iu][k] > 0]
    headline = {"test_accuracy": float(cm.trace() / cm.sum())}
    details = {"data": dataset["source"], "top_confused_pairs": [f"{a}<->{b}: {n}" for a, b, n in pairs],
               "matrix": cm}
    _report(out, "confusion", "Test confusion matrix", headline, details, [path])
    return {"headline": headline, "pairs": pairs, "matrix": cm, "plots": [path]}


def autoencoder(data=None, out="fastnn-output", *, seed=42, epochs=100, lr=3e-5, progress=None, dataset=None,
                classes="AFK27"):
    """Train the 1024-32-32-32-1024 autoencoder (ReLU x3, sigmoid) with momentum and report the PSNR.

    Momentum 0.9, learning rate ``lr`` times 0.9 every 20 epochs, batch 36, total squared error,
    as the coursework. Writes ``autoencoder_loss.png`` and ``autoencoder_reconstructions.png`` (two
    validation images of each of ``classes`` beside their reconstructions).
    """
    out = _out(out)
    dataset = dataset or _data.load_dataset(data, seed=seed)
    X = dataset["train"][0]
    Xv, Yv = dataset["valid"]
    model = MLP([1024, 32, 32, 32, 1024], ["relu", "relu", "relu", "sigmoid"], loss="squared_error", seed=seed)
    trainer = Trainer(model, optimizer="momentum", momentum=0.9, lr=lr, lr_decay=0.9, lr_step=20, batch_size=36,
                      shuffle="once", seed=seed, progress=progress)
    hist = trainer.fit(X, None, epochs, valid=(Xv, None))
    recon = model.forward(Xv)
    scores = psnr(Xv, recon)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(np.arange(1, epochs + 1), hist.train_loss, label="training")
    ax.plot(np.arange(1, epochs + 1), hist.valid_loss, label="validation")
    ax.set(xlabel="epoch", ylabel="squared error per image", title="autoencoder loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    loss_path = out / "autoencoder_loss.png"
    fig.savefig(loss_path, dpi=110)
    plt.close(fig)
    labels = Yv.argmax(axis=1)
    picks, titles = [], []
    for ch in classes:
        k = _data.CLASSES.index(ch)
        idx = np.flatnonzero(labels == k)[:2]
        for i in idx:
            picks.extend([Xv[i], recon[i]])
            titles.extend([f"{ch} original", f"{ch} {scores[i]:.1f} dB"])
    rec_path = _image_grid(_upright(picks), out / "autoencoder_reconstructions.png",
                           "validation images and their reconstructions", len(picks) // 4 or 1, 4, titles)
    model.save(out / "autoencoder_model.npz")
    headline = {"psnr_db": float(np.mean(scores[np.isfinite(scores)])), "train_loss": hist.train_loss[-1]}
    details = {"data": dataset["source"], "epochs": epochs, "lr": lr, "valid_loss": hist.valid_loss[-1],
               "history": hist.as_dict()}
    _report(out, "autoencoder", "Autoencoder", headline, details, [loss_path, rec_path])
    return {"headline": headline, "model": model, "history": hist, "plots": [loss_path, rec_path]}


def _mnist(data):
    data_dir = _data.find_data_dir(data)
    if data_dir is None:
        raise FileNotFoundError("the MNIST tasks need the MNIST idx files: pass --data DIR (or set FASTNN_DATA) "
                                "to a folder holding mnist/ or the four idx files")
    return _data.load_mnist(data_dir, "train"), _data.load_mnist(data_dir, "test")


def mnist_binary(data=None, out="fastnn-output", *, seed=0, epochs=300, lr=0.5, progress=None):
    """MNIST 5 vs 8: 1000 training images of each, 784-256-1 sigmoid, averaged BCE, full-batch gradient descent.

    N(0, 0.01) initialisation; ``lr`` applies to the gradient of the *averaged* loss. Writes
    ``mnist_binary_curves.png`` and ``mnist_binary_outcomes.png`` (true/false positives/negatives).
    """
    out = _out(out)
    (tri, trl), (tei, tel) = _mnist(data)
    X, y = _data.mnist_binary(tri, trl, 5, 8, 1000, seed=seed)
    Xt, yt = _data.mnist_binary(tei, tel, 5, 8, None, seed=seed)
    model = MLP([784, 256, 1], ["sigmoid", "sigmoid"], init="normal", sigma=0.01, seed=seed, dtype="float32")
    trainer = Trainer(model, lr=lr / X.shape[0], batch_size=X.shape[0], shuffle="none", progress=progress)
    hist = trainer.fit(X, y, epochs, valid=(Xt, yt))
    test_loss, test_acc = model.evaluate(Xt, yt)
    curves = _curves(hist, out / "mnist_binary_curves.png", "MNIST 5 vs 8 (validation = test set)")
    pred = model.predict(Xt)
    truth = yt[:, 0].astype(int)
    picks, titles = [], []
    for name, mask in (("TP", (pred == 1) & (truth == 1)), ("FP", (pred == 1) & (truth == 0)),
                       ("TN", (pred == 0) & (truth == 0)), ("FN", (pred == 0) & (truth == 1))):
        for i in np.flatnonzero(mask)[:6]:
            picks.append(Xt[i].reshape(28, 28))
            titles.append(name)
    grid = _image_grid(picks, out / "mnist_binary_outcomes.png", "positive = 5: true/false positives/negatives",
                       max(1, int(np.ceil(len(picks) / 6))), 6, titles)
    headline = {"test_accuracy": test_acc, "train_accuracy": hist.train_acc[-1]}
    details = {"test_loss": test_loss, "epochs": epochs, "lr": lr, "history": hist.as_dict(),
               "confusion": {"tp": int(((pred == 1) & (truth == 1)).sum()),
                             "fp": int(((pred == 1) & (truth == 0)).sum()),
                             "tn": int(((pred == 0) & (truth == 0)).sum()),
                             "fn": int(((pred == 0) & (truth == 1)).sum())}}
    _report(out, "mnist_binary", "MNIST 5 vs 8", headline, details, [curves, grid])
    return {"headline": headline, "model": model, "plots": [curves, grid]}


def mnist_multiclass(data=None, out="fastnn-output", *, seed=0, epochs=100, lr=0.5, strong_epochs=20,
                     progress=None):
    """MNIST 10 digits: 784-256-10 sigmoid + softmax, 1000 images per digit, full-batch gradient descent.

    Also trains the better documented setting (ReLU, Adam lr 1e-3, batch 64 reshuffled every epoch,
    ``strong_epochs`` epochs, same 10000 images) and evaluates both on the 10000 test images.
    """
    out = _out(out)
    (tri, trl), (tei, tel) = _mnist(data)
    X, Y = _data.mnist_multiclass(tri, trl, 1000, seed=seed)
    Xt, Yt = _data.mnist_multiclass(tei, tel, None, seed=seed)
    model = MLP([784, 256, 10], ["sigmoid", "softmax"], init="normal", sigma=0.01, seed=seed, dtype="float32")
    hist = Trainer(model, lr=lr / X.shape[0], batch_size=X.shape[0], shuffle="none",
                   progress=progress).fit(X, Y, epochs, valid=(Xt, Yt))
    strong = MLP([784, 256, 10], ["relu", "softmax"], seed=seed, dtype="float32")
    hist_s = Trainer(strong, optimizer="adam", lr=1e-3, batch_size=64, shuffle="epoch", seed=seed,
                     progress=progress).fit(X, Y, strong_epochs, valid=(Xt, Yt))
    plots = [_curves(hist, out / "mnist_multiclass_curves.png", "full-batch GD (validation = test set)"),
             _curves(hist_s, out / "mnist_multiclass_strong_curves.png", "ReLU + Adam (validation = test set)")]
    headline = {"test_accuracy": model.evaluate(Xt, Yt)[1], "strong_test_accuracy": strong.evaluate(Xt, Yt)[1]}
    details = {"epochs": epochs, "lr": lr, "strong_setting": "784-256-10 relu/softmax, Adam lr 1e-3, batch 64, "
               f"reshuffled, {strong_epochs} epochs", "history": hist.as_dict(), "strong_history": hist_s.as_dict()}
    _report(out, "mnist_multiclass", "MNIST digits", headline, details, plots)
    return {"headline": headline, "plots": plots}


def demo(data=None, out="fastnn-output", *, seed=42, progress=None, autoencoder_epochs=100):
    """The main job: classify, confusion matrix and autoencoder on the available data, into one folder."""
    out = _out(out)
    dataset = _data.load_dataset(data, seed=seed)
    res = classify(data, out, seed=seed, progress=progress, dataset=dataset)
    first_layer_weights(data, out, model=res["model"], init_model=res["init_model"])
    conf = confusion(data, out, model=res["model"], dataset=dataset)
    ae = autoencoder(data, out, seed=seed, progress=progress, dataset=dataset, epochs=autoencoder_epochs)
    headline = {"valid_accuracy": res["headline"]["valid_accuracy"], "test_accuracy": res["headline"]["test_accuracy"],
                "psnr_db": ae["headline"]["psnr_db"]}
    plots = res["plots"] + [out / "weights_init.png", out / "weights_trained.png"] + conf["plots"] + ae["plots"]
    details = {"data": dataset["source"], "top_confused_pairs": [f"{a}<->{b}: {n}" for a, b, n in conf["pairs"]]}
    _report(out, "demo", "fastnn demo: classifier, confusion matrix, autoencoder", headline, details, plots)
    return {"headline": headline, "plots": plots}
