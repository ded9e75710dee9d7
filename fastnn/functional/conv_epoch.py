"""The compiled training epoch of a convolutional network: conv, max- and average-pool layers on NHWC images,
a flatten (or a global average pooling), dense layers and a fused loss, with Dropout and BatchNorm layers
between them (or of such a stack of dense layers on flat inputs).  :func:`conv_epoch_plan` (formerly
``network_plan``, still an alias) checks the layer stack and the training options and lays out the
workspace in a :class:`NetworkPlan`, which :func:`~fastnn.functional.train_epoch` trains with.  (A dense
network's epoch, an MLP's, is planned by :func:`~fastnn.functional.epoch_plan`.)"""

from __future__ import annotations

import numbers

import numpy as np

from .._config import ADAM_EPS, PARTS
from .._kernels import _core
from ._checks import activation_code_of, check_training_options
from ..activations import is_activation, unknown_activation
from ._parts import dense_k_scratch, dense_steps, vector_step, with_threads
from .conv import avg_pool_geometry, conv2d_geometry, pool_geometry
from .optim import StepPlan

__all__ = ["NetworkPlan", "conv_epoch_plan", "network_plan", "network_parameter_offsets"]

_CONV_ACTIVATIONS = ("linear", "sigmoid", "tanh", "relu")
#: Bytes of activations and im2col rows a thread of the compiled epoch keeps in flight per block of images.
STACK_BLOCK_BYTES = 1 << 20
#: A batch's images are cut into at most this many parts for the thread team (each part keeps a block of
#: weight gradients, added up in part order after the backward).
STACK_MAX_PARTS = PARTS["max_batch_parts"]
#: The compiled epoch keeps the whole batch's im2col rows for the backward when they take at most this many
#: bytes (the issue's network at batch 32: 5.9 MB), else recomputes them a block at a time in the backward
#: (at batch 256 they would take 47 MB, far beyond the caches, and batch 256 ran slower than batch 32).
KEEP_COLS_BYTES = 8 << 20
_FIELDS = {
    "conv": ("in_channels", "out_channels", "kernel_size", "stride", "padding", "activation"),
    "pool": ("size",),
    "avgpool": ("size",),
    "globalavgpool": (),
    "dropout": ("rate",),
    "batchnorm": ("eps", "momentum"),
    "flatten": (),
    "dense": ("n_in", "n_out", "activation"),
}
_DEFAULTS = {"stride": 1, "padding": "valid", "activation": None, "size": 2, "eps": 1e-5, "momentum": 0.1}
#: The kinds that take images and run in the compiled stack, before the dense layers.
_IMAGE_KINDS = ("conv", "pool", "avgpool", "globalavgpool")


def _layer_fields(i, layer) -> dict:
    """One layer's description as a dict with its kind's fields (tuples are positional, dicts by name)."""
    if isinstance(layer, dict):
        kind = layer.get("kind")
        values = {k: v for k, v in layer.items() if k != "kind"}
    elif isinstance(layer, (tuple, list)) and layer:
        kind, values = layer[0], None
    else:
        raise ValueError(f"layers[{i}]: expected a tuple such as ('conv', 1, 16, 3, 1, 'same', 'relu'), ('pool', 2), "
                         f"('avgpool', 2), ('flatten',), ('globalavgpool',) or ('dense', 2048, 128, 'relu'), got "
                         f"{layer!r}")
    if kind not in _FIELDS:
        raise ValueError(f"layers[{i}]: unknown kind {kind!r}; expected one of {tuple(_FIELDS)}")
    names = _FIELDS[kind]
    if values is None:
        if len(layer) - 1 > len(names):
            raise ValueError(f"layers[{i}] ({kind}): expected at most the fields {names}, got {layer!r}")
        values = dict(zip(names, layer[1:]))
    unknown = set(values) - set(names)
    if unknown:
        raise ValueError(f"layers[{i}] ({kind}): unknown fields {sorted(unknown)}; expected {names}")
    out = {"kind": kind}
    for name in names:
        if name in values:
            out[name] = values[name]
        elif name in _DEFAULTS and not (kind == "dense" and name == "activation"):
            out[name] = _DEFAULTS[name]
        else:
            raise ValueError(f"layers[{i}] ({kind}): missing the field {name!r}; expected {names}")
    return out


