"""BatchNorm in the compiled training epoch (fastnn.functional.conv_epoch_plan / train_epoch): the same
training as the step path (batch by batch through fastnn.functional) to rounding, the running statistics
included, bitwise the same whatever the thread count, wherever the compiled epoch takes the layer (after a
conv, first in the stack, after the flatten or a global pooling, after a dense layer, on flat inputs)."""

import numpy as np
import pytest

import fastnn.functional as F
from fastnn.layers import (BatchNorm, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D, MaxPool2D)
from fastnn.models import CNN
from fastnn.train import Trainer

DTYPES = ["float32", "float64"]

#: BatchNorm everywhere the compiled epoch takes it: first (the inputs), after a conv and after its pool, after
#: the flatten, and after two dense layers (one with a Dropout after the BatchNorm).
STACKS = {
    "everywhere": ((8, 8, 1), [BatchNorm(), Conv2D(1, 4, 3, padding="same", activation="tanh"), BatchNorm(),
                               MaxPool2D(2), Conv2D(4, 6, 3, padding="same"), BatchNorm(momentum=0.3), Dropout(0.2),
                               Flatten(), BatchNorm(), Dense(96, 16, "relu"), BatchNorm(), Dropout(0.3),
                               Dense(16, 12, "sigmoid"), BatchNorm(eps=1e-3), Dense(12, 3, "softmax")]),
    "global pooling": ((8, 8, 2), [Conv2D(2, 5, 3, padding="same"), GlobalAvgPool2D(), BatchNorm(),
                                   Dense(5, 3, "softmax")]),
    "flat inputs": ((10,), [BatchNorm(), Dense(10, 16, "relu"), BatchNorm(), Dropout(0.25), Dense(16, 3, "softmax")]),
}


def _data(rng, shape, n, dtype):
    X = (rng.normal(size=(n,) + shape) * 2 + 1).astype(dtype)
    return X, rng.integers(0, 3, n)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("optimizer", ["sgd", "nesterov", "adam"])
@pytest.mark.parametrize("stack", list(STACKS))
def test_the_compiled_epoch_matches_the_step_path(stack, optimizer, dtype, rng):
    """Three reshuffled epochs with a short last batch: parameters and running statistics as the step path's."""
    shape, layers = STACKS[stack]
    X, y = _data(rng, shape, 37, dtype)
    got = []
    for fused in (True, False):
        model = CNN(shape, layers, dtype=dtype, seed=1)
        trainer = Trainer(model, optimizer=optimizer, lr=1e-3, batch_size=8, shuffle="epoch", fused=fused, seed=5,
                          progress=False)
        assert trainer.fused is fused and (not fused or isinstance(trainer.plan, F.NetworkPlan))
        trainer.fit(X, y, 3)
        got.append((model.theta.copy(), model.running.copy()))
    tol = dict(rtol=2e-4, atol=2e-5) if dtype == "float32" else dict(rtol=1e-9, atol=1e-11)
    if optimizer == "adam" and dtype == "float64":
        # Adam divides by the root of the gradients' squares, so a parameter whose gradient is near zero (a
        # BatchNorm's gamma before a ReLU) takes steps of about lr from rounding-sized gradients: the two paths'
        # products, summed in different groupings, leave parameters up to ~1e-8 apart after 3 epochs (7e-9 with
        # BLAS's products, 4e-9 with the core's own, on data of another seed); SGD and Nesterov stay within 1e-13.
        tol = dict(rtol=1e-9, atol=2e-8)
    np.testing.assert_allclose(got[0][0], got[1][0], **tol)
    # (float32: a running variance sums squares of activations that already differ by rounding, over 15 batches)
    np.testing.assert_allclose(got[0][1], got[1][1], **(dict(rtol=1e-3, atol=1e-4) if dtype == "float32" else tol))
    fresh = CNN(shape, layers, dtype=dtype, seed=1)
    assert not np.allclose(got[0][0], fresh.theta) and not np.allclose(got[0][1], fresh.running)


