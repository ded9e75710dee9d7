"""Convolution and max-pooling on NHWC images: validated entry points to the compiled kernels.

Layout: images are ``(N, H, W, C)`` (channels last) and convolution weights ``(KH, KW, C, F)``.  A
convolution is then one matrix product, ``im2col(X) (N*OH*OW, KH*KW*C) @ W (KH*KW*C, F)``, whose result
*is* the NHWC output: the bias and the activation fuse over its rows as for a dense layer, pooling and
activations run over contiguous channels, and flattening is a free reshape.  (PyTorch's NCHW weights
``(F, C, KH, KW)`` are ``W.transpose(3, 2, 0, 1)``.)

The dtype policy, ``out=`` buffers and zero-size edges follow the dense functions of
:mod:`fastnn.functional`.  Bad shapes, strides and paddings raise a ValueError naming the function, the
shape received and the one expected, before anything is computed.
"""

from __future__ import annotations

import numbers

import numpy as np

from .._kernels import _core
from ._checks import activation_code, as_float, check_out, float_dtype, is_user_code
from .dense import need_pre

__all__ = ["PADDINGS", "conv2d_output_shape", "conv2d_forward", "conv2d_backward", "max_pool2d_forward",
           "avg_pool2d_forward", "avg_pool2d_backward", "global_avg_pool2d_forward", "global_avg_pool2d_backward",
           "max_pool2d_backward"]

#: Paddings of :func:`conv2d_forward`: 'valid' (none) or 'same' (output size ceil(size / stride)).
PADDINGS = ("valid", "same")
#: Bytes of im2col workspace a call uses at most (more images are processed in chunks of this size).
CONV_WORKSPACE_BYTES = 8 << 20
_INT32_MAX = np.iinfo(np.int32).max


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{what}: expected a positive integer, got {value!r}")
    return int(value)


