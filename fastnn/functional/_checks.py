"""Argument checks shared by the modules of fastnn.functional: the dtype policy, array and buffer checks,
activation names, hyperparameters and the options of a training run.  Each raises a ValueError or TypeError
that names the argument."""

from __future__ import annotations

import numbers

import numpy as np

from .._kernels import _core
from ..activations import on_register, registered_activation, unknown_activation


def describe(x) -> str:
    return f"shape {np.shape(x)} and dtype {getattr(x, 'dtype', type(x).__name__)}"


def float_dtype(*arrays) -> np.dtype:
    """The float dtype the kernels compute in for these inputs.

    float32 stays float32 only if every input is float32; float64, bool,
    integer and float16 inputs give float64.

    Raises
    ------
    TypeError
        For complex, object, string or other non-real input.
    """
    result = np.dtype(np.float32)
    for a in arrays:
        dt = np.asarray(a).dtype if not hasattr(a, "dtype") else a.dtype
        if dt == np.float32:
            continue
        if dt.kind in "biuf":
            result = np.dtype(np.float64)
            continue
        raise TypeError(
            f"fastnn computes in float32 or float64, got dtype {dt}; "
            "convert your input with `.astype(np.float64)` (or np.float32)"
        )
    return result


def as_float(x, name: str, dtype: np.dtype, ndim: int, *, any_order: bool = False) -> np.ndarray:
    """x as a C-contiguous array of ``dtype`` with ``ndim`` dimensions (no copy if already so); with
    ``any_order`` an F-contiguous array passes too (the matrix products take either)."""
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name}: expected an array, got {type(x).__name__} ({exc})") from None
    if x.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got {describe(x)}")
    float_dtype(x)  # rejects non-real dtypes with a TypeError that says how to fix it
    if x.dtype != dtype:
        x = x.astype(dtype)
    if not (x.flags.c_contiguous or (any_order and x.flags.f_contiguous)):
        x = np.ascontiguousarray(x)
    return x


def check_out(out, name: str, shape: tuple, dtype: np.dtype, inputs=(), may_be=None) -> np.ndarray:
    """Allocate an output, or check a caller's buffer: exact shape, dtype, C-contiguous, writeable, and
    sharing no memory with any of ``inputs`` (name, array) pairs, except that it may *be* ``may_be`` itself
    (an element-wise kernel can write over its input; a partial overlap would read values already
    overwritten)."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name}: expected an ndarray buffer, got {type(out).__name__}")
    if out.shape != tuple(shape) or out.dtype != dtype:
        raise ValueError(f"{name}: expected a buffer of shape {tuple(shape)} and dtype {dtype}, got {describe(out)}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(f"{name}: the buffer must be C-contiguous and writeable")
    for other, arr in inputs:
        if arr.size and np.shares_memory(out, arr, max_work=1 << 16) and not (arr is may_be and same_memory(out, arr)):
            raise ValueError(f"{name}: the buffer shares memory with {other}; the kernel would read values it has "
                             "already overwritten. Pass a separate buffer (or none)")
    return out


def same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    """True when a and b are views of exactly the same elements (same address, shape and strides)."""
    return (a.__array_interface__["data"][0] == b.__array_interface__["data"][0] and a.shape == b.shape
            and a.strides == b.strides)


def activation_code(name, *, allow_softmax=True) -> int:
    """The kernels' code of a built-in or registered activation (fastnn.register_activation), or a ValueError."""
    if isinstance(name, str) and name in _core.ACTIVATIONS:
        code = _core.ACTIVATIONS[name]
        if code == _core.ACTIVATIONS["softmax"] and not allow_softmax:
            raise ValueError(
                "activation 'softmax' has no element-wise derivative; backpropagate the softmax-cross-entropy "
                "gradient (probs - y) through a 'linear' layer, or use softmax_cross_entropy"
            )
        return code
    entry = registered_activation(name)
    if entry is not None:
        return _registered_code(entry)
    raise unknown_activation("activation", name, _core.ACTIVATIONS)


#: slot -> the generation of the registration whose functions the core's table holds.
_in_core: dict = {}


def _registered_code(entry) -> int:
    """A registered activation's code, its functions handed to the core first if they are not there yet (a
    new registration, or a name registered again)."""
    if _in_core.get(entry.slot) != entry.generation:
        _core.set_user_activation(entry.slot, *entry.addresses())
        _in_core[entry.slot] = entry.generation
    return _core.USER_ACTIVATION_BASE + entry.slot


on_register(_registered_code)  # a name registered again runs its new functions in every plan built before


def activation_code_of(name) -> int:
    """The kernels' code of a built-in or registered activation (KeyError otherwise); a registered one's
    functions are handed to the core first if they are not there yet."""
    if isinstance(name, str) and name in _core.ACTIVATIONS:
        return _core.ACTIVATIONS[name]
    entry = registered_activation(name)
    if entry is None:
        raise KeyError(name)
    return _registered_code(entry)


def is_user_code(code: int) -> bool:
    """True for a registered activation's code: its derivative is a function of the pre-activation."""
    return code >= _core.USER_ACTIVATION_BASE


