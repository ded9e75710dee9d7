"""The old home of :class:`fastnn.models.CNN` (now :mod:`fastnn.models.cnn`); ``from fastnn.cnn import CNN``
keeps working."""

from .models.cnn import CNN, EVAL_ELEMENTS, INITS

__all__ = ["CNN", "INITS", "EVAL_ELEMENTS"]
