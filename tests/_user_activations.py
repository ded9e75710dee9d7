"""Scalar activations written with ``math``, registered by the tests with ``fastnn.register_activation`` (in a
file, so that Numba caches their compiled code), and their NumPy references (in tests/_reference.py)."""

import math


def sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z))


def sigmoid_deriv(z):
    s = 1.0 / (1.0 + math.exp(-z))
    return s * (1.0 - s)


def tanh(z):
    return math.tanh(z)


def tanh_deriv(z):
    t = math.tanh(z)
    return 1.0 - t * t


def softplus(z):
    # log(1 + e^z) without overflow: max(z, 0) + log1p(e^-|z|)
    return max(z, 0.0) + math.log1p(math.exp(-abs(z)))


def softplus_deriv(z):
    return 1.0 / (1.0 + math.exp(-z))


#: registered name -> (fn, derivative)
FUNCTIONS = {"u_sigmoid": (sigmoid, sigmoid_deriv), "u_tanh": (tanh, tanh_deriv),
             "u_softplus": (softplus, softplus_deriv)}


def register_all():
    import fastnn

    for name, (fn, deriv) in FUNCTIONS.items():
        fastnn.register_activation(name, fn, deriv)
