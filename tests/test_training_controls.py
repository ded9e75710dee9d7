"""Training controls (issue 22): AdamW, learning-rate schedules, sample and class weights, the mean loss.

Each control runs inside the compiled epoch (the MLP's and the CNN's) and in the step path; both are held
to a plain NumPy reference (tests/_reference.py) and to each other, and to torch where it is installed."""

import math

import numpy as np
import pytest

import _reference as R
import fastnn.functional as F
from fastnn.layers import Conv2D, Dense, Flatten, MaxPool2D
from fastnn.models import CNN, MLP
from fastnn.train import Trainer

DTYPES = ["float32", "float64"]
#: The trainer's fused epoch against the step path or the float64 reference, over tens of steps.
TRAIN_TOL = {"float32": dict(rtol=2e-4, atol=2e-5), "float64": dict(rtol=1e-9, atol=1e-11)}


def _classes(rng, n=80, d=12, c=5):
    return rng.random((n, d)), rng.integers(0, c, n)


def _cnn(dtype="float64", seed=3):
    return CNN((8, 8, 1), [Conv2D(1, 4, 3, activation="relu"), MaxPool2D(2), Flatten(), Dense(36, 3, "softmax")],
               dtype=dtype, seed=seed)


def _fit(model, X, y, epochs, fit_kw=None, **kw):
    options = dict(lr=3e-3, batch_size=16, shuffle="epoch", seed=2, progress=False) | kw
    trainer = Trainer(model, **options)
    hist = trainer.fit(X, y, epochs, **(fit_kw or {}))
    return trainer, hist


# ----------------------------------------------------------------------------------------------- AdamW

@pytest.mark.parametrize("dtype", DTYPES)
def test_adamw_update_matches_the_reference_over_50_steps(dtype, rng):
    p = rng.standard_normal(37).astype(dtype)
    m, v = np.zeros_like(p), np.zeros_like(p)
    ref = [p.astype(np.float64), np.zeros(37), np.zeros(37)]
    for step in range(1, 51):
        g = rng.standard_normal(37).astype(dtype)
        F.adamw_update([p], [g], [m], [v], step, lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.1)
        R.adamw([ref[0]], [g.astype(np.float64)], [ref[1]], [ref[2]], step, 0.01, 0.8, 0.99, 1e-6, 0.1)
    tol = R.tol(dtype) if dtype == "float64" else dict(rtol=1e-4, atol=1e-5)
    for got, want in zip((p, m, v), ref):
        np.testing.assert_allclose(got, want, **tol)


def test_adamw_without_decay_is_adam_and_with_decay_differs_from_adam_with_l2(rng):
    p0 = rng.standard_normal(20)
    grads = [rng.standard_normal(20) for _ in range(5)]
    runs = {}
    for name, update, wd in (("adamw0", F.adamw_update, 0.0), ("adam0", F.adam_update, 0.0),
                             ("adamw", F.adamw_update, 0.1), ("adam", F.adam_update, 0.1)):
        p, m, v = p0.copy(), np.zeros(20), np.zeros(20)
        for step, g in enumerate(grads, 1):
            update([p], [g], [m], [v], step, lr=0.01, weight_decay=wd)
        runs[name] = p
    np.testing.assert_array_equal(runs["adamw0"], runs["adam0"])
    assert not np.allclose(runs["adamw"], runs["adam"])


