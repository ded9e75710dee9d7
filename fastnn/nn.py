"""Drop-in replacement for the NumPy core of the classic "neural networks for recognition" coursework.

Replace ``from nn import *`` with ``from fastnn.nn import *`` (or ``import fastnn.nn as nn``): this is the path
to type.  The code lives in :mod:`fastnn.coursework.nn`, beside the plain NumPy original it is held to
(:mod:`fastnn.coursework.numpy_nn`) and the coursework's training loop (:mod:`fastnn.coursework`); this module
re-exports its names, the same objects.
"""

from .coursework.nn import *  # noqa: F403
from .coursework.nn import __all__  # noqa: F401