def _count(value, what) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{what}: expected a positive integer, got {value!r}")
    return int(value)


def _kernel_size(value, what) -> tuple[int, int]:
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return _count(value[0], what), _count(value[1], what)
    k = _count(value, what)
    return k, k


def _describe_layers(layers, input_shape):
    """Check the stack against the input shape; per layer (fields, shape in, shape out)."""
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if shape is None or len(shape) not in (1, 3) or any(isinstance(v, bool) or not isinstance(v, numbers.Integral)
                                                        or v < 1 for v in shape):
        raise ValueError(f"input_shape: expected the images' (H, W, C) as three positive integers, or (d,) for "
                         f"flat inputs, got {input_shape!r}")
    layers = list(layers)
    if not layers:
        raise ValueError("layers: expected at least one layer (the last must be 'dense')")
    shape = tuple(int(v) for v in shape)
    described, n_dense = [], sum(1 for layer in layers if _layer_fields(0, layer)["kind"] == "dense")
    seen_dense = 0
    for i, layer in enumerate(layers):
        f = _layer_fields(i, layer)
        kind, name = f["kind"], f"layers[{i}] ({f['kind']})"
        if kind in _IMAGE_KINDS and len(shape) != 3:
            raise ValueError(f"{name}: expected images (H, W, C) as input, got the flat shape {shape}: a conv or pool "
                             "layer cannot follow a flatten, a global pooling or a dense layer")
        if kind == "conv":
            C_in = _count(f["in_channels"], f"{name}: in_channels")
            F_out = _count(f["out_channels"], f"{name}: out_channels")
            KH, KW = _kernel_size(f["kernel_size"], f"{name}: kernel_size")
            if C_in != shape[2]:
                raise ValueError(f"{name}: expected {C_in} input channels, got images of shape (H, W, C) = {shape}")
            act = f["activation"] if f["activation"] is not None else "relu"
            if not is_activation(act, elementwise=True):
                raise unknown_activation(f"{name}: activation", act, _CONV_ACTIVATIONS)
            f.update(activation=act, kernel_size=(KH, KW))
            g = conv2d_geometry(shape, (KH, KW, C_in, F_out), f["stride"], f["padding"], name=name)
            f["geometry"] = g
            out = (int(g[9]), int(g[10]), F_out)
        elif kind == "pool":
            g = pool_geometry(shape, f["size"], name)
            f["geometry"] = g
            out = (int(g[4]), int(g[5]), shape[2])
        elif kind == "avgpool":
            g = avg_pool_geometry(shape, f["size"], name)
            f["geometry"] = g
            out = (int(g[5]), int(g[6]), shape[2])
        elif kind == "dropout":
            rate = f["rate"]
            if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate < 1:
                raise ValueError(f"{name}: rate: expected a number in [0, 1), got {rate!r}")
            if described and described[-1][0]["kind"] == "dropout" and seen_dense:
                raise ValueError(f"{name}: one Dropout after a dense layer, not two")
            f.update(rate=float(rate), index=i)
            out = shape
        elif kind == "batchnorm":
            eps, momentum = f["eps"], f["momentum"]
            if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not 0 < eps < float("inf"):
                raise ValueError(f"{name}: eps: expected a finite number > 0, got {eps!r}")
            if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0 <= momentum <= 1:
                raise ValueError(f"{name}: momentum: expected a number in [0, 1], got {momentum!r}")
            if seen_dense and described[-1][0]["kind"] != "dense":
                raise ValueError(f"{name}: after a dense layer, a BatchNorm comes right after it (before its "
                                 "Dropout)")
            f.update(eps=float(eps), momentum=float(momentum), channels=shape[-1])
            out = shape
        elif kind == "globalavgpool":  # the whole image's window: one value per channel, flat
            f["geometry"] = avg_pool_geometry(shape, shape[:2], name)
            out = (shape[2],)
        elif kind == "flatten":
            if len(shape) != 3:
                raise ValueError(f"{name}: the input is already flat, shape {shape}")
            out = (shape[0] * shape[1] * shape[2],)
        else:
            if len(shape) != 1:
                raise ValueError(f"{name}: expected a flat input, got images of shape (H, W, C) = {shape}: put a "
                                 "('flatten',) layer before the first dense layer")
            n_in = _count(f["n_in"], f"{name}: n_in")
            n_out = _count(f["n_out"], f"{name}: n_out")
            if n_in != shape[0]:
                raise ValueError(f"{name}: expected n_in = {shape[0]} (the flattened input), got n_in = {n_in}")
            seen_dense += 1
            act = f["activation"]
            if not is_activation(act) or (act == "softmax" and seen_dense != n_dense):
                raise unknown_activation(f"{name}: activation", act, _core.ACTIVATIONS,
                                         "(softmax only on the last layer)")
            out = (n_out,)
        described.append((f, shape, out))
        shape = out
    if described[-1][0]["kind"] != "dense":  # (a Dropout after the output layer included)
        raise ValueError(f"layers[{len(layers) - 1}] ({described[-1][0]['kind']}): the last layer must be 'dense' "
                         "(the losses take one row of outputs per image)")
    return described