def check_hyperparameter(value, name: str, low: float, high: float = np.inf, *, high_open: bool = False) -> float:
    """``value`` as a float, refused unless it is finite and in [low, high] (``high_open``: [low, high)).

    NaN or inf in a momentum or a weight decay would silently turn every parameter into NaN, and the
    divergence would then be blamed on the learning rate; this names the argument instead.
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number, got {value!r}") from None
    upper = ")" if high_open else "]"
    if not (np.isfinite(v) and low <= v and (v < high if high_open else v <= high)):
        raise ValueError(f"{name}: expected a finite number in [{low:g}, {high:g}{upper}, got {value!r}")
    return v


def check_adam(beta1, beta2, eps, names=("beta1", "beta2")):
    """Adam's constants; a beta of 1 or an eps of 0 would divide by zero inside the kernel (0/0 where a
    gradient is 0)."""
    for name, beta in zip(names, (beta1, beta2)):
        if not (0.0 <= beta < 1.0):
            raise ValueError(f"{name}: Adam's decay rates must be in [0, 1), got {beta!r}")
    if not (eps > 0 and np.isfinite(eps)):
        raise ValueError(f"eps: Adam's epsilon must be a finite number > 0, got {eps!r}")


def all_finite(x, chunk_elements: int = 1 << 18) -> bool:
    """True when every value of ``x`` is finite, checked in row chunks of about 256k values."""
    x = np.asarray(x)
    if x.ndim == 0:
        return bool(np.isfinite(x))
    rows = max(1, chunk_elements // max(1, x[:1].size))
    return all(np.isfinite(x[s:s + rows]).all() for s in range(0, x.shape[0], rows))


def check_array(a, name: str, shape: tuple, dtype, writeable=False) -> None:
    if not isinstance(a, np.ndarray) or a.shape != shape or a.dtype != dtype or not a.flags.c_contiguous:
        raise ValueError(f"{name}: expected a C-contiguous {np.dtype(dtype)} array of shape {shape}, got "
                         f"{describe(a) if isinstance(a, np.ndarray) else type(a).__name__} "
                         f"(convert it once, before training, with np.ascontiguousarray(..., dtype=...))")
    if writeable and not a.flags.writeable:
        raise ValueError(f"{name}: is read-only and cannot be updated in place")


def check_loss_name(loss) -> str:
    """``loss`` if it names one of the kernels' losses, else a ValueError that lists them."""
    if not isinstance(loss, str) or loss not in _core.LOSSES:
        raise ValueError(f"loss: expected one of {tuple(_core.LOSSES)}, got {loss!r}")
    return loss


def check_training_options(loss, optimizer, batch_size, dtype, momentum, betas, eps, weight_decay):
    """A compiled epoch's options, checked: (loss, optimizer, batch_size, dtype, momentum, betas, eps,
    weight_decay) as (str, str, int, np.dtype, float, (float, float), float, float)."""
    return (check_loss_name(loss),) + check_optimizer_options(optimizer, batch_size, dtype, momentum, betas, eps,
                                                              weight_decay)


def check_optimizer_options(optimizer, batch_size, dtype, momentum, betas, eps, weight_decay):
    """The optimizer's options of a training run (compiled epoch or batch by batch), checked: (optimizer,
    batch_size, dtype, momentum, betas, eps, weight_decay) as (str, int, np.dtype, float, (float, float),
    float, float)."""
    if not isinstance(optimizer, str) or optimizer not in _core.OPTIMIZERS:
        raise ValueError(f"optimizer: expected one of {tuple(_core.OPTIMIZERS)}, got {optimizer!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size <= 0:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype: expected float32 or float64, got {dtype}")
    betas = tuple(float(b) for b in betas)
    if len(betas) != 2:
        raise ValueError(f"betas: expected Adam's two decay rates, each in [0, 1), got {betas!r}")
    check_adam(*betas, float(eps), names=("betas", "betas"))
    momentum = check_hyperparameter(momentum, "momentum", 0.0, 1.0, high_open=True)
    weight_decay = check_hyperparameter(weight_decay, "weight_decay", 0.0)
    return optimizer, int(batch_size), dtype, momentum, betas, float(eps), weight_decay


#: How a batch's loss is reduced over its rows: summed (the coursework's, fastnn's default) or averaged.
LOSS_REDUCTIONS = ("sum", "mean")


def check_reduction(reduction, name: str = "reduction") -> str:
    """``reduction`` if it is one of :data:`LOSS_REDUCTIONS`, else a ValueError naming ``name``."""
    if not isinstance(reduction, str) or reduction not in LOSS_REDUCTIONS:
        raise ValueError(f"{name}: expected one of {LOSS_REDUCTIONS}, got {reduction!r}")
    return reduction


def check_row_weights(weights, n: int, name: str = "weights") -> np.ndarray:
    """Per-row weights as a C-contiguous (n,) float64 array: real, finite and >= 0, or a ValueError naming
    ``name`` (a TypeError for a non-real dtype)."""
    w = np.asarray(weights)
    if w.ndim != 1 or w.shape[0] != n:
        raise ValueError(f"{name}: expected one weight per row, shape ({n},), got shape {w.shape}")
    if w.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected real numbers, got dtype {w.dtype}")
    w = np.ascontiguousarray(w, dtype=np.float64)
    if not np.all(np.isfinite(w)):
        raise ValueError(f"{name}: contains NaN or inf values")
    if n and w.min() < 0:
        raise ValueError(f"{name}: weights must be >= 0, got a minimum of {w.min()!r}")
    return w
