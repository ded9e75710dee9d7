"""fastnn.sklearn: scikit-learn's estimator checks, its tools (Pipeline, GridSearchCV, cross_val_score), and the
same numbers as sklearn.neural_network from the same weights.

Skipped as a whole when scikit-learn (>= 1.6, for ``expected_failed_checks``) is not installed: it is an optional
dependency (``pip install 'fastnn[sklearn]'``).

``parametrize_with_checks`` runs every check of scikit-learn's suite on four configurations.  No check is
skipped or expected to fail for the defaults; the one listed in ``EXPECTED_FAILED`` fails by design for a
non-default setting:

* ``check_regressor_multioutput`` with ``dtype='float32'``: the check wants float64 predictions for float64
  input, and that setting asks for a float32 network.

scikit-learn itself skips ``check_array_api_input`` (array-API inputs are tested only when ``SCIPY_ARRAY_API=1``
is set, and these estimators do not declare array-API support) and, without pandas, the checks that pass
pandas objects (``check_*_data_not_an_array`` with pandas).
"""

import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", minversion="1.6",
                              reason="scikit-learn >= 1.6 is not installed (optional: pip install 'fastnn[sklearn]')")

from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkMLPClassifier, MLPRegressor as SkMLPRegressor  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fastnn.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

EXPECTED_FAILED = {
    "float32-regressor": {"check_regressor_multioutput": "dtype='float32' asks for a float32 network; the check wants "
                                                         "float64 predictions for float64 input"},
}

ESTIMATORS = [
    MLPClassifier(),
    MLPRegressor(),
    MLPClassifier(hidden_layer_sizes=(20, 10), activation="tanh", solver="sgd", momentum=0.0, batch_size=16,
                  dtype="float32", random_state=3),
    MLPRegressor(hidden_layer_sizes=(16,), activation="logistic", solver="sgd", nesterovs_momentum=False,
                 learning_rate_init=0.01, dtype="float32", random_state=4),
]


def _expected_failed(estimator):
    if isinstance(estimator, MLPRegressor) and estimator.dtype == "float32":
        return EXPECTED_FAILED["float32-regressor"]
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def _blobs(rng, n=240, d=6, classes=3):
    centers = rng.normal(0, 3, (classes, d))
    y = rng.integers(0, classes, n)
    return centers[y] + rng.normal(0, 1, (n, d)), y


# ------------------------------------------------------------- the same numbers as scikit-learn's

SOLVERS = [("sgd", dict(momentum=0.0)), ("sgd", dict(momentum=0.9)),
           ("sgd", dict(momentum=0.9, nesterovs_momentum=False)), ("adam", dict(epsilon=1e-20))]


