"""The coursework's autoencoder (``fastnn autoencoder``): 1024-32-32-32-1024, its reconstructions and their PSNR.

(The module is not called ``autoencoder``: that is the task's function, ``fastnn.tasks.autoencoder``.)
"""

from __future__ import annotations

import numpy as np

from .common import curve_style, epoch_axis, image_grid, out_folder, pyplot, save_figure, upright, write_report
from .registry import Option, positive_float, positive_int, register

__all__ = ["psnr", "autoencoder"]


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


def autoencoder(data=None, out="fastnn-output", *, seed=42, epochs=100, lr=3e-5, progress=None, dataset=None,
                classes="AFK27"):
    """Train the 1024-32-32-32-1024 autoencoder (ReLU x3, sigmoid) with momentum and report the PSNR.

    Momentum 0.9, learning rate ``lr`` times 0.9 every 20 epochs, batch 36, total squared error,
    as the coursework. Writes ``autoencoder_loss.png`` and ``autoencoder_reconstructions.png`` (two
    validation images of each of ``classes`` beside their reconstructions).
    """
    from .. import data as data_sets
    from ..models import MLP
    from ..train import Trainer

    out = out_folder(out)
    dataset = dataset or data_sets.load_dataset(data, seed=seed)
    X = dataset["train"][0]
    Xv, Yv = dataset["valid"]
    model = MLP([1024, 32, 32, 32, 1024], ["relu", "relu", "relu", "sigmoid"], loss="squared_error", seed=seed)
    trainer = Trainer(model, optimizer="momentum", momentum=0.9, lr=lr, lr_decay=0.9, lr_step=20, batch_size=36,
                      shuffle="once", seed=seed, progress=progress)
    hist = trainer.fit(X, None, epochs, valid=(Xv, None))
    recon = model.forward(Xv)
    scores = psnr(Xv, recon)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(np.arange(1, epochs + 1), hist.train_loss, label="training", **curve_style(epochs))
    ax.plot(np.arange(1, epochs + 1), hist.valid_loss, label="validation", **curve_style(epochs))
    ax.set(xlabel="epoch", ylabel="squared error per image", title="autoencoder loss")
    ax.grid(alpha=0.3)
    epoch_axis(ax)
    ax.legend()
    fig.tight_layout()
    loss_path = save_figure(fig, out / "autoencoder_loss.png")
    labels = Yv.argmax(axis=1)
    picks, titles = [], []
    for ch in classes:
        k = data_sets.CLASSES.index(ch)
        idx = np.flatnonzero(labels == k)[:2]
        for i in idx:
            picks.extend([Xv[i], recon[i]])
            titles.extend([f"{ch} original", f"{ch} {scores[i]:.1f} dB"])
    rec_path = image_grid(upright(picks), out / "autoencoder_reconstructions.png",
                          "validation images and their reconstructions", len(picks) // 4 or 1, 4, titles)
    model.save(out / "autoencoder_model.npz")
    headline = {"psnr_db": float(np.mean(scores[np.isfinite(scores)])), "train_loss": hist.train_loss[-1]}
    details = {"data": dataset["source"], "epochs": epochs, "lr": lr, "valid_loss": hist.valid_loss[-1],
               "history": hist.as_dict()}
    write_report(out, "autoencoder", "Autoencoder", headline, details, [loss_path, rec_path])
    return {"headline": headline, "model": model, "history": hist, "plots": [loss_path, rec_path]}


register("autoencoder", autoencoder,
         help="the 1024-32-32-32-1024 autoencoder with momentum: loss curve, reconstructions, PSNR",
         options=[Option("--epochs", type=positive_int, help="training epochs (default %(default)s)"),
                  Option("--lr", type=positive_float, help="learning rate (default %(default)g)")],
         data_line=True)
