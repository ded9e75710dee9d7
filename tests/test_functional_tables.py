"""The loss table (LOSS_TABLE, check_loss, batch_loss), the step plan and the conv epoch plan's names of
fastnn.functional."""

import re

import numpy as np
import pytest

import fastnn.functional as F

DTYPES = [np.float32, np.float64]
OPTIONS = dict(batch_size=8, momentum=0.9, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
LAYERS = [("conv", 1, 2, 3), ("flatten",), ("dense", 4 * 4 * 2, 3, "softmax")]


def _close(a, b, dtype):
    tol = 1.5e-4 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


# ---------------------------------------------------------------------------------- the table

def test_loss_table_lists_every_loss_in_order():
    assert tuple(F.LOSS_TABLE) == F.LOSSES == ("cross_entropy", "binary_cross_entropy", "squared_error")
    for name, entry in F.LOSS_TABLE.items():
        assert isinstance(entry, F.Loss) and entry.name == name
    ce, bce, se = (F.LOSS_TABLE[n] for n in F.LOSSES)
    assert (ce.output_activation, ce.from_logits, ce.counts_correct) == ("softmax", True, True)
    assert (bce.output_activation, bce.n_out, bce.from_logits, bce.counts_correct) == ("sigmoid", 1, True, True)
    assert (se.output_activation, se.not_with, se.from_logits, se.counts_correct) == (None, ("softmax",), False, False)
    with pytest.raises(AttributeError):  # frozen
        ce.from_logits = False


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_loss_cross_entropy_is_softmax_cross_entropy(dtype, rng):
    Z = rng.standard_normal((13, 5)).astype(dtype)
    labels = rng.integers(0, 5, 13)
    for T in (labels, np.eye(5, dtype=dtype)[labels]):
        loss, delta, correct = F.batch_loss("cross_entropy", Z, T)
        r = F.softmax_cross_entropy(Z, T)
        _close(loss, r.loss, dtype)
        assert delta.dtype == dtype
        _close(delta, r.delta, dtype)
        assert isinstance(correct, int) and correct == round(r.accuracy * 13) == int((Z.argmax(1) == labels).sum())


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_loss_binary_cross_entropy_is_sigmoid_binary_cross_entropy(dtype, rng):
    Z = rng.standard_normal((11, 1)).astype(dtype)
    T = rng.integers(0, 2, (11, 1)).astype(dtype)
    loss, delta, correct = F.batch_loss("binary_cross_entropy", Z, T)
    r = F.sigmoid_binary_cross_entropy(Z, T)
    _close(loss, r.loss, dtype)
    assert delta.dtype == dtype
    _close(delta, r.delta, dtype)
    assert isinstance(correct, int) and correct == round(r.accuracy * 11) == int(((Z >= 0) == (T == 1)).sum())


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_loss_squared_error_is_squared_error(dtype, rng):
    Z = rng.standard_normal((7, 3)).astype(dtype)
    T = rng.standard_normal((7, 3)).astype(dtype)
    loss, delta, correct = F.batch_loss("squared_error", Z, T)
    ref_loss, ref_delta = F.squared_error(Z, T)
    _close(loss, ref_loss, dtype)
    _close(loss, float(((Z.astype(np.float64) - T) ** 2).sum()), dtype)
    assert delta.dtype == dtype
    _close(delta, ref_delta, dtype)
    assert correct == 0


def test_batch_loss_refuses_an_unknown_loss_as_epoch_plan_does():
    with pytest.raises(ValueError) as plan_error:
        F.epoch_plan([3, 2], ["softmax"], "hinge")
    with pytest.raises(ValueError, match=re.escape(str(plan_error.value))):
        F.batch_loss("hinge", np.zeros((2, 2)), np.array([0, 1]))


@pytest.mark.parametrize("activation, n_out, expected", [
    ("softmax", 10, "cross_entropy"), ("softmax", 1, "cross_entropy"), ("sigmoid", 1, "binary_cross_entropy"),
    ("sigmoid", 3, "squared_error"), ("linear", 1, "squared_error"), ("relu", 4, "squared_error"),
    ("tanh", 2, "squared_error"),
])
def test_check_loss_defaults_from_the_output_layer(activation, n_out, expected):
    assert F.check_loss(None, activation, n_out) == expected
    assert F.check_loss(expected, activation, n_out) == expected  # and the default is accepted as given


def test_check_loss_accepts_the_pairs_the_table_allows():
    assert F.check_loss("squared_error", "sigmoid", 1) == "squared_error"
    assert F.check_loss("squared_error", "linear", 3) == "squared_error"
    assert F.check_loss("cross_entropy", "softmax", 2) == "cross_entropy"


@pytest.mark.parametrize("loss, activation, n_out, message", [
    ("cross_entropy", "sigmoid", 3, "loss 'cross_entropy' needs a 'softmax' output layer"),
    ("cross_entropy", "linear", 1, "loss 'cross_entropy' needs a 'softmax' output layer"),
    ("binary_cross_entropy", "sigmoid", 2, "loss 'binary_cross_entropy' needs one 'sigmoid' output unit"),
    ("binary_cross_entropy", "softmax", 1, "loss 'binary_cross_entropy' needs one 'sigmoid' output unit"),
    ("squared_error", "softmax", 4,
     "loss 'squared_error' with a softmax output is not supported; use 'cross_entropy'"),
])
def test_check_loss_refuses_a_loss_the_output_layer_cannot_feed(loss, activation, n_out, message):
    with pytest.raises(ValueError) as info:
        F.check_loss(loss, activation, n_out)
    assert str(info.value) == message == F.LOSS_TABLE[loss].mismatch


@pytest.mark.parametrize("loss", ["hinge", "", "Cross_Entropy", 3, ["cross_entropy"]])
def test_check_loss_refuses_an_unknown_name(loss):
    with pytest.raises(ValueError) as info:
        F.check_loss(loss, "softmax", 3)
    assert str(info.value) == f"loss: expected one of {F.LOSSES}, got {loss!r}"


# ---------------------------------------------------------------------------------- the plans

@pytest.mark.parametrize("optimizer, sizes", [("sgd", (0, 0)), ("momentum", (12, 0)), ("nesterov", (12, 0)),
                                              ("adam", (12, 12))])
@pytest.mark.parametrize("dtype", DTYPES)
def test_step_plan_sizes_the_optimizer_state(optimizer, sizes, dtype):
    plan = F.step_plan(12, optimizer=optimizer, dtype=dtype, **OPTIONS)
    assert (plan.optimizer, plan.batch_size, plan.dtype, plan.n_params) == (optimizer, 8, np.dtype(dtype), 12)
    assert plan.state_sizes == sizes
    state = plan.new_state()
    assert len(state) == 2 and [s.shape for s in state] == [(n,) for n in sizes]
    assert all(s.dtype == dtype and not s.any() for s in state)
    assert "StepPlan(12 parameters" in repr(plan)


@pytest.mark.parametrize("optimizer", F.OPTIMIZERS)
def test_the_epoch_plans_are_step_plans_with_the_same_options(optimizer):
    """An epoch plan holds the optimizer's options and state sizes as step_plan gives them."""
    dense = F.epoch_plan([3, 4, 2], ["relu", "softmax"], "cross_entropy", optimizer=optimizer, **OPTIONS)
    conv = F.conv_epoch_plan(LAYERS, (6, 6, 1), "cross_entropy", optimizer=optimizer, **OPTIONS)
    for plan in (dense, conv):
        step = F.step_plan(plan.n_params, optimizer=optimizer, **OPTIONS)
        assert isinstance(plan, F.StepPlan)
        for name in ("optimizer", "optimizer_code", "batch_size", "dtype", "mu", "beta2", "eps", "weight_decay",
                     "state_sizes"):
            assert getattr(plan, name) == getattr(step, name), name


@pytest.mark.parametrize("bad", [
    {"optimizer": "rmsprop"}, {"optimizer": None}, {"batch_size": 0}, {"batch_size": 2.0}, {"batch_size": True},
    {"dtype": "float16"}, {"momentum": 1.0}, {"momentum": float("nan")}, {"betas": (1.0, 0.9)},
    {"betas": (0.9,)}, {"betas": (0.9, float("nan"))}, {"eps": 0.0}, {"eps": float("inf")},
    {"weight_decay": -1.0}, {"weight_decay": float("nan")},
])
def test_step_plan_refuses_a_bad_option_with_the_epoch_plans_message(bad):
    options = {**OPTIONS, "optimizer": "adam", **bad}
    errors = []
    for plan in (lambda: F.step_plan(10, **options),
                 lambda: F.epoch_plan([3, 2], ["softmax"], "cross_entropy", **options),
                 lambda: F.conv_epoch_plan(LAYERS, (6, 6, 1), "cross_entropy", **options)):
        with pytest.raises((ValueError, TypeError)) as info:
            plan()
        errors.append((type(info.value), str(info.value)))
    assert errors[0] == errors[1] == errors[2], errors


@pytest.mark.parametrize("n_params", [0, -3, 2.5, True, "10"])
def test_step_plan_refuses_a_bad_parameter_count(n_params):
    with pytest.raises(ValueError, match="n_params"):
        F.step_plan(n_params)


def test_conv_epoch_plan_is_network_plan():
    assert F.conv_epoch_plan is F.network_plan
    from fastnn.functional import conv_epoch_plan, network_plan

    assert conv_epoch_plan is network_plan
    plan = F.conv_epoch_plan(LAYERS, (6, 6, 1), "cross_entropy")
    assert isinstance(plan, F.NetworkPlan) and plan.n_params == 3 * 3 * 1 * 2 + 2 + 32 * 3 + 3