def test_adamw_matches_torch_optim_adamw():
    torch = pytest.importorskip("torch", reason="torch is not installed: the torch.optim.AdamW parity is skipped")
    rng = np.random.default_rng(7)
    p0 = rng.standard_normal(30)
    grads = rng.standard_normal((50, 30))
    tp = torch.nn.Parameter(torch.tensor(p0))
    opt = torch.optim.AdamW([tp], lr=0.01, betas=(0.85, 0.995), eps=1e-7, weight_decay=0.05)
    p, m, v = p0.copy(), np.zeros(30), np.zeros(30)
    for step, g in enumerate(grads, 1):
        tp.grad = torch.tensor(g)
        opt.step()
        F.adamw_update([p], [g], [m], [v], step, lr=0.01, beta1=0.85, beta2=0.995, eps=1e-7, weight_decay=0.05)
    state = opt.state[tp]
    np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(m, state["exp_avg"].numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(v, state["exp_avg_sq"].numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_adamw_epoch_matches_the_step_path_and_the_reference_over_50_steps(dtype, rng):
    """10 batches an epoch for 5 epochs: 50 AdamW steps, parameters and both moment buffers."""
    X, y = _classes(rng, n=160)
    T = np.eye(5)[y]
    results = []
    for fused in (True, False):
        model = MLP([12, 10, 5], ["tanh", "softmax"], dtype=dtype, seed=1)
        trainer, _ = _fit(model, X, y, 5, optimizer="adamw", weight_decay=0.5, shuffle="none", fused=fused)
        assert trainer.step == 50
        results.append((model.theta.copy(), trainer.state1.copy(), trainer.state2.copy()))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, **TRAIN_TOL[dtype])
    model = MLP([12, 10, 5], ["tanh", "softmax"], dtype=dtype, seed=1)
    ref = R.mlp_train(model, X, T, np.arange(160), 16, [3e-3] * 50, "adamw", weight_decay=0.5, epochs=5)
    tol = TRAIN_TOL[dtype] if dtype == "float64" else dict(rtol=2e-3, atol=2e-4)
    for a, b in zip(results[0], ref):
        np.testing.assert_allclose(a, b, **tol)
    # the decoupled decay is there: plain Adam with the same weight_decay ends elsewhere
    adam = MLP([12, 10, 5], ["tanh", "softmax"], dtype=dtype, seed=1)
    _fit(adam, X, y, 5, optimizer="adam", weight_decay=0.5, shuffle="none")
    assert not np.allclose(adam.theta, results[0][0], **tol)


def test_fused_adamw_cnn_epoch_matches_the_step_path(rng):
    X, y = rng.random((40, 8, 8, 1)), rng.integers(0, 3, 40)
    results = []
    for fused in (True, False):
        model = _cnn()
        trainer, _ = _fit(model, X, y, 3, optimizer="adamw", weight_decay=0.3, fused=fused)
        results.append((model.theta.copy(), trainer.state1.copy(), trainer.state2.copy()))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, **TRAIN_TOL["float64"])


def test_adamw_is_in_the_optimizer_table_and_the_plans():
    assert "adamw" in F.OPTIMIZERS
    plan = F.epoch_plan([3, 4, 2], ["relu", "softmax"], "cross_entropy", optimizer="adamw", betas=(0.8, 0.9),
                        eps=1e-6)
    assert (plan.mu, plan.beta2, plan.eps, plan.state_sizes) == (0.8, 0.9, 1e-6, (plan.n_params, plan.n_params))


# ------------------------------------------------------------------------------------------- schedules

def test_schedule_rates_match_the_formulas_over_50_steps():
    from fastnn.train import cosine_rates, onecycle_rates

    np.testing.assert_allclose(cosine_rates(0.1, 0.001, 0, 50, 50), [R.cosine_lr(0.1, k, 50, 0.001) for k in range(50)],
                               rtol=1e-12)
    got = np.concatenate([onecycle_rates(0.1, s, 10, 50) for s in range(0, 50, 10)])
    np.testing.assert_allclose(got, [R.onecycle_lr(0.1, k, 50) for k in range(50)], rtol=1e-12)
    assert got[0] == pytest.approx(0.1 / 25) and got.max() == pytest.approx(0.1)
    assert got[-1] == pytest.approx(0.1 / 25 / 1e4)


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_schedules_match_torch_lr_scheduler(schedule):
    torch = pytest.importorskip("torch", reason="torch is not installed: the lr_scheduler parity is skipped")
    from fastnn.train import cosine_rates, onecycle_rates

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    if schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=50, eta_min=0.002)
        ours = cosine_rates(0.1, 0.002, 0, 50, 50)
    else:
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=50, cycle_momentum=False)
        ours = onecycle_rates(0.1, 0, 50, 50)
    theirs = []
    for _ in range(50):
        theirs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("schedule", ["cosine", "onecycle", "callable"])
