"""fastnn: small dense neural networks on the CPU, fast, with a drop-in NumPy coursework API."""

__version__ = "0.1.0"


def __getattr__(name):
    # ``fastnn.register_activation``, imported on first use: ``import fastnn`` loads neither the compiled core
    # nor Numba (which register_activation imports only when it is called).
    if name == "register_activation":
        from .activations import register_activation

        return register_activation
    raise AttributeError(f"module 'fastnn' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + ["register_activation"])
