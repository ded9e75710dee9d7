"""Layer descriptions for :class:`fastnn.models.CNN`, their shape rules, and hw36 rows as images.

A layer here is a small immutable description: what it computes, the shape it maps an input to, and the
shapes of its parameters.  The parameters themselves live in the model's one flat vector (see
``fastnn.cnn``), and the arithmetic is ``fastnn.functional``'s.  Shapes are per sample and channels last
(NHWC): an image is ``(H, W, C)``, a flat vector ``(n,)``.

>>> from fastnn.layers import Conv2D, MaxPool2D, Flatten, Dense, infer_shapes
>>> infer_shapes((32, 32, 1), [Conv2D(1, 8, 3, padding="same"), MaxPool2D(2), Flatten(), Dense(2048, 36, "softmax")])
[(32, 32, 8), (16, 16, 8), (2048,), (36,)]

hw36 rows (and the coursework's NIST36 rows) hold each 32x32 image transposed: :func:`rows_to_images`
turns them into upright NHWC images and :func:`images_to_rows` back.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from .. import functional as F
from ..activations import is_activation, unknown_activation
from ..functional.conv import conv2d_geometry

__all__ = ["Conv2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "Dropout", "BatchNorm", "Flatten", "Dense",
           "LAYER_TYPES", "PADDINGS", "infer_shapes", "rows_to_images", "images_to_rows"]

#: Paddings of :class:`Conv2D`.
PADDINGS = F.PADDINGS
#: Built-in activations a hidden layer may use (softmax only on the last Dense); any activation registered
#: with ``fastnn.register_activation`` may be used too.
HIDDEN_ACTIVATIONS = tuple(a for a in F.ACTIVATIONS if a != "softmax")


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{what}: expected a positive integer, got {value!r}")
    return int(value)


def _fmt(shape) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


class _Layer:
    """Common interface: ``output_shape(input_shape)``, ``param_shapes()``, ``config()``."""

    kind = ""

    def param_shapes(self) -> list:
        """Shapes of the layer's parameters in their order in the flat vector ([] for none)."""
        return []

    def config(self) -> dict:
        """The layer as a JSON-ready dict (``{'type': ..., **arguments}``), as model files store it."""
        raise NotImplementedError

    def _image(self, shape, expected: str):
        if len(shape) != 3:
            raise ValueError(f"received input of shape {_fmt(shape)}, expected an image {expected}"
                             + ("; a flat input cannot go back to an image" if len(shape) == 1 else ""))
        return shape