def test_fused_epoch_applies_each_batch_s_rate_as_the_reference(schedule, dtype, rng):
    """SGD over 5 epochs of 10 batches (the last short: 155 rows): every batch at its own rate, inside the
    compiled epoch, against the NumPy reference fed the formula's rates."""
    X, y = _classes(rng, n=155)
    T = np.eye(5)[y]
    total = 50
    if schedule == "cosine":
        rates = [R.cosine_lr(0.02, k, total, 0.001) for k in range(total)]
        kw = dict(lr_schedule="cosine", lr_min=0.001)
    elif schedule == "onecycle":
        rates = [R.onecycle_lr(0.02, k, total) for k in range(total)]
        kw = dict(lr_schedule="onecycle")
    else:
        rates = [0.02 / (1 + k / 10) for k in range(total)]
        kw = dict(lr_schedule=lambda epoch: 0.02 / (1 + epoch))
    results = []
    for fused in (True, False):
        model = MLP([12, 10, 5], ["sigmoid", "softmax"], dtype=dtype, seed=1)
        _, hist = _fit(model, X, y, 5, lr=0.02, shuffle="none", fused=fused, **kw)
        results.append(model.theta.copy())
    np.testing.assert_allclose(hist.lr, rates[::10], rtol=1e-12)  # History.lr: each epoch's first batch's
    np.testing.assert_allclose(results[0], results[1], **TRAIN_TOL[dtype])
    model = MLP([12, 10, 5], ["sigmoid", "softmax"], dtype=dtype, seed=1)
    ref, _, _ = R.mlp_train(model, X, T, np.arange(155), 16, rates, epochs=5)
    np.testing.assert_allclose(results[0], ref, **(TRAIN_TOL[dtype] if dtype == "float64" else
                                                    dict(rtol=2e-3, atol=2e-4)))
    # and not at a constant rate per epoch
    const = MLP([12, 10, 5], ["sigmoid", "softmax"], dtype=dtype, seed=1)
    ref_const, _, _ = R.mlp_train(const, X, T, np.arange(155), 16, np.repeat(rates[::10], 10), epochs=5)
    assert not np.allclose(results[0], ref_const, rtol=1e-6, atol=1e-7)


def test_a_schedule_in_the_cnn_epoch_matches_the_step_path(rng):
    X, y = rng.random((40, 8, 8, 1)), rng.integers(0, 3, 40)
    results = []
    for fused in (True, False):
        model = _cnn()
        _fit(model, X, y, 3, lr=0.01, lr_schedule="onecycle", optimizer="momentum", fused=fused)
        results.append(model.theta.copy())
    np.testing.assert_allclose(results[0], results[1], **TRAIN_TOL["float64"])


def test_the_callable_gets_the_epoch_as_a_float(rng):
    X, y = _classes(rng, n=40)
    seen = []

    def schedule(epoch):
        seen.append(epoch)
        return 1e-3

    _fit(MLP([12, 6, 5], ["relu", "softmax"], seed=0), X, y, 2, batch_size=16, lr_schedule=schedule)
    assert seen == pytest.approx([0, 1 / 3, 2 / 3, 1, 4 / 3, 5 / 3])


