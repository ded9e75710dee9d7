"""Models and the trainer: the fused epoch against the step-by-step path, persistence, bad input."""

import tracemalloc

import numpy as np
import pytest

import fastnn.functional as F
from fastnn._kernels import _core
from fastnn.models import MLP
from fastnn.train import History, Trainer, TrainingDiverged

OPTIMIZERS = ["sgd", "momentum", "nesterov", "adam"]
NETS = {
    "classifier": ([12, 10, 5], ["sigmoid", "softmax"]),
    "deep": ([12, 9, 7, 5], ["relu", "tanh", "softmax"]),
    "binary": ([12, 6, 1], ["tanh", "sigmoid"]),
    "autoencoder": ([12, 8, 4, 8, 12], ["relu", "relu", "relu", "sigmoid"]),
}


def _data(rng, net, n=83):
    sizes, _ = NETS[net]
    X = rng.random((n, sizes[0]))
    if net == "binary":
        return X, rng.integers(0, 2, (n, 1))
    if net == "autoencoder":
        return X, None
    return X, np.eye(sizes[-1])[rng.integers(0, sizes[-1], n)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("net", list(NETS))
def test_fused_epoch_matches_step_path(dtype, optimizer, net, rng):
    X, T = _data(rng, net)
    results = []
    for fused in (True, False):
        model = MLP(*NETS[net], dtype=dtype, seed=5)
        trainer = Trainer(model, optimizer=optimizer, lr=2e-3, batch_size=16, shuffle="epoch", seed=9,
                          fused=fused, progress=False, weight_decay=1e-3)
        hist = trainer.fit(X, T, epochs=4)
        results.append((model.theta.copy(), np.array(hist.train_loss), trainer.state1.copy()))
    tol = dict(rtol=2e-4, atol=2e-5) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, **tol)
    assert not np.array_equal(results[0][0], MLP(*NETS[net], dtype=dtype, seed=5).theta)  # it trained


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_fused_epoch_that_gathers_on_the_second_thread(dtype, optimizer, rng):
    """A first layer whose products are split over the threads and a small rest: with two threads the epoch
    gathers each next batch while the first thread runs the small layers and the loss. It must give one
    thread's numbers exactly, and the step-by-step path's within dtype tolerance."""
    sizes, acts = [1024, 64, 10], ["sigmoid", "softmax"]
    X = rng.random((150, 1024))  # 4 full batches of 32 and one of 22
    T = np.eye(10)[rng.integers(0, 10, 150)]
    assert _core.split_kind_of(32, 1024, 64) != "none"  # layer 0's products are shared by the threads
    assert _core.split_kind_of(1024, 32, 64) != "none"
    assert _core.split_kind_of(32, 64, 10) == "none"   # the rest is serial work
    results = []
    for fused, threads in ((True, 2), (True, 1), (False, 1)):
        model = MLP(sizes, acts, dtype=dtype, seed=5)
        trainer = Trainer(model, optimizer=optimizer, lr=1e-2, batch_size=32, shuffle="epoch", seed=9,
                          fused=fused, threads=threads, progress=False)
        hist = trainer.fit(X, T, epochs=3)
        results.append((model.theta.copy(), np.array(hist.train_loss), np.array(hist.train_acc)))
    for a, b in zip(results[0], results[1]):
        np.testing.assert_array_equal(a, b)
    tol = dict(rtol=2e-4, atol=2e-5) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)
    for a, b in zip(results[0], results[2]):
        np.testing.assert_allclose(a, b, **tol)
    assert not np.array_equal(results[0][0], MLP(sizes, acts, dtype=dtype, seed=5).theta)  # it trained


def test_training_learns_xor():
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]] * 8)
    y = np.array([0, 1, 1, 0] * 8)
    model = MLP([2, 8, 2], ["tanh", "softmax"], seed=0)
    hist = Trainer(model, optimizer="adam", lr=0.05, batch_size=8, progress=False).fit(X, y, epochs=200)
    assert hist.train_acc[-1] == 1.0
    assert (model.predict(X) == y).all()
    assert hist.train_loss[-1] < hist.train_loss[0] / 10


def test_same_seed_same_numbers_and_shuffle_modes(rng):
    X, T = _data(rng, "classifier")
    thetas = {}
    for key, shuffle, seed in (("a", "epoch", 1), ("b", "epoch", 1), ("c", "epoch", 2), ("d", "once", 1)):
        model = MLP(*NETS["classifier"], seed=3)
        Trainer(model, lr=1e-2, batch_size=10, shuffle=shuffle, seed=seed, progress=False).fit(X, T, 3)
        thetas[key] = model.theta
    np.testing.assert_array_equal(thetas["a"], thetas["b"])
    assert not np.allclose(thetas["a"], thetas["c"])
    assert not np.allclose(thetas["a"], thetas["d"])


