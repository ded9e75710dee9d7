"""The thread team inside one process: every thread count from 1 to 8 gives the same bits.

The core cuts each large product, the optimizer step and a batch's images into parts by their shapes
alone, and its threads take parts; so 1, 2, 3, 4 or 8 threads must give bitwise the same parameters,
optimizer state and losses, in the dense and the convolutional epoch, with short last batches, products
cut along every dimension, and more threads than this machine's CPUs (which exercises the code for many
cores on a small machine).  The plans report how their work is cut.  Across processes (fork, spawn,
joblib) see test_fork.py; the CPU levels, test_cpu_levels.py; the environment, test_threads_env.py.
"""

import numpy as np
import pytest

import fastnn.functional as F
from fastnn._kernels import _core

THREADS = (1, 2, 3, 4, 8)
CNN_LAYERS = [("conv", 1, 8, 3, 1, "same", "relu"), ("pool", 2), ("conv", 8, 16, 3, 1, "valid", "tanh"), ("pool", 2),
              ("flatten",), ("dense", 6 * 6 * 16, 96, "relu"), ("dense", 96, 10, "softmax")]


def _epochs(plan, X, T, epochs, threads, seed=1):
    """Train ``epochs`` epochs on ``threads`` threads (the kernel called directly, so that more threads than
    the plan's parts also run); return the parameters, the optimizer state and the per-epoch results."""
    theta = (np.random.default_rng(seed).standard_normal(plan.n_params) * 0.05).astype(plan.dtype)
    state = plan.new_state()
    order = np.random.default_rng(seed + 1).permutation(X.shape[0]).astype(np.int64)
    run = _core.network_epoch if isinstance(plan, F.NetworkPlan) else _core.mlp_epoch
    results, step = [], 0
    for _ in range(epochs):
        r = run(plan, X, T, order, theta, state[0], state[1], 1e-3, step, threads)
        step = r[2]
        results.append(r[:3] + (r[4],))
    return theta, state, results


def _same(runs):
    theta0, state0, res0 = runs[0]
    for theta, state, res in runs[1:]:
        np.testing.assert_array_equal(theta, theta0)
        for a, b in zip(state, state0):
            np.testing.assert_array_equal(a, b)
        assert res == res0


@pytest.mark.parametrize("case", [
    # (sizes, batch, optimizer, dtype): layer 0 cut by rows (batch 256) / along k (batch 16, 4096 inputs)
    ([1024, 256, 36], 256, "sgd", "float32"),
    ([1024, 256, 36], 256, "adam", "float64"),
    ([4096, 64, 10], 16, "momentum", "float32"),
    ([512, 512, 512, 10], 128, "nesterov", "float32"),
], ids=["rows-sgd-f32", "rows-adam-f64", "k-momentum-f32", "deep-nesterov-f32"])
def test_dense_epoch_gives_the_same_bits_on_1_to_8_threads(case, rng):
    sizes, batch, optimizer, dtype = case
    plan = F.epoch_plan(sizes, ["relu"] * (len(sizes) - 2) + ["softmax"], "cross_entropy", optimizer=optimizer,
                        batch_size=batch, dtype=dtype)
    assert plan.max_parts >= 4  # the threads really share the work
    n = 5 * batch + batch // 3  # a short last batch, cut differently
    X = rng.random((n, sizes[0])).astype(dtype)
    T = np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], n)]
    runs = [_epochs(plan, X, T, 2, threads) for threads in THREADS]
    _same(runs)
    assert runs[0][2][-1][2] == 2 * 6  # every batch of both epochs ran
    assert np.isfinite(runs[0][2][-1][0])


@pytest.mark.parametrize("batch, optimizer, dtype", [(32, "sgd", "float32"), (96, "adam", "float64"),
                                                     (256, "momentum", "float32")])
def test_conv_epoch_gives_the_same_bits_on_1_to_8_threads(batch, optimizer, dtype, rng):
    """Batches 96 (float64) and 256 do not keep their im2col rows: each thread computes them again into its
    own block."""
    plan = F.network_plan(CNN_LAYERS, (28, 28, 1), "cross_entropy", optimizer=optimizer, batch_size=batch,
                          dtype=dtype)
    assert plan.image_parts >= 8
    assert plan.keep_cols == (batch == 32)
    n = 2 * batch + 7
    X = rng.random((n, 28, 28, 1)).astype(dtype).reshape(n, -1)
    T = np.eye(10, dtype=dtype)[rng.integers(0, 10, n)]
    runs = [_epochs(plan, X, T, 1, threads) for threads in THREADS]
    _same(runs)
    assert runs[0][2][0][2] == 3 and np.isfinite(runs[0][2][0][0])


