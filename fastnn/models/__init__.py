"""fastnn's models, behind one written interface (:mod:`fastnn.models.base`).

- :class:`MLP` (:mod:`fastnn.models.mlp`): dense layers;
- :class:`CNN` (:mod:`fastnn.models.cnn`): a stack of the layers of :mod:`fastnn.models.layers` (also
  importable as ``fastnn.layers``; ``fastnn.cnn.CNN`` is the CNN's old home and still works);
- :mod:`fastnn.models.fileformat`: their ``.npz`` files, read without unpickling anything
  (:class:`ModelFileError` for any file that cannot be used).

The trainer (``fastnn.train``), the exporters (``fastnn.onnx``, ``fastnn.torch``) and the file format use
the interface of :class:`Model`, never a concrete class.

Examples
--------
>>> from fastnn.models import MLP
>>> MLP([1024, 64, 36], ["sigmoid", "softmax"])
MLP(1024-64-36, sigmoid/softmax, loss='cross_entropy', float64, 67,940 parameters)
"""

from .base import EVAL_CHUNK, LOSSES, Model, Predictor, check_loss_and_dtype
from .cnn import CNN
from .fileformat import (MAX_MODEL_LAYERS, MAX_MODEL_META_BYTES, MAX_MODEL_PARAMS, MAX_PARAMS_ENV,
                         MAX_ZIP_DIRECTORY_BYTES, MODEL_FILE_KINDS, ModelFileError)
from .mlp import MLP

__all__ = ["Model", "Predictor", "MLP", "CNN", "ModelFileError", "LOSSES", "EVAL_CHUNK", "check_loss_and_dtype",
           "MAX_MODEL_PARAMS", "MAX_PARAMS_ENV", "MAX_MODEL_LAYERS", "MAX_MODEL_META_BYTES",
           "MAX_ZIP_DIRECTORY_BYTES", "MODEL_FILE_KINDS"]
