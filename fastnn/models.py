"""Models: a multilayer perceptron of dense layers whose parameters live in one flat vector.

Weights and biases are views of ``MLP.theta``, so a whole model is updated by
one optimizer call and trained by one compiled epoch kernel
(see ``fastnn.train``).  Models save to and load from ``.npz`` files, written
atomically and read with ``allow_pickle=False``.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from . import functional as F

LOSSES = F.LOSSES
#: Rows per chunk when a model runs over a whole data set (bounds the memory of ``forward``).
EVAL_CHUNK = 4096


class MLP:
    """A stack of dense layers, usable as a classifier or an autoencoder.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths from input to output, e.g. ``[1024, 64, 36]``.
    activations : sequence of str
        One per layer, from {'sigmoid', 'tanh', 'relu', 'linear', 'softmax'}; 'softmax' only last.
    loss : {'cross_entropy', 'binary_cross_entropy', 'squared_error'}, optional
        Inferred when omitted: softmax output -> cross-entropy, one sigmoid output -> binary
        cross-entropy, anything else -> total squared error (an autoencoder).
    init : {'xavier', 'normal'}
        Xavier uniform (Var = 2 / (n_in + n_out)) or N(0, sigma); biases start at zero.
    sigma : float
        Standard deviation of the 'normal' init.
    dtype : {'float32', 'float64'}
    seed : int
        Seeds ``np.random.default_rng`` for the weights.

    Examples
    --------
    >>> model = MLP([1024, 64, 36], ["sigmoid", "softmax"], seed=0)
    >>> model
    MLP(1024-64-36, sigmoid/softmax, loss='cross_entropy', float64, 67,940 parameters)
    >>> model.predict_proba(np.zeros((2, 1024))).shape
    (2, 36)
    """

    def __init__(self, sizes, activations, *, loss=None, init="xavier", sigma=0.01, dtype="float64", seed=0):
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"sizes: expected at least two positive layer widths, got {sizes}")
        activations = list(activations)
        if len(activations) != len(sizes) - 1:
            raise ValueError(f"activations: expected {len(sizes) - 1} (one per layer), got {len(activations)}")
        for i, a in enumerate(activations):
            if a not in F.ACTIVATIONS or (a == "softmax" and i != len(activations) - 1):
                raise ValueError(f"activations[{i}]: expected one of {F.ACTIVATIONS} (softmax only last), got {a!r}")
        if loss is None:
            if activations[-1] == "softmax":
                loss = "cross_entropy"
            elif activations[-1] == "sigmoid" and sizes[-1] == 1:
                loss = "binary_cross_entropy"
            else:
                loss = "squared_error"
        if loss not in LOSSES:
            raise ValueError(f"loss: expected one of {LOSSES}, got {loss!r}")
        if loss == "cross_entropy" and activations[-1] != "softmax":
            raise ValueError("loss 'cross_entropy' needs a 'softmax' output layer")
        if loss == "binary_cross_entropy" and (activations[-1] != "sigmoid" or sizes[-1] != 1):
            raise ValueError("loss 'binary_cross_entropy' needs one 'sigmoid' output unit")
        if loss == "squared_error" and activations[-1] == "softmax":
            raise ValueError("loss 'squared_error' with a softmax output is not supported; use 'cross_entropy'")
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype: expected float32 or float64, got {dtype}")
        self.sizes = sizes
        self.activations = activations
        self.loss = loss
        self.dtype = dtype
        self._offsets, n_params = F.parameter_offsets(sizes)
        self.theta = np.zeros(n_params, dtype=dtype)
        self.init(init, sigma=sigma, seed=seed)

    # ----------------------------------------------------------------- parameters

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    def _weight(self, vec, l):
        k, m, w = self.sizes[l], self.sizes[l + 1], self._offsets[l][0]
        return vec[w:w + k * m].reshape(k, m)

    def _bias(self, vec, l):
        m, b = self.sizes[l + 1], self._offsets[l][1]
        return vec[b:b + m]

    @property
    def weights(self):
        """List of (n_in, n_out) weight matrices, views of ``theta``."""
        return [self._weight(self.theta, l) for l in range(self.n_layers)]

    @property
    def biases(self):
        """List of (n_out,) bias vectors, views of ``theta``."""
        return [self._bias(self.theta, l) for l in range(self.n_layers)]

    def parameters(self):
        """Weights and biases, layer by layer: [W0, b0, W1, b1, ...] (views of ``theta``)."""
        return [p for l in range(self.n_layers) for p in (self._weight(self.theta, l), self._bias(self.theta, l))]

    def init(self, init="xavier", *, sigma=0.01, seed=0, rng=None):
        """(Re)initialise the weights (Xavier uniform or N(0, sigma)) and zero the biases.

        Parameters
        ----------
        init : {'xavier', 'normal'}
        sigma : float
            Standard deviation of 'normal'.
        seed : int
            Seeds ``np.random.default_rng`` when ``rng`` is not given.
        rng : numpy.random.Generator or numpy.random.RandomState, optional
            Draw from this generator instead. A ``RandomState(seed)`` reproduces the coursework's
            ``np.random.seed(seed)`` followed by ``initialize_weights`` layer by layer exactly.
        """
        if rng is None:
            rng = np.random.default_rng(seed)
        for l in range(self.n_layers):
            k, m = self.sizes[l], self.sizes[l + 1]
            if init == "xavier":
                limit = np.sqrt(3.0 * (2.0 / (k + m)))  # Var(U(-a, a)) = a^2 / 3 = 2 / (k + m)
                W = rng.uniform(-limit, limit, (k, m))
            elif init == "normal":
                if not sigma > 0:
                    raise ValueError(f"sigma: expected a positive standard deviation, got {sigma!r}")
                W = rng.normal(0.0, sigma, (k, m))
            else:
                raise ValueError(f"init: expected 'xavier' or 'normal', got {init!r}")
            self._weight(self.theta, l)[...] = W
            self._bias(self.theta, l)[...] = 0
        return self

    def __repr__(self):
        return (f"MLP({'-'.join(map(str, self.sizes))}, {'/'.join(self.activations)}, loss={self.loss!r}, "
                f"{self.dtype}, {self.theta.size:,} parameters)")

    # -------------------------------------------------------------------- running

    def check_inputs(self, X, name="X") -> np.ndarray:
        """X as a C-contiguous (n, sizes[0]) array of the model's dtype, with finite values."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.sizes[0]:
            raise ValueError(f"{name}: expected shape (n_samples, {self.sizes[0]}), got shape {X.shape}")
        F.float_dtype(X)
        X = np.ascontiguousarray(X, dtype=self.dtype)
        if not F.all_finite(X):
            raise ValueError(f"{name}: contains NaN or inf values")
        return X

    def forward(self, X, *, logits=False) -> np.ndarray:
        """Run the network over ``X`` in chunks of EVAL_CHUNK rows.

        Parameters
        ----------
        X : (n, sizes[0]) ndarray
        logits : bool
            Return the last layer's pre-activation instead of its output.

        Returns
        -------
        (n, sizes[-1]) ndarray of the model's dtype
        """
        X = self.check_inputs(X)
        out = np.empty((X.shape[0], self.sizes[-1]), dtype=self.dtype)
        for s in range(0, X.shape[0], EVAL_CHUNK):
            h = X[s:s + EVAL_CHUNK]
            for l in range(self.n_layers):
                pre, h = F.dense_forward(h, self._weight(self.theta, l), self._bias(self.theta, l),
                                         self.activations[l])
            out[s:s + EVAL_CHUNK] = pre if logits else h
        return out

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (softmax or sigmoid outputs), (n, n_classes)."""
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
        X : (n, sizes[0]) ndarray
        T : targets: one-hot (n, c) or class indices (n,) for cross-entropy, (n, 1) 0/1 for binary
            cross-entropy, (n, sizes[-1]) for squared error.

        Returns
        -------
        loss : float
        accuracy : float
        """
        X = self.check_inputs(X)
        if X.shape[0] == 0:
            raise ValueError("X: empty data set (0 rows)")
        Z = self.forward(X, logits=self.loss != "squared_error")
        if self.loss == "cross_entropy":
            r = F.softmax_cross_entropy(Z, T)
        elif self.loss == "binary_cross_entropy":
            r = F.sigmoid_binary_cross_entropy(Z, T)
        else:
            loss, _ = F.squared_error(Z, T)
            return loss / X.shape[0], float("nan")
        return r.loss / X.shape[0], r.accuracy

    # ------------------------------------------------------------------ persistence

    def save(self, path) -> Path:
        """Write the model to an ``.npz`` file atomically (a temporary file, then a rename)."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(".npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, format=np.array("fastnn.MLP/1"), sizes=np.array(self.sizes, dtype=np.int64),
                         activations=np.array(self.activations), loss=np.array(self.loss), theta=self.theta)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return path

    @classmethod
    def load(cls, path) -> "MLP":
        """Read a model written by :meth:`save` (``allow_pickle=False``: nothing is unpickled)."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        except FileNotFoundError:
            raise
        except (zipfile.BadZipFile, OSError, EOFError, KeyError, ValueError) as exc:
            # ValueError: pickled (object) content, which allow_pickle=False refuses to load.
            raise ValueError(f"{path}: not a readable fastnn .npz model file ({exc})") from None
        missing = {"format", "sizes", "activations", "loss", "theta"} - set(arrays)
        if missing:
            raise ValueError(f"{path}: not a fastnn model file (missing {sorted(missing)})")
        if str(arrays["format"]) != "fastnn.MLP/1":
            raise ValueError(f"{path}: unknown model format {str(arrays['format'])!r}")
        sizes, theta = arrays["sizes"], arrays["theta"]
        acts, loss = [str(a) for a in arrays["activations"]], str(arrays["loss"])
        if theta.dtype not in (np.float32, np.float64) or not np.all(np.isfinite(theta)):
            raise ValueError(f"{path}: the parameters must be finite float32 or float64 values")
        try:
            model = cls(sizes, acts, loss=loss, dtype=theta.dtype)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: invalid model description ({exc})") from None
        if theta.shape != model.theta.shape:
            raise ValueError(f"{path}: {theta.size} parameters stored, but sizes {list(sizes)} need {model.theta.size}")
        model.theta[...] = theta
        return model
