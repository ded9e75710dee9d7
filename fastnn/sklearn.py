"""scikit-learn estimators on fastnn's fused epoch: :class:`MLPClassifier` and :class:`MLPRegressor`.

They follow scikit-learn's estimator conventions (the constructor only stores its arguments; ``fit``,
``partial_fit``, ``predict``, ``predict_proba``, ``score``; ``classes_`` of any label type, strings too;
``n_features_in_``, ``loss_curve_``, ``get_params``/``set_params``, ``random_state``, ``warm_start``,
early stopping on a validation fraction) and pass ``sklearn.utils.estimator_checks`` (see
``tests/test_sklearn.py``: no check is skipped or expected to fail with the defaults; with
``dtype='float32'`` the regressor fails ``check_regressor_multioutput`` by design, its predictions being
float32).  Their parameters are those of
``sklearn.neural_network.MLPClassifier``/``MLPRegressor`` where fastnn has the feature, with the same
meaning, so a scikit-learn script changes one import::

    from fastnn.sklearn import MLPClassifier   # instead of: from sklearn.neural_network import MLPClassifier

Each model is a :class:`fastnn.models.MLP` (``model_``, usable for ``save``, ``to_onnx`` and
``fastnn.torch.to_torch``) trained by :class:`fastnn.train.Trainer`, one compiled call per epoch.  With
``dropout > 0`` or ``batch_norm=True`` (which scikit-learn's MLP lacks) it is instead the same dense layers in
a :class:`fastnn.models.CNN` stack on flat inputs, a BatchNorm and/or a Dropout after each hidden layer's
activation, from the same initial weights, trained in the compiled epoch too (one call per epoch), with the
same options.

How the numbers relate to scikit-learn's.  fastnn's optimizers take the gradient of the loss *summed* over
a batch (of the total squared error for a regressor, twice scikit-learn's half squared error); these
estimators convert, so that ``learning_rate_init``, ``alpha`` and ``epsilon`` mean what they mean in
scikit-learn (for the gradient of the batch's mean loss): SGD and momentum get ``lr = learning_rate_init /
s`` and Adam gets ``eps = epsilon * s``, with ``s = batch_size`` (``2 * batch_size`` for a regressor), and
the L2 penalty becomes a weight decay of ``alpha * s / batch_size``.  The differences that remain:

* the penalty ``alpha`` also decays the biases (fastnn's weight decay covers every parameter; scikit-learn
  leaves the intercepts alone);
* the last, shorter batch of an epoch gets the full batch's learning rate for the sum of its fewer rows
  (scikit-learn divides by that batch's own size), so it moves the weights a little less;
* biases start at zero (scikit-learn draws them like the weights), and the weights are Glorot-uniform
  with fastnn's limit ``sqrt(6 / (fan_in + fan_out))`` for every activation (scikit-learn uses
  ``sqrt(2 / ...)`` for 'logistic');
* Adam adds ``epsilon`` to the bias-corrected ``sqrt(v)`` (as Kingma and Ba, and PyTorch, do);
  scikit-learn adds it before the correction, an ``epsilon`` larger by ``1 / sqrt(1 - beta_2 ** t)`` in
  the early steps.  With a negligible ``epsilon`` both give the same weights to float64 rounding;
* only the constant learning rate of scikit-learn's ``learning_rate`` is offered, and no 'lbfgs' solver.

scikit-learn is an optional dependency (``pip install 'fastnn[sklearn]'``): only this module imports it.
"""

from __future__ import annotations

import numbers
import sys
import warnings

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted
except ImportError as exc:  # pragma: no cover - exercised only without scikit-learn
    raise ImportError("fastnn.sklearn needs scikit-learn >= 1.4, an optional dependency: "
                      "pip install 'fastnn[sklearn]' (or pip install scikit-learn)") from exc

try:
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # scikit-learn < 1.6
    def _validate_data(estimator, *args, **kwargs):
        return estimator._validate_data(*args, **kwargs)

from .models import CNN, MLP
from .models.layers import BatchNorm, Dense, Dropout
from .train import Trainer

__all__ = ["MLPClassifier", "MLPRegressor"]

