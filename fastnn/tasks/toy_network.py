"""The coursework's toy problem: four 2-D Gaussian classes and a 2-25-4 network, trained with ``fastnn.nn``.

This is the coursework's own script, written against the drop-in API: it uses
NumPy's global generator, seeded once, exactly as the plain version does.
"""

from __future__ import annotations

import numpy as np

from .. import coursework, nn

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
    np.random.seed(seed)
    x, y = make_toy_data()
    history, params = coursework.train(nn, x, y, hidden, batch_size, lr, epochs, log_every=log_every, log=log)
    return {"history": history, "loss": history[-1][0], "accuracy": history[-1][1], "params": params}
