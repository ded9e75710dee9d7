"""The training recipes of fastnn's classifiers, in one place: the MLP's, the CNN's, and which go together.

- :data:`MLP_RECIPES` (also ``fastnn.tasks.RECIPES``): the 36-class MLP's settings, trained by
  ``fastnn.tasks.train_classifier`` (``fastnn classify --recipe``);
- :data:`CNN_RECIPES`, :func:`cnn_layers` and :func:`train_cnn`: the convolutional network on the 36 hw36
  classes (``fastnn cnn --recipe``; the OCR model's CNN is the 'wide' one, :mod:`fastnn.ocr.model`);
- :data:`MLP_RECIPE_OF`: the MLP recipe ``fastnn cnn`` trains beside each CNN recipe.

The OCR model's own recipe (its version, epochs, copies...) stays with its model file in
:mod:`fastnn.ocr.model`, whose cache and shipped file are named and checked by that version.

This module sits above the models and the trainer and below the tasks, which list its recipes when the
command line is built: so the models, the layers and the trainer are imported inside :func:`cnn_layers` and
:func:`train_cnn`, and importing it costs only NumPy.

:func:`train_cnn`: with ``invert=True`` (the 'small' recipe) the network trains on ink = 1 - pixel (a blank
background is then zero input, which ReLU layers learn better from, as the OCR recipe found), and the
inversion is folded into the first convolution afterwards (``W -> -W``, ``b -> b + sum W``; exact because
that convolution has padding 'valid', so every window lies inside the image).  The returned model therefore
takes hw36 images as stored, upright: ``model.predict(rows_to_images(X))``.  Settings are chosen on the
validation split only.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["MLP_RECIPES", "RECIPES", "CNN_RECIPES", "MLP_RECIPE_OF", "CNN_OPTIONS", "cnn_layers", "train_cnn"]

#: Settings of the 36-class MLP (trained by ``fastnn.tasks.train_classifier``): the coursework's, and a
#: stronger one measured on hw36.  ``hidden``: units of the hidden layer; ``extra``: hw36's extra letters
#: added to the training rows.
MLP_RECIPES = {
    "coursework": dict(hidden=64, activation="sigmoid", optimizer="sgd", lr=0.002, batch_size=64, epochs=50,
                       shuffle="once", dtype="float64", extra=False),
    "strong": dict(hidden=256, activation="relu", optimizer="adam", lr=1e-3, batch_size=64, epochs=30,
                   shuffle="epoch", dtype="float32", extra=True),
}
#: The name the tasks have always used for :data:`MLP_RECIPES` (``fastnn.tasks.RECIPES``).
RECIPES = MLP_RECIPES

#: Settings of :func:`train_cnn`.  ``conv``: output channels of each conv + 2x2 max-pool block (the first
#: with padding ``padding``, the others 'same'); ``kernel``: their kernel size; ``hidden``: width of the
#: dense layer before the softmax; ``copies``: freshly distorted copies of the training rows added every
#: epoch (``fastnn.data.augment``); ``extra``: hw36's extra letters added to the training rows;
#: ``invert``: train on ink = 1 - pixel (needs padding 'valid'); the learning rate falls from ``lr`` along
#: a cosine over the epochs.
#:
#: 'wide' is 'small' with twice the channels and units, 16 epochs: the OCR recipe's CNN
#: (``fastnn.ocr.model``), chosen on characters cut from pages of the validation split.
#:
#: 'plain' is the issue's network (3x3 conv16 and conv32, both 'same', each with a 2x2 max-pool, then
#: 128 ReLU units and the softmax: the network ``bench/bench_conv.py`` times) on the pixels as stored,
#: with the coursework's optimizer and protocol length (plain SGD on the summed loss, lr 0.002, batch 64,
#: 50 epochs), no augmentation and no extra letters.  Both were chosen on hw36's validation split only;
#: what each reaches, and the alternatives tried, are in the README ("Convolutional networks").
CNN_RECIPES = {
    "small": dict(conv=(16, 32), kernel=5, padding="valid", invert=True, hidden=128, optimizer="adam", lr=1e-3,
                  batch_size=64, epochs=20, weight_decay=0.0, copies=1, extra=True, dtype="float32"),
    "wide": dict(conv=(32, 64), kernel=5, padding="valid", invert=True, hidden=256, optimizer="adam", lr=1e-3,
                 batch_size=64, epochs=16, weight_decay=0.0, copies=1, extra=True, dtype="float32"),
    "plain": dict(conv=(16, 32), kernel=3, padding="same", invert=False, hidden=128, optimizer="sgd", lr=0.002,
                  batch_size=64, epochs=50, weight_decay=0.0, copies=0, extra=False, dtype="float32"),
    # 'regular' is 'small' with issue 22's layers and controls (issue 22, part 5): a BatchNorm after each
    # convolution, AdamW (decoupled weight decay 0.05) and a one-cycle rate peaking at 2e-3 over the run's
    # batches.  Chosen by bench/cnn_study.py on hw36's validation split only, among small + BatchNorm, +
    # Dropout(0.3), + a GlobalAvgPool2D head, + AdamW/one-cycle (6 epochs each), then the best two and their
    # combinations over 20 epochs: 93.9% valid against small's 92.8% in the same run, and 93.4% test against
    # small's 92.6%; with seed 1, 93.9% against 93.5% valid and 93.3% against 93.2% test (README,
    # "Convolutional networks"; measured with its BatchNorm in the compiled epoch).
    "regular": dict(conv=(16, 32), kernel=5, padding="valid", invert=True, hidden=128, optimizer="adamw", lr=2e-3,
                    batch_size=64, epochs=20, weight_decay=0.05, copies=1, extra=True, dtype="float32",
                    batch_norm=True, lr_schedule="onecycle"),
}
#: The MLP recipe (:data:`MLP_RECIPES`) that ``fastnn cnn`` trains beside each CNN recipe: the same data and
#: the same kind of protocol (the coursework MLP beside 'plain', which keeps the coursework's protocol; the
#: 'strong' MLP, which trains on the extra letters too, beside the augmented 'small', 'wide' and 'regular').
MLP_RECIPE_OF = {"plain": "coursework", "small": "strong", "wide": "strong", "regular": "strong"}

#: Settings a CNN recipe may add to those above, with the defaults a recipe without them trains by (today's
#: recipes have none of them, so their numbers are unchanged): ``batch_norm``, ``dropout`` and ``head``
#: shape the network (:func:`cnn_layers`); ``lr_schedule`` is how the rate falls from ``lr``: 'epoch-cosine'
#: (a cosine over the epochs, one rate per epoch, as always), 'cosine' (the same curve stepped every batch, to
#: 0 at the end of the last epoch) or 'onecycle' (``fastnn.train.onecycle_rates`` over every batch of the
#: run: up from lr / 25 over the first 30%, then down); ``loss_reduction`` is the Trainer's ('sum' or
#: 'mean').  The optimizer may be any of the Trainer's, 'adamw' included (``weight_decay`` then decoupled).
CNN_OPTIONS = dict(batch_norm=False, dropout=0.0, head="flatten", lr_schedule="epoch-cosine", loss_reduction="sum")
#: Heads of :func:`cnn_layers`: Flatten, or GlobalAvgPool2D, before the dense layers.
HEADS = ("flatten", "gap")
#: The ``lr_schedule`` settings of :func:`train_cnn` (see :data:`CNN_OPTIONS`).
CNN_SCHEDULES = ("epoch-cosine", "cosine", "onecycle")


def cnn_layers(conv=(16, 32), kernel=5, hidden=128, n_classes=36, side=32, channels=1, padding="valid", *,
               batch_norm=False, dropout=0.0, head="flatten") -> list:
    """Conv(+ReLU) + MaxPool2D(2) blocks, Flatten, Dense(hidden, ReLU), Dense(n_classes, softmax).

    The first convolution has padding ``padding`` ('valid' lets an input inversion be folded into it), the
    others 'same'.  The options (see :data:`CNN_OPTIONS`; their defaults give the stack above):

    - ``batch_norm``: a ``BatchNorm()`` after each convolution (after its ReLU, before the pool: fastnn's
      layers apply their activation inside);
    - ``dropout``: a rate > 0 puts ``Dropout(dropout)`` before each dense layer;
    - ``head``: 'flatten' (the default) or 'gap', a ``GlobalAvgPool2D()`` in the Flatten's place (the
      hidden layer then takes the last block's channels).
    """
    if padding not in ("valid", "same"):
        raise ValueError(f"padding: expected 'valid' or 'same', got {padding!r}")
    if head not in HEADS:
        raise ValueError(f"head: expected one of {HEADS}, got {head!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"dropout: expected a rate in [0, 1), got {dropout!r}")
    from .models.layers import BatchNorm, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D, MaxPool2D

    layers, c, h = [], channels, side
    for i, f in enumerate(conv):
        pad = padding if i == 0 else "same"
        layers.append(Conv2D(c, f, kernel, padding=pad))
        if batch_norm:
            layers.append(BatchNorm())
        h = (h - kernel + 1 if pad == "valid" else h) // 2
        layers.append(MaxPool2D(2))
        c = f
    drop = [Dropout(dropout)] if dropout > 0 else []
    if head == "gap":
        layers += [GlobalAvgPool2D(), *drop, Dense(c, hidden, "relu")]
    else:
        layers += [Flatten(), *drop, Dense(h * h * c, hidden, "relu")]
    layers += [*drop, Dense(hidden, n_classes, "softmax")]
    return layers


def train_cnn(dataset, *, recipe="small", seed=0, epochs=None, lr=None, copies=None, extra=None, progress=None,
              **overrides):
    """Train a hw36 CNN; return (model, history, settings).

    Parameters
    ----------
    dataset : dict
        ``{"train": (X, Y), "valid": (X, Y)}`` of hw36-layout rows (n, 1024) and one-hot labels (n, 36), as
        ``fastnn.data.load_hw36`` returns them.  Without ``"valid"`` the last epoch's parameters are kept
        (a recipe whose settings were chosen on the validation split, now trained on it as well).
    recipe : str
        A key of :data:`CNN_RECIPES`; ``epochs``, ``lr``, ``copies`` and any other setting (``overrides``)
        replace the recipe's, and those of :data:`CNN_OPTIONS` (batch_norm, dropout, head, lr_schedule,
        loss_reduction) may be added to it.
    seed : int
        Seeds the weights, the batch order and the distortions.
    extra : (X, Y), optional
        hw36's 'extra' letters, added to the training rows when the recipe says ``extra=True``.
    progress : bool, optional
        Show the training on stderr, on one bar labelled with the model (``CNN small epoch 3/20``): on a
        terminal redrawn within each epoch (the distorted copies, then the batches), elsewhere a plain line
        per epoch (its loss, accuracy and seconds) and within a long one at a modest rate (None and True,
        as :class:`~fastnn.train.Trainer`); False shows nothing.  Display only: the same numbers either way.

    Returns
    -------
    model : CNN
        The parameters of the epoch with the best validation accuracy (or the last epoch's); takes upright
        images as stored (``rows_to_images(X)``), the ink inversion (``invert=True``) folded in.
    history : History
        Per epoch: training loss and accuracy (on the rows trained that epoch), validation loss and
        accuracy, learning rate, seconds; ``best_epoch``.
    settings : dict
    """
    if recipe not in CNN_RECIPES:
        raise ValueError(f"recipe: expected one of {tuple(CNN_RECIPES)}, got {recipe!r}")
    s = dict(CNN_RECIPES[recipe])
    unknown = set(overrides) - set(s) - set(CNN_OPTIONS)
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}; the recipe has {sorted(s)}, and may add "
                         f"{sorted(set(CNN_OPTIONS) - set(s))}")
    s.update(overrides)
    for key, value in (("epochs", epochs), ("lr", lr), ("copies", copies)):
        if value is not None:
            s[key] = value
    if s["invert"] and s["padding"] != "valid":
        raise ValueError(f"invert=True needs padding 'valid' in the first convolution (to fold the inversion into "
                         f"it exactly), got padding {s['padding']!r}")
    opt = {key: s.get(key, default) for key, default in CNN_OPTIONS.items()}  # a recipe's settings lack the defaults
    if opt["lr_schedule"] not in CNN_SCHEDULES:
        raise ValueError(f"lr_schedule: expected one of {CNN_SCHEDULES}, got {opt['lr_schedule']!r}")
    from .models import CNN
    from .models.layers import rows_to_images
    from .train import History, ProgressBar, Trainer, cosine_rates, onecycle_rates

    X, Y = dataset["train"]
    if s["extra"] and extra is not None:
        X, Y = np.vstack([X, extra[0]]), np.vstack([Y, extra[1]])
    dtype = np.dtype(s["dtype"])
    n = X.shape[0]
    copies = int(s["copies"])
    s["train_rows"] = int(n)
    images = np.empty(((copies + 1) * n, 32, 32, 1), dtype)
    ink = (lambda rows: 1 - rows_to_images(rows)) if s["invert"] else rows_to_images  # ink = 1 on a zero background
    images[:n] = ink(X)
    T = np.vstack([np.asarray(Y, dtype)] * (copies + 1))
    valid = None
    if dataset.get("valid") is not None:
        valid = (ink(dataset["valid"][0]).astype(dtype), dataset["valid"][1])
    layers = cnn_layers(s["conv"], s["kernel"], s["hidden"], Y.shape[1], padding=s["padding"],
                        batch_norm=opt["batch_norm"], dropout=opt["dropout"], head=opt["head"])
    model = CNN((32, 32, 1), layers, dtype=dtype, seed=seed)
    trainer = Trainer(model, optimizer=s["optimizer"], lr=s["lr"], batch_size=s["batch_size"], shuffle="epoch",
                      weight_decay=s["weight_decay"], seed=seed, progress=False,
                      loss_reduction=opt["loss_reduction"])
    batches = -(-images.shape[0] // s["batch_size"])  # per epoch, for a schedule stepped every batch
    total = s["epochs"] * batches
    rng = np.random.default_rng(seed)
    bar = ProgressBar(s["epochs"], f"CNN {recipe} epoch", each_unit=True) if progress is not False else None
    hist, best = History(), None
    for ep in range(s["epochs"]):
        if copies:
            from .data import augment

            for j in range(1, copies + 1):
                shown = None if bar is None else _EpochPart(bar, ep, j - 1, copies + 1, "distorting")
                images[j * n:(j + 1) * n] = ink(augment(X, rng, on_progress=shown))
        if opt["lr_schedule"] == "epoch-cosine":
            trainer.lr = float(s["lr"] * 0.5 * (1 + math.cos(math.pi * ep / s["epochs"])))
        else:  # this epoch's batches' rates along the whole run's curve (each one-epoch fit would restart its own)
            rates = (cosine_rates(s["lr"], 0.0, ep * batches, batches, total) if opt["lr_schedule"] == "cosine"
                     else onecycle_rates(s["lr"], ep * batches, batches, total))
            trainer.lr_schedule = lambda at, rates=rates: float(rates[min(int(round(at * batches)), batches - 1)])
        trainer.seed = seed * 100_003 + ep  # fit draws its batch order from the trainer's seed: a new one each epoch
        trainer.progress = False if bar is None else _EpochPart(bar, ep, copies, copies + 1, "training")
        h = trainer.fit(images, T, 1, valid=valid)
        for key in ("train_loss", "train_acc", "valid_loss", "valid_acc", "lr", "seconds"):
            getattr(hist, key).extend(getattr(h, key))
        if valid is None:
            best = ep
        elif best is None or hist.valid_acc[-1] > hist.valid_acc[best]:
            best, best_theta, best_running = ep, model.theta.copy(), model.running.copy()  # BatchNorm's statistics
        if bar is not None:
            scored = f"valid_acc {hist.valid_acc[-1]:.4f} " if valid is not None else ""
            bar.update(ep + 1, f"loss {hist.train_loss[-1]:.4g} acc {hist.train_acc[-1]:.3f} {scored}"
                               f"({hist.seconds[-1]:.1f}s)")
    hist.best_epoch = best
    if valid is not None:
        model.theta[...] = best_theta
        model.running[...] = best_running
    if s["invert"]:
        W, b = model.layer_parameters(model.theta, 0)  # fold: conv(1 - x, W) + b = conv(x, -W) + b + sum W
        b += W.sum(axis=(0, 1, 2))
        W *= -1
    return model, hist, s


class _EpochPart:
    """Part ``part`` of ``parts`` of epoch ``ep`` on the epoch ``bar`` (display only): called with the fraction
    done by :func:`fastnn.data.augment`, or updated with ``(done, info)`` by a one-epoch ``Trainer.fit`` (its
    ``progress``), whose end-of-epoch update is left to :func:`train_cnn`'s, which has the validation and time."""

    def __init__(self, bar, ep, part, parts, what):
        self.bar, self.ep, self.part, self.parts, self.what = bar, ep, part, parts, what

    def __repr__(self):
        return f"_EpochPart({self.bar.label!r}, epoch {self.ep + 1}, part {self.part + 1}/{self.parts}, {self.what!r})"

    def __call__(self, fraction):
        self.update(fraction, f"{fraction:.0%}")

    def update(self, done, info=""):
        if done < 1:
            self.bar.update(self.ep + (self.part + done) / self.parts, f"{self.what} {info}".rstrip())