def test_step_schedule_and_lr_decay_keep_today_s_numbers(rng):
    """lr_decay/lr_step are the 'step' schedule: the same bits with or without naming it, one rate per epoch
    passed as a float (today's path)."""
    X, y = _classes(rng)
    runs = []
    for kw in (dict(lr_decay=0.5, lr_step=2), dict(lr_decay=0.5, lr_step=2, lr_schedule="step")):
        model = MLP([12, 10, 5], ["tanh", "softmax"], seed=1)
        trainer, hist = _fit(model, X, y, 5, **kw)
        runs.append((model.theta.copy(), hist.lr, hist.train_loss))
        assert not isinstance(trainer._epoch_rates(3, 5, 5, 0.1), np.ndarray)
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1] == [3e-3, 3e-3, 1.5e-3, 1.5e-3, 7.5e-4]
    assert runs[0][2] == runs[1][2]


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_a_schedule_with_a_progress_bar_keeps_every_number(schedule, rng, capsys):
    """A progress bar runs the epoch in slices: each slice starts at its own batch's rate."""
    X, y = rng.random((400, 12)), rng.integers(0, 5, 400)
    thetas = []
    for progress in (False, None):
        model = MLP([12, 10, 5], ["tanh", "softmax"], seed=1)
        _fit(model, X, y, 2, batch_size=4, lr_schedule=schedule, progress=progress)
        thetas.append(model.theta.copy())
    np.testing.assert_array_equal(thetas[0], thetas[1])


def test_run_epoch_in_slices_reads_the_rates_from_the_slice_s_first_batch(rng):
    X, y = rng.random((100, 12)), rng.integers(0, 5, 100)
    T = np.eye(5)[y]
    rates = np.linspace(0.02, 0.001, 13)
    thetas = []
    for on_progress in (None, lambda *a: None):
        model = MLP([12, 10, 5], ["tanh", "softmax"], seed=1)
        trainer = Trainer(model, lr=0.01, batch_size=8, progress=False)
        trainer.run_epoch(X, T, np.arange(100, dtype=np.int64), rates, on_progress=on_progress)
        thetas.append(model.theta.copy())
    np.testing.assert_array_equal(thetas[0], thetas[1])


@pytest.mark.parametrize("kw, match", [
    (dict(lr_schedule="linear"), "lr_schedule"),
    (dict(lr_schedule="cosine", lr_decay=0.5, lr_step=2), "lr_decay/lr_step"),
    (dict(lr_min=-1.0), "lr_min"),
    (dict(loss_reduction="avg"), "loss_reduction"),
])
def test_bad_schedule_options_are_named(kw, match):
    with pytest.raises(ValueError, match=match):
        Trainer(MLP([2, 2], ["softmax"]), **kw)


@pytest.mark.parametrize("value", [float("nan"), -1.0, "fast", None])
def test_a_callable_returning_a_bad_rate_is_named(value, rng):
    X, y = _classes(rng, n=20)
    trainer = Trainer(MLP([12, 5], ["softmax"]), lr_schedule=lambda e: value, progress=False)
    with pytest.raises(ValueError, match="lr_schedule"):
        trainer.fit(X, y, 1)


def test_train_epoch_checks_the_rates_per_batch(rng):
    model = MLP([3, 2], ["softmax"])
    plan = model.epoch_plan(batch_size=2)
    X, T = rng.random((5, 3)), np.eye(2)[rng.integers(0, 2, 5)]
    order = np.arange(5, dtype=np.int64)
    state = plan.new_state()
    for bad in (np.full(2, 0.1), np.array([0.1, np.nan, 0.1]), np.array([0.1, -0.1, 0.1]),
                np.full(3, 0.1, dtype=np.float32)):
        with pytest.raises(ValueError, match="lr"):
            F.train_epoch(plan, X, T, order, model.theta, state, lr=bad)


# --------------------------------------------------------------------------------- sample and class weights

NETS = {
    "classifier": ([12, 10, 5], ["sigmoid", "softmax"]),
    "binary": ([12, 6, 1], ["tanh", "sigmoid"]),
    "regressor": ([12, 8, 3], ["relu", "linear"]),
}


def _targets(net, rng, n):
    if net == "classifier":
        return rng.integers(0, 5, n)
    if net == "binary":
        return rng.integers(0, 2, (n, 1))
    return rng.standard_normal((n, 3))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("net", list(NETS))
