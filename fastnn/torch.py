"""PyTorch interop: ``to_torch(model)`` and ``from_torch(module)`` move a network between fastnn and PyTorch.

An :class:`~fastnn.models.MLP` becomes a ``torch.nn.Sequential`` of ``Linear`` layers, each followed by its
activation module (``Sigmoid``, ``Tanh``, ``ReLU``, ``Softmax(dim=-1)``; nothing for 'linear'), in the model's
dtype, with the same weights: fastnn stores a layer's W as (n_in, n_out), so ``Linear.weight`` is ``W.T``.
``from_torch`` reads such a Sequential back (``Identity`` and nested ``Sequential`` modules are allowed; a
``Linear`` without bias gets zero biases).  Any other module is refused with an error naming it and its
position.

Training the same network in both (the coursework's Q6.1.1): fastnn's optimizers take the gradient of the
loss *summed* over a batch, so a PyTorch loop matches fastnn's numbers with ``reduction="sum"`` and the same
learning rate (or ``reduction="mean"`` and a learning rate ``batch_size`` times larger, for SGD and momentum),
and with the last activation left to the loss: ``to_torch(model, logits=True)`` with ``CrossEntropyLoss``
(softmax output) or ``BCEWithLogitsLoss`` (one sigmoid output); fastnn's squared error is
``((out - target) ** 2).sum()``.  ``torch.optim.SGD`` (with ``momentum``, ``nesterov``, ``weight_decay``) and
``torch.optim.Adam`` (with ``weight_decay``, not AdamW) then give fastnn's updates: ``tests/test_torch.py``
holds the losses of 50 steps of each to float32 tolerance.

PyTorch is an optional dependency (``pip install 'fastnn[torch]'``): it is imported only when these functions
are called.
"""

from __future__ import annotations

import numpy as np

__all__ = ["to_torch", "from_torch"]


def _import_torch():
    try:
        import torch
    except ImportError as exc:
        raise ImportError("fastnn.torch needs PyTorch, an optional dependency: pip install 'fastnn[torch]' "
                          "(or pip install torch)") from exc
    return torch


def _activation_modules(torch):
    nn = torch.nn
    return {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}


def to_torch(model, *, logits: bool = False):
    """A ``torch.nn.Sequential`` computing the same function as ``model``, with copies of its weights.

    Parameters
    ----------
    model : fastnn.models.MLP
    logits : bool
        Leave out the last activation (for ``CrossEntropyLoss`` or ``BCEWithLogitsLoss``, which apply it).

    Returns
    -------
    torch.nn.Sequential
        ``Linear`` layers (weight ``W.T``, bias ``b``) and activation modules, in the model's dtype.

    Examples
    --------
    >>> from fastnn.models import MLP
    >>> net = to_torch(MLP([1024, 64, 36], ["sigmoid", "softmax"], dtype="float32"))  # doctest: +SKIP
    >>> net  # doctest: +SKIP
    Sequential(
      (0): Linear(in_features=1024, out_features=64, bias=True)
      (1): Sigmoid()
      (2): Linear(in_features=64, out_features=36, bias=True)
      (3): Softmax(dim=-1)
    )
    """
    from .models import MLP

    if not isinstance(model, MLP):
        raise TypeError(f"model: expected a fastnn.models.MLP, got {type(model).__name__}")
    torch = _import_torch()
    dtype = torch.float32 if model.dtype == np.float32 else torch.float64
    acts = _activation_modules(torch)
    modules = []
    for l, (W, b, act) in enumerate(zip(model.weights, model.biases, model.activations)):
        linear = torch.nn.Linear(W.shape[0], W.shape[1], dtype=dtype)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
            linear.bias.copy_(torch.from_numpy(np.array(b)))
        modules.append(linear)
        if logits and l == model.n_layers - 1:
            break
        if act == "softmax":
            modules.append(torch.nn.Softmax(dim=-1))
        elif act != "linear":
            modules.append(acts[act]())
    return torch.nn.Sequential(*modules)


def _flatten(torch, module, where="module"):
    """(position label, module) of the leaves of nested Sequentials."""
    if isinstance(module, torch.nn.Sequential):
        out = []
        for i, child in enumerate(module):
            out += _flatten(torch, child, f"{where}[{i}]")
        return out
    return [(where, module)]


