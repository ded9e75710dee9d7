"""Drop-in replacement for the NumPy core of the classic "neural networks for recognition" coursework.

Replace ``from nn import *`` with ``from fastnn.nn import *`` (:mod:`fastnn.nn` re-exports this
module, ``fastnn.coursework.nn``; it is the path to type): the names,
signatures, the ``params`` dictionary (``W<name>``, ``b<name>``,
``cache_<name>``, ``grad_W<name>``, ``grad_b<name>``; ``M_<name>`` keys of the
momentum loop are yours to manage, and a ``collections.Counter`` works) and the
numbers are the same; the layers run as fused compiled kernels.

* Random draws come from NumPy's global generator in the same order as the
  plain version (``np.random.uniform`` for the weights, ``np.random.permutation``
  for the batches), so ``np.random.seed(42)`` reproduces a script's numbers.
* Arrays are float64 by default, as in NumPy; float32 input stays float32.
* An activation this module does not know (your own Python function) still
  works: the product and bias run compiled, then your function is called.
* An activation registered with ``fastnn.register_activation(name, fn, derivative)``
  runs fused and compiled: pass its name, ``forward(X, params, "layer1", "swish")``
  and ``backwards(delta, params, "layer1", "swish")``, or the functions
  ``swish, swish_deriv = activation_functions("swish")``.  Its derivative is a
  function of the pre-activation, which ``backwards`` takes from the cache.

Examples
--------
>>> import numpy as np
>>> from fastnn.nn import initialize_weights, forward, softmax, compute_loss_and_acc
>>> np.random.seed(0)
>>> params = {}
>>> initialize_weights(2, 3, params, "layer1")
>>> probs = forward(np.ones((4, 2)), params, "layer1", softmax)
>>> probs.shape
(4, 3)
"""

from __future__ import annotations

import numbers

import numpy as np

from .. import functional as F
from .. import activations
from ..functional._checks import activation_code, activation_code_of
from .._kernels import _core

__all__ = [
    "initialize_weights",
    "sigmoid",
    "sigmoid_deriv",
    "tanh",
    "tanh_deriv",
    "relu",
    "relu_deriv",
    "linear",
    "linear_deriv",
    "softmax",
    "activation_functions",
    "forward",
    "compute_loss_and_acc",
    "backwards",
    "get_random_batches",
]


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


def initialize_weights(in_size, out_size, params, name=""):
    """Xavier-uniform weights (Var = 2 / (in + out)) and a zero bias, stored in ``params``.

    Parameters
    ----------
    in_size, out_size : int
    params : dict or collections.Counter
        Receives ``params['W' + name]`` of shape (in_size, out_size) and ``params['b' + name]`` of shape (out_size,).
    name : str
    """
    in_size = _positive_int(in_size, "in_size")
    out_size = _positive_int(out_size, "out_size")
    var = 2.0 / (in_size + out_size)
    limit = np.sqrt(3.0 * var)  # Var(U(-a, a)) = a^2 / 3
    params["W" + name] = np.random.uniform(-limit, limit, (in_size, out_size))
    params["b" + name] = np.zeros(out_size)


def _elementwise(x, code: int):
    """Apply an activation kernel to an array of any shape (a scalar gives a scalar)."""
    a = np.asarray(x)
    dtype = F.float_dtype(a)
    flat = np.ascontiguousarray(a, dtype=dtype).reshape(1, -1)
    out = np.empty_like(flat)
    _core.activate(flat, code, out)
    return out.reshape(a.shape) if a.ndim else out[0, 0]


def _elementwise_deriv(x, code: int):
    a = np.asarray(x)
    dtype = F.float_dtype(a)
    flat = np.ascontiguousarray(a, dtype=dtype).reshape(1, -1)
    out = np.empty_like(flat)
    _core.activation_deriv(flat, code, out)
    return out.reshape(a.shape) if a.ndim else out[0, 0]


def sigmoid(x):
    """Logistic sigmoid ``1 / (1 + exp(-x))``, element-wise; no overflow warning, exact 0.0/1.0 at -/+1000."""
    return _elementwise(x, _core.ACTIVATIONS["sigmoid"])


def sigmoid_deriv(post_act):
    """Sigmoid derivative from the post-activation: ``post_act * (1 - post_act)``."""
    return _elementwise_deriv(post_act, _core.ACTIVATIONS["sigmoid"])


def tanh(x):
    """Hyperbolic tangent, element-wise."""
    return _elementwise(x, _core.ACTIVATIONS["tanh"])