@pytest.mark.parametrize("fused", [True, False])
def test_weights_of_all_ones_give_today_s_bits(net, fused, dtype, rng):
    X = rng.random((83, 12))
    Y = _targets(net, rng, 83)
    runs = []
    for fit_kw in ({}, dict(sample_weight=np.ones(83))):
        model = MLP(*NETS[net], dtype=dtype, seed=1)
        _, hist = _fit(model, X, Y, 3, fit_kw, optimizer="momentum", fused=fused)
        runs.append((model.theta.copy(), hist.train_loss, hist.train_acc))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]
    np.testing.assert_array_equal(runs[0][2], runs[1][2])


def test_weights_of_all_ones_give_today_s_bits_in_the_cnn_epoch(rng):
    X, y = rng.random((40, 8, 8, 1)), rng.integers(0, 3, 40)
    runs = []
    for fit_kw in ({}, dict(sample_weight=np.ones(40)), dict(class_weight={0: 1.0})):
        model = _cnn("float32")
        _, hist = _fit(model, X, y, 2, fit_kw, optimizer="adam")
        runs.append((model.theta.copy(), hist.train_loss))
    for run in runs[1:]:
        np.testing.assert_array_equal(runs[0][0], run[0])
        assert runs[0][1] == run[1]


@pytest.mark.parametrize("net", list(NETS))
@pytest.mark.parametrize("fused", [True, False])
def test_integer_weights_equal_repeated_rows(net, fused, rng):
    """One batch of every row per epoch (SGD, the data's order): a row of weight k is k copies of the row."""
    n = 30
    X = rng.random((n, 12))
    Y = _targets(net, rng, n)
    w = rng.integers(0, 4, n)
    rows = np.repeat(np.arange(n), w)
    weighted, repeated = MLP(*NETS[net], seed=1), MLP(*NETS[net], seed=1)
    _, hw = _fit(weighted, X, Y, 4, dict(sample_weight=w), lr=2e-3, batch_size=n, shuffle="none", fused=fused)
    _, hr = _fit(repeated, X[rows], Y[rows], 4, lr=2e-3, batch_size=rows.size, shuffle="none", fused=fused)
    np.testing.assert_allclose(weighted.theta, repeated.theta, rtol=1e-10, atol=1e-12)
    # the reported loss is the weighted sum over the n rows, per row
    np.testing.assert_allclose(np.array(hw.train_loss) * n, np.array(hr.train_loss) * rows.size, rtol=1e-10)


def test_integer_class_weights_equal_repeated_rows_in_the_cnn_epoch(rng):
    X, y = rng.random((24, 8, 8, 1)), rng.integers(0, 3, 24)
    cw = {0: 2, 1: 1, 2: 3}
    rows = np.repeat(np.arange(24), [cw[c] for c in y])
    weighted, repeated = _cnn(), _cnn()
    _fit(weighted, X, y, 3, dict(class_weight=cw), batch_size=24, shuffle="none")
    _fit(repeated, X[rows], y[rows], 3, batch_size=rows.size, shuffle="none")
    np.testing.assert_allclose(weighted.theta, repeated.theta, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("net", list(NETS))
def test_weighted_fused_epoch_matches_the_step_path_and_the_reference(net, reduction, dtype, rng):
    X = rng.random((83, 12))
    Y = _targets(net, rng, 83)
    w = rng.random(83) * 3
    results = []
    for fused in (True, False):
        model = MLP(*NETS[net], dtype=dtype, seed=1)
        _fit(model, X, Y, 3, dict(sample_weight=w), lr=2e-3, shuffle="none", fused=fused,
             loss_reduction=reduction)
        results.append(model.theta.copy())
    np.testing.assert_allclose(results[0], results[1], **TRAIN_TOL[dtype])
    model = MLP(*NETS[net], dtype=dtype, seed=1)
    T = np.eye(5)[Y] if net == "classifier" else Y
    ref, _, _ = R.mlp_train(model, X, T, np.arange(83), 16, [2e-3] * 18, w=w, reduction=reduction, epochs=3)
    np.testing.assert_allclose(results[0], ref, **(TRAIN_TOL[dtype] if dtype == "float64" else
                                                    dict(rtol=2e-3, atol=2e-4)))


def test_weighted_cnn_epoch_matches_the_step_path(rng):
    X, y = rng.random((40, 8, 8, 1)), rng.integers(0, 3, 40)
    w = rng.random(40) * 2
    results = []
    for fused in (True, False):
        model = _cnn()
        _, hist = _fit(model, X, y, 3, dict(sample_weight=w, class_weight="balanced"), optimizer="nesterov",
                       fused=fused, loss_reduction="mean", lr=0.05)
        results.append((model.theta.copy(), np.array(hist.train_loss)))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, **TRAIN_TOL["float64"])