@pytest.mark.parametrize("kind", ["classifier", "binary", "regressor"])
@pytest.mark.parametrize("solver,kw", SOLVERS, ids=["sgd", "momentum", "nesterov", "adam"])
def test_same_weights_as_sklearn_from_the_same_start(rng, kind, solver, kw):
    """From the same weights, three epochs of fastnn's estimator give scikit-learn's weights and loss curve
    (float64, unshuffled, whole batches, no penalty; Adam with a negligible epsilon, which the two add at
    different places): learning_rate_init and epsilon are converted to fastnn's summed-loss gradients
    correctly, the regressor's factor of 2 included."""
    X = rng.normal(size=(96, 5))
    if kind == "regressor":
        ours_cls, theirs_cls, y, extra = MLPRegressor, SkMLPRegressor, rng.normal(size=(96, 2)), {}
    else:
        classes = 3 if kind == "classifier" else 2
        ours_cls, theirs_cls, y = MLPClassifier, SkMLPClassifier, rng.integers(0, classes, 96)
        extra = {"classes": np.arange(classes)}
    common = dict(hidden_layer_sizes=(7,), activation="tanh", solver=solver, batch_size=32, learning_rate_init=0.01,
                  alpha=0.0, shuffle=False, random_state=0, **kw)
    ours = ours_cls(**common, n_iter_no_change=100, max_iter=3).partial_fit(X, y, **extra)
    theirs = theirs_cls(**common).partial_fit(X, y, **extra)
    theirs.coefs_ = [w.copy() for w in ours.coefs_]
    theirs.intercepts_ = [b.copy() for b in ours.intercepts_]
    del theirs._optimizer  # its next partial_fit starts a fresh optimizer, as our warm-started fit does
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.set_params(warm_start=True).fit(X, y)
    for _ in range(3):
        theirs.partial_fit(X, y)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.loss_curve_[-3:], theirs.loss_curve_[-3:], rtol=1e-9)
    assert ours.n_iter_ == 4


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_alpha_is_sklearns_l2_penalty(rng, kind):
    """One full-batch SGD step with alpha > 0 from the same weights and zero biases (fastnn's weight decay
    also decays the biases, scikit-learn's penalty does not: zero biases make that difference vanish for one
    step) gives scikit-learn's weights, biases and loss, penalty included."""
    X = rng.normal(size=(64, 5))
    if kind == "regressor":
        ours_cls, theirs_cls, y, extra = MLPRegressor, SkMLPRegressor, rng.normal(size=64), {}
    else:
        ours_cls, theirs_cls, y, extra = MLPClassifier, SkMLPClassifier, rng.integers(0, 3, 64), {"classes": [0, 1, 2]}
    common = dict(hidden_layer_sizes=(6,), activation="relu", solver="sgd", momentum=0.0, batch_size=64,
                  learning_rate_init=0.05, alpha=3.0, shuffle=False, random_state=1)
    ours = ours_cls(**common, max_iter=1).partial_fit(X, y, **extra)
    for b in ours.intercepts_:
        b[...] = 0
    theirs = theirs_cls(**common).partial_fit(X, y, **extra)
    theirs.coefs_ = [w.copy() for w in ours.coefs_]
    theirs.intercepts_ = [b.copy() for b in ours.intercepts_]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.set_params(warm_start=True).fit(X, y)
    theirs.partial_fit(X, y)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(ours.loss_curve_[-1], theirs.loss_curve_[-1], rtol=1e-10)


# ------------------------------------------------------------------- labels, reproducibility

@pytest.mark.parametrize("labels", [["cat", "dog"], ["b", "a", "c"], [10, -3, 7, 2]])
def test_any_label_type(rng, labels):
    X, idx = _blobs(rng, classes=len(labels))
    y = np.array(labels, dtype=object if isinstance(labels[0], str) else None)[idx]
    clf = MLPClassifier((16,), learning_rate_init=0.01, max_iter=150, random_state=0).fit(X, y)
    np.testing.assert_array_equal(clf.classes_, np.unique(y))
    pred = clf.predict(X)
    assert pred.dtype == y.dtype and set(pred) <= set(labels)
    assert np.mean(pred == y) > 0.9
    P = clf.predict_proba(X)
    assert P.shape == (len(y), len(labels)) and P.dtype == np.float64
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(clf.classes_[P.argmax(axis=1)], pred)


def test_random_state_reproduces_a_fit(rng):
    X, y = _blobs(rng)
    fits = [MLPClassifier((12,), max_iter=20, random_state=s).fit(X, y) for s in (7, 7, 8)]
    np.testing.assert_array_equal(fits[0].loss_curve_, fits[1].loss_curve_)
    np.testing.assert_array_equal(fits[0].model_.theta, fits[1].model_.theta)
    assert not np.allclose(fits[0].model_.theta, fits[2].model_.theta)


def test_float32_input_trains_a_float32_network(rng):
    X, y = _blobs(rng)
    clf = MLPClassifier((8,), max_iter=5).fit(X.astype(np.float32), y)
    assert clf.model_.dtype == np.float32 and clf.coefs_[0].dtype == np.float32
    assert MLPClassifier((8,), max_iter=5).fit(X, y).model_.dtype == np.float64
    assert MLPClassifier((8,), max_iter=5, dtype="float32").fit(X, y).model_.dtype == np.float32


# ------------------------------------------------------------------- stopping, warm start, partial_fit