def network_parameter_offsets(layers, input_shape) -> tuple[list, int]:
    """Where each layer's parameters live in the flat theta: per layer (w_off, b_off) or None, and the total.

    Layers with parameters (conv, dense) in order, each W then b, back to back: a conv's W is
    (KH, KW, C_in, C_out) C-ordered, a dense layer's (n_in, n_out); pool and flatten have none.

    Examples
    --------
    >>> network_parameter_offsets([("conv", 1, 4, 3), ("flatten",), ("dense", 4 * 4 * 4, 2, "softmax")], (6, 6, 1))
    ([(0, 36), None, (40, 168)], 170)
    """
    return _parameter_offsets(_describe_layers(layers, input_shape))


def _parameter_offsets(described):
    offsets, off = [], 0
    for f, shape, out in described:
        if f["kind"] == "batchnorm":  # gamma, then beta
            offsets.append((off, off + shape[-1]))
            off += 2 * shape[-1]
        elif f["kind"] == "conv":
            KH, KW = f["kernel_size"]
            size = KH * KW * shape[2] * out[2]
            offsets.append((off, off + size))
            off += size + out[2]
        elif f["kind"] == "dense":
            offsets.append((off, off + shape[0] * out[0]))
            off += shape[0] * out[0] + out[0]
        else:
            offsets.append(None)
    return offsets, off


