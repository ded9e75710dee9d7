"""Activation names: the built-in ones (:data:`BUILTIN_ACTIVATIONS`, the kernels' own) and those registered
with :func:`register_activation`, each a user's scalar function compiled by Numba whose address the
compiled core calls, so that its name works wherever a built-in name does.

Registered activations live in this process only: a model file stores an activation's name, and loading a
model that uses one needs the same ``register_activation`` call first.  This module imports Numba only
inside :func:`register_activation` (through ``fastnn._jit``), so ``import fastnn`` never loads it.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field

__all__ = ["BUILTIN_ACTIVATIONS", "MAX_USER_ACTIVATIONS", "RegisteredActivation", "register_activation",
           "registered_activations", "registered_activation", "is_activation", "is_registered", "unknown_activation",
           "check_exportable", "on_register"]

# This module does not import the compiled core: ``fastnn.register_activation`` (the package's face) imports it,
# and the core imports the package.  The registrations reach the core through ``fastnn.functional``, which
# listens (``on_register``) and also checks when a code is asked for (before any kernel is given it).
#: The activations the kernels implement, by name (the core's ``ACTIVATIONS``; tests keep the two equal).
BUILTIN_ACTIVATIONS = ("linear", "sigmoid", "tanh", "relu", "softmax")
#: Most activations one process can register (the core's table; tests keep the two equal).
MAX_USER_ACTIVATIONS = 64
#: Hint appended to the error for an unknown name.
_HOW = ("an activation of your own must first be registered in this process with "
        "fastnn.register_activation(name, fn, derivative) (a model file stores only its name)")

_lock = threading.Lock()
_registry: dict[str, "RegisteredActivation"] = {}
_generations = itertools.count(1)
#: Every compiled function ever handed to the core: the core keeps their addresses, so they live as long as
#: the process (a replaced registration's functions too, in case a kernel still runs them).
_alive: list = []
#: Called with each new registration (``fastnn.functional`` hands it to the core at once, so that a plan
#: built before a name was registered again runs the new functions too).
_listeners: list = []


def on_register(listener) -> None:
    """Call ``listener(entry)`` with every later registration (a :class:`RegisteredActivation`)."""
    _listeners.append(listener)


@dataclass(frozen=True)
class RegisteredActivation:
    """A registered activation: its ``name``, its ``slot`` in the core's table (the kernels' code is the core's
    ``USER_ACTIVATION_BASE + slot``), the Python functions ``fn`` and ``derivative`` (both of the
    pre-activation z), their compiled versions (``compiled[(role, dtype)]``, Numba cfuncs with ``.address``)
    and the ``generation`` of this registration (a new one for each call)."""

    name: str
    slot: int
    fn: object
    derivative: object
    compiled: dict = field(repr=False, compare=False)
    generation: int = 0

    def addresses(self) -> tuple:
        """The compiled functions' addresses: (fn float32, derivative float32, fn float64, derivative float64)."""
        c = self.compiled
        return (c[("fn", "float32")].address, c[("derivative", "float32")].address, c[("fn", "float64")].address,
                c[("derivative", "float64")].address)

    def __repr__(self):
        return (f"RegisteredActivation({self.name!r}, fn={getattr(self.fn, '__qualname__', self.fn)!r}, "
                f"derivative={getattr(self.derivative, '__qualname__', self.derivative)!r})")


def _check_name(name) -> str:
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name: expected an identifier such as 'swish' (letters, digits and underscores), "
                         f"got {name!r}")
    if name in BUILTIN_ACTIVATIONS:
        raise ValueError(f"name: {name!r} is a built-in activation; a registered one must not shadow "
                         f"{BUILTIN_ACTIVATIONS}: choose another name")
    return name