def test_training_loss_stopping_rule(rng):
    X, y = _blobs(rng)
    clf = MLPClassifier((8,), max_iter=500, tol=10.0, n_iter_no_change=3, random_state=0).fit(X, y)
    # the first epoch improves on an infinite best loss; no later one improves by tol, and the count of those
    # exceeds 3 after the 5th epoch
    assert clf.n_iter_ == 5
    assert clf.best_loss_ == min(clf.loss_curve_) and clf.validation_scores_ is None


def test_early_stopping_keeps_the_best_epoch(rng):
    """With a tol no epoch after the first can meet, training stops after n_iter_no_change + 2 epochs and keeps
    the weights of the first (the best by the rule), which are those of a one-epoch fit from the same
    random_state."""
    X, y = _blobs(rng)
    kw = dict(hidden_layer_sizes=(8,), early_stopping=True, validation_fraction=0.2, random_state=0)
    clf = MLPClassifier(**kw, tol=10.0, n_iter_no_change=2, max_iter=100).fit(X, y)
    assert clf.n_iter_ == 4 and len(clf.validation_scores_) == 4 and clf.best_loss_ is None
    assert clf.best_validation_score_ == clf.validation_scores_[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        one = MLPClassifier(**kw, max_iter=1).fit(X, y)
    np.testing.assert_array_equal(clf.model_.theta, one.model_.theta)
    reg = MLPRegressor((8,), early_stopping=True, random_state=0, max_iter=300, learning_rate_init=0.01)
    reg.fit(X, X[:, 0] - 2 * X[:, 1])
    assert reg.n_iter_ < 300 and reg.best_validation_score_ == max(reg.validation_scores_) > 0.9


def test_warm_start_continues_and_cold_start_restarts(rng):
    X, y = _blobs(rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier((8,), max_iter=5, random_state=0, warm_start=True).fit(X, y)
        first = list(clf.loss_curve_)
        clf.fit(X, y)
        assert clf.n_iter_ == 10 and clf.loss_curve_[:5] == first and clf.loss_curve_[5] < first[-1] * 1.01
        clf.set_params(warm_start=False).fit(X, y)
    assert clf.n_iter_ == 5 and clf.loss_curve_ == first
    with pytest.raises(ValueError, match="warm_start"):
        clf.set_params(warm_start=True).fit(X[y < 2], y[y < 2])


def test_partial_fit_keeps_the_optimizer_state(rng):
    """Two partial_fit calls are the two epochs of one fit (unshuffled Adam: its moments and step count carry
    over between the calls)."""
    X, y = _blobs(rng)
    kw = dict(hidden_layer_sizes=(8,), shuffle=False, random_state=0, batch_size=50)
    inc = MLPClassifier(**kw)
    with pytest.raises(ValueError, match="classes must be passed"):
        inc.partial_fit(X, y)
    inc.partial_fit(X, y, classes=[0, 1, 2]).partial_fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        full = MLPClassifier(**kw, max_iter=2).fit(X, y)
    np.testing.assert_allclose(inc.model_.theta, full.model_.theta, rtol=1e-12, atol=1e-14)
    assert inc.n_iter_ == 2 and inc.t_ == 2 * len(y)
    with pytest.raises(ValueError, match="not in classes_"):
        inc.partial_fit(X[:5], [0, 1, 2, 3, 1])
    with pytest.raises(ValueError, match="features"):
        inc.partial_fit(X[:, :4], y)


@pytest.mark.parametrize("params,match", [(dict(solver="lbfgs"), "solver.*lbfgs"),
                                          (dict(activation="gelu"), "activation"),
                                          (dict(hidden_layer_sizes=(4, 0)), "hidden_layer_sizes"),
                                          (dict(learning_rate_init=0.0), "learning_rate_init"),
                                          (dict(dtype="float16"), "dtype"), (dict(momentum=1.0), "momentum")])
def test_bad_parameters_are_named_at_fit(rng, params, match):
    X, y = _blobs(rng, n=20)
    clf = MLPClassifier(**params)  # stored as given
    with pytest.raises(ValueError, match=match):
        clf.fit(X, y)


# ------------------------------------------------------------------- scikit-learn's tools

def test_pipeline_grid_search_and_cross_val_score(rng):
    X, y = _blobs(rng, n=300)
    y = np.array(["red", "green", "blue"])[y]
    pipe = make_pipeline(StandardScaler(), MLPClassifier(max_iter=60, learning_rate_init=0.01, random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_score(pipe, X, y, cv=3)
        assert scores.shape == (3,) and scores.min() > 0.85
        grid = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(4,), (16,)],
                                   "mlpclassifier__alpha": [1e-4, 1e-2]}, cv=3).fit(X, y)
    assert grid.best_params_["mlpclassifier__hidden_layer_sizes"] in [(4,), (16,)]
    assert grid.best_score_ > 0.85 and grid.score(X, y) > 0.85
    reg = make_pipeline(StandardScaler(), MLPRegressor((16,), max_iter=200, learning_rate_init=0.01, random_state=0))
    target = X[:, 0] - X[:, 1] ** 2 / 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        assert cross_val_score(reg, X, target, cv=3).min() > 0.8


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("cls,factor", [(MLPClassifier, 1), (MLPRegressor, 2)])
def test_rates_are_converted_for_summed_gradients(rng, monkeypatch, solver, cls, factor):
    """The trainer gets lr / s (SGD) or epsilon * s (Adam) and a weight decay of alpha * s / batch_size, with s
    the batch size times 2 for the regressor's total squared error: Adam's epsilon is not covered by the
    parity test above (negligible there, as the two add it at different places)."""
    import fastnn.sklearn as fsk

    seen = {}

    class Spy(fsk.Trainer):
        def __init__(self, model, **kw):
            seen.update(kw)
            super().__init__(model, **kw)

    monkeypatch.setattr(fsk, "Trainer", Spy)
    X = rng.normal(size=(40, 3))
    y = rng.normal(size=40) if cls is MLPRegressor else rng.integers(0, 2, 40)
    cls((4,), solver=solver, batch_size=8, learning_rate_init=0.4, epsilon=1e-6, alpha=0.5, max_iter=1).fit(X, y)
    s = 8 * factor
    assert seen["batch_size"] == 8
    assert seen["lr"] == pytest.approx(0.4 if solver == "adam" else 0.4 / s)
    assert seen["eps"] == pytest.approx(1e-6 * s)
    assert seen["weight_decay"] == pytest.approx(0.5 * factor)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_class_weight_balanced_dict_and_errors(rng, monkeypatch, n_classes):
    """class_weight reaches Trainer.fit as class-index weights: 'balanced' is scikit-learn's
    compute_class_weight over the fit's y, a dict is keyed by the labels; 'balanced' in partial_fit and an
    unknown label are refused."""
    import fastnn.sklearn as fsk
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.array(["a", "b", "c"][:n_classes])
    y = labels[np.r_[np.zeros(20, int), rng.integers(1, n_classes, 10)]]
    X = rng.normal(size=(30, 3))
    seen = {}

    class Spy(fsk.Trainer):
        def fit(self, *args, **kw):
            seen["class_weight"] = kw.get("class_weight")
            return super().fit(*args, **kw)

    monkeypatch.setattr(fsk, "Trainer", Spy)
    MLPClassifier((4,), max_iter=2, class_weight="balanced").fit(X, y)
    want = compute_class_weight("balanced", classes=labels, y=y)
    assert seen["class_weight"] == pytest.approx(dict(enumerate(want)))
    MLPClassifier((4,), max_iter=2, class_weight={labels[-1]: 3.0}).fit(X, y)
    assert seen["class_weight"] == {n_classes - 1: 3.0}
    MLPClassifier((4,), max_iter=2).fit(X, y)
    assert seen["class_weight"] is None
    with pytest.raises(ValueError, match="not one of classes_"):
        MLPClassifier((4,), max_iter=2, class_weight={"z": 2.0}).fit(X, y)
    with pytest.raises(ValueError, match="partial_fit"):
        MLPClassifier((4,), class_weight="balanced").partial_fit(X, y, classes=labels)
    # a heavy class takes over the predictions
    heavy = MLPClassifier((8,), max_iter=50, learning_rate_init=0.05, random_state=0,
                          class_weight={labels[-1]: 1000.0, labels[0]: 1e-3}).fit(X, y)
    assert np.mean(heavy.predict(X) == labels[-1]) > 0.9