def _aligned(n: int) -> int:
    return -(-n // 16) * 16  # 64 bytes: every workspace block starts aligned


class NetworkPlan(StepPlan):
    """Everything the compiled epoch of a convolutional network needs besides the data, the parameters and
    the learning rate: the optimizer's options (a :class:`~fastnn.functional.StepPlan`), the layer tables,
    one batch's workspace and the gradient buffer.

    Built by :func:`conv_epoch_plan`.  Its arrays are the kernel's scratch: reuse one plan for many epochs,
    and one plan per training run at a time.
    """

    def __init__(self, described, input_shape, loss, optimizer, batch_size, dtype, momentum, betas, eps,
                 weight_decay):
        self.layer_fields = tuple(f for f, _, _ in described)
        self.input_shape = tuple(input_shape)
        self.loss = loss
        self.loss_code = _core.LOSSES[loss]
        self.input_size = int(np.prod(self.input_shape))
        self.output_size = described[-1][2][0]
        #: Per layer (w_off, b_off) in theta, or None (see network_parameter_offsets).
        self.offsets_of_layers, n_params = _parameter_offsets(described)
        super().__init__(n_params, optimizer, batch_size, dtype, momentum, betas, eps, weight_decay)
        bs = batch_size
        rows = [(f, s, o, p) for (f, s, o), p in zip(described, self.offsets_of_layers)]
        first_dense = next(k for k, r in enumerate(rows) if r[0]["kind"] == "dense")
        # (Dropout and BatchNorm before the first dense layer too; each row with its layer number)
        stack = [r + (k,) for k, r in enumerate(rows[:first_dense]) if r[0]["kind"] != "flatten"]
        dense = [r for r in rows if r[0]["kind"] == "dense"]
        # What follows each dense layer: its BatchNorm's row and its Dropout's (rate, layer index), or None.
        dense_norms, dense_drops = [], []
        for k, r in enumerate(rows):
            if r[0]["kind"] == "dense":
                after = [q for q in rows[k + 1:k + 3]]
                norm = after[0] if after and after[0][0]["kind"] == "batchnorm" else None
                after = after[1:] if norm is not None else after[:1]
                drop = after[0][0] if after and after[0][0]["kind"] == "dropout" else None
                dense_norms.append(norm)
                dense_drops.append((drop["rate"], drop["index"]) if drop is not None else None)
        # Each BatchNorm layer's running statistics' offset, in layer order (fastnn.models.CNN.running's layout).
        running_of, self.running_size = {}, 0
        for k, r in enumerate(rows):
            if r[0]["kind"] == "batchnorm":
                running_of[k] = self.running_size
                self.running_size += 2 * r[0]["channels"]
        self.conv_end = dense[0][3][0]
        widths = [o[0] for _, _, o, _ in dense]
        first_in = dense[0][1][0]
        self.part_stride = max([int(np.prod(o)) for _, _, o, _, _ in stack], default=0)
        #: Images a thread takes through the stack at a time: about STACK_BLOCK_BYTES of their activations
        #: and im2col rows, so that each layer reads its input from the cache.
        per_image = 0
        for f, _, o, _, _ in stack:
            g = f.get("geometry")
            per_image += int(np.prod(o))
            if f["kind"] == "conv" and not (g[3] == 1 and g[4] == 1 and g[6] == 1):
                per_image += int(g[9] * g[10] * g[3] * g[4] * g[2])
        self.block = max(1, min(bs, STACK_BLOCK_BYTES // max(1, per_image * dtype.itemsize)))
        #: Images per part of a batch (the team's threads take parts; each goes through the stack a block at
        #: a time); a batch of n images has ceil(n / part_images) parts, at most STACK_MAX_PARTS, so that any
        #: thread count up to that finds parts to share evenly.
        self.part_images = -(-bs // STACK_MAX_PARTS)
        self.image_parts = -(-bs // self.part_images)
        #: The steps of a full batch that the thread team shares, each with its parts (see ``work_parts``).
        self.steps = []
        if stack:
            self.steps.append({"step": "conv stack forward", "images": bs, "cut": "images",
                               "parts": self.image_parts if stack else 1})
        self.steps += dense_steps([first_in] + widths, bs, first_input_gradient=bool(stack))
        if stack:
            self.steps.append({"step": "conv stack backward", "images": bs, "cut": "images",
                               "parts": self.image_parts})
        if optimizer != "sgd" or self.conv_end:
            self.steps.append(vector_step("optimizer", self.n_params if optimizer != "sgd" else self.conv_end))
        blocks = {"xb0": bs * self.input_size, "xb1": bs * self.input_size, "tb0": bs * self.output_size,
                  "tb1": bs * self.output_size, "da": bs * max(widths), "db": bs * max(widths),
                  "scratch": dense_k_scratch([first_in] + widths, bs, first_input_gradient=bool(stack)),
                  "dtop": bs * first_in if stack else 0, "ga": bs * self.part_stride, "gb": bs * self.part_stride}
        off, offsets = 0, {}
        for name in _core.NET_WORK_OFFSETS:
            offsets[name] = off
            off += _aligned(blocks[name])
        self.offsets = np.array([offsets[name] for name in _core.NET_WORK_OFFSETS], dtype=np.int64)
        cols_per_image = sum(int(f["geometry"][9] * f["geometry"][10] * f["geometry"][3] * f["geometry"][4]
                                 * f["geometry"][2]) for f, _, _, _, _ in stack if f["kind"] == "conv"
                             and not (f["geometry"][3] == 1 and f["geometry"][4] == 1 and f["geometry"][6] == 1))
        #: True: the whole batch's im2col rows are kept from the forward for the backward; False: each
        #: thread keeps one block's (``role_work``), and the backward computes them again (see KEEP_COLS_BYTES).
        self.keep_cols = bs * cols_per_image * dtype.itemsize <= KEEP_COLS_BYTES
        #: Values of one thread's im2col blocks when the rows are not kept (``role_work``).
        self.role_stride = 0
        geometry, ioff, doff = [], 0, 0
        self.stack = np.zeros((len(stack), len(_core.STACK_COLUMNS)), dtype=np.int64)
        #: Each stack row's Dropout rate, or its BatchNorm's eps and momentum (0 for the other rows).
        self.stack_rates = np.zeros((len(stack), 2))
        for k, (row, (f, s, o, p, index)) in enumerate(zip(self.stack, stack)):
            in_size, out_size = int(np.prod(s)), int(np.prod(o))
            g = f.get("geometry")
            out_off = off
            off += _aligned(bs * out_size)
            if f["kind"] == "conv":
                K, F = int(g[3] * g[4] * g[2]), int(g[5])
                pointwise = g[3] == 1 and g[4] == 1 and g[6] == 1
                cols_rows = int(g[9] * g[10]) * K
                if pointwise:
                    cols_off = -1
                elif self.keep_cols:  # the whole batch's im2col rows, in work
                    cols_off = off
                    off += _aligned(bs * cols_rows)
                else:  # one block's, in each thread's part of role_work
                    cols_off = self.role_stride
                    self.role_stride += _aligned(self.block * cols_rows)
                gpart_off = off  # the weight gradients of parts 1, 2, ...
                off += _aligned((self.image_parts - 1) * K * F)
                code = activation_code_of(f["activation"])
                pre_off = -1
                if code >= _core.USER_ACTIVATION_BASE:  # its derivative reads the pre-activation: kept apart
                    pre_off = off
                    off += _aligned(bs * out_size)
                row[:] = (_core.STACK_KINDS["conv"], in_size, out_size, p[0], p[1], code,
                          out_off, cols_off, len(geometry), gpart_off, doff, pre_off)
                doff += self.image_parts * F
            elif f["kind"] == "pool":
                row[:] = (_core.STACK_KINDS["pool"], in_size, out_size, -1, -1, 0, out_off, ioff, len(geometry), -1, -1,
                          -1)
                ioff += bs * out_size
            elif f["kind"] == "dropout":  # SC_W: its layer index (the masks' key); the rate in stack_rates
                row[:] = (_core.STACK_KINDS["dropout"], in_size, out_size, f["index"], -1, 0, out_off, -1,
                          len(geometry), -1, -1, -1)
                self.stack_rates[k, 0] = f["rate"]
            elif f["kind"] == "batchnorm":  # the parts' sums, then the batch's statistics and sums, in dwork
                C = f["channels"]
                row[:] = (_core.STACK_KINDS["batchnorm"], in_size, out_size, p[0], p[1], 0, out_off,
                          running_of[index], len(geometry), -1, doff, -1)
                self.stack_rates[k] = (f["eps"], f["momentum"])
                doff += 2 * self.image_parts * C + 5 * C
                g = (C, in_size // C)
            else:  # average pooling, a global one included: no arg-max to keep
                row[:] = (_core.STACK_KINDS["avgpool"], in_size, out_size, -1, -1, 0, out_off, -1, len(geometry), -1,
                          -1, -1)
            if g is not None:
                geometry.extend(int(v) for v in g)
        self.geometry = np.array(geometry, dtype=np.int64)
        self.layers = np.zeros((len(dense), len(_core.LAYER_COLUMNS)), dtype=np.int64)
        for row, (f, s, o, p) in zip(self.layers, dense):
            m = o[0]
            row[:] = (s[0], m, p[0], p[1], off, off + _aligned(bs * m), activation_code_of(f["activation"]))
            off += 2 * _aligned(bs * m)
        #: (2, dense layers): the work offset of each dense layer's output after its Dropout (-1: none) and the
        #: Dropout's layer index; None when no dense layer has one.  Their rates: ``dense_dropout_rates``.
        self.dense_dropout = self.dense_dropout_rates = None
        if any(dense_drops):
            self.dense_dropout = np.full((2, len(dense)), -1, dtype=np.int64)
            self.dense_dropout_rates = np.zeros(len(dense))
            for j, (drop, (_, _, o, _)) in enumerate(zip(dense_drops, dense)):
                if drop is not None:
                    self.dense_dropout[:, j] = (off, drop[1])
                    self.dense_dropout_rates[j] = drop[0]
                    off += _aligned(bs * o[0])
        #: (dense layers, 5): the BatchNorm after each dense layer (columns ``_core.DENSE_BNORM_COLUMNS``;
        #: out_off -1: none) and (dense layers, 2) its eps and momentum; None when no dense layer has one.
        self.dense_bnorm = self.dense_bnorm_hyper = None
        if any(norm is not None for norm in dense_norms):
            self.dense_bnorm = np.full((len(dense), len(_core.DENSE_BNORM_COLUMNS)), -1, dtype=np.int64)
            self.dense_bnorm_hyper = np.zeros((len(dense), 2))
            for j, (norm, (_, _, o, _)) in enumerate(zip(dense_norms, dense)):
                if norm is not None:
                    f, _, _, p = norm
                    k = next(i for i, r in enumerate(rows) if r is norm)
                    self.dense_bnorm[j] = (off, p[0], p[1], doff, running_of[k])
                    self.dense_bnorm_hyper[j] = (f["eps"], f["momentum"])
                    off += _aligned(bs * o[0])
                    doff += 5 * o[0]
        #: float64 values the kernel needs in ``dwork``: conv bias sums, BatchNorm statistics and sums.
        self.dwork_size = doff
        self.work = np.zeros(off, dtype=dtype)
        self.iwork = np.zeros(ioff, dtype=np.int32)
        self.dwork = np.zeros(doff, dtype=np.float64)
        self.rwork = np.zeros(0, dtype=dtype)
        self.grad = np.zeros(self.n_params, dtype=dtype)
        #: Seconds, written by the kernel, as EpochPlan.timing.
        self.timing = np.zeros(3)
        self._threads_memory = (None, 0)  # see functional.train_epoch

    def role_work(self, threads: int) -> np.ndarray:
        """The threads' own im2col blocks, room for ``threads`` threads (grown when a call needs more)."""
        need = threads * self.role_stride
        if self.rwork.size < need:
            self.rwork = np.zeros(need, dtype=self.dtype)
        return self.rwork

    @property
    def max_parts(self) -> int:
        """The most parts any step of a batch is cut into: more threads than this would only wait."""
        return max([s["parts"] for s in self.steps], default=1)

    def work_parts(self, threads: int | None = None) -> list[dict]:
        """How a full batch's work is shared by ``threads`` threads (default: the team's size): as
        :meth:`fastnn.functional.EpochPlan.work_parts`, with the conv stack's forward and backward, cut
        into parts of the batch's ``images``."""
        return with_threads(self.steps, _core.get_num_threads() if threads is None else threads)

    def __repr__(self):
        kinds = "-".join(f["kind"] for f in self.layer_fields)
        return (f"NetworkPlan({self.input_shape} {kinds}, loss={self.loss!r}, optimizer={self.optimizer!r}, "
                f"batch_size={self.batch_size}, {self.dtype}, {self.n_params:,} parameters, workspace "
                f"{self.work.nbytes + self.grad.nbytes + self.iwork.nbytes + self.dwork.nbytes:,} bytes)")


def conv_epoch_plan(layers, input_shape, loss, *, optimizer="sgd", batch_size=32, dtype="float64", momentum=0.9,
                    betas=(0.9, 0.999), eps=ADAM_EPS, weight_decay=0.0) -> NetworkPlan:
    """Plan the compiled training epoch of a convolutional network: check the description, lay out the workspace.

    The network is a stack of conv, pool, flatten and dense layers on images; a dense network given by its
    layer widths (an MLP) is planned by :func:`~fastnn.functional.epoch_plan` instead.  Both plans are
    trained by :func:`~fastnn.functional.train_epoch`.  ``network_plan`` is this function's former name, kept
    as an alias (the same function).

    Parameters
    ----------
    layers : sequence of tuples (or dicts with the same field names)
        In order: ``("conv", in_channels, out_channels, kernel_size, stride=1, padding="valid",
        activation="relu")`` (kernel_size an int or (KH, KW); activation linear/sigmoid/tanh/relu or a
        registered one), ``("pool", size=2)`` (max-pooling, window = stride = size), ``("avgpool", size=2)``
        (average pooling; size an int or (KH, KW)), ``("flatten",)`` or ``("globalavgpool",)`` (each channel's
        mean over the image: flat, in place of the flatten), then ``("dense", n_in, n_out, activation)`` layers
        (softmax only last).  Conv and pool layers come first, a flatten or a global pooling before the
        first dense layer, a dense layer last.  ``("dropout", rate)`` and ``("batchnorm", eps=1e-5,
        momentum=0.1)`` (over the last axis: channels, or flat features) may come anywhere before the first
        dense layer; after a dense layer (not the last) at most one BatchNorm, then at most one Dropout.
        With flat inputs there are no conv, pool or flatten layers.
    input_shape : (H, W, C) or (d,)
        The images' shape; the data are NHWC rows (N, H, W, C) or (N, H*W*C).  Or flat inputs (N, d).
    loss : {'cross_entropy', 'binary_cross_entropy', 'squared_error'}
    optimizer, batch_size, dtype, momentum, betas, eps, weight_decay
        As in :func:`fastnn.functional.epoch_plan`.

    Returns
    -------
    NetworkPlan
        Parameters laid out by :func:`network_parameter_offsets` (``plan.offsets_of_layers``,
        ``plan.n_params``).

    Examples
    --------
    >>> plan = conv_epoch_plan([("conv", 1, 16, 3, 1, "same", "relu"), ("pool", 2),
    ...                         ("conv", 16, 32, 3, 1, "same", "relu"), ("pool", 2), ("flatten",),
    ...                         ("dense", 2048, 128, "relu"), ("dense", 128, 36, "softmax")],
    ...                        (32, 32, 1), "cross_entropy", batch_size=32, dtype="float32")
    >>> plan.n_params
    271716
    """
    described = _describe_layers(layers, input_shape)
    options = check_training_options(loss, optimizer, batch_size, dtype, momentum, betas, eps, weight_decay)
    return NetworkPlan(described, tuple(int(v) for v in input_shape), *options)


#: The former name of :func:`conv_epoch_plan` (the same function).
network_plan = conv_epoch_plan