def conv2d_geometry(input_shape, kernel_shape, stride=1, padding="valid", *, name="conv2d") -> np.ndarray:
    """The convolution's geometry vector (``_core.CONV_GEOMETRY``) for images of ``input_shape``
    (H, W, C) and weights of ``kernel_shape`` (KH, KW, C, F); ValueError naming ``name`` when they do not fit."""
    H, W, C = (int(v) for v in input_shape)
    KH, KW, C_in, F = (int(v) for v in kernel_shape)
    stride = _positive_int(stride, f"{name}: stride")
    if padding not in PADDINGS:
        raise ValueError(f"{name}: padding must be one of {PADDINGS}, got {padding!r}")
    if KH < 1 or KW < 1:
        raise ValueError(f"{name}: the kernel must be at least 1x1, got W of shape {tuple(kernel_shape)}")
    if C_in != C:
        raise ValueError(f"{name}: W of shape {tuple(kernel_shape)} expects {C_in} input channels, the images "
                         f"(H, W, C) = {(H, W, C)} have {C}: expected W of shape ({KH}, {KW}, {C}, {F})")
    if padding == "valid":
        if H < KH or W < KW:
            raise ValueError(f"{name}: images of shape (H, W, C) = {(H, W, C)} are too small for a {KH}x{KW} "
                             f"kernel with padding 'valid': expected H >= {KH} and W >= {KW}")
        OH, OW, pt, pl = (H - KH) // stride + 1, (W - KW) // stride + 1, 0, 0
    else:
        OH, OW = -(-H // stride), -(-W // stride)
        pt = max((OH - 1) * stride + KH - H, 0) // 2  # the odd extra row goes to the bottom, as TF / PyTorch
        pl = max((OW - 1) * stride + KW - W, 0) // 2
    return np.array([H, W, C, KH, KW, F, stride, pt, pl, OH, OW], dtype=np.int64)


def conv2d_output_shape(input_shape, kernel_shape, stride=1, padding="valid") -> tuple[int, int, int]:
    """(OH, OW, F) of a convolution of (H, W, C) images with (KH, KW, C, F) weights.

    Examples
    --------
    >>> conv2d_output_shape((32, 32, 1), (3, 3, 1, 16), padding="same")
    (32, 32, 16)
    >>> conv2d_output_shape((7, 7, 3), (3, 3, 3, 8), stride=2)
    (3, 3, 8)
    """
    g = conv2d_geometry(input_shape, kernel_shape, stride, padding)
    return int(g[9]), int(g[10]), int(g[5])


def _conv_code(activation: str, name: str) -> int:
    try:
        return activation_code(activation, allow_softmax=False)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc} (a convolution's activation is element-wise)") from None


def _conv_args(X, W, dtype):
    X = as_float(X, "X", dtype, 4)
    W = as_float(W, "W", dtype, 4)
    return X, W


def _chunk_rows(N, out_pixels, width, itemsize) -> int:
    """Rows of a workspace holding as many whole images' im2col rows as CONV_WORKSPACE_BYTES allows."""
    per_image = max(1, out_pixels * width * itemsize)
    return max(1, min(N, CONV_WORKSPACE_BYTES // per_image)) * out_pixels


def conv2d_forward(X, W, b, activation: str = "relu", *, stride: int = 1, padding: str = "valid", out=None):
    """Fused 2-D convolution: ``pre = conv(X, W) + b`` and ``post = activation(pre)``, NHWC.

    Parameters
    ----------
    X : (N, H, W, C) ndarray of float32 or float64
        Images, channels last.
    W : (KH, KW, C, F) ndarray
        Kernels.
    b : (F,) ndarray
    activation : {'linear', 'sigmoid', 'tanh', 'relu'} or a registered name
    stride : int
        The same in both directions.
    padding : {'valid', 'same'}
        'valid': no padding, OH = (H - KH) // stride + 1.  'same': zeros around the image so that
        OH = ceil(H / stride); an odd extra row or column goes to the bottom or right (as TensorFlow and
        PyTorch).
    out : tuple of two (N, OH, OW, F) ndarrays, optional
        Buffers for ``pre`` and ``post``.

    Returns
    -------
    pre, post : (N, OH, OW, F) ndarrays

    Examples
    --------
    >>> X = np.ones((1, 4, 4, 1)); W = np.ones((3, 3, 1, 2))
    >>> pre, post = conv2d_forward(X, W, np.zeros(2), "relu", padding="same")
    >>> post[0, :, :, 0]
    array([[4., 6., 6., 4.],
           [6., 9., 9., 6.],
           [6., 9., 9., 6.],
           [4., 6., 6., 4.]])
    """
    code = _conv_code(activation, "conv2d_forward")
    dtype = float_dtype(X, W, b)
    X, W = _conv_args(X, W, dtype)
    b = as_float(b, "b", dtype, 1)
    N = X.shape[0]
    g = conv2d_geometry(X.shape[1:], W.shape, stride, padding, name="conv2d_forward")
    F, OH, OW, K = W.shape[3], int(g[9]), int(g[10]), W.shape[0] * W.shape[1] * W.shape[2]
    if b.shape != (F,):
        raise ValueError(f"conv2d_forward: b: expected shape ({F},) to match W of shape {W.shape}, got shape {b.shape}")
    pre_out, post_out = (None, None) if out is None else out
    inputs = [("X", X), ("W", W), ("b", b)]
    shape = (N, OH, OW, F)
    pre = check_out(pre_out, "out[0] (pre)", shape, dtype, inputs)
    post = check_out(post_out, "out[1] (post)", shape, dtype, inputs + [("out[0] (pre)", pre)])
    rows = N * OH * OW
    if rows == 0 or F == 0:
        return pre, post
    pre2, post2 = pre.reshape(rows, F), post.reshape(rows, F)
    if K == 0:  # no input channels: an empty sum, the bias alone
        pre2[...] = b
        _core.activate(pre2, code, post2)
        return pre, post
    pointwise = g[3] == 1 and g[4] == 1 and g[6] == 1
    cols = np.empty((0, K) if pointwise else (_chunk_rows(N, OH * OW, K, dtype.itemsize), K), dtype)
    _core.conv2d_forward(X.reshape(N, -1), W.reshape(K, F), b, code, g, cols, pre2, post2)
    return pre, post


def conv2d_backward(delta, post, X, W, activation: str = "relu", *, stride: int = 1, padding: str = "valid",
                    pre=None, need_grad_X: bool = True, out=None):
    """Fused convolution backward: weight, bias and input gradients from ``delta = dJ/d(post)``.

    Parameters
    ----------
    delta : (N, OH, OW, F) ndarray
        Gradient of the loss with respect to the layer's post-activation.
    post : (N, OH, OW, F) ndarray
        The layer's post-activation from :func:`conv2d_forward` (the derivative is written from it).  Not
        read (and may be None) for a registered activation.
    X : (N, H, W, C) ndarray
        The layer's input.
    W : (KH, KW, C, F) ndarray
    activation : {'linear', 'sigmoid', 'tanh', 'relu'} or a registered name
    stride, padding
        As in the forward.
    pre : (N, OH, OW, F) ndarray, optional
        The layer's pre-activation from :func:`conv2d_forward`: required for a registered activation
        (``fastnn.register_activation``), whose derivative is a function of it; ignored otherwise.
    need_grad_X : bool
        Skip the input gradient (and return None) when False, e.g. for the first layer.
    out : tuple (grad_W, grad_b, grad_X) of buffers, optional

    Returns
    -------
    grad_W : (KH, KW, C, F) ndarray
        ``im2col(X).T @ (delta * act'(post))``
    grad_b : (F,) ndarray
        Sums of ``delta * act'(post)`` over images and pixels, accumulated in float64.
    grad_X : (N, H, W, C) ndarray or None
        ``col2im((delta * act'(post)) @ W.T)``.
    """
    code = _conv_code(activation, "conv2d_backward")
    label = "post"
    if is_user_code(code):  # the derivative reads the pre-activation, in post's place
        need_pre("conv2d_backward", activation, pre)
        post, label = pre, "pre"
    dtype = float_dtype(delta, post, X, W)
    X, W = _conv_args(X, W, dtype)
    delta = as_float(delta, "delta", dtype, 4)
    post = as_float(post, label, dtype, 4)
    N = X.shape[0]
    g = conv2d_geometry(X.shape[1:], W.shape, stride, padding, name="conv2d_backward")
    KH, KW, C, F = W.shape
    OH, OW, K = int(g[9]), int(g[10]), KH * KW * C
    for name, arr in (("delta", delta), (label, post)):
        if arr.shape != (N, OH, OW, F):
            raise ValueError(f"conv2d_backward: {name}: expected shape {(N, OH, OW, F)} from X {X.shape}, W {W.shape}, "
                             f"stride {stride} and padding {padding!r}, got shape {arr.shape}")
    gW_out, gb_out, gX_out = (None, None, None) if out is None else out
    inputs = [("delta", delta), (label, post), ("X", X), ("W", W)]
    gW = check_out(gW_out, "out[0] (grad_W)", W.shape, dtype, inputs)
    inputs.append(("out[0] (grad_W)", gW))
    gb = check_out(gb_out, "out[1] (grad_b)", (F,), dtype, inputs)
    inputs.append(("out[1] (grad_b)", gb))
    gX = check_out(gX_out, "out[2] (grad_X)", X.shape, dtype, inputs) if need_grad_X else None
    rows = N * OH * OW
    if rows == 0 or F == 0:  # an empty sum everywhere
        gW[...] = 0
        gb[...] = 0
        if gX is not None:
            gX[...] = 0
        return gW, gb, gX
    if K == 0:  # no input channels: only the bias has a gradient
        dpre = np.empty((rows, F), dtype)
        _core.activation_deriv(post.reshape(rows, F), code, dpre)
        gb[...] = (dpre * delta.reshape(rows, F)).sum(axis=0, dtype=np.float64)
        return gW, gb, gX
    pointwise = g[3] == 1 and g[4] == 1 and g[6] == 1
    chunk = _chunk_rows(N, OH * OW, K + F, dtype.itemsize)
    cols = np.empty((0 if pointwise else chunk, K), dtype)
    dpre = np.empty((chunk, F), dtype)
    gX2 = gX.reshape(N, -1) if gX is not None else np.empty((0, 0), dtype)
    # the most parts a chunk is cut into (by its size and flops): each part after the first keeps a block of
    # weight gradients, and each its float64 bias sums
    images = chunk // (OH * OW)
    parts = _core.conv_parts_of(images, 2.0 * images * OH * OW * K * F * (2 if gX is not None else 1))
    _core.conv2d_backward(delta.reshape(rows, F), post.reshape(rows, F), X.reshape(N, -1), W.reshape(K, F), code, g,
                          cols, dpre, np.empty((max(parts - 1, 1) * K, F), dtype), np.empty((parts + 1) * F),
                          gW.reshape(K, F), gb, gX2, gX is not None)
    return gW, gb, gX


def pool_geometry(input_shape, size, name="max_pool2d") -> np.ndarray:
    """A max-pooling's geometry vector (``_core.POOL_GEOMETRY``) for (H, W, C) images; ValueError naming
    ``name`` when the window does not fit."""
    H, W, C = (int(v) for v in input_shape)
    size = _positive_int(size, f"{name}: size")
    if H < size or W < size:
        raise ValueError(f"{name}: images of shape (H, W, C) = {(H, W, C)} are smaller than the {size}x{size} "
                         f"window: expected H >= {size} and W >= {size}")
    if H * W * C > _INT32_MAX:
        raise ValueError(f"{name}: images of shape (H, W, C) = {(H, W, C)} have more than 2**31 - 1 values")
    return np.array([H, W, C, size, H // size, W // size], dtype=np.int64)


def max_pool2d_forward(X, size: int = 2, *, out=None):
    """Max-pooling over non-overlapping ``size x size`` windows (stride ``size``), NHWC.

    Trailing rows and columns that do not fill a window are dropped (as ``torch.nn.MaxPool2d(size)``).  Of
    equal values the first in row-major window order is the maximum; a NaN in a window is its maximum.

    Parameters
    ----------
    X : (N, H, W, C) ndarray of float32 or float64
    size : int
    out : tuple (Y, argmax) of buffers, optional

    Returns
    -------
    Y : (N, H // size, W // size, C) ndarray
    argmax : (N, H // size, W // size, C) ndarray of int32
        Each maximum's flat index ``(h * W + w) * C + c`` inside its own image ``X[n]``.

    Examples
    --------
    >>> Y, arg = max_pool2d_forward(np.arange(16.0).reshape(1, 4, 4, 1))
    >>> Y[0, :, :, 0], arg[0, :, :, 0]
    (array([[ 5.,  7.],
           [13., 15.]]), array([[ 5,  7],
           [13, 15]], dtype=int32))
    """
    X = as_float(X, "X", float_dtype(X), 4)
    N = X.shape[0]
    g = pool_geometry(X.shape[1:], size, "max_pool2d_forward")
    shape = (N, int(g[4]), int(g[5]), X.shape[3])
    y_out, a_out = (None, None) if out is None else out
    Y = check_out(y_out, "out[0] (Y)", shape, X.dtype, [("X", X)])
    arg = check_out(a_out, "out[1] (argmax)", shape, np.dtype(np.int32), [("X", X), ("out[0] (Y)", Y)])
    if Y.size:
        _core.max_pool2d_forward(X.reshape(N, -1), g, Y.reshape(N, -1), arg.reshape(N, -1))
    return Y, arg


def max_pool2d_backward(grad_Y, argmax, input_shape, *, size=None, out=None) -> np.ndarray:
    """Max-pooling backward: each output's gradient goes to the input that was its maximum.

    Parameters
    ----------
    grad_Y : (N, OH, OW, C) ndarray
        Gradient of the loss with respect to the pooled output.
    argmax : (N, OH, OW, C) ndarray of int32
        From :func:`max_pool2d_forward`.
    input_shape : tuple (N, H, W, C)
        The forward's input shape.
    size : int, optional
        The forward's window size; by default the one size that turns (H, W) into (OH, OW) (an error
        when several do, e.g. H = 5 and OH = 1).
    out : (N, H, W, C) ndarray, optional

    Returns
    -------
    grad_X : (N, H, W, C) ndarray
        Zero except at each window's maximum (an argmax outside its own window routes nothing).
    """
    dY = as_float(grad_Y, "grad_Y", float_dtype(grad_Y), 4)
    try:
        shape = tuple(int(v) for v in input_shape)
    except (TypeError, ValueError):
        raise ValueError(f"max_pool2d_backward: input_shape: expected (N, H, W, C), got {input_shape!r}") from None
    if len(shape) != 4 or min(shape) < 0:
        raise ValueError(f"max_pool2d_backward: input_shape: expected (N, H, W, C), got {input_shape!r}")
    N, H, W, C = shape
    OH, OW = dY.shape[1], dY.shape[2]
    if size is None:
        sizes = [s for s in range(1, max(H, 1) + 1) if H // s == OH and W // s == OW]
        if len(sizes) != 1:
            raise ValueError(f"max_pool2d_backward: grad_Y of shape {dY.shape} and inputs of shape {shape} fit "
                             f"{'no window size' if not sizes else f'the window sizes {sizes}'}; pass size=")
        size = sizes[0]
    size = _positive_int(size, "max_pool2d_backward: size")
    if dY.shape != (N, H // size, W // size, C):
        raise ValueError(f"max_pool2d_backward: grad_Y: expected shape {(N, H // size, W // size, C)}, the pooled "
                         f"output of inputs of shape {shape} with {size}x{size} windows, got shape {dY.shape}")
    arg = np.asarray(argmax)
    if arg.shape != dY.shape or arg.dtype != np.int32:
        raise ValueError(f"max_pool2d_backward: argmax: expected an int32 array of shape {dY.shape} from "
                         f"max_pool2d_forward, got shape {arg.shape} and dtype {arg.dtype}")
    arg = np.ascontiguousarray(arg)
    if arg.size and (arg.min() < 0 or arg.max() >= H * W * C):
        raise ValueError(f"max_pool2d_backward: argmax: indices must lie in [0, {H * W * C}) (one image of shape "
                         f"{shape[1:]}), got values from {arg.min()} to {arg.max()}")
    gX = check_out(out, "out", shape, dY.dtype, [("grad_Y", dY), ("argmax", arg)])
    if gX.size and dY.size:
        pg = np.array([H, W, C, size, OH, OW], dtype=np.int64)
        _core.max_pool2d_backward(dY.reshape(N, -1), arg.reshape(N, -1), pg, gX.reshape(N, -1))
    elif gX.size:
        gX[...] = 0
    return gX


def avg_pool_geometry(input_shape, size, name="avg_pool2d") -> np.ndarray:
    """An average-pooling's geometry vector (``_core.AVGPOOL_GEOMETRY``) for (H, W, C) images and a window of
    ``size`` (an int, or (KH, KW)), which is also the stride; ValueError naming ``name`` when it does not fit."""
    H, W, C = (int(v) for v in input_shape)
    if isinstance(size, (tuple, list)) and len(size) == 2:
        KH, KW = (_positive_int(v, f"{name}: size") for v in size)
    else:
        KH = KW = _positive_int(size, f"{name}: size")
    if H < KH or W < KW:
        raise ValueError(f"{name}: images of shape (H, W, C) = {(H, W, C)} are smaller than the {KH}x{KW} "
                         f"window: expected H >= {KH} and W >= {KW}")
    if H * W * C > _INT32_MAX:
        raise ValueError(f"{name}: images of shape (H, W, C) = {(H, W, C)} have more than 2**31 - 1 values")
    return np.array([H, W, C, KH, KW, H // KH, W // KW], dtype=np.int64)


def avg_pool2d_forward(X, size=2, *, out=None) -> np.ndarray:
    """Average pooling over non-overlapping ``size x size`` windows (stride ``size``), NHWC.

    Trailing rows and columns that do not fill a window are dropped (as ``torch.nn.AvgPool2d(size)``); each
    window is summed in float64.  ``size`` may be a pair (KH, KW); ``size=(H, W)`` is a global average pooling
    (:func:`global_avg_pool2d_forward`).

    Parameters
    ----------
    X : (N, H, W, C) ndarray of float32 or float64
    size : int or (int, int)
    out : (N, H // KH, W // KW, C) ndarray, optional

    Returns
    -------
    (N, H // KH, W // KW, C) ndarray

    Examples
    --------
    >>> avg_pool2d_forward(np.arange(16.0).reshape(1, 4, 4, 1))[0, :, :, 0]
    array([[ 2.5,  4.5],
           [10.5, 12.5]])
    """
    X = as_float(X, "X", float_dtype(X), 4)
    N = X.shape[0]
    g = avg_pool_geometry(X.shape[1:], size, "avg_pool2d_forward")
    Y = check_out(out, "out", (N, int(g[5]), int(g[6]), X.shape[3]), X.dtype, [("X", X)])
    if Y.size:
        _core.avg_pool2d(X.reshape(N, -1), g, Y.reshape(N, -1), False)
    return Y


def avg_pool2d_backward(grad_Y, input_shape, size=2, *, out=None) -> np.ndarray:
    """Average-pooling backward: each output's gradient spread evenly over its window (zero on the rows and
    columns no window covers).

    Parameters
    ----------
    grad_Y : (N, OH, OW, C) ndarray
    input_shape : tuple (N, H, W, C)
        The forward's input shape.
    size : int or (int, int)
        The forward's window.
    out : (N, H, W, C) ndarray, optional

    Returns
    -------
    (N, H, W, C) ndarray
    """
    dY = as_float(grad_Y, "grad_Y", float_dtype(grad_Y), 4)
    try:
        shape = tuple(int(v) for v in input_shape)
    except (TypeError, ValueError):
        raise ValueError(f"avg_pool2d_backward: input_shape: expected (N, H, W, C), got {input_shape!r}") from None
    if len(shape) != 4 or min(shape) < 0:
        raise ValueError(f"avg_pool2d_backward: input_shape: expected (N, H, W, C), got {input_shape!r}")
    N = shape[0]
    g = avg_pool_geometry(shape[1:], size, "avg_pool2d_backward")
    expected = (N, int(g[5]), int(g[6]), shape[3])
    if dY.shape != expected:
        raise ValueError(f"avg_pool2d_backward: grad_Y: expected shape {expected}, the pooled output of inputs of "
                         f"shape {shape} with {int(g[3])}x{int(g[4])} windows, got shape {dY.shape}")
    gX = check_out(out, "out", shape, dY.dtype, [("grad_Y", dY)])
    if gX.size:
        _core.avg_pool2d(dY.reshape(N, -1), g, gX.reshape(N, -1), True)
    return gX


def global_avg_pool2d_forward(X, *, out=None) -> np.ndarray:
    """The mean of each channel over the whole image: (N, H, W, C) -> (N, C) (``torch.nn.AdaptiveAvgPool2d(1)``
    then a flatten).

    Examples
    --------
    >>> global_avg_pool2d_forward(np.arange(8.0).reshape(1, 2, 2, 2))
    array([[3., 4.]])
    """
    X = as_float(X, "X", float_dtype(X), 4)
    N, H, W, C = X.shape
    Y = check_out(out, "out", (N, C), X.dtype, [("X", X)])
    if Y.size:
        avg_pool2d_forward(X, (H, W), out=Y.reshape(N, 1, 1, C))
    return Y


def global_avg_pool2d_backward(grad_Y, input_shape, *, out=None) -> np.ndarray:
    """Global-average-pooling backward: (N, C) gradients spread evenly over each image, (N, H, W, C)."""
    dY = as_float(grad_Y, "grad_Y", float_dtype(grad_Y), 2)
    try:
        N, H, W, C = (int(v) for v in input_shape)
    except (TypeError, ValueError):
        raise ValueError(f"global_avg_pool2d_backward: input_shape: expected (N, H, W, C), got "
                         f"{input_shape!r}") from None
    if dY.shape != (N, C):
        raise ValueError(f"global_avg_pool2d_backward: grad_Y: expected shape {(N, C)}, got shape {dY.shape}")
    return avg_pool2d_backward(dY.reshape(N, 1, 1, C), (N, H, W, C), (H, W), out=out)
