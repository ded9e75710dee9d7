"""Training that goes wrong: divergence keeps the last finite state, and bad hyperparameters are refused."""

import numpy as np
import pytest

import fastnn.functional as F
from fastnn.models import MLP
from fastnn.train import Trainer, TrainingDiverged


@pytest.fixture
def data():
    rng = np.random.default_rng(7)
    return rng.random((64, 20)), rng.integers(0, 3, 64)


@pytest.mark.parametrize("fused", [True, False])
def test_divergence_in_the_last_update_of_an_epoch_is_caught(data, fused):
    """With one batch per epoch the loss of every batch is computed before its update, so only the update can
    go wrong: lr=1e308 turns the parameters infinite with a finite loss. fit must raise, and keep the initial
    parameters, not return normally with infinite ones."""
    X, y = data
    model = MLP([20, 8, 3], ["sigmoid", "softmax"], seed=0)
    start = model.theta.copy()
    with pytest.raises(TrainingDiverged, match="epoch 1.*before training"):
        Trainer(model, lr=1e308, batch_size=64, fused=fused, progress=False).fit(X, y, 1)
    np.testing.assert_array_equal(model.theta, start)


def test_divergence_after_finite_epochs_keeps_a_finite_loadable_model(data, tmp_path):
    """Three epochs whose first is finite: the model is rolled back to the end of a finite epoch (which saves and
    loads), never to parameters that are already infinite."""
    X, y = data
    model = MLP([20, 8, 3], ["sigmoid", "softmax"], seed=0)
    trainer = Trainer(model, lr=1e-3, batch_size=64, progress=False)
    trainer.fit(X, y, 1)
    after_one = model.theta.copy()
    trainer.lr = 1e308
    with pytest.raises(TrainingDiverged, match="before training"):
        trainer.fit(X, y, 3)
    np.testing.assert_array_equal(model.theta, after_one)
    assert np.all(np.isfinite(MLP.load(model.save(tmp_path / "m.npz")).theta))


@pytest.mark.parametrize("optimizer", ["momentum", "nesterov", "adam"])
@pytest.mark.parametrize("fused", [True, False])
def test_a_diverged_trainer_is_rolled_back_and_can_be_retried(data, optimizer, fused):
    """Divergence rolls the optimizer state (momentum buffer, Adam's moments and step) back with the
    parameters: the same trainer, refitted at a sane learning rate, then trains exactly like a fresh trainer
    that never diverged."""
    X, y = data
    results = []
    for diverge_first in (True, False):
        model = MLP([20, 8, 3], ["sigmoid", "softmax"], seed=0)
        trainer = Trainer(model, optimizer=optimizer, lr=1e-2, batch_size=16, fused=fused, progress=False)
        trainer.fit(X, y, 2)
        if diverge_first:
            trainer.lr = float(np.finfo(np.float64).max)  # the first update overflows
            with pytest.raises(TrainingDiverged, match="rolled back"):
                trainer.fit(X, y, 2)
            trainer.lr = 1e-2
        hist = trainer.fit(X, y, 2)
        results.append((model.theta.copy(), trainer.state1.copy(), trainer.state2.copy(), trainer.step,
                        hist.train_loss))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    assert np.all(np.isfinite(results[0][1]))


@pytest.mark.parametrize("kwargs, name", [
    (dict(optimizer="momentum", momentum=float("nan")), "momentum"),
    (dict(optimizer="momentum", momentum=float("inf")), "momentum"),
    (dict(optimizer="nesterov", momentum=-0.5), "momentum"),
    (dict(optimizer="momentum", momentum=1.0), "momentum"),
    (dict(weight_decay=float("nan")), "weight_decay"),
    (dict(weight_decay=float("inf")), "weight_decay"),
    (dict(weight_decay=-1e-3), "weight_decay"),
    (dict(lr_decay=float("nan"), lr_step=5), "lr_decay"),
    (dict(lr=float("nan")), "lr"),
])
def test_trainer_refuses_non_finite_and_out_of_range_hyperparameters(kwargs, name):
    """Each would silently turn the parameters into NaN (and the error would then blame the learning rate):
    refused up front, naming the argument."""
    with pytest.raises(ValueError, match=name):
        Trainer(MLP([4, 3, 2], ["sigmoid", "softmax"]), **kwargs)


@pytest.mark.parametrize("call", [
    lambda p, g, b: F.sgd_update(p, g, 0.1, weight_decay=float("nan")),
    lambda p, g, b: F.sgd_update(p, g, 0.1, weight_decay=-1.0),
    lambda p, g, b: F.momentum_update(p, g, b, 0.1, mu=float("inf")),
    lambda p, g, b: F.momentum_update(p, g, b, 0.1, weight_decay=float("nan")),
    lambda p, g, b: F.adam_update(p, g, b, [np.zeros(3)], 1, weight_decay=float("inf")),
])
def test_optimizer_functions_refuse_non_finite_hyperparameters(call):
    params, grads, bufs = [np.ones(3)], [np.ones(3)], [np.zeros(3)]
    with pytest.raises(ValueError, match="weight_decay|mu"):
        call(params, grads, bufs)
    np.testing.assert_array_equal(params[0], 1.0)  # nothing modified


def test_target_errors_use_the_name_the_user_wrote():
    """fit(X, Y[:, :10]) blamed 'T', a name the user never wrote."""
    model = MLP([4, 3, 6], ["sigmoid", "softmax"])
    Y = np.eye(6)[np.arange(8) % 6]
    with pytest.raises(ValueError, match=r"^Y: expected targets of shape \(8, 6\)"):
        Trainer(model, progress=False).fit(np.zeros((8, 4)), Y[:, :3], 1)
    with pytest.raises(ValueError, match="^valid Y"):
        Trainer(model, progress=False).fit(np.zeros((8, 4)), Y, 1, valid=(np.zeros((8, 4)), Y[:, :3]))