def test_weights_schedule_and_mean_give_the_same_bits_on_two_threads(rng):
    """A first layer whose products the threads share, so that the second thread gathers the next batch's
    rows (and weights) while the first runs the loss: any thread count gives the same numbers."""
    X, y = rng.random((150, 1024)), rng.integers(0, 10, 150)
    w = rng.random(150)
    runs = []
    for threads in (2, 1):
        model = MLP([1024, 64, 10], ["sigmoid", "softmax"], dtype="float32", seed=5)
        _, hist = _fit(model, X, y, 2, dict(sample_weight=w), batch_size=32, threads=threads, optimizer="adamw",
                       weight_decay=0.1, lr_schedule="cosine", loss_reduction="mean")
        runs.append((model.theta.copy(), hist.train_loss))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("net", list(NETS))
def test_weighted_loss_gradient_matches_finite_differences(net, reduction, rng):
    model = MLP(*NETS[net], seed=4)
    X = rng.random((7, 12))
    Y = _targets(net, rng, 7)
    T = np.eye(5)[Y] if net == "classifier" else Y.astype(np.float64)
    w = rng.random(7) * 2
    _, _, grad = model.loss_gradient(X, T, weights=w, reduction=reduction)
    theta, h = model.theta.copy(), 1e-6
    numeric = np.empty_like(theta)
    for i in range(theta.size):
        plus, minus = theta.copy(), theta.copy()
        plus[i] += h
        minus[i] -= h
        numeric[i] = (model.loss_gradient(X, T, theta=plus, weights=w, reduction=reduction)[0]
                      - model.loss_gradient(X, T, theta=minus, weights=w, reduction=reduction)[0]) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)
    loss_ref, grad_ref = R.mlp_loss_gradient(model, theta, X, T, w, reduction)
    np.testing.assert_allclose(grad, grad_ref, **R.tol("float64"))
    assert model.loss_gradient(X, T, weights=w, reduction=reduction)[0] == pytest.approx(loss_ref, rel=1e-12)


def test_weighted_cnn_loss_gradient_matches_finite_differences(rng):
    model = _cnn(seed=6)
    X, y = rng.random((5, 8, 8, 1)), rng.integers(0, 3, 5)
    T, w = np.eye(3)[y], rng.random(5) * 2
    _, _, grad = model.loss_gradient(X, T, weights=w, reduction="mean")
    theta, h = model.theta.copy(), 1e-6
    for i in rng.choice(theta.size, 40, replace=False):
        plus, minus = theta.copy(), theta.copy()
        plus[i] += h
        minus[i] -= h
        numeric = (model.loss_gradient(X, T, theta=plus, weights=w, reduction="mean")[0]
                   - model.loss_gradient(X, T, theta=minus, weights=w, reduction="mean")[0]) / (2 * h)
        assert grad[i] == pytest.approx(numeric, rel=1e-5, abs=1e-8)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("labels", ["index", "onehot"])
