"""The coursework wing: the drop-in ``nn`` API, the plain NumPy original, and the coursework's training loop.

- :mod:`fastnn.coursework.nn`: the drop-in replacement of the coursework's NumPy ``nn.py``, compiled kernels
  behind the same names; users type ``fastnn.nn``, which re-exports it;
- :mod:`fastnn.coursework.numpy_nn`: the plain NumPy original, the reference the drop-in is held to (the
  benchmarks' baseline and the tests' reference);
- here: :func:`setup`, :func:`epoch` and :func:`train`, the coursework's training loop written once for any
  module with the ``nn`` API.  The toy task, the benchmarks' NumPy baseline and the tests run this one loop
  on either module.  The network is the coursework's two layers: ``layer1`` (sigmoid by default) and
  ``output`` (softmax), the summed cross-entropy, and plain SGD on the gradients of that sum.

Importing this package loads neither module: pass the one to run.

Examples
--------
>>> import numpy as np
>>> from fastnn import coursework, nn
>>> x = np.random.default_rng(0).random((40, 2)); y = np.eye(4)[np.arange(40) % 4]
>>> history, params = coursework.train(nn, x, y, hidden=8, batch_size=5, lr=1e-2, epochs=3, seed=0)
>>> len(history), params["Wlayer1"].shape
(3, (2, 8))
"""

from __future__ import annotations

import numpy as np

__all__ = ["setup", "epoch", "train"]


def setup(nn, x, y, hidden: int, batch_size: int, seed=None):
    """The coursework's set-up: (optionally) seed NumPy's global generator, initialise ``layer1`` and
    ``output``, draw the mini-batches once.  Returns (params, batches)."""
    if seed is not None:
        np.random.seed(seed)
    params = {}
    nn.initialize_weights(x.shape[1], hidden, params, "layer1")
    nn.initialize_weights(hidden, y.shape[1], params, "output")
    return params, nn.get_random_batches(x, y, batch_size)


def epoch(nn, params, batches, lr: float, hidden_act="sigmoid"):
    """One epoch of the coursework's loop over ``batches``; returns (summed loss, mean batch accuracy).

    ``hidden_act`` names the first layer's activation in ``nn`` (its derivative is ``<name>_deriv``).
    """
    act, act_deriv = getattr(nn, hidden_act), getattr(nn, hidden_act + "_deriv")
    total_loss = 0.0
    total_acc = 0.0
    for xb, yb in batches:
        h1 = nn.forward(xb, params, "layer1", act)
        probs = nn.forward(h1, params, "output", nn.softmax)
        loss, acc = nn.compute_loss_and_acc(yb, probs)
        total_loss += loss
        total_acc += acc
        delta2 = nn.backwards(probs - yb, params, "output", nn.linear_deriv)
        nn.backwards(delta2, params, "layer1", act_deriv)
        for k in ("layer1", "output"):
            params["W" + k] -= lr * params["grad_W" + k]
            params["b" + k] -= lr * params["grad_b" + k]
    return total_loss, total_acc / len(batches)


def train(nn, x, y, hidden: int, batch_size: int, lr: float, epochs: int, seed=None, *, log_every: int = 0,
          log=print):
    """The coursework's whole training: :func:`setup`, then ``epochs`` epochs over the same batches.

    Returns (history, params): ``history`` holds (summed loss, mean batch accuracy) per epoch.  With
    ``log_every``, ``log`` gets the coursework's ``itr / loss / acc`` line every that many epochs and at
    the last.
    """
    params, batches = setup(nn, x, y, hidden, batch_size, seed)
    history = []
    for itr in range(epochs):
        history.append(epoch(nn, params, batches, lr))
        if log_every and (itr % log_every == 0 or itr == epochs - 1):
            log(f"itr: {itr:03d} \t loss: {history[-1][0]:.2f} \t acc : {history[-1][1]:.2f}")
    return history, params
