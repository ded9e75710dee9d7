"""The multilayer perceptron: dense layers whose parameters live in one flat vector.

Weights and biases are views of ``MLP.theta``, so a whole model is updated by one optimizer call and
trained by one compiled epoch (see ``fastnn.train``).  Its files are those of
:mod:`fastnn.models.fileformat`.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path

import numpy as np

from .. import functional as F
from .._kernels import _core
from ..functional._checks import activation_code
from ..activations import is_registered
from .base import EVAL_CHUNK, Model, check_loss_and_dtype
from .fileformat import (MAX_MODEL_LAYERS, MAX_PARAMS_ENV, ModelFileError, max_params_limit, model_members,
                         meta_member, model_dtype, open_npy_member, read_model_file, read_parameters, read_small_member,
                         stored_parameters, write_model_file)

_FORMAT = "fastnn.MLP/1"
_MEMBERS = ("format", "sizes", "activations", "loss", "theta")
_SAVE_HINT = "pass a model file written by MLP.save or CNN.save (an .npz)"


def _check_sigma(sigma, dtype) -> float:
    """sigma as a float, refused unless it is a finite standard deviation > 0 that the dtype can hold."""
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real):
        raise TypeError(f"sigma: expected a real number, got {type(sigma).__name__}")
    value = float(sigma)
    # draws of N(0, sigma) stay well within 64 sigma, so weights of such a sigma are finite in the dtype
    most = float(np.finfo(dtype).max) / 64
    if not (math.isfinite(value) and 0 < value <= most):
        raise ValueError(f"sigma: expected a finite standard deviation in (0, {most:.3g}] for {np.dtype(dtype)} "
                         f"weights, got {sigma!r}")
    return value


class MLP(Model):
    """A stack of dense layers, usable as a classifier or an autoencoder.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths from input to output, e.g. ``[1024, 64, 36]``.
    activations : sequence of str
        One per layer (a list even for one layer: a lone string is refused), from {'sigmoid', 'tanh', 'relu',
        'linear', 'softmax'} or names registered with ``fastnn.register_activation``; 'softmax' only last.
    loss : {'cross_entropy', 'binary_cross_entropy', 'squared_error'}, optional
        Inferred when omitted: softmax output -> cross-entropy, one sigmoid output -> binary
        cross-entropy, anything else -> total squared error (an autoencoder).
    init : {'xavier', 'normal'}
        Xavier uniform (Var = 2 / (n_in + n_out)) or N(0, sigma); biases start at zero.
    sigma : float
        Standard deviation of the 'normal' init: finite and > 0 (and small enough for the dtype to hold the
        weights), checked before anything is allocated.
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
        sizes, activations, loss, dtype = self._check_architecture(sizes, activations, loss, dtype)
        if init not in ("xavier", "normal"):
            raise ValueError(f"init: expected 'xavier' or 'normal', got {init!r}")
        if init == "normal":
            sigma = _check_sigma(sigma, dtype)
        self._setup(sizes, activations, loss, dtype, np.zeros)
        self.init(init, sigma=sigma, seed=seed)

    @staticmethod
    def _check_architecture(sizes, activations, loss, dtype):
        """The constructor's checks: (sizes, activations, loss, dtype) normalised, or a ValueError/TypeError."""
        if isinstance(activations, str):  # one name, not a list: list("relu") would be four names
            sizes = list(sizes)
            n = len(sizes) - 1
            if n >= 1:  # (too few widths: check_layers says so)
                hidden = activations if activations in F.ACTIVATIONS and activations != "softmax" else "relu"
                example = [hidden] * (n - 1) + ["softmax"]
                raise ValueError(f"activations: expected a list of one name per layer (here {n}: e.g. {example}), "
                                 f"got the string {activations!r}")
        sizes, activations = F.check_layers(sizes, activations)
        loss, dtype = check_loss_and_dtype(loss, activations[-1], sizes[-1], dtype)
        return sizes, activations, loss, dtype

    def _setup(self, sizes, activations, loss, dtype, alloc):
        self.sizes = sizes
        self.activations = activations
        self.loss = loss
        self.dtype = dtype
        self._offsets, n_params = F.parameter_offsets(sizes)
        self.theta = alloc(n_params, dtype=dtype)
        #: Facts saved with the model (``save(meta=...)``), e.g. a shipped model's recipe and scores.
        self.meta = {}

    # ----------------------------------------------------------------- parameters

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    def weight_view(self, vec, l):
        """Layer ``l``'s (n_in, n_out) weight block of a parameter-shaped vector (``theta``, a gradient)."""
        k, m, w = self.sizes[l], self.sizes[l + 1], self._offsets[l][0]
        return vec[w:w + k * m].reshape(k, m)

    def bias_view(self, vec, l):
        """Layer ``l``'s (n_out,) bias block of a parameter-shaped vector."""
        m, b = self.sizes[l + 1], self._offsets[l][1]
        return vec[b:b + m]

    @property
    def weights(self):
        """List of (n_in, n_out) weight matrices, views of ``theta``."""
        return [self.weight_view(self.theta, l) for l in range(self.n_layers)]

    @property
    def biases(self):
        """List of (n_out,) bias vectors, views of ``theta``."""
        return [self.bias_view(self.theta, l) for l in range(self.n_layers)]

    def parameters(self):
        """Weights and biases, layer by layer: [W0, b0, W1, b1, ...] (views of ``theta``)."""
        return [p for l in range(self.n_layers)
                for p in (self.weight_view(self.theta, l), self.bias_view(self.theta, l))]

    def init(self, init="xavier", *, sigma=0.01, seed=0, rng=None):
        """(Re)initialise the weights (Xavier uniform or N(0, sigma)) and zero the biases.

        Parameters
        ----------
        init : {'xavier', 'normal'}
        sigma : float
            Standard deviation of 'normal' (finite, > 0).
        seed : int
            Seeds ``np.random.default_rng`` when ``rng`` is not given.
        rng : numpy.random.Generator or numpy.random.RandomState, optional
            Draw from this generator instead. A ``RandomState(seed)`` reproduces the coursework's
            ``np.random.seed(seed)`` followed by ``initialize_weights`` layer by layer exactly.
        """
        if init not in ("xavier", "normal"):
            raise ValueError(f"init: expected 'xavier' or 'normal', got {init!r}")
        if init == "normal":
            sigma = _check_sigma(sigma, self.dtype)
        if rng is None:
            rng = np.random.default_rng(seed)
        for l in range(self.n_layers):
            k, m = self.sizes[l], self.sizes[l + 1]
            if init == "xavier":
                limit = np.sqrt(3.0 * (2.0 / (k + m)))  # Var(U(-a, a)) = a^2 / 3 = 2 / (k + m)
                W = rng.uniform(-limit, limit, (k, m))
            else:
                W = rng.normal(0.0, sigma, (k, m))
            self.weight_view(self.theta, l)[...] = W
            self.bias_view(self.theta, l)[...] = 0
        return self

    def __repr__(self):
        return (f"MLP({'-'.join(map(str, self.sizes))}, {'/'.join(self.activations)}, loss={self.loss!r}, "
                f"{self.dtype}, {self.theta.size:,} parameters)")

    # -------------------------------------------------------------------- running

    def check_inputs(self, X, name="X") -> np.ndarray:
        """X as a C-contiguous (n, sizes[0]) array of the model's dtype, with finite values."""
        X = self._as_input(X, name)
        if not F.all_finite(X):
            raise ValueError(f"{name}: contains NaN or inf values")
        return X

    def _as_input(self, X, name="X") -> np.ndarray:
        """X as a C-contiguous (n, sizes[0]) array of the model's dtype (its values not checked)."""
        if not (type(X) is np.ndarray and X.dtype == self.dtype and X.ndim == 2 and X.flags.c_contiguous
                and X.shape[1] == self.sizes[0]):  # (else the checks and conversions below; the same errors)
            X = np.asarray(X)
            if X.ndim != 2 or X.shape[1] != self.sizes[0]:
                raise ValueError(f"{name}: expected shape (n_samples, {self.sizes[0]}), got shape {X.shape}")
            F.float_dtype(X)
            X = np.ascontiguousarray(X, dtype=self.dtype)
        return X

    def _forward_table(self):
        """The layers as ``_core.dense_stack_forward`` takes them: (n_layers, 5) int64 rows of n_in, n_out,
        W's and b's offsets in ``theta`` and the activation's code (kept while the layers stay the same)."""
        key = (tuple(self.sizes), tuple(self.activations))
        cached = getattr(self, "_table", None)
        if cached is None or cached[0] != key:
            rows = [(self.sizes[l], self.sizes[l + 1], self._offsets[l][0], self._offsets[l][1],
                     activation_code(self.activations[l])) for l in range(self.n_layers)]
            cached = self._table = (key, np.array(rows, dtype=np.int64))
        return cached[1]

    def forward(self, X, *, logits=False) -> np.ndarray:
        """Run the network over ``X`` in chunks of EVAL_CHUNK rows, each chunk through every layer in one
        compiled call (``dense_forward``'s kernels, layer after layer: the same numbers).

        Parameters
        ----------
        X : (n, sizes[0]) ndarray
        logits : bool
            Return the last layer's pre-activation instead of its output.

        Returns
        -------
        (n, sizes[-1]) ndarray of the model's dtype
        """
        X = self._as_input(X)  # (its values are checked in the compiled call, chunk by chunk)
        out = np.empty((X.shape[0], self.sizes[-1]), dtype=self.dtype)
        table = self._forward_table()
        width = max(self.sizes[1:-1], default=0)
        theta = np.ascontiguousarray(self.theta, dtype=self.dtype)
        for s in range(0, X.shape[0], EVAL_CHUNK):
            x = X[s:s + EVAL_CHUNK]
            if not _core.dense_stack_forward(x, theta, table, np.empty(2 * x.shape[0] * width, self.dtype),
                                             out[s:s + EVAL_CHUNK], logits, True):
                raise ValueError("X: contains NaN or inf values")
        return out

    # ----------------------------------------------------------------- the model interface

    @property
    def input_shape(self) -> tuple:
        """One sample's shape: ``(sizes[0],)``."""
        return (self.sizes[0],)

    @property
    def n_outputs(self) -> int:
        return self.sizes[-1]

    def layer_list(self):
        """The network as the neutral layer list of :mod:`fastnn.models.base` (what the exporters read):
        ``("dense", W, b, activation)`` per layer, the arrays views of ``theta``."""
        return [("dense", W, b, act) for W, b, act in zip(self.weights, self.biases, self.activations)]

    def epoch_plan(self, **options):
        """The compiled epoch of this network (``fastnn.functional.epoch_plan``; ``options`` the optimizer's:
        optimizer, batch_size, momentum, betas, eps, weight_decay)."""
        return F.epoch_plan(self.sizes, self.activations, self.loss, dtype=self.dtype, **options)

    def loss_gradient(self, X, T, grad=None, *, theta=None, weights=None, reduction="sum", training=None):
        """One batch's summed loss, correct predictions and gradient (:meth:`Model.loss_gradient`), dense
        layer by dense layer through ``fastnn.functional`` (no dropout or batch normalisation in an MLP:
        ``training`` changes nothing)."""
        theta = self.theta if theta is None else theta
        if grad is None:
            grad = np.zeros_like(theta)
        L = self.n_layers
        last_linear = F.LOSS_TABLE[self.loss].from_logits  # (the loss fuses the softmax/sigmoid)
        inputs, pres, posts, h = [], [], [], X
        for l in range(L):
            act = "linear" if (l == L - 1 and last_linear) else self.activations[l]
            inputs.append(h)
            pre, h = F.dense_forward(h, self.weight_view(theta, l), self.bias_view(theta, l), act)
            pres.append(pre if is_registered(act) else None)  # (a registered activation's derivative reads it)
            posts.append(h)
        loss, delta, correct = F.batch_loss(self.loss, h, T, weights=weights, reduction=reduction)
        if not np.isfinite(loss):
            return loss, correct, grad
        for l in range(L - 1, -1, -1):
            act = "linear" if (l == L - 1 and last_linear) else self.activations[l]
            gW, gb, delta = F.dense_backward(delta, posts[l], inputs[l], self.weight_view(theta, l), act,
                                             pre=pres[l], need_grad_X=l > 0)
            self.weight_view(grad, l)[...] = gW
            self.bias_view(grad, l)[...] = gb
        return loss, correct, grad

    # ------------------------------------------------------------------ persistence

    def save(self, path, *, storage=None, meta=None, overwrite=False) -> Path:
        """Write the model to an ``.npz`` file atomically; return its path (``.npz`` is appended if missing).

        The file is written to a temporary in the same folder, flushed to disk and renamed over ``path``
        (``fastnn._io.atomic_write``): a reader, a crash or a power cut leaves the old file or the new one,
        never a part of one, and temporaries left by earlier saves of ``path`` that were killed are
        removed.  A new file gets the mode the umask gives a new file (0o644 for the usual 0o022); an
        existing one keeps its mode.  An existing file that is read-only (see ``overwrite``) is refused.
        A symbolic link at ``path`` is replaced by the new file; the file it pointed to is left as it was.

        Parameters
        ----------
        path : str or os.PathLike
        storage : {None, 'float16'}
            Store the parameters in half precision (half the size of float32; loaded back as float32), as a
            model shipped in a package is; default: the model's dtype.
        meta : dict, optional
            JSON-serialisable facts about the model (its recipe, data, scores), read back as ``.meta``; at
            most ``MAX_MODEL_META_BYTES`` once encoded.
        overwrite : bool
            Replace ``path`` even when it is read-only: its mode gives its owner no write permission (as
            ``chmod 444`` leaves it), or this user cannot write it.  By default such a file is kept and a
            ``PermissionError`` naming it is raised; a writable file is always replaced.  A replaced
            read-only file stays read-only.

        Raises
        ------
        PermissionError
            ``path`` is read-only and ``overwrite`` is False, or its folder cannot be written.

        Examples
        --------
        >>> MLP([4, 3], ["softmax"]).save("/tmp/model.npz", overwrite=True)  # doctest: +SKIP
        PosixPath('/tmp/model.npz')
        """
        return write_model_file(path, self.archive_members(storage=storage, meta=meta), overwrite=overwrite)

    def archive_members(self, *, storage=None, meta=None) -> dict:
        """The arrays :meth:`save` writes, by member name (see :meth:`save` for ``storage`` and ``meta``)."""
        return dict(format=np.array(_FORMAT), sizes=np.array(self.sizes, dtype=np.int64),
                    activations=np.array(self.activations), loss=np.array(self.loss),
                    theta=stored_parameters(self.theta, storage), **meta_member(meta))

    @classmethod
    def load(cls, path, *, max_params=None) -> "MLP":
        """Read a model written by :meth:`save`.

        Nothing is unpickled (as with ``allow_pickle=False``), and a file is checked before anything large
        is allocated or decompressed: the zip directory's size, each member's ``.npy`` header (shape and
        dtype) against the member's stored size, the declared ``sizes`` against ``MAX_MODEL_LAYERS`` and
        the parameter limit, and the stored parameter vector against what ``sizes`` needs.  A file that
        fails raises ``ValueError`` saying what is wrong.

        Parameters
        ----------
        path : str or os.PathLike
        max_params : int, optional
            Most parameters to accept.  Default: ``$FASTNN_MAX_MODEL_PARAMS`` if set, else
            ``MAX_MODEL_PARAMS`` (50,000,000).

        Raises
        ------
        FileNotFoundError
            No file at ``path`` (nor at ``path`` + '.npz', the file ``save(path)`` writes, which is read when
            ``path`` is missing).
        ModelFileError
            (a ``ValueError``) Not a fastnn model file (a CNN or OCR model file: the message names its loader),
            a damaged one, or one over a limit: ``max_params``, ``MAX_MODEL_LAYERS``, ``MAX_MODEL_META_BYTES``
            (each small member), ``MAX_ZIP_DIRECTORY_BYTES``.
        ValueError
            ``max_params`` or ``$FASTNN_MAX_MODEL_PARAMS`` is not a positive whole number.
        """
        limit = max_params_limit(max_params)
        return read_model_file(path, lambda p, zf: cls.from_archive(p, zf, limit), _SAVE_HINT)

    @classmethod
    def from_archive(cls, path, zf, limit):
        """The model stored in the open archive ``zf`` (a ``zipfile.ZipFile`` or an :class:`ArchiveView`) of
        the file ``path``, with at most ``limit`` parameters: :meth:`load` after its file checks."""
        infos = model_members(path, zf, _MEMBERS, _FORMAT, "MLP.load", "a fastnn model file", _SAVE_HINT)
        sizes = read_small_member(path, zf, infos["sizes"], "sizes")
        if sizes.dtype.kind not in "iu" or sizes.ndim != 1:
            raise ModelFileError(f"{path}: 'sizes' must be a vector of layer widths (integers), got a {sizes.dtype} "
                                 f"array of shape {sizes.shape}")
        if sizes.size > MAX_MODEL_LAYERS + 1:
            raise ModelFileError(f"{path}: declares {sizes.size - 1:,} layers, more than MAX_MODEL_LAYERS "
                                 f"({MAX_MODEL_LAYERS:,})")
        sizes = [int(s) for s in sizes]
        acts = read_small_member(path, zf, infos["activations"], "activations")
        if acts.dtype.kind != "U" or acts.ndim != 1:
            raise ModelFileError(f"{path}: 'activations' must be a vector of names, got a {acts.dtype} array of "
                                 f"shape {acts.shape}")
        loss = read_small_member(path, zf, infos["loss"], "loss")
        if loss.dtype.kind != "U" or loss.ndim != 0:
            raise ModelFileError(f"{path}: 'loss' must be a name, got a {loss.dtype} array of shape {loss.shape}")
        if min(sizes, default=0) >= 1:  # (bad widths are reported by the constructor's checks below)
            n_params = sum(k * m + m for k, m in zip(sizes[:-1], sizes[1:]))
            if n_params > limit:
                raise ModelFileError(f"{path}: sizes {sizes} declare {n_params:,} parameters, more than the limit of "
                                     f"{limit:,}; if you trust this file, raise the limit with MLP.load(..., "
                                     f"max_params=N) or ${MAX_PARAMS_ENV}")
        theta_info = infos["theta"]
        shape, dtype, stream = open_npy_member(path, zf, theta_info, "theta")
        with stream:
            native = model_dtype(path, dtype)
            try:
                sizes, acts, loss, native = cls._check_architecture(sizes, [str(a) for a in acts], str(loss), native)
            except (ValueError, TypeError) as exc:
                raise ModelFileError(f"{path}: invalid model description ({exc})") from None
            _, n_params = F.parameter_offsets(sizes)
            count = math.prod(shape)
            if len(shape) != 1 and count == n_params:
                raise ModelFileError(f"{path}: 'theta' has shape {shape}, but a model file stores its parameters as "
                                     f"one flat vector: expected shape ({n_params},) for sizes {sizes}; {_SAVE_HINT}")
            if len(shape) != 1 or count != n_params:
                what = f"{count:,} parameters" if len(shape) == 1 else f"a {shape} array of parameters"
                raise ModelFileError(f"{path}: {what} stored, but sizes {sizes} need {n_params:,}; the file is "
                                     "damaged or was not written by MLP.save")
            model = cls.__new__(cls)
            model._setup(sizes, acts, loss, native, np.empty)
            return read_parameters(path, zf, stream, dtype, model)
