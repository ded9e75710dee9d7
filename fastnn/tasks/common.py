"""What the tasks share: the output folder, the report (``<task>.json`` and ``<task>.md``) and the plots.

Every file is written atomically (``fastnn._io.atomic_write``: a temporary file in the same folder, then
renamed), the plots included, so a killed task never leaves a half-written file; a new file gets the mode
the user's umask gives it.  matplotlib is imported only when a plot is drawn.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .._io import atomic_savefig, atomic_write

__all__ = ["pyplot", "out_folder", "save_figure", "write_report", "format_value", "jsonable", "plot_curves",
           "curve_style", "epoch_axis", "image_grid", "upright"]

#: Curves of at most this many epochs are drawn with a marker at each point (one point draws no line).
FEW_EPOCHS = 20


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed), imported on first use."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def out_folder(out) -> Path:
    """The output folder ``out`` as a Path, created (with its parents) if missing."""
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_figure(fig, path, dpi: int = 110) -> Path:
    """Save the matplotlib figure ``fig`` to ``path`` atomically (``fastnn._io.atomic_savefig``) and close it.

    Returns ``path`` as a Path; the format is the suffix's.
    """
    try:
        return atomic_savefig(fig, path, dpi=dpi)
    finally:
        pyplot().close(fig)


def jsonable(v):
    """``json.dumps``'s ``default``: NumPy scalars and arrays as Python values, anything else as text."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def format_value(v) -> str:
    """A report value: floats to 4 decimals, or 4 significant digits when that would hide them (3e-05)."""
    if isinstance(v, (float, np.floating)):
        return f"{v:.4f}" if v == 0 or 1e-3 <= abs(v) < 1e7 else f"{v:.4g}"
    return str(v)


def write_report(out: Path, task: str, title: str, headline: dict, details: dict, plots: list) -> dict:
    """Write ``<task>.json`` (everything) and ``<task>.md`` (headline, scalars, plots) into ``out``.

    Arrays are written in full to the JSON only; the Markdown names their shape.  Returns the JSON content.
    """
    out = Path(out)
    content = {"task": task, "headline": headline, **details, "plots": [str(p) for p in plots]}
    with atomic_write(out / f"{task}.json", "w") as fh:
        fh.write(json.dumps(content, indent=2, default=jsonable) + "\n")
    lines = [f"# {title}", ""]
    lines += [f"- **{k}**: {format_value(v)}" for k, v in headline.items()]
    lines += [""] + [f"- {k}: {format_value(v)}" for k, v in details.items()
                     if not isinstance(v, (list, dict, np.ndarray))]
    lines += [f"- {k}: an array of shape {v.shape}, in full in `{task}.json`" for k, v in details.items()
              if isinstance(v, np.ndarray)]
    lines += [""] + [f"![{Path(p).stem}]({Path(p).name})" for p in plots]
    with atomic_write(out / f"{task}.md", "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return content


def curve_style(n_epochs: int) -> dict:
    """``Axes.plot`` keywords for a curve of ``n_epochs`` points: a dot at each when they are few
    (:data:`FEW_EPOCHS`), so that a one-epoch run shows its point rather than an empty plot."""
    return {"marker": "o", "markersize": 4} if n_epochs <= FEW_EPOCHS else {}


def epoch_axis(*axes) -> None:
    """Ticks at whole epochs only on the x axis of each of ``axes``: a one-epoch plot shows 1, not 0.96 ... 1.04.

    matplotlib's default ticks (its AutoLocator's steps) where those are whole already, and a single tick when
    the axis holds a single epoch."""
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(nbins="auto", steps=[1, 2, 2.5, 5, 10], integer=True, min_n_ticks=1))


def plot_curves(hist, path: Path, title: str, lr_label: str = "") -> Path:
    """Accuracy and average loss per epoch of a ``fastnn.train.History``, training and validation, side by side."""
    plt = pyplot()
    epochs = np.arange(1, len(hist.train_loss) + 1)
    style = curve_style(len(epochs))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot(epochs, hist.train_acc, label="training" + lr_label, **style)
    if hist.valid_acc:
        ax1.plot(epochs, hist.valid_acc, label="validation" + lr_label, **style)
    ax1.set(xlabel="epoch", ylabel="accuracy", title=f"{title}: accuracy")
    ax2.plot(epochs, hist.train_loss, label="training" + lr_label, **style)
    if hist.valid_loss:
        ax2.plot(epochs, hist.valid_loss, label="validation" + lr_label, **style)
    ax2.set(xlabel="epoch", ylabel="average loss per sample", title=f"{title}: loss")
    epoch_axis(ax1, ax2)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def image_grid(images, path: Path, title: str, nrows: int, ncols: int, labels=None, cmap="gray") -> Path:
    """``images`` (2-D arrays) in an ``nrows`` x ``ncols`` grid, each titled by ``labels`` when given."""
    plt = pyplot()
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * 1.1, nrows * 1.2 + 0.4))
    for i, ax in enumerate(np.ravel(axes)):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i], cmap=cmap, interpolation="nearest")
            if labels is not None:
                ax.set_title(labels[i], fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def upright(rows, side: int = 32) -> np.ndarray:
    """NIST36 rows (n, side*side), stored transposed, as upright (n, side, side) images."""
    return np.asarray(rows).reshape(-1, side, side).transpose(0, 2, 1)