def test_functional_losses_take_weights_and_a_reduction(labels, reduction, dtype, rng):
    n = 9
    Z = rng.standard_normal((n, 4)).astype(dtype)
    y = rng.integers(0, 4, n)
    w = rng.random(n) * 2
    T = np.eye(4)[y]
    want_loss, want_delta = R.weighted_loss("cross_entropy", Z, T, w, reduction)
    r = F.softmax_cross_entropy(Z, y if labels == "index" else T.astype(dtype), weights=w, reduction=reduction)
    assert r.loss == pytest.approx(want_loss, rel=1e-5 if dtype == "float32" else 1e-12)
    np.testing.assert_allclose(r.delta, want_delta, **R.tol(dtype))
    assert r.accuracy == np.mean(Z.argmax(axis=1) == y)  # not weighted
    Zb, yb = Z[:, :1], (y % 2).reshape(-1, 1)
    want_loss, want_delta = R.weighted_loss("binary_cross_entropy", Zb, yb, w, reduction)
    r = F.sigmoid_binary_cross_entropy(Zb, yb, weights=w, reduction=reduction)
    assert r.loss == pytest.approx(want_loss, rel=1e-5 if dtype == "float32" else 1e-12)
    np.testing.assert_allclose(r.delta, want_delta, **R.tol(dtype))
    P = rng.standard_normal((n, 3)).astype(dtype)
    Y = rng.standard_normal((n, 3)).astype(dtype)
    want_loss, want_delta = R.weighted_loss("squared_error", P, Y, w, reduction)
    loss, delta = F.squared_error(P, Y, weights=w, reduction=reduction)
    assert loss == pytest.approx(want_loss, rel=1e-5 if dtype == "float32" else 1e-12)
    np.testing.assert_allclose(delta, want_delta, **R.tol(dtype))
    loss, delta, _ = F.batch_loss("squared_error", P, Y, weights=w, reduction=reduction)
    np.testing.assert_allclose(delta, want_delta, **R.tol(dtype))


def test_a_row_of_weight_zero_adds_nothing_even_at_an_infinite_logit():
    Z = np.array([[-np.inf, 0.0], [0.0, 0.0]])
    r = F.softmax_cross_entropy(Z, np.array([[1.0, 0.0], [1.0, 0.0]]), weights=[0.0, 1.0])
    assert r.loss == pytest.approx(math.log(2))
    np.testing.assert_array_equal(r.delta[0], [0.0, 0.0])


@pytest.mark.parametrize("bad, match", [
    (dict(weights=[1.0, 1.0]), "weights"), (dict(weights=[1.0, -1.0, 1.0]), "weights"),
    (dict(weights=[1.0, np.nan, 1.0]), "weights"), (dict(reduction="avg"), "reduction"),
])
def test_functional_losses_name_bad_weights(bad, match):
    with pytest.raises(ValueError, match=match):
        F.softmax_cross_entropy(np.zeros((3, 2)), np.array([0, 1, 0]), **bad)


def test_class_weight_balanced_is_scikit_learn_s_and_dicts_multiply_with_sample_weight(rng):
    y = np.array([0, 0, 0, 0, 1, 1, 3, 3, 3, 3, 3, 3])
    X = rng.random((12, 3))
    trainer = Trainer(MLP([3, 4], ["softmax"]), progress=False)
    T = trainer.targets(y, 12)
    counts = {0: 4, 1: 2, 3: 6}
    balanced = trainer.row_weights(T, 12, class_weight="balanced")
    np.testing.assert_allclose(balanced, [12 / (3 * counts[c]) for c in y])  # 3 classes present, of 4
    sw = rng.random(12)
    both = trainer.row_weights(T, 12, sample_weight=sw, class_weight={3: 2.0, 2: 5.0})
    np.testing.assert_allclose(both, sw * np.where(y == 3, 2.0, 1.0))
    assert trainer.row_weights(T, 12) is None
    binary = Trainer(MLP([3, 1], ["sigmoid"]), progress=False)
    Tb = binary.targets(y % 2, 12)
    np.testing.assert_allclose(binary.row_weights(Tb, 12, class_weight={1: 3.0}), np.where(y % 2, 3.0, 1.0))
    trainer.fit(X, y, 1, class_weight="balanced")