def test_lr_decay_and_history(rng):
    X, T = _data(rng, "autoencoder")
    model = MLP(*NETS["autoencoder"], seed=1)
    hist = Trainer(model, optimizer="momentum", lr=1e-3, lr_decay=0.5, lr_step=2, batch_size=8,
                   progress=False).fit(X, None, epochs=5, valid=(X[:20], None))
    assert hist.lr == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4])
    assert len(hist.valid_loss) == 5 and np.isnan(hist.train_acc[0])
    assert isinstance(hist, History) and "5 epochs" in repr(hist)


def test_divergence_keeps_last_finite_parameters(rng):
    X = rng.random((64, 12))
    model = MLP([12, 8, 12], ["linear", "linear"], seed=0)  # an unbounded net; lr 0.01 is stable, 0.1 is not
    trainer = Trainer(model, lr=0.01, lr_decay=10.0, lr_step=2, batch_size=8, progress=False)
    snapshots = []
    with pytest.raises(TrainingDiverged, match=r"epoch 3 \(lr=0.1\).*end of epoch 2"):
        trainer.fit(X, None, epochs=50, callback=lambda ep, h: snapshots.append(model.theta.copy()))
    assert np.all(np.isfinite(model.theta))
    assert snapshots, "the first epoch should still be finite"
    np.testing.assert_array_equal(model.theta, snapshots[-1])


def test_checkpoint_and_restore_best(tmp_path, rng):
    X, T = _data(rng, "classifier", n=120)
    model = MLP(*NETS["classifier"], seed=0)
    ckpt = tmp_path / "best.npz"
    trainer = Trainer(model, optimizer="adam", lr=0.01, batch_size=16, progress=False, checkpoint=ckpt)
    hist = trainer.fit(X, T, epochs=6, valid=(X[:40], T[:40]))
    assert ckpt.exists() and hist.best_epoch is not None
    assert hist.valid_acc[hist.best_epoch] == max(hist.valid_acc)
    trainer.restore_best()
    np.testing.assert_array_equal(MLP.load(ckpt).theta, model.theta)
    assert list(tmp_path.iterdir()) == [ckpt]  # no temporary files left behind


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_load_round_trip(tmp_path, dtype, rng):
    model = MLP([6, 5, 3], ["relu", "softmax"], dtype=dtype, seed=4)
    path = model.save(tmp_path / "m.npz")
    loaded = MLP.load(path)
    assert repr(loaded) == repr(model)
    X = rng.random((4, 6))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_load_rejects_bad_files(tmp_path):
    with pytest.raises(ValueError, match="junk.npz"):
        (tmp_path / "junk.npz").write_bytes(b"not a zip file")
        MLP.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "obj.npz", format=np.array("fastnn.MLP/1"), sizes=np.array([2, 2]),
             activations=np.array([{"evil": 1}], dtype=object), loss=np.array("cross_entropy"), theta=np.zeros(6))
    with pytest.raises(ValueError, match="obj.npz"):
        MLP.load(tmp_path / "obj.npz")  # object arrays need pickle: refused, never unpickled
    np.savez(tmp_path / "short.npz", format=np.array("fastnn.MLP/1"), sizes=np.array([2, 2]),
             activations=np.array(["softmax"]), loss=np.array("cross_entropy"), theta=np.zeros(5))
    with pytest.raises(ValueError, match="5 parameters stored.*need 6"):
        MLP.load(tmp_path / "short.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a fastnn model"):
        MLP.load(tmp_path / "other.npz")


def test_bad_input_is_named(rng):
    model = MLP(*NETS["classifier"])
    X, T = _data(rng, "classifier")
    tr = Trainer(model, progress=False)
    with pytest.raises(ValueError, match=r"X: expected shape \(n_samples, 12\)"):
        tr.fit(X[:, :5], T, 1)
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        tr.fit(bad, T, 1)
    with pytest.raises(ValueError, match=r"Y: expected targets of shape \(83, 5\)"):  # the name users write
        tr.fit(X, T[:10], 1)
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        tr.fit(X, np.full(83, 7), 1)
    with pytest.raises(ValueError, match="epochs"):
        tr.fit(X, T, 0)
    with pytest.raises(ValueError, match="batch_size"):
        Trainer(model, batch_size=0)
    with pytest.raises(ValueError, match="optimizer"):
        Trainer(model, optimizer="rmsprop")
    with pytest.raises(ValueError, match="empty"):
        tr.fit(X[:0], T[:0], 1)
    with pytest.raises(ValueError, match="softmax only last"):
        MLP([3, 3, 3], ["softmax", "softmax"])
    with pytest.raises(TypeError, match="float32 or float64"):
        MLP([3, 3], ["softmax"], dtype="int32")


