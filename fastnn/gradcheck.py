"""Finite-difference gradient check of a stack of dense layers (the coursework's Q2 check).

Example
-------
>>> import numpy as np
>>> from fastnn import nn
>>> from fastnn.gradcheck import gradient_check
>>> np.random.seed(0)
>>> params = {}
>>> nn.initialize_weights(3, 5, params, "layer1")
>>> nn.initialize_weights(5, 4, params, "output")
>>> x, y = np.random.randn(6, 3), np.eye(4)[np.random.randint(0, 4, 6)]
>>> gradient_check(params, x, y, [("layer1", "tanh"), ("output", "softmax")]) < 1e-6
True
"""

from __future__ import annotations

import numpy as np

from . import nn

#: activation name -> (function, derivative) of the drop-in API.
_LAYER_FUNCS = {
    "sigmoid": (nn.sigmoid, nn.sigmoid_deriv),
    "tanh": (nn.tanh, nn.tanh_deriv),
    "relu": (nn.relu, nn.relu_deriv),
    "linear": (nn.linear, nn.linear_deriv),
}


def _check_layers(layers):
    if not layers:
        raise ValueError("layers: expected at least one (name, activation) pair")
    for i, (name, act) in enumerate(layers):
        last = i == len(layers) - 1
        if act not in _LAYER_FUNCS and not (last and act == "softmax"):
            allowed = sorted(_LAYER_FUNCS) + (["softmax"] if last else [])
            raise ValueError(f"layers[{i}]: activation of layer {name!r} must be one of {allowed}, got {act!r}")


def _loss_and_backward(params, x, y, layers, backward: bool) -> float:
    h = x
    for name, act in layers:
        fn = nn.softmax if act == "softmax" else _LAYER_FUNCS[act][0]
        h = nn.forward(h, params, name, fn)
    if layers[-1][1] == "softmax":
        loss, _ = nn.compute_loss_and_acc(y, h)
        delta = h - y  # d(summed CE)/d(logits); backpropagated through a linear derivative
        derivs = ["linear"] + [act for _, act in layers[-2::-1]]
    else:
        loss = float(np.sum((h - y) ** 2))
        delta = 2 * (h - y)
        derivs = [act for _, act in layers[::-1]]
    if backward:
        for (name, _), act in zip(layers[::-1], derivs):
            delta = nn.backwards(delta, params, name, _LAYER_FUNCS[act][1])
    return loss


def gradient_check(params, x, y, layers, *, eps: float = 1e-6) -> float:
    """Compare analytic gradients with central finite differences over every parameter.

    The loss is the summed cross-entropy when the last layer is ``'softmax'``,
    else the total squared error ``sum((out - y)**2)``.

    Parameters
    ----------
    params : dict
        ``W<name>`` and ``b<name>`` for every layer (float64 recommended); restored on return.
    x : (n, d) ndarray
    y : (n, c) ndarray
        One-hot targets (softmax) or regression targets.
    layers : list of (name, activation) pairs
        Activations from {'sigmoid', 'tanh', 'relu', 'linear'}, and 'softmax' for the last layer.
    eps : float
        Finite-difference step.

    Returns
    -------
    float
        The largest relative error ``|analytic - numeric| / max(|analytic| + |numeric|, 1e-12)``
        over every weight and bias element.
    """
    _check_layers(layers)
    if not eps > 0:
        raise ValueError(f"eps: expected a positive step, got {eps!r}")
    _loss_and_backward(params, x, y, layers, backward=True)
    analytic = {k + name: np.array(params["grad_" + k + name]) for name, _ in layers for k in ("W", "b")}
    worst = 0.0
    for key, grad in analytic.items():
        p = params[key]
        flat = p.reshape(-1)
        for i in range(flat.size):
            orig = flat[i]
            flat[i] = orig + eps
            plus = _loss_and_backward(params, x, y, layers, backward=False)
            flat[i] = orig - eps
            minus = _loss_and_backward(params, x, y, layers, backward=False)
            flat[i] = orig
            numeric = (plus - minus) / (2 * eps)
            a = grad.reshape(-1)[i]
            worst = max(worst, abs(a - numeric) / max(abs(a) + abs(numeric), 1e-12))
    _loss_and_backward(params, x, y, layers, backward=True)  # leave the true gradients in params
    return float(worst)
