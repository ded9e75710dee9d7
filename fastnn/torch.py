"""PyTorch interop: ``to_torch(model)`` and ``from_torch(module)`` move a network between fastnn and PyTorch.

An :class:`~fastnn.models.MLP` becomes a ``torch.nn.Sequential`` of ``Linear`` layers, each followed by its
activation module (``Sigmoid``, ``Tanh``, ``ReLU``, ``Softmax(dim=-1)``; nothing for 'linear'), in the model's
dtype, with the same weights: fastnn stores a layer's W as (n_in, n_out), so ``Linear.weight`` is ``W.T``.
``from_torch`` reads such a Sequential back (``Identity`` and nested ``Sequential`` modules are allowed; a
``Linear`` without bias gets zero biases).  Any other module is refused with an error naming it and its
position.

A :class:`~fastnn.models.CNN` becomes a Sequential that takes NCHW images, as PyTorch's ``Conv2d`` does (pass
``torch.from_numpy(images.transpose(0, 3, 1, 2))`` for fastnn's NHWC ``images``): ``Conv2d`` with weight
``W.transpose(3, 2, 0, 1)`` (fastnn's (KH, KW, C_in, C_out) -> (C_out, C_in, KH, KW)), its 'same' padding as
``padding=(top, left)`` when the zeros are symmetric and as an ``nn.ZeroPad2d`` before a ``padding=0``
convolution when the odd extra row/column goes to the bottom/right (fastnn's rule, which PyTorch's
symmetric padding cannot express; ``padding='same'`` is accepted by ``from_torch`` too), ``MaxPool2d(size)``,
``AvgPool2d(size)``, ``AdaptiveAvgPool2d(1)`` then ``Flatten()`` (a ``GlobalAvgPool2D``),
``Flatten()`` and ``Linear``.  PyTorch flattens an image in (C, H, W) order and fastnn in (H, W, C), so the
columns of the first ``Linear`` after ``Flatten`` are fastnn's rows of W permuted to that order.
``from_torch(module, input_shape=(H, W, C))`` reads such a Sequential back into a CNN (the shape is fastnn's
NHWC one; it fixes the 'same' paddings and the flatten permutation).

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

from .activations import check_exportable

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


def _flatten_perm(shape):
    """perm with ``torch_flat[:, j] == fastnn_flat[:, perm[j]]`` for (H, W, C) images: torch flattens (C, H, W)."""
    h, w, c = shape
    return np.arange(h * w * c).reshape(h, w, c).transpose(2, 0, 1).reshape(-1)


def to_torch(model, *, logits: bool = False):
    """A ``torch.nn.Sequential`` computing the same function as ``model``, with copies of its weights.

    Parameters
    ----------
    model : fastnn.models.MLP or fastnn.models.CNN
    logits : bool
        Leave out the last activation (for ``CrossEntropyLoss`` or ``BCEWithLogitsLoss``, which apply it).

    Returns
    -------
    torch.nn.Sequential
        ``Linear`` layers (weight ``W.T``, bias ``b``) and activation modules, in the model's dtype; for a CNN
        also ``Conv2d`` (with ``ZeroPad2d`` for asymmetric 'same' padding), ``MaxPool2d``, ``AvgPool2d``,
        ``AdaptiveAvgPool2d(1)`` and ``Flatten``,
        taking NCHW images (see the module's docstring).

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
    if not callable(getattr(model, "layer_list", None)):
        raise TypeError(f"model: expected a fastnn model (fastnn.models.MLP or fastnn.models.CNN), got "
                        f"{type(model).__name__}")
    layers = model.layer_list()
    check_exportable(layers, "fastnn.torch")
    torch = _import_torch()
    nn = torch.nn
    dtype = torch.float32 if np.dtype(model.dtype) == np.float32 else torch.float64
    acts = _activation_modules(torch)
    modules, perm = [], None  # perm: the flat order torch's Flatten gives, for the next Linear's rows
    flat = len(model.input_shape) == 1  # rows (BatchNorm1d) rather than images (BatchNorm2d)
    for i, layer in enumerate(layers):
        kind, act, params = layer[0], "linear", None
        if kind == "conv":
            _, W, b, stride, (top, left, bottom, right), act = layer
            symmetric = (top, left) == (bottom, right)
            if not symmetric:
                modules.append(nn.ZeroPad2d((left, right, top, bottom)))
            m = nn.Conv2d(W.shape[2], W.shape[3], W.shape[:2], stride=stride,
                          padding=(top, left) if symmetric else 0, dtype=dtype)
            params = (W.transpose(3, 2, 0, 1), b)
        elif kind == "dense":
            _, W, b, act = layer
            m = nn.Linear(W.shape[0], W.shape[1], dtype=dtype)
            params, perm = ((W.T if perm is None else W[perm].T), b), None
        elif kind == "maxpool":
            m = nn.MaxPool2d(layer[1])
        elif kind == "avgpool":
            m = nn.AvgPool2d(layer[1])
        elif kind == "globalavgpool":  # (N, C, 1, 1), then flat: the channels' order is the same as fastnn's
            modules.append(nn.AdaptiveAvgPool2d(1))
            m, flat = nn.Flatten(), True
        elif kind == "dropout":
            m = nn.Dropout(layer[1])
        elif kind == "batchnorm":
            _, gamma, beta, mean, var, eps, momentum = layer
            m = (nn.BatchNorm1d if flat else nn.BatchNorm2d)(gamma.shape[0], eps=eps, momentum=momentum, dtype=dtype)
            params = (gamma, beta)
            with torch.no_grad():
                m.running_mean.copy_(torch.from_numpy(np.array(mean)))
                m.running_var.copy_(torch.from_numpy(np.array(var)))
        elif kind == "flatten":
            m, perm, flat = nn.Flatten(), _flatten_perm(layer[1]), True
        else:
            raise ValueError(f"model: a layer of kind {kind!r}, which fastnn.torch does not export")
        if params is not None:
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(np.ascontiguousarray(params[0])))
                m.bias.copy_(torch.from_numpy(np.array(params[1])))
        modules.append(m)
        if logits and i == len(layers) - 1:
            break
        if act == "softmax":
            modules.append(nn.Softmax(dim=-1))
        elif act != "linear":
            modules.append(acts[act]())
    return nn.Sequential(*modules)