def test_conv_epoch_matches_its_step_path_on_many_threads(rng):
    """On 8 threads the compiled CNN epoch still computes the batches of the step-by-step path (a part's
    weight gradients added in part order change only the rounding)."""
    from fastnn.cnn import CNN
    from fastnn.layers import Conv2D, Dense, Flatten, MaxPool2D
    from fastnn.train import Trainer

    layers = [Conv2D(1, 8, 3, padding="same"), MaxPool2D(2), Conv2D(8, 16, 3), MaxPool2D(2), Flatten(),
              Dense(6 * 6 * 16, 32, "relu"), Dense(32, 10, "softmax")]
    X = rng.random((300, 28, 28, 1))
    y = rng.integers(0, 10, 300)
    thetas = []
    for fused, threads in ((True, 8), (False, 1)):
        model = CNN((28, 28, 1), layers, seed=3)
        Trainer(model, optimizer="adam", lr=1e-3, batch_size=64, fused=fused, threads=threads,
                progress=False).fit(X, y, 2)
        thetas.append(model.theta)
    np.testing.assert_allclose(thetas[0], thetas[1], rtol=1e-9, atol=1e-11)


def test_functions_outside_the_epoch_give_the_same_bits_on_1_to_8_threads(rng):
    """dense forward and backward, a large product, an optimizer update, conv forward and backward and
    max-pooling: each cut into parts by its shapes, the same bits on every thread count."""
    X = rng.standard_normal((512, 1024)).astype(np.float32)
    W = rng.standard_normal((1024, 256)).astype(np.float32) / 32
    b = rng.standard_normal(256).astype(np.float32)
    Xc = rng.standard_normal((40, 24, 24, 4))
    Wc = rng.standard_normal((3, 3, 4, 16)) / 6
    bc = rng.standard_normal(16)
    assert _core.split_of_product(512, 1024, 256)[1] >= 8
    old = F.get_num_threads()
    out = []
    try:
        for threads in THREADS:
            F.set_num_threads(threads)
            pre, post = F.dense_forward(X, W, b, "tanh")
            grads = F.dense_backward(np.cos(post), post, X, W, "tanh")
            p, m = W.ravel().copy(), np.zeros(W.size, np.float32)
            F.momentum_update([p], [grads[0].ravel()], [m], 1e-3)
            cpre, cpost = F.conv2d_forward(Xc, Wc, bc, "relu", padding="same")
            cgrads = F.conv2d_backward(np.sin(cpost), cpost, Xc, Wc, "relu", padding="same")
            pooled = F.max_pool2d_forward(cpost)
            out.append([pre, post, *grads, p, m, cpre, cpost, *cgrads, *pooled])
    finally:
        F.set_num_threads(old)
    for got in out[1:]:
        for a, c in zip(got, out[0]):
            np.testing.assert_array_equal(a, c)


def test_plans_report_how_their_work_is_cut():
    """``work_parts(threads)`` lists the steps the team shares: parts fixed by the shapes, and the threads each
    keeps busy (no more than its parts); ``max_parts`` bounds the threads an epoch starts."""
    plan = F.epoch_plan([1024, 64, 36], ["sigmoid", "softmax"], "cross_entropy", optimizer="adam", batch_size=1024,
                        dtype="float32")
    steps = {s["step"]: s for s in plan.work_parts(8)}
    assert steps["layer 0 forward"]["shape"] == (1024, 1024, 64)
    assert steps["layer 0 forward"]["cut"] == "rows" and steps["layer 0 forward"]["parts"] >= 8
    assert steps["layer 0 forward"]["threads"] == 8
    assert steps["optimizer"]["values"] == plan.n_params
    for threads in (1, 2, 64):
        for s in plan.work_parts(threads):
            assert s["parts"] == steps[s["step"]]["parts"]
            assert s["threads"] == min(threads, s["parts"])
    assert plan.max_parts == max(s["parts"] for s in plan.work_parts())
    small = F.epoch_plan([1024, 64, 36], ["sigmoid", "softmax"], "cross_entropy", batch_size=32)
    assert small.max_parts == 2  # batch 32: layer 0's products in two parts, the rest whole
    cnn = F.network_plan(CNN_LAYERS, (28, 28, 1), "cross_entropy", batch_size=64)
    stack = {s["step"]: s for s in cnn.work_parts(4)}
    assert stack["conv stack forward"]["parts"] == cnn.image_parts == 16
    assert stack["conv stack forward"]["threads"] == 4


def test_train_epoch_starts_no_more_threads_than_the_plan_has_parts(rng):
    plan = F.epoch_plan([64, 16, 4], ["tanh", "softmax"], "cross_entropy", batch_size=8)
    X = rng.random((40, 64))
    T = np.eye(4)[rng.integers(0, 4, 40)]
    theta = np.zeros(plan.n_params)
    r = F.train_epoch(plan, X, T, np.arange(40), theta, plan.new_state(), lr=0.1, threads=8)
    assert plan.max_parts == 1 and r.threads == 1 and r.batches == 5 and r.reduced_from == -1


def test_a_team_of_eight_starts_its_threads_and_core_info_says_so(rng):
    old = F.get_num_threads()
    try:
        F.set_num_threads(8)
        A = rng.standard_normal((1024, 1024)).astype(np.float32)
        C = np.empty((1024, 1024), np.float32)
        _core.gemm(A, A, C)
        info = F.core_info()
        assert info["threads"] == 8 and 1 <= info["workers"] <= 7
    finally:
        F.set_num_threads(old)
    assert F.core_info()["threads"] == old
    with pytest.raises(ValueError, match="threads"):
        F.set_num_threads(F.MAX_THREADS + 1)
