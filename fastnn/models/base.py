"""What every fastnn model is: the written interface that the trainer, the exporters and the file format use.

A model (:class:`~fastnn.models.MLP`, :class:`~fastnn.models.CNN`) keeps all its parameters in one flat
vector ``theta`` and offers:

- ``dtype``, ``loss``, ``theta``, ``input_shape`` (one sample's shape) and ``n_outputs``;
- ``check_inputs(X, name)`` and ``forward(X, logits=False)``; from :class:`Model`: ``predict_proba``,
  ``predict`` and ``evaluate``;
- ``parameters()``: the weight and bias arrays, views of ``theta``;
- ``layer_list()``: the network as a neutral list of layers (below), which the ONNX and PyTorch exporters
  read: they import no model class;
- ``epoch_plan(**options)``: the compiled epoch the model builds for itself (``fastnn.functional``'s plan
  for its layers and the optimizer options), or None when the compiled epoch cannot run it;
- ``loss_gradient(X, T, grad, weights=, reduction=)``: one batch's summed loss, correct predictions and gradient through
  ``fastnn.functional``, the path of a model trained batch by batch (and the reference for the epoch);
- ``save(path)``, ``load(path)`` and ``archive_members()``: the file format of
  :mod:`fastnn.models.fileformat`.

The layer list, input to output (arrays are views of ``theta``, in fastnn's layouts: images NHWC):

- ``("dense", W (n_in, n_out), b (n_out,), activation)``;
- ``("conv", W (KH, KW, C_in, C_out), b (C_out,), stride, (top, left, bottom, right) zero padding,
  activation)``;
- ``("maxpool", size)``: non-overlapping ``size`` x ``size`` windows;
- ``("flatten", (H, W, C))``: an image flattened in C order, (H, W, C);
- ``("avgpool", size)``, ``("globalavgpool", (H, W, C))`` (each channel's mean, flat),
  ``("dropout", rate)`` (the identity in inference) and ``("batchnorm", gamma, beta, running_mean,
  running_var, eps, momentum)`` (over the last axis; in inference the running statistics).

``activation`` is one of ``fastnn.functional.ACTIVATIONS`` or a name registered with ``fastnn.register_activation``
(which the exporters refuse: ONNX and PyTorch have no operator for it).
"""

from __future__ import annotations

import abc

import numpy as np

from .. import functional as F

LOSSES = F.LOSSES
#: Rows per chunk when a model runs over a whole data set (bounds the memory of ``forward``).
EVAL_CHUNK = 4096


def check_loss_and_dtype(loss, activation: str, n_out: int, dtype):
    """A model's loss (inferred from its output layer when None, ``fastnn.functional.check_loss``) and dtype,
    checked: (loss, np.dtype)."""
    loss = F.check_loss(loss, activation, n_out)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype: expected float32 or float64, got {dtype}")
    return loss, dtype


class Model(abc.ABC):
    """The base of every fastnn model: the interface the trainer, the exporters and the file format use (see
    the module's docstring), and what follows from it: probabilities, class predictions, and the loss and
    accuracy over a data set.  A model also has the attributes ``dtype``, ``loss``, ``theta`` (every parameter, one
    flat vector), ``meta`` and ``input_shape`` (one sample's shape: ``(n_features,)`` or ``(H, W, C)``)."""

    @property
    @abc.abstractmethod
    def n_outputs(self) -> int:
        """Width of the last layer."""

    @abc.abstractmethod
    def check_inputs(self, X, name="X") -> np.ndarray:
        """X as a C-contiguous (n, *input_shape) array of the model's dtype with finite values, or a ValueError
        naming ``name``."""

    @abc.abstractmethod
    def forward(self, X, *, logits=False) -> np.ndarray:
        """The network's (n, n_outputs) output over ``X`` (the last layer's pre-activation with ``logits``)."""

    @abc.abstractmethod
    def parameters(self) -> list:
        """The weight and bias arrays, layer by layer (views of ``theta``)."""

    @abc.abstractmethod
    def layer_list(self) -> list:
        """The network as the neutral layer list of the module's docstring (arrays are views of ``theta``)."""

    @abc.abstractmethod
    def epoch_plan(self, **options):
        """The compiled epoch of this network for the optimizer ``options`` (optimizer, batch_size, momentum,
        betas, eps, weight_decay), a plan of ``fastnn.functional``, or None when the compiled epoch cannot run
        it (the model then trains batch by batch, through :meth:`loss_gradient`)."""

    @abc.abstractmethod
    def loss_gradient(self, X, T, grad=None, *, theta=None, weights=None, reduction="sum", training=None):
        """One batch's summed loss, correct predictions, and the gradient of the loss w.r.t. ``theta``, layer
        by layer through ``fastnn.functional`` (the batch-by-batch path, and the compiled epoch's reference).

        Parameters
        ----------
        X : (n, *input_shape) ndarray of the model's dtype (checked, e.g. by :meth:`check_inputs`)
        T : (n, n_outputs) ndarray of the model's dtype (one-hot rows, 0/1, or values)
        grad : (theta.size,) ndarray, optional
            Written in place (allocated when None).
        theta : (theta.size,) ndarray, optional
            Parameters to differentiate at (default the model's).
        weights : (n,) ndarray of float, optional
            Row weights (sample or class weights) of the loss, as ``fastnn.functional.batch_loss`` takes them.
        reduction : {'sum', 'mean'}
            The batch's loss summed over its rows or averaged (``fastnn.functional.batch_loss``).
        training : (seed, step), optional
            The training batch this is (the trainer's seed and step): Dropout layers apply that step's masks
            (``fastnn.functional.dropout``) and BatchNorm layers update their running statistics.  None (a
            gradient check): no dropout, and BatchNorm uses the batch's statistics without keeping them.

        Returns
        -------
        loss : float
            The batch's loss, weighted and reduced as asked.
        correct : int
        grad : ndarray, laid out like ``theta``
        """

    @abc.abstractmethod
    def archive_members(self, *, storage=None, meta=None) -> dict:
        """The arrays ``save`` writes (``fastnn.models.fileformat.write_model_file``), by member name."""

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (softmax or sigmoid outputs), (n, n_outputs)."""
        return self.forward(X)

    def predict(self, X) -> np.ndarray:
        """Predicted class indices (n,); for one sigmoid output, 1 where p >= 0.5."""
        P = self.forward(X)
        if P.shape[1] == 1:
            return (P[:, 0] >= 0.5).astype(np.int64)
        return P.argmax(axis=1)

    def evaluate(self, X, T):
        """Loss averaged per sample and accuracy (NaN for the squared error) over a data set.

        Parameters
        ----------
        X : (n, ...) ndarray
            The model's inputs (an MLP's rows, a CNN's images).
        T : targets: one-hot (n, c) or class indices (n,) for cross-entropy, (n, 1) 0/1 for binary
            cross-entropy, (n, n_outputs) for squared error.

        Returns
        -------
        loss : float
        accuracy : float
        """
        X = self.check_inputs(X)
        if X.shape[0] == 0:
            raise ValueError("X: empty data set (0 rows)")
        entry = F.LOSS_TABLE[self.loss]
        Z = self.forward(X, logits=entry.from_logits)
        loss, _, correct = F.batch_loss(self.loss, Z, T)
        return loss / X.shape[0], correct / X.shape[0] if entry.counts_correct else float("nan")


#: The old name of :class:`Model`.
Predictor = Model