def _flatten(torch, module, where="module"):
    """(position label, module) of the leaves of nested Sequentials."""
    if isinstance(module, torch.nn.Sequential):
        out = []
        for i, child in enumerate(module):
            out += _flatten(torch, child, f"{where}[{i}]")
        return out
    return [(where, module)]


def from_torch(module, *, output_activation=None, loss=None, input_shape=None):
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
    input_shape : (H, W, C) or (n,), optional
        Read the module as a :class:`~fastnn.models.CNN` taking inputs of this (fastnn, NHWC) shape: then
        ``Conv2d`` (zero padding 'valid' or fastnn's 'same', given as ``padding=`` or a ``ZeroPad2d`` before
        it; groups and dilation 1), ``MaxPool2d(k)`` and ``AvgPool2d(k)`` (stride k, no padding),
        ``AdaptiveAvgPool2d(1)`` then ``Flatten()``, ``Flatten()`` and ``Linear``,
        each layer with parameters followed by at most one activation, are read.

    Returns
    -------
    fastnn.models.MLP, or fastnn.models.CNN when ``input_shape`` is given

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
    if input_shape is not None:
        return _cnn_from_torch(torch, module, input_shape, output_activation, loss)
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
        hint = " (Conv2d, MaxPool2d and Flatten need input_shape=(H, W, C))" if isinstance(
            m, (nn.Conv2d, nn.MaxPool2d, nn.Flatten, nn.ZeroPad2d)) else ""
        raise TypeError(f"{where}: fastnn has no layer for {type(m).__name__}; supported: Linear, Sigmoid, Tanh, "
                        f"ReLU, Softmax (last), Identity{hint}")
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


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _cnn_from_torch(torch, module, input_shape, output_activation, loss):
    """``from_torch(module, input_shape=...)``: the CNN of a Sequential of Conv2d, MaxPool2d, Flatten, Linear."""
    from .models import CNN
    from .models.layers import (AvgPool2D, BatchNorm, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D, MaxPool2D,
                                check_input_shape)

    nn = torch.nn
    shape = check_input_shape(input_shape)
    names = {cls: name for name, cls in _activation_modules(torch).items()}
    layers, params, dtypes, pad, running = [], [], set(), None, {}
    # per layer with parameters: [layer arguments, activation or None]; params: (where, weight, bias, perm)
    pending = None  # index in layers of the last layer that takes an activation and has none yet
    flat_perm, current, n_shaped, wheres = None, shape, 0, []
    leaves = [(w, m) for w, m in _flatten(torch, module) if not isinstance(m, nn.Identity)]

    def advance():
        """The shape the module's layers so far give (a ValueError naming the module that does not fit)."""
        nonlocal current, n_shaped
        for k in range(n_shaped, len(layers)):
            cls, args, _ = layers[k]
            try:
                current = cls(**args).output_shape(current)
            except ValueError as exc:
                raise ValueError(f"{wheres[k]}: {exc}") from None
        n_shaped = len(layers)
        return current

    def close():
        nonlocal pending
        if pending is not None:
            layers[pending] = layers[pending][:-1] + ("linear",)
            pending = None

    pooled = None  # where an AdaptiveAvgPool2d(1) was, until the Flatten that must follow it
    for i, (where, m) in enumerate(leaves):
        if pad is not None and not isinstance(m, nn.Conv2d):
            raise ValueError(f"{pad[0]}: ZeroPad2d must come just before a Conv2d")
        if pooled is not None:
            if not (isinstance(m, nn.Flatten) and (m.start_dim, m.end_dim) == (1, -1)):
                raise ValueError(f"{pooled}: fastnn's GlobalAvgPool2D is AdaptiveAvgPool2d(1) then Flatten(), got "
                                 f"{type(m).__name__} after it")
            pooled = None  # (the GlobalAvgPool2D's output is flat already)
            continue
        current = advance()
        if isinstance(m, nn.ZeroPad2d):
            left, right, top, bottom = (int(p) for p in m.padding)
            pad = (where, (top, left, bottom, right))
            continue
        if isinstance(m, nn.Conv2d):
            close()
            if len(current) != 3:
                raise ValueError(f"{where}: Conv2d after the image was flattened")
            if m.groups != 1 or _pair(m.dilation) != (1, 1) or m.padding_mode != "zeros":
                raise ValueError(f"{where}: fastnn's Conv2D has groups=1, dilation=1 and zero padding, got "
                                 f"groups={m.groups}, dilation={m.dilation}, padding_mode={m.padding_mode!r}")
            stride = _pair(m.stride)
            if stride[0] != stride[1]:
                raise ValueError(f"{where}: fastnn's Conv2D has one stride for both axes, got stride={m.stride}")
            if isinstance(m.padding, str):
                pads = None if m.padding == "same" else (0, 0, 0, 0)
            else:
                pt, pl = _pair(m.padding)
                pads = (pt, pl, pt, pl)
            if pad is not None:
                if pads != (0, 0, 0, 0):
                    raise ValueError(f"{where}: a Conv2d after a ZeroPad2d must have padding=0")
                pads = pad[1]
            base = dict(in_channels=m.in_channels, out_channels=m.out_channels, kernel_size=tuple(m.kernel_size),
                        stride=stride[0])
            padding = "same" if pads is None else next(
                (p for p in ("valid", "same") if Conv2D(**base, padding=p).pads(current) == pads), None)
            if padding is None:
                raise ValueError(f"{where}: zero padding (top, left, bottom, right) = {pads} on a {current[:2]} "
                                 f"image is neither 'valid' nor fastnn's 'same' "
                                 f"{Conv2D(**base, padding='same').pads(current)}")
            pad = None
            layers.append((Conv2D, dict(base, padding=padding), None))
            wheres.append(where)
            params.append((m.weight.detach().cpu().numpy().transpose(2, 3, 1, 0),
                           None if m.bias is None else m.bias.detach().cpu().numpy()))
            dtypes.add(m.weight.dtype)
            pending = len(layers) - 1
        elif isinstance(m, nn.MaxPool2d):
            close()
            k, s = _pair(m.kernel_size), _pair(m.stride if m.stride is not None else m.kernel_size)
            if (k[0] != k[1] or s != k or _pair(m.padding) != (0, 0) or _pair(m.dilation) != (1, 1)
                    or m.ceil_mode or m.return_indices):
                raise ValueError(f"{where}: fastnn's MaxPool2D is a square window with stride = size, no padding, "
                                 f"dilation 1 and floor mode, got {m}")
            layers.append((MaxPool2D, dict(size=k[0]), "-"))
            wheres.append(where)
        elif isinstance(m, nn.AvgPool2d):
            close()
            k, s = _pair(m.kernel_size), _pair(m.stride if m.stride is not None else m.kernel_size)
            if k[0] != k[1] or s != k or _pair(m.padding) != (0, 0) or m.ceil_mode or m.divisor_override:
                raise ValueError(f"{where}: fastnn's AvgPool2D is a square window with stride = size, no padding, "
                                 f"floor mode and no divisor_override, got {m}")
            layers.append((AvgPool2D, dict(size=k[0]), "-"))
            wheres.append(where)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            close()
            if not m.affine or not m.track_running_stats or m.momentum is None:
                raise ValueError(f"{where}: fastnn's BatchNorm has gamma and beta (affine=True), running statistics "
                                 f"(track_running_stats=True) and a momentum (not None), got {m}")
            layers.append((BatchNorm, dict(channels=m.num_features, momentum=m.momentum, eps=m.eps), "-"))
            wheres.append(where)
            params.append((m.weight.detach().cpu().numpy(), m.bias.detach().cpu().numpy()))
            running[len(layers) - 1] = (m.running_mean.detach().cpu().numpy(), m.running_var.detach().cpu().numpy())
            dtypes.add(m.weight.dtype)
        elif isinstance(m, nn.Dropout):
            close()
            layers.append((Dropout, dict(rate=float(m.p)), "-"))
            wheres.append(where)
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            close()
            if _pair(m.output_size) != (1, 1):
                raise ValueError(f"{where}: fastnn's GlobalAvgPool2D is AdaptiveAvgPool2d(1), got {m}")
            layers.append((GlobalAvgPool2D, {}, "-"))
            wheres.append(where)
            pooled = where
        elif isinstance(m, nn.Flatten):
            close()
            if (m.start_dim, m.end_dim) != (1, -1):
                raise ValueError(f"{where}: fastnn's Flatten is Flatten(start_dim=1, end_dim=-1), got {m}")
            if len(current) != 3:
                raise ValueError(f"{where}: Flatten of an input already flat, of shape {current}")
            flat_perm = _flatten_perm(current)
            layers.append((Flatten, {}, "-"))
            wheres.append(where)
        elif isinstance(m, nn.Linear):
            close()
            W = m.weight.detach().cpu().numpy().T
            if flat_perm is not None:
                if W.shape[0] == flat_perm.size:
                    W = W[np.argsort(flat_perm)]
                flat_perm = None
            layers.append((Dense, dict(n_in=m.in_features, n_out=m.out_features), None))
            wheres.append(where)
            params.append((W, None if m.bias is None else m.bias.detach().cpu().numpy()))
            dtypes.add(m.weight.dtype)
            pending = len(layers) - 1
        elif type(m) in names or isinstance(m, nn.Softmax):
            if pending is None:
                raise ValueError(f"{where}: {type(m).__name__} must follow a Conv2d or Linear layer (fastnn layers "
                                 "are a product then one activation)")
            if isinstance(m, nn.Softmax):
                if m.dim not in (-1, 1) or i != len(leaves) - 1 or layers[pending][0] is not Dense:
                    raise ValueError(f"{where}: fastnn's softmax is over the features (dim=-1) of the last Linear")
                act = "softmax"
            else:
                act = names[type(m)]
            layers[pending] = layers[pending][:-1] + (act,)
            pending = None
        else:
            raise TypeError(f"{where}: fastnn has no layer for {type(m).__name__}; supported with input_shape: "
                            "Conv2d, ZeroPad2d (before a Conv2d), MaxPool2d, AvgPool2d, AdaptiveAvgPool2d(1) (then "
                            "Flatten), Flatten, Dropout, BatchNorm1d/2d, Linear, Sigmoid, Tanh, ReLU, Softmax (last), "
                            "Identity")
    if pad is not None:
        raise ValueError(f"{pad[0]}: ZeroPad2d must come just before a Conv2d")
    if pooled is not None:
        raise ValueError(f"{pooled}: fastnn's GlobalAvgPool2D is AdaptiveAvgPool2d(1) then Flatten()")
    advance()
    if pending is not None:
        if output_activation not in (None, "softmax", "sigmoid"):
            raise ValueError(f"output_activation: expected None, 'softmax' or 'sigmoid', got {output_activation!r}")
        layers[pending] = layers[pending][:-1] + (output_activation or "linear",)
    elif output_activation is not None:
        raise ValueError("output_activation: the module already ends with its activation")
    if len(dtypes) != 1 or not dtypes <= {torch.float32, torch.float64}:
        raise TypeError(f"module: expected the weights all float32 or all float64, got "
                        f"{sorted(str(d) for d in dtypes)}")
    built = [cls(**args) if act == "-" else cls(**args, activation=act) for cls, args, act in layers]
    model = CNN(shape, built, loss=loss, dtype="float32" if dtypes == {torch.float32} else "float64")
    k = 0
    for i in range(len(built)):
        if model.offsets[i] is None:
            continue
        W, b = model.layer_parameters(model.theta, i)
        W[...] = params[k][0]
        b[...] = 0 if params[k][1] is None else params[k][1]
        k += 1
    for i, (mean, var) in running.items():
        model.running_stats(i)[0][...], model.running_stats(i)[1][...] = mean, var
    return model