def test_epoch_allocates_nothing_proportional_to_the_data(rng):
    X = rng.random((10000, 512), dtype=np.float32)  # 20 MB; a per-epoch copy would show at once
    T = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 10000)]
    model = MLP([512, 32, 10], ["sigmoid", "softmax"], dtype="float32")
    trainer = Trainer(model, lr=1e-3, batch_size=32, shuffle="epoch", progress=False)
    trainer.fit(X[:100], T[:100], 1)  # first-use allocations outside the measurement
    tracemalloc.start()
    trainer.fit(X, T, 3)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # Only the batch order (8 bytes a row) and one batch's workspace may be allocated.
    assert peak < 0.05 * X.nbytes, f"peak {peak} bytes during training on {X.nbytes} bytes of data"


def test_repr_and_parameters():
    model = MLP([4, 3, 2], ["relu", "softmax"], seed=0)
    assert "4-3-2" in repr(model) and "relu/softmax" in repr(model)
    params = model.parameters()
    assert [p.shape for p in params] == [(4, 3), (3,), (3, 2), (2,)]
    params[0][0, 0] = 123.0
    assert model.theta[0] == 123.0  # views of the flat vector
    assert "Trainer(" in repr(Trainer(model))


def test_coursework_protocol_reproduces_the_drop_in_loop(rng):
    """RandomState(seed) init plus its permutation as the batch order gives the coursework loop's numbers."""
    import fastnn.nn as nn
    import _reference as R

    X = rng.random((50, 12))
    Y = np.eye(5)[rng.integers(0, 5, 50)]
    hist_ref, params = R.train_two_layer(nn, X, Y, 10, 8, 0.01, 5, seed=42)
    rs = np.random.RandomState(42)
    model = MLP([12, 10, 5], ["sigmoid", "softmax"]).init("xavier", rng=rs)
    hist = Trainer(model, lr=0.01, batch_size=8, progress=False).fit(X, Y, 5, order=rs.permutation(50))
    np.testing.assert_allclose(model.weights[0], params["Wlayer1"], atol=1e-12)
    np.testing.assert_allclose(model.biases[1], params["boutput"], atol=1e-12)
    np.testing.assert_allclose(np.array(hist.train_loss) * 50, [h[0] for h in hist_ref], rtol=1e-12)
    with pytest.raises(ValueError, match="permutation"):
        Trainer(model, progress=False).fit(X, Y, 1, order=np.zeros(50, int))


def test_thread_choice_does_not_change_the_numbers(rng):
    
    X, T = _data(rng, "classifier", n=300)
    X = np.hstack([X] * 40)  # wide enough for the products to be split over threads
    thetas = []
    before = F.get_num_threads()
    for threads in ("auto", 1):
        model = MLP([X.shape[1], 64, 5], ["sigmoid", "softmax"], seed=0)
        Trainer(model, lr=1e-3, batch_size=32, progress=False, threads=threads).fit(X, T, 8)
        thetas.append(model.theta)
    assert F.get_num_threads() == before
    np.testing.assert_allclose(thetas[0], thetas[1], rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="threads"):
        Trainer(model, threads=0)


def test_adam_constants_that_would_divide_by_zero_are_refused():
    model = MLP([4, 3, 2], ["sigmoid", "softmax"], seed=0)
    with pytest.raises(ValueError, match="betas"):
        Trainer(model, optimizer="adam", betas=(1.0, 0.999))
    with pytest.raises(ValueError, match="betas"):
        Trainer(model, optimizer="adam", betas=(0.9,))
    with pytest.raises(ValueError, match="eps"):
        Trainer(model, optimizer="adam", eps=0.0)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_epoch_whose_team_is_slowed_sends_threads_away_and_keeps_the_numbers(optimizer, rng):
    """When the other threads keep the first one waiting for the parts they hold (as a machine busy with
    other work makes them), the epoch sends half of them away (``reduced_from``). ``_core._test_lag`` makes
    the others sleep 2 ms in every part they take, so the first thread waits most of every batch: the
    parameters, the optimizer state and the loss must still equal a one-thread epoch's bitwise."""
    X = rng.random((6400, 1024)).astype(np.float32)  # 100 batches of 64, layer 0 cut in parts
    T = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 6400)]
    order = rng.permutation(6400).astype(np.int64)
    results = []
    for threads, lag in ((4, 2000), (1, 0)):  # 4 threads start whatever the CPUs here (set_cpus below)
        model = MLP([1024, 64, 10], ["sigmoid", "softmax"], dtype="float32", seed=3)
        plan = F.epoch_plan(model.sizes, model.activations, model.loss, optimizer=optimizer, batch_size=64,
                            dtype="float32")
        state = plan.new_state()
        _core._test_lag(0, lag)
        cpus = _core.set_cpus(8)
        try:
            r = F.train_epoch(plan, X, T, order, model.theta, state, lr=1e-3, threads=threads)
        finally:
            _core._test_lag(0, 0)
            _core.set_cpus(cpus)
        results.append((r, model.theta.copy(), state[0].copy()))
    (rs, theta_s, s_s), (r1, theta1, s1) = results
    assert rs.threads > 1 and rs.reduced_from >= 1 and r1.reduced_from == -1
    assert (rs.loss, rs.correct, rs.step, rs.batches) == (r1.loss, r1.correct, 100, 100)
    np.testing.assert_array_equal(theta_s, theta1)
    np.testing.assert_array_equal(s_s, s1)