def register_activation(name: str, fn, derivative) -> RegisteredActivation:
    """Register your own element-wise activation, compiled with Numba, under ``name``.

    ``fn`` and ``derivative`` are Python functions of one float written with ``math`` and arithmetic;
    Numba compiles each to C functions for float32 and float64 (``numba.cfunc``, cached on disk), whose
    addresses the compiled core calls from its threads.  From then on ``name`` works wherever a built-in
    activation name does: ``fastnn.models.MLP(sizes, [name, ...])``, ``fastnn.layers.Dense`` and ``Conv2D``,
    ``fastnn.functional``'s ``activation``, ``dense_forward``/``dense_backward`` and
    ``conv2d_forward``/``conv2d_backward``, the drop-in ``fastnn.nn`` (``forward(X, params, name,
    name)`` or :func:`fastnn.nn.activation_functions`), and inside the compiled training epochs.

    The built-in activations' derivatives are written from the post-activation; ``derivative`` is a function
    of the *pre-activation* ``z`` (so for a registered sigmoid: ``s(z) * (1 - s(z))``).  The layers that
    use a registered activation keep their pre-activation for the backward pass.

    Registering a name again replaces its functions for every later call (a model refers to its activations
    by name); do not do it while a model that uses the name trains in another thread.  Registrations live in
    this process: a model file stores the name, and loading it needs the same call first.

    Parameters
    ----------
    name : str
        An identifier, not one of :data:`BUILTIN_ACTIVATIONS`.
    fn : callable
        ``fn(z) -> float``, the activation.
    derivative : callable
        ``derivative(z) -> float``, d fn / dz, of the same ``z``.

    Returns
    -------
    RegisteredActivation

    Raises
    ------
    ImportError
        Numba is not installed (``pip install 'fastnn[jit]'``).
    ValueError
        A bad or built-in ``name``, or more than ``MAX_USER_ACTIVATIONS`` (64) names.
    TypeError
        ``fn`` or ``derivative`` is not a function, or Numba cannot compile it (the message names it).

    Examples
    --------
    >>> import math, fastnn
    >>> def swish(z):
    ...     return z / (1.0 + math.exp(-z))
    >>> def swish_deriv(z):
    ...     s = 1.0 / (1.0 + math.exp(-z))
    ...     return s + z * s * (1.0 - s)
    >>> fastnn.register_activation("swish", swish, swish_deriv)  # doctest: +SKIP
    RegisteredActivation('swish', fn='swish', derivative='swish_deriv')
    >>> fastnn.models.MLP([4, 8, 3], ["swish", "softmax"])  # doctest: +SKIP
    """
    name = _check_name(name)
    for what, f in (("fn", fn), ("derivative", derivative)):
        if not callable(f) or isinstance(f, type):
            raise TypeError(f"{what}: expected a Python function of one float, got {type(f).__name__}")
    from . import _jit  # Numba: imported here only, so that importing fastnn never loads it

    compiled = {}
    for role, f in (("fn", fn), ("derivative", derivative)):
        for dtype, cf in _jit.compile_scalar(f, role).items():
            compiled[(role, dtype)] = cf
    with _lock:
        old = _registry.get(name)
        if old is not None:
            slot = old.slot
        else:
            used = {r.slot for r in _registry.values()}
            free = [i for i in range(MAX_USER_ACTIVATIONS) if i not in used]
            if not free:
                raise ValueError(f"register_activation: at most {MAX_USER_ACTIVATIONS} activations can be registered "
                                 "in one process")
            slot = free[0]
        _alive.extend(compiled.values())
        entry = RegisteredActivation(name, slot, fn, derivative, compiled, next(_generations))
        _registry[name] = entry
        for listener in _listeners:
            listener(entry)
    return entry


def registered_activations() -> tuple:
    """The names registered in this process, in the order they were first registered."""
    return tuple(_registry)


def registered_activation(name) -> RegisteredActivation | None:
    """The registration of ``name``, or None (a built-in or unknown name)."""
    return _registry.get(name) if isinstance(name, str) else None


def is_registered(name) -> bool:
    """True when ``name`` was registered with :func:`register_activation` in this process."""
    return isinstance(name, str) and name in _registry


def is_activation(name, *, elementwise: bool = False) -> bool:
    """True for a built-in or registered activation's name (``elementwise``: softmax excluded)."""
    if not isinstance(name, str):
        return False
    if name in BUILTIN_ACTIVATIONS:
        return not (elementwise and name == "softmax")
    return name in _registry


def unknown_activation(what: str, name, expected, note: str = "") -> ValueError:
    """The error for an activation name that is neither built in nor registered (or not allowed there):
    ``what`` names the argument, ``expected`` the built-in names it may be, ``note`` a restriction such as
    '(softmax only last)'."""
    hint = ""
    if isinstance(name, str) and name not in BUILTIN_ACTIVATIONS and name not in _registry:
        hint = f"; {_HOW}"
    registered = registered_activations()
    extra = f" or a registered one {registered}" if registered else ""
    note = f" {note}" if note else ""
    return ValueError(f"{what}: expected one of {tuple(expected)}{extra}{note}, got {name!r}{hint}")


def check_exportable(layers, exporter: str) -> None:
    """Refuse a model whose neutral layer list (``model.layer_list()``) uses a registered activation: ONNX and
    PyTorch have no operator for a user's compiled function.  ``exporter`` names the caller in the error."""
    for i, layer in enumerate(layers):
        if layer[0] in ("dense", "conv") and isinstance(layer[-1], str) and layer[-1] not in BUILTIN_ACTIVATIONS:
            raise ValueError(f"{exporter}: layer {i} ({layer[0]}) uses the registered activation {layer[-1]!r}, a "
                             f"compiled function of your own that {exporter} cannot export (it exports the built-in "
                             f"activations {BUILTIN_ACTIVATIONS} only)")