@pytest.mark.parametrize("stack", list(STACKS))
def test_any_thread_count_gives_the_same_bits(stack, rng):
    """Batches cut into several parts (the stack's images, the dense BatchNorms' columns): the parts' sums are
    added in part order, so 1, 2, 3 and 4 threads train to the same bits."""
    shape, layers = STACKS[stack]
    if stack == "everywhere":  # wide enough that the dense BatchNorms' columns are cut into parts too
        layers = [*layers[:9], Dense(96, 160, "relu"), BatchNorm(), Dropout(0.3), Dense(160, 12, "sigmoid"),
                  *layers[13:]]
    X, y = _data(rng, shape, 203, "float32")
    got = []
    for threads in (1, 2, 3, 4):
        model = CNN(shape, layers, dtype="float32", seed=1)
        trainer = Trainer(model, optimizer="sgd", lr=1e-3, batch_size=64, threads=threads, seed=3, progress=False)
        trainer.fit(X, y, 2)
        got.append(np.concatenate([model.theta, model.running]))
    assert trainer.fused and trainer.plan.image_parts > 1
    for other in got[1:]:
        np.testing.assert_array_equal(got[0], other)


def test_where_the_compiled_epoch_takes_batchnorm():
    for shape, layers in STACKS.values():
        assert CNN(shape, layers).network_layers() is not None
    plan = CNN(*STACKS["everywhere"]).epoch_plan(batch_size=8)
    assert plan.running_size == CNN(*STACKS["everywhere"]).running.size == 2 * (1 + 4 + 6 + 96 + 16 + 12)
    assert plan.dense_bnorm is not None and (plan.dense_bnorm[:, 0] >= 0).tolist() == [True, True, False]
    # a BatchNorm after a dense layer's Dropout, or two after a dense layer: batch by batch
    for layers in ([Dense(10, 8, "relu"), Dropout(0.1), BatchNorm(), Dense(8, 3, "softmax")],
                   [Dense(10, 8, "relu"), BatchNorm(), BatchNorm(), Dense(8, 3, "softmax")]):
        model = CNN((10,), layers)
        assert model.network_layers() is None and Trainer(model, progress=False).fused is False


def test_the_plan_names_a_bad_batchnorm():
    with pytest.raises(ValueError, match=r"layers\[2\] \(batchnorm\): after a dense layer"):
        F.conv_epoch_plan([("dense", 4, 4, "relu"), ("dropout", 0.1), ("batchnorm",), ("dense", 4, 2, "softmax")],
                          (4,), "cross_entropy")
    with pytest.raises(ValueError, match=r"layers\[0\] \(batchnorm\): eps: expected a finite number > 0"):
        F.conv_epoch_plan([("batchnorm", 0.0), ("dense", 4, 2, "softmax")], (4,), "cross_entropy")
    with pytest.raises(ValueError, match=r"momentum: expected a number in \[0, 1\]"):
        F.conv_epoch_plan([("batchnorm", 1e-5, 1.5), ("dense", 4, 2, "softmax")], (4,), "cross_entropy")


def test_train_epoch_needs_the_running_statistics_and_skips_a_failed_batch(rng):
    """train_epoch names the missing ``running``; a batch whose loss is not finite updates nothing, its
    running statistics included (they are updated after the loss)."""
    plan = F.conv_epoch_plan([("batchnorm",), ("dense", 4, 3, "softmax")], (4,), "cross_entropy", batch_size=4)
    X = rng.normal(size=(8, 4))
    T = np.eye(3)[rng.integers(0, 3, 8)]
    theta = np.concatenate([np.ones(4), np.zeros(4), rng.normal(size=12) * 0.1, np.zeros(3)])
    state = plan.new_state()
    with pytest.raises(ValueError, match="running: the plan's BatchNorm layers need their running statistics"):
        F.train_epoch(plan, X, T, np.arange(8), theta.copy(), state, lr=0.1)
    first = np.concatenate([np.zeros(4), np.ones(4)])
    F.train_epoch(plan, X, T, np.arange(4), theta.copy(), state, lr=0.1, running=first)
    X[5] = np.nan  # the second batch's loss is NaN
    both = np.concatenate([np.zeros(4), np.ones(4)])
    r = F.train_epoch(plan, X, T, np.arange(8), theta.copy(), plan.new_state(), lr=0.1, running=both)
    assert np.isnan(r.loss) and r.batches == 2
    np.testing.assert_array_equal(both, first)
    assert not np.array_equal(first, np.concatenate([np.zeros(4), np.ones(4)]))
