"""ONNX export: ``to_onnx(model, path)`` writes a fastnn network as an ONNX graph that onnxruntime runs.

The exporter reads a model's neutral layer list (``model.layer_list()``, :mod:`fastnn.models.base`) and
imports no model class.  ``layers_of`` turns that list into ONNX steps, ``(kind, ...)`` tuples, and each
kind has one emit function in ``EMITTERS`` that appends its nodes and initializers to the graph: a new
layer kind is a few lines in each.  A dense layer is ``("dense", W, b)`` (one ``Gemm``:
``X @ W + b``, W stored as fastnn's (n_in, n_out), so no transpose) then ``("activation", name)``
(``Sigmoid``, ``Tanh``, ``Relu``, ``Softmax`` over the last axis, nothing for 'linear').

A :class:`~fastnn.models.CNN` takes NHWC images, as ``CNN.predict_proba`` does, while ONNX's ``Conv`` and
``MaxPool`` work on NCHW: the graph starts with ``("transpose", (0, 3, 1, 2))``, runs ``("conv", W, b,
stride, pads)`` (one ``Conv``, W as ONNX's (C_out, C_in, KH, KW) = fastnn's ``W.transpose(3, 2, 0, 1)``,
'same' padding as explicit ``pads`` with the odd extra row/column at the bottom/right, as fastnn puts it)
and ``("maxpool", size)`` (``MaxPool``, kernel = stride = size, trailing rows dropped) in NCHW, and
transposes back to NHWC (``(0, 2, 3, 1)``) just before ``("flatten",)``, so that ``Flatten`` gives fastnn's
(H, W, C) order and the dense layers keep their weights as they are.

The graph declares its opset (``DEFAULT_OPSET`` unless asked otherwise) and the lowest IR version that
opset needs; its one input, ``input``, is (batch, n_features) for an MLP, (batch, H, W, C) for a CNN on
images, with a named dynamic batch dimension, and its one output, ``output``, is the network's output
(probabilities for a classifier; ``logits=True`` stops before the last activation).  The tensors keep the
model's dtype (float32 or float64; onnxruntime's CPU provider runs a float64 Gemm but has no float64
``Conv``, so a CNN to run there is best exported from a float32 model).  The graph is checked with
``onnx.checker`` (with shape inference) before it is written, atomically (``fastnn._io.atomic_write``).

onnx is an optional dependency (``pip install 'fastnn[onnx]'``, which also brings onnxruntime to run the
files): it is imported only when a model is exported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import __version__
from ._io import atomic_write
from .activations import check_exportable

__all__ = ["DEFAULT_OPSET", "MIN_OPSET", "EMITTERS", "layers_of", "to_onnx", "to_onnx_model"]

#: Opset declared when none is asked for: every operator used here is unchanged since opset 13, and
#: onnxruntime has run opset 17 since version 1.11.
DEFAULT_OPSET = 17
#: Oldest opset accepted: Softmax took its current meaning (one axis, default -1) in opset 13.
MIN_OPSET = 13
INPUT_NAME = "input"
OUTPUT_NAME = "output"
BATCH_DIM = "batch"

_ACTIVATION_OPS = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu", "softmax": "Softmax", "linear": None}


def _import_onnx():
    try:
        import onnx
    except ImportError as exc:
        raise ImportError("ONNX export needs the onnx package, an optional dependency: pip install 'fastnn[onnx]' "
                          "(or pip install onnx onnxruntime)") from exc
    return onnx


class _Graph:
    """The nodes and initializers of the graph under construction, with unique names."""

    def __init__(self, onnx, dtype):
        self.onnx = onnx
        self.dtype = np.dtype(dtype)
        self.nodes, self.initializers, self._used = [], [], set()

    def name(self, base: str) -> str:
        n = 0
        while f"{base}_{n}" in self._used:
            n += 1
        self._used.add(f"{base}_{n}")
        return f"{base}_{n}"

    def constant(self, base: str, array) -> str:
        """Add ``array`` (in the graph's dtype) as an initializer; return its name."""
        name = self.name(base)
        data = np.ascontiguousarray(array, dtype=self.dtype)
        self.initializers.append(self.onnx.numpy_helper.from_array(data, name))
        return name

    def node(self, op: str, inputs, base: str, output: str | None = None, **attributes) -> str:
        """Add one ``op`` node; return the name of its output (``output`` if given)."""
        out = output or self.name(base)
        self.nodes.append(self.onnx.helper.make_node(op, list(inputs), [out], name=self.name(op), **attributes))
        return out


# ------------------------------------------------------------------------------ emitters, one per layer kind

def _emit_dense(g: _Graph, x: str, layer, output=None) -> str:
    _, W, b = layer
    return g.node("Gemm", [x, g.constant("W", W), g.constant("b", b)], "dense", output)


def _emit_activation(g: _Graph, x: str, layer, output=None) -> str:
    op = _ACTIVATION_OPS[layer[1]]
    if op is None:  # linear
        return g.node("Identity", [x], "linear", output) if output else x
    attributes = {"axis": -1} if op == "Softmax" else {}
    return g.node(op, [x], layer[1], output, **attributes)


def _emit_transpose(g: _Graph, x: str, layer, output=None) -> str:
    return g.node("Transpose", [x], "transpose", output, perm=list(layer[1]))


def _emit_conv(g: _Graph, x: str, layer, output=None) -> str:
    _, W, b, stride, pads = layer
    return g.node("Conv", [x, g.constant("W", W), g.constant("b", b)], "conv", output,
                  kernel_shape=list(W.shape[2:]), strides=[stride, stride], pads=list(pads))


def _emit_maxpool(g: _Graph, x: str, layer, output=None) -> str:
    size = layer[1]
    return g.node("MaxPool", [x], "maxpool", output, kernel_shape=[size, size], strides=[size, size])


def _emit_avgpool(g: _Graph, x: str, layer, output=None) -> str:
    size = layer[1]
    return g.node("AveragePool", [x], "avgpool", output, kernel_shape=[size, size], strides=[size, size])


def _emit_globalavgpool(g: _Graph, x: str, layer, output=None) -> str:
    return g.node("GlobalAveragePool", [x], "globalavgpool", output)


def _emit_batchnorm(g: _Graph, x: str, layer, output=None) -> str:
    _, gamma, beta, mean, var, eps = layer
    return g.node("BatchNormalization", [x, g.constant("scale", gamma), g.constant("B", beta),
                                         g.constant("mean", mean), g.constant("var", var)], "batchnorm", output,
                  epsilon=float(eps))


def _emit_flatten(g: _Graph, x: str, layer, output=None) -> str:
    return g.node("Flatten", [x], "flatten", output, axis=1)


#: layer kind -> emit(graph, input name, layer, output name or None) -> output name.
EMITTERS = {"dense": _emit_dense, "activation": _emit_activation, "transpose": _emit_transpose,
            "conv": _emit_conv, "maxpool": _emit_maxpool, "avgpool": _emit_avgpool,
            "globalavgpool": _emit_globalavgpool, "batchnorm": _emit_batchnorm, "flatten": _emit_flatten}


def layers_of(model):
    """The ONNX steps of a fastnn model, ``[(kind, ...), ...]``, and the shape of one input sample, from the
    model's neutral layer list (``model.layer_list()``, see :mod:`fastnn.models.base`).

    Returns
    -------
    layers : list of tuples
        ``("dense", W (n_in, n_out), b (n_out,))`` and ``("activation", name)``; for image models also
        ``("transpose", perm)``, ``("conv", W (C_out, C_in, KH, KW), b, stride, (top, left, bottom, right))``,
        ``("maxpool", size)`` and ``("flatten",)`` (see the module's docstring).
    input_shape : tuple
        ``model.input_shape``: ``(n_features,)`` for an MLP, (H, W, C) or (n,) for a CNN.
    """
    if not callable(getattr(model, "layer_list", None)):
        raise TypeError(f"model: expected a fastnn model (fastnn.models.MLP or fastnn.models.CNN), got "
                        f"{type(model).__name__}")
    input_shape = tuple(model.input_shape)
    steps = [("transpose", (0, 3, 1, 2))] if len(input_shape) == 3 else []  # ONNX's Conv takes NCHW
    layer_list = model.layer_list()
    check_exportable(layer_list, "fastnn.onnx")
    for layer in layer_list:
        kind = layer[0]
        if kind == "dense":
            steps += [("dense", layer[1], layer[2]), ("activation", layer[3])]
        elif kind == "conv":
            _, W, b, stride, pads, act = layer
            steps += [("conv", W.transpose(3, 2, 0, 1), b, stride, pads), ("activation", act)]
        elif kind in ("maxpool", "avgpool"):
            steps.append((kind, layer[1]))
        elif kind == "globalavgpool":  # (N, C, 1, 1): flat in the same order in NCHW and NHWC
            steps += [("globalavgpool",), ("flatten",)]
        elif kind == "dropout":  # the identity in inference: nothing to export
            continue
        elif kind == "batchnorm":  # the inference form; the channels are axis 1 of NCHW images and of (N, C) rows
            _, gamma, beta, mean, var, eps, _ = layer
            steps.append(("batchnorm", gamma, beta, mean.astype(gamma.dtype), var.astype(gamma.dtype), eps))
        elif kind == "flatten":  # back to NHWC first, so that the flat order is fastnn's (H, W, C)
            steps += [("transpose", (0, 2, 3, 1)), ("flatten",)]
        else:
            raise ValueError(f"model: a layer of kind {kind!r}, which fastnn.onnx does not export")
    return steps, input_shape


def _check_opset(onnx, opset) -> int:
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset: expected an integer from {MIN_OPSET} to {newest} (the newest this onnx "
                         f"{onnx.__version__} knows), got {opset!r}")
    return int(opset)


def to_onnx_model(model, *, opset: int = DEFAULT_OPSET, logits: bool = False, graph_name: str | None = None):
    """The ``onnx.ModelProto`` of a fastnn model, checked by ``onnx.checker`` (see the module's docstring).

    Parameters
    ----------
    model : fastnn.models.MLP or fastnn.models.CNN (any fastnn model)
    opset : int
        ONNX opset to declare, from ``MIN_OPSET`` (13) to the newest the installed onnx knows.
    logits : bool
        End before the last activation (the logits of a classifier).
    graph_name : str, optional

    Returns
    -------
    onnx.ModelProto
    """
    layers, input_shape = layers_of(model)  # (first: a model it cannot export is refused with or without onnx)
    onnx = _import_onnx()
    opset = _check_opset(onnx, opset)
    if logits and layers[-1][0] == "activation":
        layers = layers[:-1]
    dtype = np.dtype(model.dtype)
    g = _Graph(onnx, dtype)
    x = INPUT_NAME
    for i, layer in enumerate(layers):
        x = EMITTERS[layer[0]](g, x, layer, OUTPUT_NAME if i == len(layers) - 1 else None)
    elem = onnx.helper.np_dtype_to_tensor_dtype(dtype)
    n_outputs = next(layer[1].shape[1] for layer in reversed(layers) if layer[0] == "dense")
    graph = onnx.helper.make_graph(
        g.nodes, graph_name or type(model).__name__, [onnx.helper.make_tensor_value_info(INPUT_NAME, elem,
                                                                                          [BATCH_DIM, *input_shape])],
        [onnx.helper.make_tensor_value_info(OUTPUT_NAME, elem, [BATCH_DIM, n_outputs])], g.initializers,
        doc_string=repr(model))
    opset_ids = [onnx.helper.make_opsetid("", opset)]
    proto = onnx.helper.make_model(graph, opset_imports=opset_ids, producer_name="fastnn",
                                   producer_version=__version__,
                                   ir_version=onnx.helper.find_min_ir_version_for(opset_ids))
    onnx.checker.check_model(proto, full_check=True)
    return proto


def to_onnx(model, path, *, opset: int = DEFAULT_OPSET, logits: bool = False) -> Path:
    """Write a fastnn model to ``path`` as an ONNX file, atomically; return the path.

    Parameters
    ----------
    model : fastnn.models.MLP or fastnn.models.CNN (any fastnn model)
    path : str or os.PathLike
        Written as given (``.onnx`` is the usual ending); its folder is created if missing.
    opset : int
        ONNX opset to declare (default ``DEFAULT_OPSET``, 17).
    logits : bool
        End before the last activation.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> from fastnn.models import MLP
    >>> to_onnx(MLP([1024, 64, 36], ["sigmoid", "softmax"], dtype="float32"), "mlp.onnx")  # doctest: +SKIP
    PosixPath('mlp.onnx')
    >>> import onnxruntime  # doctest: +SKIP
    >>> onnxruntime.InferenceSession("mlp.onnx").run(None, {"input": X.astype("float32")})[0]  # doctest: +SKIP
    """
    proto = to_onnx_model(model, opset=opset, logits=logits)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as fh:
        fh.write(proto.SerializeToString())
    return path