@pytest.mark.parametrize("fit_kw, match", [
    (dict(sample_weight=np.ones(5)), "sample_weight"),
    (dict(sample_weight=-np.ones(12)), "sample_weight"),
    (dict(sample_weight=np.full(12, np.inf)), "sample_weight"),
    (dict(class_weight={7: 1.0}), "class_weight: unknown classes"),
    (dict(class_weight={"a": 1.0}), "class_weight: unknown classes"),
    (dict(class_weight={0: -1.0}), "class_weight"),
    (dict(class_weight="auto"), "class_weight"),
])
def test_bad_weights_are_named(fit_kw, match, rng):
    trainer = Trainer(MLP([3, 4], ["softmax"]), progress=False)
    with pytest.raises(ValueError, match=match):
        trainer.fit(rng.random((12, 3)), rng.integers(0, 4, 12), 1, **fit_kw)


def test_class_weight_for_a_regression_loss_is_refused(rng):
    trainer = Trainer(MLP([3, 2], ["linear"]), progress=False)
    with pytest.raises(ValueError, match="class_weight: only for a classifier"):
        trainer.fit(rng.random((12, 3)), rng.random((12, 2)), 1, class_weight="balanced")
    trainer.fit(rng.random((12, 3)), rng.random((12, 2)), 1, sample_weight=rng.random(12))  # these are fine


# ----------------------------------------------------------------------------------------- the mean loss

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fused", [True, False])
def test_mean_at_lr_is_sum_at_lr_over_rows_when_every_batch_is_full(fused, dtype, rng):
    X, y = _classes(rng, n=96)
    thetas, losses = [], []
    for kw in (dict(loss_reduction="mean", lr=0.32), dict(loss_reduction="sum", lr=0.32 / 16)):
        model = MLP([12, 10, 5], ["tanh", "softmax"], dtype=dtype, seed=1)
        _, hist = _fit(model, X, y, 3, batch_size=16, fused=fused, **kw)
        thetas.append(model.theta.copy())
        losses.append(hist.train_loss)
    np.testing.assert_allclose(thetas[0], thetas[1], **TRAIN_TOL[dtype])
    np.testing.assert_allclose(losses[0], losses[1], **TRAIN_TOL[dtype])  # the same figures reported


@pytest.mark.parametrize("dtype", DTYPES)
def test_mean_divides_a_short_last_batch_by_its_own_rows(dtype, rng):
    X, y = _classes(rng, n=90)  # 5 batches of 16 and one of 10
    T = np.eye(5)[y]
    model = MLP([12, 10, 5], ["tanh", "softmax"], dtype=dtype, seed=1)
    _fit(model, X, y, 2, lr=0.3, batch_size=16, shuffle="none", loss_reduction="mean")
    fresh = MLP([12, 10, 5], ["tanh", "softmax"], dtype=dtype, seed=1)
    ref, _, _ = R.mlp_train(fresh, X, T, np.arange(90), 16, [0.3] * 12, reduction="mean", epochs=2)
    np.testing.assert_allclose(model.theta, ref, **(TRAIN_TOL[dtype] if dtype == "float64" else
                                                    dict(rtol=2e-3, atol=2e-4)))
    # dividing the short batch by the full batch size instead would end elsewhere
    wrong = fresh.theta.astype(np.float64)
    for _ in range(2):
        for s in range(0, 90, 16):
            _, g = R.mlp_loss_gradient(fresh, wrong, X[s:s + 16], T[s:s + 16])
            wrong -= 0.3 * g / 16
    assert not np.allclose(model.theta, wrong, rtol=1e-5, atol=1e-6)


def test_mean_loss_in_the_cnn_epoch_matches_the_step_path(rng):
    X, y = rng.random((45, 8, 8, 1)), rng.integers(0, 3, 45)
    results = []
    for fused in (True, False):
        model = _cnn()
        _fit(model, X, y, 3, lr=0.1, loss_reduction="mean", fused=fused)
        results.append(model.theta.copy())
    np.testing.assert_allclose(results[0], results[1], **TRAIN_TOL["float64"])