def tanh_deriv(post_act):
    """Tanh derivative from the post-activation: ``1 - post_act**2``."""
    return _elementwise_deriv(post_act, _core.ACTIVATIONS["tanh"])


def relu(x):
    """Rectified linear unit ``max(x, 0)``, element-wise."""
    return _elementwise(x, _core.ACTIVATIONS["relu"])


def relu_deriv(post_act):
    """ReLU derivative from the post-activation: 1.0 where ``post_act > 0``, else 0.0."""
    return _elementwise_deriv(post_act, _core.ACTIVATIONS["relu"])


def linear(x):
    """Identity activation (returns a float copy)."""
    return _elementwise(x, _core.ACTIVATIONS["linear"])


def linear_deriv(post_act):
    """Derivative of the identity: ones shaped like ``post_act``."""
    return _elementwise_deriv(post_act, _core.ACTIVATIONS["linear"])


def softmax(x):
    """Row-wise softmax of a (n, c) array (a 1-D array is one row), stable for any magnitude."""
    a = np.asarray(x)
    if a.ndim not in (1, 2):
        raise ValueError(f"x: softmax expects a (n, c) array of logits (or one row), got shape {a.shape}")
    return F.softmax(a)


class RegisteredFunction:
    """A registered activation (``fastnn.register_activation``), or its derivative, as a function of the
    drop-in: calling it applies the compiled function element-wise, and ``forward``/``backwards`` run it
    fused.  The derivative takes the *pre*-activation (``backwards`` passes the cached one)."""

    def __init__(self, name: str, derivative: bool):
        self.name = name
        self.derivative = derivative
        self.__name__ = name + ("_deriv" if derivative else "")

    def __call__(self, x):
        code = activation_code_of(_registered_name(self.name, self.__name__))
        return (_elementwise_deriv if self.derivative else _elementwise)(x, code)

    def __eq__(self, other):
        return isinstance(other, RegisteredFunction) and (self.name, self.derivative) == (other.name,
                                                                                           other.derivative)

    def __hash__(self):
        return hash((RegisteredFunction, self.name, self.derivative))

    def __repr__(self):
        what = " derivative (of the pre-activation)" if self.derivative else ""
        return f"<registered activation {self.name!r}{what}>"


def _registered_name(name: str, what: str) -> str:
    if not activations.is_registered(name):
        raise ValueError(f"{what}: {name!r} is not a registered activation in this process; call "
                         f"fastnn.register_activation({name!r}, fn, derivative) first")
    return name


def activation_functions(name: str):
    """The drop-in's pair of functions of an activation, built-in or registered, by name.

    Parameters
    ----------
    name : str
        'sigmoid', 'tanh', 'relu', 'linear' (this module's functions; 'softmax' has no element-wise
        derivative) or a name registered with ``fastnn.register_activation``.

    Returns
    -------
    activation, activation_deriv : callables
        For ``forward`` and ``backwards``.  A registered activation's derivative takes the pre-activation
        (``backwards`` passes the cached one); a built-in's takes the post-activation, as the coursework's.

    Examples
    --------
    >>> act, act_deriv = activation_functions("tanh")
    >>> act is tanh and act_deriv is tanh_deriv
    True
    """
    builtin = {"sigmoid": (sigmoid, sigmoid_deriv), "tanh": (tanh, tanh_deriv), "relu": (relu, relu_deriv),
               "linear": (linear, linear_deriv)}
    if isinstance(name, str) and name in builtin:
        return builtin[name]
    if not activations.is_registered(name):
        raise activations.unknown_activation("name", name, tuple(builtin))
    return RegisteredFunction(name, False), RegisteredFunction(name, True)


#: Our activation functions -> kernel activation names, for the fused path.
_FUSED = {sigmoid: "sigmoid", tanh: "tanh", relu: "relu", linear: "linear", softmax: "softmax"}
_FUSED_DERIV = {sigmoid_deriv: "sigmoid", tanh_deriv: "tanh", relu_deriv: "relu", linear_deriv: "linear"}


def _fused_name(f, what: str, table):
    """The kernels' activation name of ``f`` (one of this module's functions, a name, a registered
    activation's function), or None for a function of the user's."""
    if isinstance(f, RegisteredFunction):
        return _registered_name(f.name, what)
    if isinstance(f, str):
        activation_code(f, allow_softmax=what == "activation")  # a clear error for an unknown name
        return f
    try:
        return table.get(f)
    except TypeError:  # not hashable: the user's callable object
        return None