def from_torch(module, *, output_activation=None, loss=None):
    """A fastnn :class:`~fastnn.models.MLP` with the layers and weights of a PyTorch module.

    Parameters
    ----------
    module : torch.nn.Sequential (or a single torch.nn.Linear)
        ``Linear`` layers, each followed by at most one of ``Sigmoid``, ``Tanh``, ``ReLU``,
        ``Softmax(dim=-1 or 1)`` (last only) or ``Identity``; a ``Linear`` with no activation after it is
        'linear'.  Float32 or float64 weights, all of one dtype.
    output_activation : {'softmax', 'sigmoid'}, optional
        The last layer's activation when the module ends with a ``Linear`` because its loss applied it
        (``CrossEntropyLoss``, ``BCEWithLogitsLoss``).
    loss : str, optional
        Passed to :class:`~fastnn.models.MLP` (inferred from the output layer when omitted).

    Returns
    -------
    fastnn.models.MLP

    Raises
    ------
    TypeError
        A module fastnn has no layer for (named with its position), or weights that are not float32/float64.
    ValueError
        A layout fastnn cannot represent (two activations in a row, an activation first, Softmax over
        another dimension or not last, widths that do not chain), or a bad ``output_activation``.
    """
    from .models import MLP

    torch = _import_torch()
    nn = torch.nn
    if not isinstance(module, nn.Module):
        raise TypeError(f"module: expected a torch.nn.Module, got {type(module).__name__}")
    names = {cls: name for name, cls in _activation_modules(torch).items()}
    linears, acts, dtypes = [], [], set()
    leaves = _flatten(torch, module)
    for i, (where, m) in enumerate(leaves):
        if isinstance(m, nn.Identity):
            continue
        if isinstance(m, nn.Linear):
            if linears and len(acts) < len(linears):
                acts.append("linear")
            linears.append((where, m))
            dtypes.add(m.weight.dtype)
            continue
        if type(m) in names or isinstance(m, nn.Softmax):
            if len(acts) == len(linears):
                raise ValueError(f"{where}: {type(m).__name__} must follow a Linear layer (fastnn layers are a dense "
                                 "product then one activation)")
            if isinstance(m, nn.Softmax):
                if m.dim not in (-1, 1):
                    raise ValueError(f"{where}: Softmax(dim={m.dim}) is not over the features; fastnn's softmax "
                                     "is over the last dimension (dim=-1)")
                if any(not isinstance(rest, nn.Identity) for _, rest in leaves[i + 1:]):
                    raise ValueError(f"{where}: Softmax must be the last layer")
                acts.append("softmax")
            else:
                acts.append(names[type(m)])
            continue
        raise TypeError(f"{where}: fastnn has no layer for {type(m).__name__}; supported: Linear, Sigmoid, Tanh, "
                        "ReLU, Softmax (last), Identity")
    if not linears:
        raise ValueError("module: holds no Linear layer")
    if len(acts) < len(linears):
        if output_activation not in (None, "softmax", "sigmoid"):
            raise ValueError(f"output_activation: expected None, 'softmax' or 'sigmoid', got {output_activation!r}")
        acts.append(output_activation or "linear")
    elif output_activation is not None:
        raise ValueError(f"output_activation: the module already ends with its activation ({acts[-1]})")
    if len(dtypes) != 1 or not dtypes <= {torch.float32, torch.float64}:
        raise TypeError(f"module: expected the Linear weights all float32 or all float64, got "
                        f"{sorted(str(d) for d in dtypes)}")
    dtype = "float32" if dtypes == {torch.float32} else "float64"
    sizes = [linears[0][1].in_features]
    for where, lin in linears:
        if lin.in_features != sizes[-1]:
            raise ValueError(f"{where}: Linear takes {lin.in_features} features, but the layer before gives "
                             f"{sizes[-1]}")
        sizes.append(lin.out_features)
    model = MLP(sizes, acts, loss=loss, dtype=dtype)
    with torch.no_grad():
        for l, (_, lin) in enumerate(linears):
            model.weights[l][...] = lin.weight.detach().cpu().numpy().T
            model.biases[l][...] = 0 if lin.bias is None else lin.bias.detach().cpu().numpy()
    return model