def test_a_plan_remembers_the_threads_a_slowed_call_kept_and_tries_all_again_later(rng):
    """After a call that sent threads away, the plan's next calls start with the threads that were left, and
    every RETRY_FULL_TEAM-th call with all of them again; the numbers are a one-thread epoch's throughout."""
    X = rng.random((2048, 1024)).astype(np.float32)
    T = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 2048)]
    order = np.arange(2048, dtype=np.int64)
    plan = F.epoch_plan([1024, 64, 10], ["sigmoid", "softmax"], "cross_entropy", batch_size=64, dtype="float32")
    theta0 = (np.random.default_rng(3).standard_normal(plan.n_params) * 0.05).astype(np.float32)
    one = theta0.copy()
    F.train_epoch(plan, X, T, order, one, plan.new_state(), lr=1e-3, threads=1)
    cpus = _core.set_cpus(8)  # as on a machine of 8 CPUs, so that 4 threads start whatever this one has
    _core._test_lag(0, 2000)
    try:
        theta = theta0.copy()
        first = F.train_epoch(plan, X, T, order, theta, plan.new_state(), lr=1e-3, threads=4)
        _core._test_lag(0, 0)
        np.testing.assert_array_equal(theta, one)
        started = []
        for _ in range(F.RETRY_FULL_TEAM + 1):
            theta = theta0.copy()
            r = F.train_epoch(plan, X, T, order, theta, plan.new_state(), lr=1e-3, threads=4)
            started.append(r.threads)
            np.testing.assert_array_equal(theta, one)
    finally:
        _core._test_lag(0, 0)
        _core.set_cpus(cpus)
    assert first.threads == 4 and first.reduced_from >= 1
    assert all(n < 4 for n in started[:F.RETRY_FULL_TEAM]) and started[F.RETRY_FULL_TEAM] == 4, started


def test_an_epoch_starts_no_more_threads_than_the_cpus_the_process_may_use(rng):
    """A thread beyond the CPUs could only take a CPU from one that holds a part: the epoch starts
    min(threads, the plan's parts, the CPUs), with the same numbers."""
    plan = F.epoch_plan([1024, 64, 10], ["sigmoid", "softmax"], "cross_entropy", batch_size=1024, dtype="float32")
    assert plan.max_parts >= 8
    X = rng.random((2048, 1024)).astype(np.float32)
    T = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 2048)]
    thetas = []
    for cpus in (1, 3, 8):
        old = _core.set_cpus(cpus)
        try:
            theta = np.zeros(plan.n_params, np.float32)
            r = F.train_epoch(plan, X, T, np.arange(2048), theta, plan.new_state(), lr=1e-3, threads=16)
        finally:
            _core.set_cpus(old)
        assert r.threads == cpus
        thetas.append(theta)
    for theta in thetas[1:]:
        np.testing.assert_array_equal(theta, thetas[0])


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_progress_within_an_epoch_keeps_every_number(optimizer, rng, capsys):
    """With a progress bar the fused epoch runs in slices of whole batches and reports after each; the
    parameters, optimizer state and the epochs' loss sums must equal those of one call per epoch bitwise."""
    X = rng.random((400, 64))
    T = np.eye(5)[rng.integers(0, 5, 400)]  # 25 batches of 16: a first slice of 8, then the rest
    runs = []
    for progress in (True, False):
        model = MLP([64, 32, 5], ["tanh", "softmax"], seed=1)
        trainer = Trainer(model, optimizer=optimizer, lr=1e-2, batch_size=16, shuffle="epoch", progress=progress)
        hist = trainer.fit(X, T, 3)
        runs.append((model.theta.copy(), trainer.state1.copy(), hist.train_loss, hist.train_acc, trainer.step))
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    err = capsys.readouterr().err
    assert "epoch 1/3" in err and "epoch 3/3" in err and "loss" in err  # plain lines: stderr is not a terminal
