"""A convolutional network: a stack of ``fastnn.layers`` whose parameters live in one flat vector.

:class:`CNN` is the convolutional sibling of :class:`fastnn.models.MLP`: the same flat ``theta`` (so one
optimizer call updates everything and ``fastnn.train.Trainer`` trains it with every option it has), the
same ``predict_proba`` / ``predict`` / ``evaluate``, and the same safe ``.npz`` files.

Parameter layout (shared with the compiled epoch): the layers that have parameters (Conv2D, Dense), in
order, each ``W`` then ``b``, back to back in C order: a Conv2D's ``W`` is (KH, KW, C_in, C_out), a
Dense's (n_in, n_out).  Images are NHWC (channels last), and Flatten is the C-order reshape of an
(H, W, C) image.

Inputs are images ``(n, H, W, C)``.  hw36 rows (each 32x32 image stored transposed) become images with
:func:`fastnn.layers.rows_to_images` once, before training; the model does not guess a layout from flat
rows.

The recipe that trains a CNN on hw36 is ``fastnn.recipes.train_cnn``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import numpy as np

from .. import functional as F
from ..activations import is_registered
from .layers import (AvgPool2D, BatchNorm, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D, MaxPool2D,
                     check_input_shape, infer_shapes, layer_from_config)
from .base import Model, check_loss_and_dtype
from .fileformat import (MAX_MODEL_LAYERS, MAX_PARAMS_ENV, ModelFileError, max_params_limit, model_members,
                         member_label, meta_member, model_dtype, open_npy_member, read_model_file, read_parameters,
                         read_small_member, stored_parameters, write_model_file)

__all__ = ["CNN", "INITS", "EVAL_ELEMENTS"]

#: The letter of each layer type in the pattern of stacks the compiled epoch runs (see network_layers).
_KIND_LETTERS = {Conv2D: "c", MaxPool2D: "p", AvgPool2D: "a", GlobalAvgPool2D: "g", Flatten: "f", Dense: "d",
                 Dropout: "x", BatchNorm: "n"}
#: Initialisations: 'auto' is He (normal, Var = 2 / fan_in) before a ReLU and Xavier (uniform,
#: Var = 2 / (fan_in + fan_out)) elsewhere; 'he' and 'xavier' use one rule for every layer.
INITS = ("auto", "he", "xavier")
#: Values per chunk (activations and the convolution's im2col rows of one chunk of samples) when a model
#: runs over a whole data set: bounds the memory of ``forward`` (8M values: 64 MB in float64).
EVAL_ELEMENTS = 1 << 23

_FORMAT = "fastnn.CNN/1"
_MEMBERS = ("format", "input_shape", "layers", "loss", "theta")
_HINT = "pass a model file written by CNN.save (an .npz)"


class CNN(Model):
    """A stack of Conv2D, MaxPool2D, AvgPool2D, Flatten (or GlobalAvgPool2D) and Dense layers ending in a Dense
    layer.

    Parameters
    ----------
    input_shape : (H, W, C) or (n,)
        One sample's shape (NHWC images: channels last).
    layers : sequence of fastnn.layers layers
        Checked at once: a shape that does not fit a layer is a ``ValueError`` naming the layer
        (``layers[i] Conv2D(...)``), the shape it received and the one it expects.
    loss : {'cross_entropy', 'binary_cross_entropy', 'squared_error'}, optional
        Inferred as for ``MLP``: softmax output -> cross-entropy, one sigmoid unit -> binary
        cross-entropy, else squared error.
    init : {'auto', 'he', 'xavier'}
        See :data:`INITS`; biases start at zero.
    dtype : {'float32', 'float64'}
    seed : int
        Seeds ``np.random.default_rng`` for the weights.

    Examples
    --------
    >>> from fastnn.layers import Conv2D, MaxPool2D, Flatten, Dense
    >>> model = CNN((32, 32, 1), [Conv2D(1, 8, 3, padding="same"), MaxPool2D(2), Flatten(),
    ...                           Dense(2048, 36, "softmax")], seed=0)
    >>> model.theta.size, model.loss
    (73844, 'cross_entropy')
    """

    def __init__(self, input_shape, layers, *, loss=None, init="auto", dtype="float64", seed=0):
        if init not in INITS:
            raise ValueError(f"init: expected one of {INITS}, got {init!r}")
        self._setup(*self._check_architecture(input_shape, layers, loss, dtype), np.zeros)
        self.init(init, seed=seed)

    @staticmethod
    def _check_architecture(input_shape, layers, loss, dtype):
        """The constructor's checks: (input_shape, layers, shapes, loss, dtype), or a ValueError/TypeError."""
        input_shape = check_input_shape(input_shape)
        layers = list(layers)
        if len(layers) > MAX_MODEL_LAYERS:
            raise ValueError(f"layers: {len(layers):,} layers, more than MAX_MODEL_LAYERS ({MAX_MODEL_LAYERS:,})")
        shapes = infer_shapes(input_shape, layers)
        # a BatchNorm's channels are its input's last axis
        layers = [dataclasses.replace(layer, channels=(input_shape if i == 0 else shapes[i - 1])[-1])
                  if isinstance(layer, BatchNorm) and layer.channels is None else layer
                  for i, layer in enumerate(layers)]
        last = layers[-1]
        if not isinstance(last, Dense):
            raise ValueError(f"layers[{len(layers) - 1}] {last!r}: the last layer must be a Dense layer (the "
                             f"outputs), got output shape {shapes[-1]}")
        loss, dtype = check_loss_and_dtype(loss, last.activation, last.n_out, dtype)
        return input_shape, layers, shapes, loss, dtype

    @staticmethod
    def _layout(layers):
        """Per layer (w_off, b_off) in the flat vector, or None for a layer without parameters; the total."""
        offsets, off = [], 0
        for layer in layers:
            shapes = layer.param_shapes()
            if not shapes:
                offsets.append(None)
                continue
            w, b = (math.prod(s) for s in shapes)
            offsets.append((off, off + w))
            off += w + b
        return offsets, off

    def _setup(self, input_shape, layers, shapes, loss, dtype, alloc):
        self.input_shape = input_shape
        self.layers = layers
        self.shapes = shapes
        self.loss = loss
        self.dtype = dtype
        self.offsets, n_params = self._layout(layers)
        self.theta = alloc(n_params, dtype=dtype)
        #: BatchNorm layers' running mean and variance, back to back (each layer's C means then C variances),
        #: float64; ``running_offsets[i]`` is layer i's start (None for other layers).
        self.running_offsets, off = [], 0
        for layer in layers:
            self.running_offsets.append(off if isinstance(layer, BatchNorm) else None)
            off += 2 * layer.channels if isinstance(layer, BatchNorm) else 0
        self.running = np.zeros(off)
        self._reset_running()
        #: Facts saved with the model (``save(meta=...)``), e.g. a shipped model's recipe and scores.
        self.meta = {}

    # ----------------------------------------------------------------- parameters

    @property
    def n_outputs(self) -> int:
        """Width of the output layer (classes, or 1 for a binary classifier)."""
        return self.shapes[-1][0]

    def layer_parameters(self, vec, i):
        """(W, b) of layer ``i`` as views of ``vec`` (``theta``, or a gradient laid out like it); None for a
        layer without parameters."""
        if self.offsets[i] is None:
            return None
        (w_off, b_off), (w_shape, b_shape) = self.offsets[i], self.layers[i].param_shapes()
        return (vec[w_off:b_off].reshape(w_shape), vec[b_off:b_off + b_shape[0]])

    def parameters(self):
        """Weights and biases of the layers that have them, in order: [W, b, W, b, ...] (views of ``theta``)."""
        return [p for i in range(len(self.layers)) if self.offsets[i] is not None
                for p in self.layer_parameters(self.theta, i)]

    def _reset_running(self):
        for i, off in enumerate(self.running_offsets):
            if off is not None:
                c = self.layers[i].channels
                self.running[off:off + c], self.running[off + c:off + 2 * c] = 0.0, 1.0

    def running_stats(self, i):
        """(running mean, running variance) of BatchNorm layer ``i``, views of ``running``."""
        off, c = self.running_offsets[i], self.layers[i].channels
        return self.running[off:off + c], self.running[off + c:off + 2 * c]

    def init(self, init="auto", *, seed=0, rng=None):
        """(Re)initialise the weights (see :data:`INITS`) from ``np.random.default_rng(seed)`` or ``rng``, and
        zero the biases."""
        if init not in INITS:
            raise ValueError(f"init: expected one of {INITS}, got {init!r}")
        if rng is None:
            rng = np.random.default_rng(seed)
        for i, layer in enumerate(self.layers):
            params = self.layer_parameters(self.theta, i)
            if params is None:
                continue
            W, b = params
            if isinstance(layer, BatchNorm):  # gamma 1, beta 0
                W[...], b[...] = 1, 0
                continue
            receptive = math.prod(W.shape[:-2])  # KH*KW for a convolution, 1 for a dense layer
            fan_in, fan_out = receptive * W.shape[-2], receptive * W.shape[-1]
            if init == "he" or (init == "auto" and layer.activation == "relu"):
                W[...] = rng.normal(0.0, math.sqrt(2.0 / fan_in), W.shape)
            else:
                limit = math.sqrt(6.0 / (fan_in + fan_out))  # Var(U(-a, a)) = a^2 / 3 = 2 / (fan_in + fan_out)
                W[...] = rng.uniform(-limit, limit, W.shape)
            b[...] = 0
        self._reset_running()
        return self

    def network_layers(self):
        """The layers as ``fastnn.functional.network_plan`` describes them (tuples), or None when the compiled
        epoch cannot run this stack.  It runs (H, W, C) images through conv, pool, BatchNorm and Dropout
        layers, one Flatten or GlobalAvgPool2D, BatchNorm and Dropout layers, then dense layers, each
        followed by at most one BatchNorm and then at most one Dropout (not after the last); or flat (d,)
        inputs through BatchNorm and Dropout layers and then the dense layers as above.  Another stack trains
        batch by batch."""
        kinds = "".join(_KIND_LETTERS[type(layer)] for layer in self.layers)
        stack = r"[cpaxn]*[fg][xn]*" if len(self.input_shape) == 3 else r"[xn]*"
        if not re.fullmatch(stack + r"(?:dn?x?)*d", kinds):
            return None
        out = []
        for layer in self.layers:
            if isinstance(layer, Conv2D):
                out.append(("conv", layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                            layer.padding, layer.activation))
            elif isinstance(layer, MaxPool2D):
                out.append(("pool", layer.size))
            elif isinstance(layer, AvgPool2D):
                out.append(("avgpool", layer.size))
            elif isinstance(layer, GlobalAvgPool2D):
                out.append(("globalavgpool",))
            elif isinstance(layer, Dropout):
                out.append(("dropout", layer.rate))
            elif isinstance(layer, BatchNorm):
                out.append(("batchnorm", layer.eps, layer.momentum))
            elif isinstance(layer, Dense):
                out.append(("dense", layer.n_in, layer.n_out, layer.activation))
            else:
                out.append(("flatten",))
        return out

    def layer_list(self):
        """The network as the neutral layer list of :mod:`fastnn.models.base` (what the exporters read):
        ``("conv", W, b, stride, pads, activation)``, ``("maxpool", size)``, ``("avgpool", size)``,
        ``("flatten", (H, W, C))``, ``("globalavgpool", (H, W, C))``, ``("dropout", rate)``,
        ``("batchnorm", gamma, beta, running_mean, running_var, eps, momentum)`` and ``("dense", W, b,
        activation)``, the
        arrays views of ``theta`` (and of ``running``)."""
        out, shape = [], self.input_shape
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Conv2D):
                W, b = self.layer_parameters(self.theta, i)
                out.append(("conv", W, b, layer.stride, layer.pads(shape), layer.activation))
            elif isinstance(layer, MaxPool2D):
                out.append(("maxpool", layer.size))
            elif isinstance(layer, AvgPool2D):
                out.append(("avgpool", layer.size))
            elif isinstance(layer, GlobalAvgPool2D):
                out.append(("globalavgpool", shape))
            elif isinstance(layer, Dropout):
                out.append(("dropout", layer.rate))
            elif isinstance(layer, BatchNorm):
                gamma, beta = self.layer_parameters(self.theta, i)
                out.append(("batchnorm", gamma, beta, *self.running_stats(i), layer.eps, layer.momentum))
            elif isinstance(layer, Dense):
                W, b = self.layer_parameters(self.theta, i)
                out.append(("dense", W, b, layer.activation))
            else:
                out.append(("flatten", shape))
            shape = self.shapes[i]
        return out

    def epoch_plan(self, **options):
        """The compiled epoch of this network (``fastnn.functional.conv_epoch_plan`` of
        :meth:`network_layers`, ``options`` the optimizer's: optimizer, batch_size, momentum, betas, eps,
        weight_decay), or None when the compiled epoch does not run this stack."""
        stack = self.network_layers()
        if stack is None:
            return None
        plan = F.network_plan(stack, self.input_shape, self.loss, dtype=self.dtype, **options)
        if plan.n_params != self.theta.size or list(plan.offsets_of_layers) != self.offsets:
            raise RuntimeError("the compiled epoch lays out the parameters differently from fastnn.models.CNN")
        return plan

    def __repr__(self):
        lines = [f"CNN(input {self.input_shape}, loss={self.loss!r}, {self.dtype}, {self.theta.size:,} parameters)"]
        width = max(len(repr(layer)) for layer in self.layers)
        for i, (layer, shape) in enumerate(zip(self.layers, self.shapes)):
            n = sum(math.prod(s) for s in layer.param_shapes())
            lines.append(f"  ({i}) {layer!r:<{width}} -> {str(shape):<14} {n:>10,} parameters")
        return "\n".join(lines)

    # -------------------------------------------------------------------- running

    def check_inputs(self, X, name="X") -> np.ndarray:
        """X as a C-contiguous (n, *input_shape) array of the model's dtype, with finite values."""
        X = np.asarray(X)
        expected = (X.shape[0] if X.ndim else 0,) + self.input_shape
        if X.shape != expected:
            hint = ""
            if X.ndim == 2 and len(self.input_shape) == 3 and X.shape[1] == math.prod(self.input_shape):
                hint = "; for hw36-layout rows use fastnn.layers.rows_to_images(X) first"
            shown = ", ".join(map(str, self.input_shape))
            raise ValueError(f"{name}: expected shape (n_samples, {shown}), got shape {X.shape}{hint}")
        F.float_dtype(X)
        X = np.ascontiguousarray(X, dtype=self.dtype)
        if not F.all_finite(X):
            raise ValueError(f"{name}: contains NaN or inf values")
        return X

    def _chunk_rows(self) -> int:
        per_sample = math.prod(self.input_shape)
        for layer, shape in zip(self.layers, self.shapes):
            per_sample = max(per_sample, math.prod(shape))
            if isinstance(layer, Conv2D):
                kh, kw = layer.kernel_size
                per_sample = max(per_sample, shape[0] * shape[1] * kh * kw * layer.in_channels)
        return max(1, EVAL_ELEMENTS // per_sample)

    def _run(self, X, theta, last_linear, keep, training=None):
        """Forward through every layer; with ``keep`` also the inputs and outputs the backward pass needs (then
        BatchNorm uses the batch's statistics, else the running ones).  ``training`` (seed, step) is the
        training batch this is: Dropout applies its masks and BatchNorm updates its running statistics.

        Returns the output (the last layer's pre-activation when ``last_linear``) and the per-layer records:
        (input, pre, post) for Conv2D/Dense, (input shape, argmax) for MaxPool2D, (input, mean, invstd) for
        BatchNorm, None for Dropout, the input shape for the others.
        """
        records = []
        h = X
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            if isinstance(layer, (Conv2D, Dense)):
                W, b = self.layer_parameters(theta, i)
                act = "linear" if (i == last and last_linear) else layer.activation
                if isinstance(layer, Conv2D):
                    pre, post = F.conv2d_forward(h, W, b, act, stride=layer.stride, padding=layer.padding)
                else:
                    pre, post = F.dense_forward(h, W, b, act)
                if keep:  # (a registered activation's derivative is a function of pre)
                    records.append((h, pre if is_registered(act) else None, post))
                h = post
            elif isinstance(layer, MaxPool2D):
                shape = h.shape
                h, argmax = F.max_pool2d_forward(h, layer.size)
                if keep:
                    records.append((shape, argmax))
            elif isinstance(layer, Dropout):
                if keep:
                    records.append(None)
                if training is not None and layer.rate > 0:
                    h = F.dropout(h, layer.rate, seed=training[0], step=training[1], layer=i)
            elif isinstance(layer, BatchNorm):
                gamma, beta = self.layer_parameters(theta, i)
                if keep:
                    r = F.batch_norm_forward(h, gamma, beta, eps=layer.eps)
                    records.append((h, r.mean, r.invstd))
                    if training is not None:
                        F.update_running_stats(*self.running_stats(i), r.mean, r.var, h.size // layer.channels,
                                               layer.momentum)
                    h = r.Y
                else:
                    h = F.batch_norm_inference(h, gamma, beta, *self.running_stats(i), eps=layer.eps)
            elif isinstance(layer, (AvgPool2D, GlobalAvgPool2D)):
                if keep:
                    records.append(h.shape)
                h = (F.avg_pool2d_forward(h, layer.size) if isinstance(layer, AvgPool2D)
                     else F.global_avg_pool2d_forward(h))
            else:  # Flatten
                if keep:
                    records.append(h.shape)
                h = h.reshape(h.shape[0], -1)
        return h, records

    def forward(self, X, *, logits=False) -> np.ndarray:
        """Run the network over ``X`` in chunks (of at most :data:`EVAL_ELEMENTS` values of activations).

        Parameters
        ----------
        X : (n, *input_shape) ndarray
        logits : bool
            Return the last layer's pre-activation instead of its output.

        Returns
        -------
        (n, n_outputs) ndarray of the model's dtype
        """
        X = self.check_inputs(X)
        out = np.empty((X.shape[0], self.n_outputs), dtype=self.dtype)
        step = self._chunk_rows()
        for s in range(0, X.shape[0], step):
            out[s:s + step], _ = self._run(X[s:s + step], self.theta, logits, keep=False)
        return out

    def loss_gradient(self, X, T, grad=None, *, theta=None, weights=None, reduction="sum", training=None):
        """One batch's summed loss, correct predictions and gradient (:meth:`Model.loss_gradient`): forward
        through ``fastnn.functional``'s conv/pool/dense functions, the fused loss, and backward layer by layer."""
        theta = self.theta if theta is None else theta
        if grad is None:
            grad = np.zeros_like(theta)
        last_linear = F.LOSS_TABLE[self.loss].from_logits  # (the loss fuses the softmax/sigmoid)
        Z, records = self._run(X, theta, last_linear, keep=True, training=training)
        loss, delta, correct = F.batch_loss(self.loss, Z, T, weights=weights, reduction=reduction)
        if not np.isfinite(loss):
            return loss, correct, grad
        last = len(self.layers) - 1
        for i in range(last, -1, -1):
            layer, rec = self.layers[i], records[i]
            if isinstance(layer, (Conv2D, Dense)):
                x, pre, post = rec
                W, _ = self.layer_parameters(theta, i)
                gW, gb = self.layer_parameters(grad, i)
                act = "linear" if (i == last and last_linear) else layer.activation
                if isinstance(layer, Conv2D):
                    dW, db, delta = F.conv2d_backward(delta, post, x, W, act, stride=layer.stride,
                                                      padding=layer.padding, pre=pre, need_grad_X=i > 0)
                else:
                    dW, db, delta = F.dense_backward(delta, post, x, W, act, pre=pre, need_grad_X=i > 0)
                gW[...] = dW
                gb[...] = db
            elif isinstance(layer, MaxPool2D):
                shape, argmax = rec
                delta = F.max_pool2d_backward(delta, argmax, shape) if i > 0 else None
            elif isinstance(layer, Dropout):
                if i > 0 and training is not None and layer.rate > 0:  # the forward's mask, from the same key
                    delta = F.dropout(delta, layer.rate, seed=training[0], step=training[1], layer=i, out=delta)
            elif isinstance(layer, BatchNorm):
                x, mean, invstd = rec
                gamma, _ = self.layer_parameters(theta, i)
                gG, gB = self.layer_parameters(grad, i)
                delta, gG[...], gB[...] = F.batch_norm_backward(delta, x, gamma, mean, invstd)
            elif isinstance(layer, AvgPool2D):
                delta = F.avg_pool2d_backward(delta, rec, layer.size) if i > 0 else None
            elif isinstance(layer, GlobalAvgPool2D):
                delta = F.global_avg_pool2d_backward(delta, rec) if i > 0 else None
            else:
                delta = delta.reshape(rec) if i > 0 else None
        return loss, correct, grad

    # ------------------------------------------------------------------ persistence

    def save(self, path, *, storage=None, meta=None, overwrite=False) -> Path:
        """Write the model to an ``.npz`` file atomically, as :meth:`fastnn.models.MLP.save` does; return its
        path (``.npz`` is appended if missing).  The layers are stored as a JSON description, nothing
        pickled.  ``storage='float16'`` stores the parameters in half precision (loaded back as float32) and
        ``meta`` (a JSON-serialisable dict, read back as ``.meta``) describes the model, as for the MLP.
        An existing ``path`` that is read-only (mode without the owner's write bit, e.g. 0o444) is kept and a
        ``PermissionError`` raised, unless ``overwrite=True``."""
        return write_model_file(path, self.archive_members(storage=storage, meta=meta), overwrite=overwrite)

    def archive_members(self, *, storage=None, meta=None) -> dict:
        """The arrays :meth:`save` writes, by member name."""
        layers = json.dumps([layer.config() for layer in self.layers])
        return dict(format=np.array(_FORMAT), input_shape=np.array(self.input_shape, dtype=np.int64),
                    layers=np.array(layers), loss=np.array(self.loss), theta=stored_parameters(self.theta, storage),
                    **({"running": self.running.copy()} if self.running.size else {}), **meta_member(meta))

    @classmethod
    def load(cls, path, *, max_params=None) -> "CNN":
        """Read a model written by :meth:`save`, with the checks of :meth:`fastnn.models.MLP.load`.

        Nothing is unpickled; the zip directory, each member's header and stored size, the layer
        description (JSON, at most ``MAX_MODEL_META_BYTES``) and its parameter count (against
        ``max_params``, default ``$FASTNN_MAX_MODEL_PARAMS`` or ``MAX_MODEL_PARAMS``) are checked before
        anything large is allocated or decompressed.

        Raises
        ------
        FileNotFoundError
            No file at ``path`` (nor at ``path`` + '.npz', the file ``save(path)`` writes, which is read when
            ``path`` is missing).
        ModelFileError
            (a ``ValueError``) Not a fastnn CNN file (an MLP or OCR model file: the message names its loader),
            a damaged one, or one over a limit.
        """
        limit = max_params_limit(max_params)
        return read_model_file(path, lambda p, zf: cls.from_archive(p, zf, limit), _HINT)

    @classmethod
    def from_archive(cls, path, zf, limit):
        """The model in the open archive ``zf`` of the file ``path`` (see :meth:`fastnn.models.MLP.from_archive`)."""
        infos = model_members(path, zf, _MEMBERS, _FORMAT, "CNN.load", "a fastnn CNN file", _HINT,
                              optional=("running",))
        shape = read_small_member(path, zf, infos["input_shape"], "input_shape")
        if shape.dtype.kind not in "iu" or shape.ndim != 1:
            raise ModelFileError(f"{path}: 'input_shape' must be a vector of integers, got a {shape.dtype} array of "
                                 f"shape {shape.shape}")
        layers_json = read_small_member(path, zf, infos["layers"], "layers")
        loss = read_small_member(path, zf, infos["loss"], "loss")
        for name, arr in (("layers", layers_json), ("loss", loss)):
            if arr.dtype.kind != "U" or arr.ndim != 0:
                raise ModelFileError(f"{path}: '{name}' must be a string, got a {arr.dtype} array of shape {arr.shape}")
        try:
            configs = json.loads(str(layers_json))
            if not isinstance(configs, list):
                raise ValueError(f"expected a list of layers, got {type(configs).__name__}")
            if len(configs) > MAX_MODEL_LAYERS:
                raise ValueError(f"{len(configs):,} layers, more than MAX_MODEL_LAYERS ({MAX_MODEL_LAYERS:,})")
            layers = [layer_from_config(c) for c in configs]
        except (ValueError, TypeError, RecursionError) as exc:
            where = member_label(zf, "layers")
            raise ModelFileError(f"{path}: invalid layer description in '{where}' ({exc})") from None
        _, n_params = cls._layout(layers)
        if n_params > limit:
            raise ModelFileError(f"{path}: its layers declare {n_params:,} parameters, more than the limit of "
                                 f"{limit:,}; if you trust this file, raise the limit with CNN.load(..., "
                                 f"max_params=N) or ${MAX_PARAMS_ENV}")
        shape_t, dtype, stream = open_npy_member(path, zf, infos["theta"], "theta")
        with stream:
            native = model_dtype(path, dtype)
            try:
                arch = cls._check_architecture([int(s) for s in shape], layers, str(loss), native)
            except (ValueError, TypeError) as exc:
                raise ModelFileError(f"{path}: invalid model description ({exc})") from None
            count = math.prod(shape_t)
            if len(shape_t) != 1 or count != n_params:
                what = f"{count:,} parameters" if len(shape_t) == 1 else f"a {shape_t} array of parameters"
                raise ModelFileError(f"{path}: {what} stored, but its layers need {n_params:,} in one flat vector; "
                                     "the file is damaged or was not written by CNN.save")
            model = cls.__new__(cls)
            model._setup(*arch, np.empty)
            model = read_parameters(path, zf, stream, dtype, model)
        if model.running.size or "running" in infos:
            _read_running(path, zf, infos, model)
        return model


def _read_running(path, zf, infos, model) -> None:
    """Fill ``model.running`` (its BatchNorm layers' running means and variances) from the file's 'running'
    member: as many float64 values as the layers need, finite, the variances >= 0."""
    need = model.running.size
    if "running" not in infos:
        raise ModelFileError(f"{path}: its BatchNorm layers need their running statistics ('running', {need} "
                             "values), which the file lacks; the file is damaged or was not written by CNN.save")
    running = read_small_member(path, zf, infos["running"], "running")
    if running.dtype != np.float64 or running.shape != (need,):
        raise ModelFileError(f"{path}: 'running' must hold {need} float64 values (the BatchNorm layers' running "
                             f"means and variances), got a {running.dtype} array of shape {running.shape}")
    model.running[...] = running
    variances = [model.running_stats(i)[1] for i, off in enumerate(model.running_offsets) if off is not None]
    if not np.all(np.isfinite(running)) or any(np.any(v < 0) for v in variances):
        raise ModelFileError(f"{path}: 'running' holds NaN, inf or negative variances")