@dataclass(frozen=True)
class Conv2D(_Layer):
    """2-D convolution (cross-correlation, as PyTorch and TensorFlow compute it) + bias + activation.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (int, int)
        ``KH, KW`` (an int k means k x k).
    stride : int
        The same stride along both axes, >= 1.
    padding : {'valid', 'same'}
        'valid': no padding, output ``(H - KH) // stride + 1``; 'same': zeros around the image so that
        the output is ``ceil(H / stride)``, the extra row/column (an odd total) at the bottom/right.
    activation : str
        One of ``fastnn.functional.ACTIVATIONS`` except 'softmax', or a name registered with
        ``fastnn.register_activation``.

    Parameters in the flat vector: ``W`` of shape (KH, KW, in_channels, out_channels), then ``b``
    (out_channels,).
    """

    in_channels: int
    out_channels: int
    kernel_size: int | tuple = 3
    stride: int = 1
    padding: str = "valid"
    activation: str = "relu"
    kind = "Conv2D"

    def __post_init__(self):
        object.__setattr__(self, "in_channels", _positive_int(self.in_channels, "Conv2D in_channels"))
        object.__setattr__(self, "out_channels", _positive_int(self.out_channels, "Conv2D out_channels"))
        k = self.kernel_size
        if isinstance(k, (tuple, list)):
            if len(k) != 2:
                raise ValueError(f"Conv2D kernel_size: expected an int or a pair (KH, KW), got {k!r}")
            k = (_positive_int(k[0], "Conv2D kernel_size"), _positive_int(k[1], "Conv2D kernel_size"))
        else:
            k = (_positive_int(k, "Conv2D kernel_size"),) * 2
        object.__setattr__(self, "kernel_size", k)
        stride = self.stride
        if isinstance(stride, (tuple, list)) and len(stride) == 2 and stride[0] == stride[1]:
            stride = stride[0]
        if isinstance(stride, bool) or not isinstance(stride, numbers.Integral) or stride < 1:
            raise ValueError(f"Conv2D stride: expected one positive integer (the same along both axes), got "
                             f"{self.stride!r}")
        object.__setattr__(self, "stride", int(stride))
        if self.padding not in PADDINGS:
            raise ValueError(f"Conv2D padding: expected one of {PADDINGS}, got {self.padding!r} (numeric padding "
                             "is not supported: use 'same', or pad the images beforehand)")
        if not is_activation(self.activation, elementwise=True):
            raise unknown_activation("Conv2D activation", self.activation, HIDDEN_ACTIVATIONS)

    def output_shape(self, shape) -> tuple:
        kh, kw = self.kernel_size
        h, w, c = self._image(shape, f"(H, W, {self.in_channels})")
        if c != self.in_channels:
            raise ValueError(f"received input of shape {_fmt(shape)} with {c} channels, expected {self.in_channels} "
                             f"channels: (H, W, {self.in_channels})")
        if self.padding == "same":
            return (math.ceil(h / self.stride), math.ceil(w / self.stride), self.out_channels)
        if h < kh or w < kw:
            raise ValueError(f"received input of shape {_fmt(shape)}, smaller than the {kh}x{kw} kernel with "
                             f"padding 'valid': expected H >= {kh} and W >= {kw}")
        return ((h - kh) // self.stride + 1, (w - kw) // self.stride + 1, self.out_channels)

    def pads(self, input_shape) -> tuple:
        """(top, left, bottom, right) zeros this layer adds around an (H, W, C) input, as
        ``fastnn.functional.conv.conv2d_geometry`` places them: none for 'valid'; for 'same' what makes the output
        ceil(H / stride), the odd extra at the bottom/right."""
        h, w = input_shape[0], input_shape[1]
        kh, kw = self.kernel_size
        *_, s, top, left, oh, ow = (int(v) for v in conv2d_geometry(
            (h, w, self.in_channels), (kh, kw, self.in_channels, self.out_channels), self.stride, self.padding))
        return (top, left, max((oh - 1) * s + kh - h - top, 0), max((ow - 1) * s + kw - w - left, 0))

    def param_shapes(self) -> list:
        kh, kw = self.kernel_size
        return [(kh, kw, self.in_channels, self.out_channels), (self.out_channels,)]

    def config(self) -> dict:
        return {"type": self.kind, "in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": self.stride, "padding": self.padding,
                "activation": self.activation}

    def __repr__(self):
        kh, kw = self.kernel_size
        k = kh if kh == kw else (kh, kw)
        extra = (f", stride={self.stride}" if self.stride != 1 else "") + (
            f", padding={self.padding!r}" if self.padding != "valid" else "")
        return f"Conv2D({self.in_channels}, {self.out_channels}, {k}{extra}, activation={self.activation!r})"


@dataclass(frozen=True)
class _Pool2D(_Layer):
    """Pooling over non-overlapping ``size`` x ``size`` windows (stride = size); trailing rows and columns that
    do not fill a window are dropped."""

    size: int = 2

    def __post_init__(self):
        object.__setattr__(self, "size", _positive_int(self.size, f"{self.kind} size"))

    def output_shape(self, shape) -> tuple:
        h, w, c = self._image(shape, "(H, W, C)")
        if h < self.size or w < self.size:
            raise ValueError(f"received input of shape {_fmt(shape)}, smaller than the {self.size}x{self.size} "
                             f"window: expected H >= {self.size} and W >= {self.size}")
        return (h // self.size, w // self.size, c)

    def config(self) -> dict:
        return {"type": self.kind, "size": self.size}

    def __repr__(self):
        return f"{self.kind}({self.size})"


@dataclass(frozen=True, repr=False)
class MaxPool2D(_Pool2D):
    """Max pooling over non-overlapping ``size`` x ``size`` windows (stride = size); trailing rows and
    columns that do not fill a window are dropped (as ``torch.nn.MaxPool2d(size)``)."""

    kind = "MaxPool2D"


@dataclass(frozen=True, repr=False)
class AvgPool2D(_Pool2D):
    """Average pooling over non-overlapping ``size`` x ``size`` windows (stride = size); trailing rows and
    columns that do not fill a window are dropped (as ``torch.nn.AvgPool2d(size)``)."""

    kind = "AvgPool2D"


@dataclass(frozen=True)
class GlobalAvgPool2D(_Layer):
    """Each channel's mean over the whole image: (H, W, C) -> (C,), flat, so it takes a Flatten's place
    before the dense layers (``torch.nn.AdaptiveAvgPool2d(1)`` then ``Flatten()``)."""

    kind = "GlobalAvgPool2D"

    def output_shape(self, shape) -> tuple:
        return (self._image(shape, "(H, W, C)")[2],)

    def config(self) -> dict:
        return {"type": self.kind}

    def __repr__(self):
        return "GlobalAvgPool2D()"


@dataclass(frozen=True)
class Dropout(_Layer):
    """Inverted dropout: in training, each value zeroed with probability ``rate`` and the others scaled by
    1 / (1 - rate); in inference (``predict_proba``, ``evaluate``) the identity.  Its masks are drawn from the
    trainer's seed and step (``fastnn.functional.dropout``), so runs are reproducible whatever the threads."""

    rate: float = 0.5
    kind = "Dropout"

    def __post_init__(self):
        if isinstance(self.rate, bool) or not isinstance(self.rate, numbers.Real) or not 0 <= self.rate < 1:
            raise ValueError(f"Dropout rate: expected a number in [0, 1), got {self.rate!r}")
        object.__setattr__(self, "rate", float(self.rate))

    def output_shape(self, shape) -> tuple:
        return tuple(shape)

    def config(self) -> dict:
        return {"type": self.kind, "rate": self.rate}

    def __repr__(self):
        return f"Dropout({self.rate:g})"


@dataclass(frozen=True)
class BatchNorm(_Layer):
    """Batch normalisation of each channel (the last axis: a Dense layer's units, a Conv2D's channels):
    ``gamma * (x - mean) / sqrt(var + eps) + beta``, with the batch's mean and biased variance in training
    and the running ones in inference, as ``torch.nn.BatchNorm1d/2d``.  ``gamma`` (starting at 1) and ``beta``
    (at 0) are parameters in ``theta``; the running mean and variance (starting at 0 and 1) are updated once
    per training batch, ``running = (1 - momentum) * running + momentum * batch`` (the batch's unbiased
    variance), and kept in the model's ``running`` vector.  ``channels`` is filled in by the CNN from the
    layer's input."""

    channels: int | None = None
    momentum: float = 0.1
    eps: float = 1e-5
    kind = "BatchNorm"

    def __post_init__(self):
        if self.channels is not None:
            object.__setattr__(self, "channels", _positive_int(self.channels, "BatchNorm channels"))
        for name, low, high in (("momentum", 0.0, 1.0), ("eps", 0.0, math.inf)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not (low <= v <= high and math.isfinite(v)) \
                    or (name == "eps" and v <= 0):
                raise ValueError(f"BatchNorm {name}: expected a finite number in [{low:g}, {high:g}]"
                                 f"{' above 0' if name == 'eps' else ''}, got {v!r}")
            object.__setattr__(self, name, float(v))

    def output_shape(self, shape) -> tuple:
        if self.channels is not None and shape[-1] != self.channels:
            raise ValueError(f"received input of shape {_fmt(shape)} with {shape[-1]} channels, expected "
                             f"{self.channels} (the last axis)")
        return tuple(shape)

    def param_shapes(self) -> list:
        return [(self.channels,), (self.channels,)] if self.channels else []

    def config(self) -> dict:
        return {"type": self.kind, "channels": self.channels, "momentum": self.momentum, "eps": self.eps}

    def __repr__(self):
        extra = (f", momentum={self.momentum:g}" if self.momentum != 0.1 else "") + (
            f", eps={self.eps:g}" if self.eps != 1e-5 else "")
        return f"BatchNorm({self.channels}{extra})"


@dataclass(frozen=True)
class Flatten(_Layer):
    """(H, W, C) -> (H*W*C,) in C order (free: NHWC images are already stored so)."""

    kind = "Flatten"

    def output_shape(self, shape) -> tuple:
        return (math.prod(self._image(shape, "(H, W, C)")),)

    def config(self) -> dict:
        return {"type": self.kind}

    def __repr__(self):
        return "Flatten()"


@dataclass(frozen=True)
class Dense(_Layer):
    """Fully connected layer ``act(x W + b)`` on flat inputs; W of shape (n_in, n_out), then b (n_out,)."""

    n_in: int
    n_out: int
    activation: str = "relu"
    kind = "Dense"

    def __post_init__(self):
        object.__setattr__(self, "n_in", _positive_int(self.n_in, "Dense n_in"))
        object.__setattr__(self, "n_out", _positive_int(self.n_out, "Dense n_out"))
        if not is_activation(self.activation):
            raise unknown_activation("Dense activation", self.activation, F.ACTIVATIONS)

    def output_shape(self, shape) -> tuple:
        if len(shape) != 1:
            hint = f"; put Flatten() before it (it gives {math.prod(shape)} values)" if len(shape) == 3 else ""
            raise ValueError(f"received input of shape {_fmt(shape)}, expected a flat input ({self.n_in},){hint}")
        if shape[0] != self.n_in:
            raise ValueError(f"received input of shape {_fmt(shape)}, expected ({self.n_in},)")
        return (self.n_out,)

    def param_shapes(self) -> list:
        return [(self.n_in, self.n_out), (self.n_out,)]

    def config(self) -> dict:
        return {"type": self.kind, "n_in": self.n_in, "n_out": self.n_out, "activation": self.activation}

    def __repr__(self):
        return f"Dense({self.n_in}, {self.n_out}, {self.activation!r})"


#: Layer classes by the name model files store.
LAYER_TYPES = {cls.kind: cls for cls in (Conv2D, MaxPool2D, AvgPool2D, GlobalAvgPool2D, Dropout, BatchNorm, Flatten,
                                         Dense)}


def layer_from_config(config) -> _Layer:
    """The layer a :meth:`_Layer.config` dict describes (ValueError for anything else)."""
    if not isinstance(config, dict) or config.get("type") not in LAYER_TYPES:
        raise ValueError(f"expected a layer description with 'type' in {tuple(LAYER_TYPES)}, got {config!r}")
    args = {k: v for k, v in config.items() if k != "type"}
    cls = LAYER_TYPES[config["type"]]
    if "kernel_size" in args and isinstance(args["kernel_size"], list):
        args["kernel_size"] = tuple(args["kernel_size"])
    try:
        return cls(**args)
    except TypeError as exc:
        raise ValueError(f"{config['type']}: bad arguments {args!r} ({exc})") from None


def check_input_shape(input_shape) -> tuple:
    """``input_shape`` as a tuple of positive ints: (H, W, C) or (n,)."""
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if not shape or len(shape) not in (1, 3) or any(
            isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1 for s in shape):
        raise ValueError(f"input_shape: expected an image shape (H, W, C) or a flat (n,) of positive integers, got "
                         f"{input_shape!r}")
    return tuple(int(s) for s in shape)


def infer_shapes(input_shape, layers) -> list:
    """Each layer's output shape for one sample of ``input_shape``, checked layer by layer.

    Raises
    ------
    ValueError
        Naming the layer (``layers[i] Conv2D(...)``), the shape it received and the one it expects, for
        an image too small for a kernel or a window, a channel count or width that does not match, an
        image where a flat input is expected or the reverse, and a softmax anywhere but the last layer.
    """
    shape = check_input_shape(input_shape)
    layers = list(layers)
    if not layers:
        raise ValueError("layers: expected at least one layer")
    shapes = []
    for i, layer in enumerate(layers):
        if not isinstance(layer, _Layer):
            raise TypeError(f"layers[{i}]: expected a fastnn.layers layer ({', '.join(LAYER_TYPES)}), got "
                            f"{type(layer).__name__}")
        if getattr(layer, "activation", None) == "softmax" and i != len(layers) - 1:
            raise ValueError(f"layers[{i}] {layer!r}: softmax is only supported on the last layer")
        try:
            shape = layer.output_shape(shape)
        except ValueError as exc:
            raise ValueError(f"layers[{i}] {layer!r}: {exc}") from None
        shapes.append(shape)
    return shapes


# ------------------------------------------------------------------------- hw36 rows

def rows_to_images(X, side: int = 32) -> np.ndarray:
    """hw36 / NIST36 rows as upright single-channel NHWC images.

    Each row holds a ``side`` x ``side`` image stored transposed (``row.reshape(side, side).T`` is upright;
    see the shared data's README), so this is ``X.reshape(n, side, side).transpose(0, 2, 1)[..., None]``,
    returned C-contiguous.  The values are unchanged (dark ink on white for hw36).

    Parameters
    ----------
    X : (n, side*side) array
    side : int

    Returns
    -------
    (n, side, side, 1) ndarray, C-contiguous, of X's dtype (float64 for non-float input)

    Examples
    --------
    >>> X = np.arange(2 * 1024.).reshape(2, 1024)
    >>> rows_to_images(X).shape
    (2, 32, 32, 1)
    >>> bool(np.array_equal(images_to_rows(rows_to_images(X)), X))
    True
    """
    side = _positive_int(side, "side")
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != side * side:
        raise ValueError(f"X: expected rows of shape (n, {side * side}) (one {side}x{side} image per row), got shape "
                         f"{X.shape}")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(F.float_dtype(X))
    return np.ascontiguousarray(X.reshape(-1, side, side).transpose(0, 2, 1)[..., None])


def images_to_rows(images) -> np.ndarray:
    """The inverse of :func:`rows_to_images`: (n, side, side, 1) or (n, side, side) upright images ->
    (n, side*side) rows in the hw36 layout (each image stored transposed, ``image.T.reshape(-1)``)."""
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[3] == 1:
        images = images[..., 0]
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"images: expected square single-channel images (n, side, side, 1) or (n, side, side), got "
                         f"shape {images.shape}")
    n, side = images.shape[0], images.shape[1]
    return np.ascontiguousarray(images.transpose(0, 2, 1)).reshape(n, side * side)