#: scikit-learn's activation names (and fastnn's own, accepted too) -> fastnn's.
ACTIVATIONS = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu",
               "linear": "linear", "sigmoid": "sigmoid"}
SOLVERS = ("sgd", "adam")
DTYPES = (None, "float32", "float64")


class _Stop(Exception):
    """Raised by the epoch callback to end training (converged, or stopped early)."""


def _positive_int(value, name, *, allow_zero=False):
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    return int(value)


def _dense_parameters(model):
    """([W, ...], [b, ...]) of the model's dense layers, views of ``model.theta`` (an MLP's layers, or a CNN
    stack's Dense layers without its BatchNorm parameters)."""
    if isinstance(model, MLP):
        return model.weights, model.biases
    pairs = [model.layer_parameters(model.theta, i) for i, layer in enumerate(model.layers) if isinstance(layer, Dense)]
    return [W for W, _ in pairs], [b for _, b in pairs]


def _real(value, name, low, high=np.inf, *, low_open=False, high_open=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name}: expected a finite real number, got {value!r}")
    value = float(value)
    if value < low or (low_open and value == low) or value > high or (high_open and value == high):
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise ValueError(f"{name}: expected a value in {lo}{low:g}, {high:g}{hi}, got {value!r}")
    return value


class _BaseMLP(BaseEstimator):
    """What the classifier and the regressor share: parameters, the training loop, the stopping rules."""

    _is_regressor = False

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate_init=0.001, max_iter=200, shuffle=True, random_state=None,
                 tol=1e-4, verbose=False, warm_start=False, momentum=0.9, nesterovs_momentum=True,
                 early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 n_iter_no_change=10, dtype=None, dropout=0.0, batch_norm=False):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.dtype = dtype
        self.dropout = dropout
        self.batch_norm = batch_norm

    # ------------------------------------------------------------------ parameters

    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
            sizes = [sizes]
        try:
            sizes = list(sizes)
        except TypeError:
            raise ValueError(f"hidden_layer_sizes: expected an int or a sequence of ints, got {sizes!r}") from None
        for s in sizes:
            if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1:
                raise ValueError(f"hidden_layer_sizes: every width must be an integer >= 1, got {sizes!r}")
        return [int(s) for s in sizes]

    def _check_params(self):
        """The constructor's arguments checked (at fit time, as scikit-learn does): a ValueError names the bad one."""
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        if self.solver not in SOLVERS:
            extra = " (fastnn has no 'lbfgs')" if self.solver == "lbfgs" else ""
            raise ValueError(f"solver: expected one of {SOLVERS}{extra}, got {self.solver!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype: expected None (the input's float32 or float64), 'float32' or 'float64', "
                             f"got {self.dtype!r}")
        if not (self.batch_size == "auto" or (isinstance(self.batch_size, numbers.Integral)
                                              and not isinstance(self.batch_size, bool))):
            raise ValueError(f"batch_size: expected 'auto' or an integer, got {self.batch_size!r}")
        _real(self.alpha, "alpha", 0.0)
        _real(self.learning_rate_init, "learning_rate_init", 0.0, low_open=True)
        _positive_int(self.max_iter, "max_iter")
        _real(self.tol, "tol", 0.0)
        _real(self.momentum, "momentum", 0.0, 1.0, high_open=True)
        _real(self.validation_fraction, "validation_fraction", 0.0, 1.0, low_open=True, high_open=True)
        _real(self.beta_1, "beta_1", 0.0, 1.0, high_open=True)
        _real(self.beta_2, "beta_2", 0.0, 1.0, high_open=True)
        _real(self.epsilon, "epsilon", 0.0, low_open=True)
        _positive_int(self.n_iter_no_change, "n_iter_no_change")
        _real(self.dropout, "dropout", 0.0, 1.0, high_open=True)
        if not isinstance(self.batch_norm, (bool, np.bool_)):
            raise ValueError(f"batch_norm: expected True or False, got {self.batch_norm!r}")
        return self._hidden_sizes()

    def _uses_layers(self):
        """Whether the network needs fastnn's Dropout or BatchNorm layers (then it is a CNN stack, not an MLP)."""
        return self.dropout > 0 or bool(self.batch_norm)

    def _build_model(self, n_features, hidden, dtype):
        """The network of a new fit, its weights drawn from ``self._random_state``.

        With ``dropout=0`` and ``batch_norm=False`` it is the :class:`fastnn.models.MLP` of
        ``[n_features, *hidden, outputs]``.  Otherwise it is the same dense layers in a
        :class:`fastnn.models.CNN` stack on flat inputs, with a BatchNorm (when ``batch_norm``) then a Dropout
        (when ``dropout > 0``) after each hidden layer's activation.  Its dense layers get exactly the MLP's
        initial weights and zero biases (the MLP's draws, in the same order, are copied over), so the random
        state the rest of the fit draws from (the validation split, the trainer's seed) is the same either way;
        BatchNorm starts at gamma 1, beta 0, running mean 0 and variance 1.
        """
        sizes = [n_features, *hidden, self._n_model_outputs()]
        activations = [ACTIVATIONS[self.activation]] * len(hidden) + [self._out_activation()]
        mlp = MLP(sizes, activations, dtype=dtype)
        mlp.init("xavier", rng=self._random_state)
        if not self._uses_layers():
            return mlp
        layers = []
        for i, act in enumerate(activations):
            layers.append(Dense(sizes[i], sizes[i + 1], act))
            if i < len(hidden):
                layers += [BatchNorm()] * bool(self.batch_norm) + [Dropout(self.dropout)] * (self.dropout > 0)
        model = CNN((n_features,), layers, dtype=dtype)
        for W, b, W0, b0 in zip(*_dense_parameters(model), mlp.weights, mlp.biases):
            W[...], b[...] = W0, b0
        return model

    def _check_continued_layers(self):
        """Before a warm-started fit or a partial_fit: the fitted network must have the layers ``dropout`` and
        ``batch_norm`` ask for (a ValueError naming them otherwise); a changed dropout rate is taken over."""
        layers = getattr(self.model_, "layers", [])
        has_bn = any(isinstance(layer, BatchNorm) for layer in layers)
        has_dropout = any(isinstance(layer, Dropout) for layer in layers)
        if has_bn != bool(self.batch_norm) or has_dropout != (self.dropout > 0):
            raise ValueError(f"dropout={self.dropout!r}, batch_norm={self.batch_norm!r}: the fitted network has "
                             f"{'' if has_dropout else 'no '}Dropout and {'' if has_bn else 'no '}BatchNorm layers; "
                             "warm_start and partial_fit continue that network: set the parameters back, or fit "
                             "with warm_start=False to build a new one")
        if has_dropout:
            self.model_.layers = [Dropout(self.dropout) if isinstance(layer, Dropout) else layer for layer in layers]

    def _optimizer(self):
        if self.solver == "adam":
            return "adam"
        if self.momentum == 0:
            return "sgd"
        return "nesterov" if self.nesterovs_momentum else "momentum"

    # ------------------------------------------------------------------ fitted attributes

    @property
    def coefs_(self):
        """List of (n_in, n_out) weight matrices, one per dense layer (views of ``model_.theta``).

        With ``batch_norm=True`` these are the dense layers' weights only: the BatchNorm between two of them
        (``gamma``, ``beta`` and the running statistics) is in ``model_`` (``model_.layer_list()``), so the
        network is no longer ``coefs_`` and ``intercepts_`` alone."""
        check_is_fitted(self, "model_")
        return _dense_parameters(self.model_)[0]

    @property
    def intercepts_(self):
        """List of (n_out,) bias vectors, one per dense layer (views of ``model_.theta``)."""
        check_is_fitted(self, "model_")
        return _dense_parameters(self.model_)[1]

    # ------------------------------------------------------------------ training

    def _validate_X(self, X, reset):
        dtype = [np.float64, np.float32] if self.dtype is None else self.dtype
        return _validate_data(self, X, reset=reset, dtype=dtype, order="C")

    def _fit(self, X, y, *, incremental, classes=None):
        hidden = self._check_params()
        continuing = hasattr(self, "model_") and (incremental or self.warm_start)
        dtype = [np.float64, np.float32] if self.dtype is None else self.dtype
        X, y = _validate_data(self, X, y, reset=not continuing, dtype=dtype, order="C",
                              multi_output=self._is_regressor, y_numeric=self._is_regressor)
        if continuing:
            X = np.ascontiguousarray(X, dtype=self.model_.dtype)
        T = self._targets(y, continuing, incremental, classes, X.dtype)
        class_weight = self._class_weights(T, incremental)  # of the whole y, before a validation split
        if continuing:
            self._check_continued_layers()
        else:
            self._random_state = check_random_state(self.random_state)
            self.model_ = self._build_model(X.shape[1], hidden, X.dtype)
            self.n_iter_ = 0
            self.t_ = 0
            self.loss_curve_ = []
            self._no_improvement_count = 0
            self._optimizer_state = None
            self.n_layers_ = len(hidden) + 2
            self.n_outputs_ = self._n_outputs()
            self.out_activation_ = {"softmax": "softmax", "sigmoid": "logistic",
                                    "linear": "identity"}[self._out_activation()]
        early = self.early_stopping and not incremental
        if not continuing or (self.warm_start and not incremental):
            # scikit-learn restarts the stopping rule on every fit (and warm start keeps only the weights)
            self._no_improvement_count = 0
            if early:
                self.validation_scores_, self.best_validation_score_, self.best_loss_ = [], -np.inf, None
            else:
                self.validation_scores_, self.best_validation_score_, self.best_loss_ = None, None, np.inf
        if early:
            stratify = None if self._is_regressor else T.ravel()
            X, X_val, T, T_val = train_test_split(X, T, random_state=self._random_state,
                                                  test_size=self.validation_fraction, stratify=stratify)
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small: increase 'validation_fraction' or the size of "
                                 "your data set, or set early_stopping=False")
            X, T = np.ascontiguousarray(X), np.ascontiguousarray(T)
        self._train(X, T, incremental, (X_val, T_val) if early else None, class_weight)
        return self

    def _class_weights(self, T, incremental):
        """The fit's class weights as the Trainer takes them ({class index: weight}), or None."""
        return None

    def _train(self, X, T, incremental, valid, class_weight=None):
        model = self.model_
        n = X.shape[0]
        if self.batch_size == "auto":
            bs = min(200, n)
        else:
            bs = int(self.batch_size)
            if bs < 1 or bs > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be "
                              f"clipped to {min(max(bs, 1), n)}", stacklevel=3)
            bs = min(max(bs, 1), n)
        optimizer = self._optimizer()
        scale = bs * (2 if self._is_regressor else 1)  # fastnn's gradient / scikit-learn's (batch mean)
        lr = self.learning_rate_init if optimizer == "adam" else self.learning_rate_init / scale
        trainer = Trainer(model, optimizer=optimizer, lr=lr, momentum=self.momentum, betas=(self.beta_1, self.beta_2),
                          eps=self.epsilon * scale, weight_decay=self.alpha * scale / bs, batch_size=bs,
                          shuffle="epoch" if self.shuffle else "none",
                          seed=int(self._random_state.randint(np.iinfo(np.int32).max)), progress=False)
        state = self._optimizer_state
        if incremental and state is not None and state[0] == optimizer and state[1].shape == trainer.state1.shape:
            trainer.state1[...], trainer.state2[...], trainer.step = state[1], state[2], state[3]
        n_batches = -(-n // bs)
        # report scikit-learn's loss: for a regressor half the squared error, averaged over the outputs too
        loss_factor = 0.5 / T.shape[1] if self._is_regressor else 1.0
        stopped = []

        def penalty():  # scikit-learn's L2 term of a batch's loss, times the batch size
            return 0.5 * self.alpha * sum(float(np.dot(W.ravel(), W.ravel())) for W in _dense_parameters(model)[0])

        start_penalty = [penalty()]

        def after_epoch(ep, hist):
            # scikit-learn adds each batch's penalty, from the weights before its update; the epoch's starting
            # weights stand in for those of every batch of the epoch (exact for one batch per epoch)
            loss = loss_factor * hist.train_loss[-1] + start_penalty[0] * n_batches / n
            start_penalty[0] = penalty()
            self.n_iter_ += 1
            self.t_ += n
            self.loss_curve_.append(loss)
            self.loss_ = loss
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {loss:.8f}", file=sys.stdout)
            if valid is not None:
                score = self._validation_score(*valid)
                self.validation_scores_.append(score)
                if self.verbose:
                    print(f"Validation score: {score:f}", file=sys.stdout)
                self._no_improvement_count = (self._no_improvement_count + 1
                                              if score < self.best_validation_score_ + self.tol else 0)
                if score > self.best_validation_score_:
                    self.best_validation_score_ = score
                    self._best_theta = model.theta.copy()
                    self._best_running = getattr(model, "running", None)  # BatchNorm's running statistics
                    if self._best_running is not None:
                        self._best_running = self._best_running.copy()
                what = "Validation score"
            else:
                if self.best_loss_ is None:  # a partial_fit after a fit with early stopping
                    self.best_loss_ = np.inf
                self._no_improvement_count = (self._no_improvement_count + 1
                                              if loss > self.best_loss_ - self.tol else 0)
                self.best_loss_ = min(self.best_loss_, loss)
                what = "Training loss"
            if self._no_improvement_count > self.n_iter_no_change:
                if self.verbose:
                    print(f"{what} did not improve more than tol={self.tol:f} for {self.n_iter_no_change} "
                          "consecutive epochs. Stopping.", file=sys.stdout)
                stopped.append(ep)
                raise _Stop

        try:
            trainer.fit(X, T, 1 if incremental else self.max_iter, callback=after_epoch, class_weight=class_weight)
        except _Stop:
            pass
        finally:
            self._optimizer_state = (optimizer, trainer.state1, trainer.state2, trainer.step)
        if valid is not None:
            model.theta[...] = self._best_theta
            if self._best_running is not None:
                model.running[...] = self._best_running
            del self._best_theta, self._best_running
        if not incremental and not stopped:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                          "optimization hasn't converged yet.", ConvergenceWarning, stacklevel=3)

    def fit(self, X, y):
        """Train the network on (X, y): ``max_iter`` epochs at most, fewer when the stopping rule fires.

        With ``warm_start=True`` a fitted estimator continues from its weights (with a fresh optimizer).

        Parameters
        ----------
        X : (n_samples, n_features) array-like
        y : (n_samples,) array-like of labels (classifier) or (n_samples,) / (n_samples, n_outputs) targets

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=False)

    def _forward(self, X):
        check_is_fitted(self, "model_")
        X = self._validate_X(X, reset=False)
        return self.model_.forward(np.ascontiguousarray(X, dtype=self.model_.dtype), logits=not self._is_regressor)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        if self._is_regressor:
            tags.target_tags.multi_output = True
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {"multioutput": self._is_regressor}


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """A multilayer-perceptron classifier trained by fastnn's fused epoch, with scikit-learn's interface.

    Two classes give one logistic output and binary cross-entropy, more give a softmax output and
    cross-entropy.  Labels may be of any type ``numpy.unique`` sorts (integers, strings, ...).

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Widths of the hidden layers.
    activation : {'relu', 'tanh', 'logistic', 'identity'}, default='relu'
        Of the hidden layers (fastnn's names 'sigmoid' and 'linear' work too).
    solver : {'adam', 'sgd'}, default='adam'
        'sgd' uses momentum when ``momentum > 0`` (Nesterov's when ``nesterovs_momentum``).
    alpha : float, default=1e-4
        L2 penalty, as scikit-learn's (but on the biases too).
    batch_size : int or 'auto', default='auto'
        'auto' is ``min(200, n_samples)``; a size outside [1, n_samples] is clipped with a warning.
    learning_rate_init : float, default=1e-3
        Constant learning rate, for the gradient of the batch's mean loss.
    max_iter : int, default=200
        Most epochs per ``fit``.
    shuffle : bool, default=True
        Reshuffle the samples every epoch (else keep their order).
    random_state : int, RandomState instance or None
        Draws the initial weights, the validation split and the shuffling.
    tol : float, default=1e-4
        Stop when the training loss (or, with early stopping, the validation accuracy) has not improved by
        ``tol`` for more than ``n_iter_no_change`` epochs.
    verbose : bool, default=False
        Print the loss of every epoch.
    warm_start : bool, default=False
        ``fit`` continues from the fitted weights instead of starting anew.
    momentum : float in [0, 1), default=0.9
    nesterovs_momentum : bool, default=True
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (stratified), stop when its accuracy stops
        improving and keep the best epoch's weights.  Not used by ``partial_fit``.
    validation_fraction : float in (0, 1), default=0.1
    beta_1, beta_2 : float in [0, 1), default=0.9, 0.999
        Adam's decay rates.
    epsilon : float, default=1e-8
        Adam's epsilon, for the gradient of the batch's mean loss.
    n_iter_no_change : int, default=10
    dtype : {None, 'float32', 'float64'}, default=None
        Of the network: None keeps float32 input in float32 (fastnn's fast path) and makes anything else
        float64.
    class_weight : None, 'balanced' or dict {label: weight}, default=None
        Weights of the classes in the loss (scikit-learn's MLPClassifier has none): each sample's loss and
        gradient are multiplied by its class's weight.  'balanced' is scikit-learn's
        ``n_samples / (n_classes * np.bincount(y))`` over the ``y`` given to ``fit`` (before an early-stopping
        split); a dict's missing labels weigh 1.  ``partial_fit`` takes a dict only (as scikit-learn's
        SGDClassifier: compute 'balanced' weights once with ``sklearn.utils.class_weight.compute_class_weight``).
        ``loss_curve_`` is then the weighted loss averaged per sample.
    dropout : float in [0, 1), default=0.0
        Inverted dropout after each hidden layer's activation (scikit-learn's MLP has none): in training each
        hidden value is zeroed with this probability and the others scaled by ``1 / (1 - dropout)``; in
        ``predict``, ``predict_proba``, ``score`` and the early-stopping score nothing is dropped.  The masks
        come from the trainer's seed (drawn from ``random_state``) and the step, so a ``random_state`` repeats
        a fit to the bit.  ``loss_curve_`` is the loss of the batches as trained, with their masks.
    batch_norm : bool, default=False
        A :class:`fastnn.layers.BatchNorm` (momentum 0.1, eps 1e-5) after each hidden layer's activation (the
        order fastnn's layers allow: Dense with its activation, then BatchNorm, then Dropout): batch statistics
        in training, running ones in inference.  ``alpha`` decays its ``gamma`` and ``beta`` too (as a
        PyTorch optimizer's ``weight_decay`` does), and a batch of one row normalises to ``beta``.
        With ``dropout=0`` and ``batch_norm=False`` (the defaults) the network is the plain MLP of before,
        trained in the compiled epoch, with the same numbers to the bit.  Either parameter may not change
        between a fit and a ``warm_start`` fit or ``partial_fit`` that continues it (a ValueError), except
        one dropout rate > 0 for another.

    Attributes
    ----------
    classes_ : (n_classes,) ndarray
    model_ : fastnn.models.MLP or fastnn.models.CNN
        The trained network (``predict_proba`` is its softmax, or sigmoid, in float64): an MLP, or with
        ``dropout`` or ``batch_norm`` a CNN stack of Dense, BatchNorm and Dropout layers on flat inputs
        (``save``, ``to_onnx`` and ``fastnn.torch.to_torch`` take either).
    coefs_, intercepts_ : lists of ndarrays
        Weights (n_in, n_out) and biases per dense layer, views of ``model_.theta``.  With ``batch_norm``
        they are the dense layers' only, so they no longer describe the whole network: each BatchNorm's
        ``gamma``, ``beta`` and running statistics are in ``model_`` (``model_.layer_list()``).
    n_features_in_ : int
    feature_names_in_ : (n_features_in_,) ndarray of str
        When X has string column names (a pandas DataFrame).
    loss_ : float
    loss_curve_ : list of float
        Training loss per epoch: the mean cross-entropy over the epoch's batches as they were trained, plus
        the L2 term as scikit-learn reports it (``0.5 * alpha * sum of squared weights / batch size``, from
        the weights at the start of the epoch).
    best_loss_ : float or None
    validation_scores_ : list of float or None
        Validation accuracy per epoch, with early stopping.
    best_validation_score_ : float or None
    n_iter_ : int
        Epochs trained since the weights were initialised.
    t_ : int
        Training samples seen.
    n_layers_, n_outputs_ : int
    out_activation_ : {'softmax', 'logistic'}

    Examples
    --------
    >>> from fastnn.sklearn import MLPClassifier
    >>> X = np.array([[0., 0.], [0., 1.], [1., 0.], [1., 1.]] * 8); y = np.array(["no", "yes", "yes", "no"] * 8)
    >>> clf = MLPClassifier((8,), "tanh", learning_rate_init=0.05, max_iter=300, random_state=0).fit(X, y)
    >>> clf.predict([[0., 1.], [1., 1.]])
    array(['yes', 'no'], dtype='<U3')
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate_init=0.001, max_iter=200, shuffle=True, random_state=None,
                 tol=1e-4, verbose=False, warm_start=False, momentum=0.9, nesterovs_momentum=True,
                 early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 n_iter_no_change=10, dtype=None, dropout=0.0, batch_norm=False, class_weight=None):
        super().__init__(hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
                         learning_rate_init=learning_rate_init, max_iter=max_iter, shuffle=shuffle,
                         random_state=random_state, tol=tol, verbose=verbose, warm_start=warm_start,
                         momentum=momentum, nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
                         validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         n_iter_no_change=n_iter_no_change, dtype=dtype, dropout=dropout, batch_norm=batch_norm)
        self.class_weight = class_weight

    def _class_weights(self, T, incremental):
        cw = self.class_weight
        if cw is None:
            return None
        index = T[:, 0].astype(np.int64) if T.ndim == 2 else T
        if isinstance(cw, str) and cw == "balanced":
            if incremental:
                raise ValueError("class_weight 'balanced' is not supported for partial_fit: compute the weights "
                                 "once with sklearn.utils.class_weight.compute_class_weight('balanced', "
                                 "classes=classes, y=y) and pass them as a dict")
            counts = np.bincount(index, minlength=len(self.classes_))
            if np.any(counts == 0):
                raise ValueError(f"class_weight 'balanced': y holds no samples of the classes "
                                 f"{self.classes_[counts == 0]}")
            return {k: index.shape[0] / (len(self.classes_) * counts[k]) for k in range(len(self.classes_))}
        if not isinstance(cw, dict):
            raise ValueError(f"class_weight: expected None, 'balanced' or a dict {{label: weight}}, got {cw!r}")
        out = {}
        for label, weight in cw.items():
            found = np.flatnonzero(self.classes_ == label) if np.ndim(label) == 0 else []
            if len(found) != 1:
                raise ValueError(f"class_weight: the label {label!r} is not one of classes_ {self.classes_}")
            out[int(found[0])] = weight
        return out

    def _n_outputs(self):
        return 1 if len(self.classes_) == 2 else len(self.classes_)

    _n_model_outputs = _n_outputs

    def _out_activation(self):
        return "sigmoid" if len(self.classes_) == 2 else "softmax"

    def _targets(self, y, continuing, incremental, classes, dtype):
        check_classification_targets(y)
        if not continuing:
            if incremental and classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit")
            found = np.unique(y if classes is None else np.asarray(classes))
            if found.shape[0] < 2:
                raise ValueError(f"y has 1 class ({found[0]!r}); a classifier needs samples of at least 2 classes")
            self.classes_ = found
        elif self.warm_start and not incremental and not np.array_equal(np.unique(y), self.classes_):
            raise ValueError(f"warm_start needs y to hold the classes of the previous fit, {self.classes_}, got "
                             f"{np.unique(y)}")
        index = np.searchsorted(self.classes_, y)
        index = np.minimum(index, len(self.classes_) - 1)
        unknown = self.classes_[index] != y
        if np.any(unknown):
            raise ValueError(f"y holds labels that are not in classes_ {self.classes_}: {np.unique(y[unknown])}")
        if len(self.classes_) == 2:
            return index.astype(np.float64).reshape(-1, 1)
        return index.astype(np.int64)

    def _validation_score(self, X, T):
        index = self._index(self.model_.forward(X, logits=True))
        truth = T[:, 0].astype(np.int64) if T.ndim == 2 else T
        return float(np.mean(index == truth))

    @staticmethod
    def _index(logits):
        return (logits[:, 0] > 0).astype(np.int64) if logits.shape[1] == 1 else logits.argmax(axis=1)

    def partial_fit(self, X, y, classes=None):
        """One epoch over (X, y), continuing from the fitted weights and the optimizer's state.

        Parameters
        ----------
        X : (n_samples, n_features) array-like
        y : (n_samples,) array-like of labels
        classes : array-like, optional
            Every class, required on the first call (as in scikit-learn); later calls may omit it.

        Returns
        -------
        self
        """
        if hasattr(self, "model_") and classes is not None and not np.array_equal(np.unique(classes),
                                                                                   self.classes_):
            raise ValueError(f"classes {np.unique(classes)} differ from the first call's {self.classes_}")
        return self._fit(X, y, incremental=True, classes=classes)

    def predict_proba(self, X):
        """Class probabilities, (n_samples, n_classes) float64, in the order of ``classes_``.

        The network runs in its own dtype; its last activation (softmax, or the logistic function for two
        classes) runs in float64 on the logits, so every row sums to 1 within float64 rounding.
        """
        Z = self._forward(X).astype(np.float64)
        if Z.shape[1] == 1:
            p = np.empty_like(Z[:, 0])
            pos = Z[:, 0] >= 0  # the logistic function without overflow
            p[pos] = 1.0 / (1.0 + np.exp(-Z[pos, 0]))
            ez = np.exp(Z[~pos, 0])
            p[~pos] = ez / (1.0 + ez)
            return np.column_stack([1.0 - p, p])
        Z -= Z.max(axis=1, keepdims=True)
        np.exp(Z, out=Z)
        Z /= Z.sum(axis=1, keepdims=True)
        return Z

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """Predicted labels (n_samples,), taken from ``classes_``: the most probable class of each row."""
        P = self.predict_proba(X)  # (checks first that the estimator is fitted)
        return self.classes_[P.argmax(axis=1)]


class MLPRegressor(RegressorMixin, _BaseMLP):
    """A multilayer-perceptron regressor trained by fastnn's fused epoch, with scikit-learn's interface.

    The output layer is linear and the loss the squared error; ``y`` may have several columns.  The
    parameters are :class:`MLPClassifier`'s; early stopping scores the held-out fraction by R^2, and
    ``loss_curve_`` reports scikit-learn's loss: half the squared error averaged over the samples and the
    outputs, plus the L2 term.

    Attributes
    ----------
    model_ : fastnn.models.MLP or fastnn.models.CNN
    coefs_, intercepts_, n_features_in_, loss_, loss_curve_, best_loss_, validation_scores_,
    best_validation_score_, n_iter_, t_, n_layers_, n_outputs_ : as :class:`MLPClassifier`'s
    out_activation_ : 'identity'

    Examples
    --------
    >>> from fastnn.sklearn import MLPRegressor
    >>> X = np.linspace(-1, 1, 64).reshape(-1, 1); y = X[:, 0] ** 2
    >>> reg = MLPRegressor((16,), "tanh", learning_rate_init=0.01, batch_size=16, max_iter=500, random_state=0)
    >>> reg = reg.fit(X, y)
    >>> bool(reg.score(X, y) > 0.9)
    True
    """

    _is_regressor = True

    def _n_outputs(self):
        return self._n_out

    _n_model_outputs = _n_outputs

    def _out_activation(self):
        return "linear"

    def _targets(self, y, continuing, incremental, classes, dtype):
        y = np.asarray(y)
        T = y.reshape(-1, 1) if y.ndim == 1 else y
        if continuing and T.shape[1] != self.n_outputs_:
            raise ValueError(f"y: expected {self.n_outputs_} target column(s) as in the previous fit, got "
                             f"{T.shape[1]}")
        self._n_out = T.shape[1]
        return np.ascontiguousarray(T, dtype=dtype)

    def _validation_score(self, X, T):
        return float(r2_score(T, self.model_.forward(X)))

    def partial_fit(self, X, y):
        """One epoch over (X, y), continuing from the fitted weights and the optimizer's state.

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=True)

    def predict(self, X):
        """Predictions, (n_samples,) for one target column, else (n_samples, n_outputs), in the network's dtype."""
        P = self._forward(X)
        return P.ravel() if P.shape[1] == 1 else P