def _layer(params, name: str):
    for key in ("W" + name, "b" + name):
        if key not in params or isinstance(params[key], numbers.Number):
            raise KeyError(f"params has no array {key!r}; "
                           f"call initialize_weights(in_size, out_size, params, {name!r}) first")
    return params["W" + name], params["b" + name]


def forward(X, params, name="", activation=sigmoid):
    """Forward pass of one dense layer: ``post_act = activation(X @ W + b)``.

    Parameters
    ----------
    X : (n, in_size) ndarray
    params : dict
        Holds ``W<name>`` and ``b<name>``; receives ``cache_<name> = (X, pre_act, post_act)``.
    name : str
    activation : callable or str
        ``sigmoid``, ``tanh``, ``relu``, ``linear`` or ``softmax`` from this module run fused, as do an
        activation's name and a registered activation (its name, or its function from
        :func:`activation_functions`); any other function is applied to the pre-activation as is.

    Returns
    -------
    post_act : (n, out_size) ndarray
    """
    W, b = _layer(params, name)
    fused = _fused_name(activation, "activation", _FUSED)
    if fused is not None:
        pre_act, post_act = F.dense_forward(X, W, b, fused)
    else:
        if not callable(activation):
            raise TypeError(f"activation: expected a function, got {type(activation).__name__}")
        pre_act, _ = F.dense_forward(X, W, b, "linear")
        post_act = activation(pre_act)
    params["cache_" + name] = (X, pre_act, post_act)
    return post_act


def compute_loss_and_acc(y, probs):
    """Summed cross-entropy ``-sum(y * log(probs))`` and accuracy of the argmax.

    Parameters
    ----------
    y : (n, c) one-hot ndarray
    probs : (n, c) ndarray of probabilities

    Returns
    -------
    loss : float
    acc : float
    """
    return F.cross_entropy(y, probs)


def backwards(delta, params, name="", activation_deriv=sigmoid_deriv):
    """Backward pass of one dense layer.

    Parameters
    ----------
    delta : (n, out_size) ndarray
        Gradient of the loss with respect to this layer's output.
    params : dict
        Holds ``W<name>`` and ``cache_<name>``; receives ``grad_W<name>`` and ``grad_b<name>``.
    name : str
    activation_deriv : callable or str
        Derivative written from the post-activation (``sigmoid_deriv``, ``tanh_deriv``,
        ``relu_deriv``, ``linear_deriv`` run fused; any other function is called as is); or an
        activation's name, or a registered activation's derivative from :func:`activation_functions`,
        fused too (a registered derivative reads the cached pre-activation).

    Returns
    -------
    grad_X : (n, in_size) ndarray
    """
    W, _ = _layer(params, name)
    cache = params.get("cache_" + name) if hasattr(params, "get") else None
    if not isinstance(cache, tuple) or len(cache) != 3:
        raise KeyError(f"params has no cache_{name!r}; call forward(X, params, {name!r}, ...) before backwards")
    X, pre_act, post_act = cache
    fused = _fused_name(activation_deriv, "activation_deriv", _FUSED_DERIV)
    if fused is None:
        if not callable(activation_deriv):
            raise TypeError(f"activation_deriv: expected a function, got {type(activation_deriv).__name__}")
        delta = np.asarray(activation_deriv(post_act)) * delta
        fused = "linear"
    grad_W, grad_b, grad_X = F.dense_backward(delta, post_act, X, W, fused, pre=pre_act)
    params["grad_W" + name] = grad_W
    params["grad_b" + name] = grad_b
    return grad_X


def get_random_batches(x, y, batch_size):
    """Split ``(x, y)`` into shuffled mini-batches drawn with ``np.random.permutation``.

    Parameters
    ----------
    x : (N, ...) ndarray
    y : (N, ...) ndarray
    batch_size : int
        The last batch may be shorter.

    Returns
    -------
    list of (xb, yb) tuples
        Rows ``idx[i:i + batch_size]`` of a permutation ``idx``; one compiled gather copies
        the rows, and the batches are consecutive slices of that copy.
    """
    batch_size = _positive_int(batch_size, "batch_size")
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim == 0 or y.ndim == 0 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y: expected the same number of rows, got shapes {x.shape} and {y.shape}")
    N = x.shape[0]
    if N == 0:
        raise ValueError("x: empty data set (0 rows); nothing to batch")
    idx = np.random.permutation(N)
    xs = F.gather_rows(x, idx)
    ys = F.gather_rows(y, idx)
    return [(xs[i:i + batch_size], ys[i:i + batch_size]) for i in range(0, N, batch_size)]
