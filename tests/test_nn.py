"""The drop-in coursework API against the plain NumPy coursework code in _reference.py."""

import collections
import warnings

import numpy as np
import pytest

import fastnn.nn as nn
from fastnn.gradcheck import gradient_check

import _reference as R


@pytest.fixture
def toy():
    """The coursework's toy data, drawn from a private generator (the global RNG is left alone)."""
    state = np.random.get_state()
    np.random.seed(7)
    x, y = R.toy_data()
    np.random.set_state(state)
    return x, y


def _seeded(fn, seed=42):
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        return fn()
    finally:
        np.random.set_state(state)


def test_q2_sequence_matches_reference(toy):
    """Init, forward, softmax, loss, backwards and batches give the coursework's numbers."""
    x, y = toy
    out = {}
    for mod in (R, nn):
        params = {}

        def run(mod=mod, params=params):  # called at once, in this iteration
            mod.initialize_weights(2, 25, params, "layer1")
            mod.initialize_weights(25, 4, params, "output")
            h1 = mod.forward(x, params, "layer1")
            probs = mod.forward(h1, params, "output", mod.softmax)
            loss, acc = mod.compute_loss_and_acc(y, probs)
            delta2 = mod.backwards(probs - y, params, "output", mod.linear_deriv)
            gx = mod.backwards(delta2, params, "layer1", mod.sigmoid_deriv)
            batches = mod.get_random_batches(x, y, 5)
            return params, probs, loss, acc, gx, batches

        out[mod] = _seeded(run)
    (pr, probs_r, loss_r, acc_r, gx_r, b_r), (pf, probs_f, loss_f, acc_f, gx_f, b_f) = out[R], out[nn]
    assert set(pr) == set(pf)
    for k in pr:
        if k.startswith("cache_"):
            for a, b in zip(pr[k], pf[k]):
                np.testing.assert_allclose(a, b, atol=1e-12)
        else:
            np.testing.assert_allclose(pr[k], pf[k], atol=1e-12)
            assert pf[k].shape == pr[k].shape
    np.testing.assert_allclose(probs_f, probs_r, atol=1e-12)
    assert loss_f == pytest.approx(loss_r, abs=1e-10) and acc_f == acc_r
    np.testing.assert_allclose(gx_f, gx_r, atol=1e-12)
    assert len(b_f) == len(b_r) == 8
    for (xa, ya), (xb, yb) in zip(b_r, b_f):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_toy_training_500_epochs_matches_reference(toy):
    x, y = toy
    hist_r, params_r = R.train_two_layer(R, x, y, 25, 5, 1e-3, 500, seed=3)
    hist_f, params_f = R.train_two_layer(nn, x, y, 25, 5, 1e-3, 500, seed=3)
    np.testing.assert_allclose(np.array(hist_f), np.array(hist_r), atol=1e-10)
    for k in ("Wlayer1", "blayer1", "Woutput", "boutput"):
        np.testing.assert_allclose(params_f[k], params_r[k], atol=1e-10)
    assert hist_f[-1][0] <= 35 and hist_f[-1][1] >= 0.75


def test_momentum_loop_with_counter_params(toy):
    """The coursework's momentum loop keeps M_ keys in a Counter, where a missing key reads as 0."""
    x, y = toy
    results = []
    for mod in (R, nn):
        def run(mod=mod):  # called at once, in this iteration
            params = collections.Counter()
            mod.initialize_weights(2, 8, params, "layer1")
            mod.initialize_weights(8, 4, params, "output")
            for _ in range(20):
                h = mod.forward(x, params, "layer1", mod.tanh)
                probs = mod.forward(h, params, "output", mod.softmax)
                d = mod.backwards(probs - y, params, "output", mod.linear_deriv)
                mod.backwards(d, params, "layer1", mod.tanh_deriv)
                for k in list(params):
                    if "_" in k:
                        continue
                    params["M_" + k] = 0.9 * params["M_" + k] - 1e-3 * params["grad_" + k]
                    params[k] += params["M_" + k]
            return params
        results.append(_seeded(run, 5))
    for k in ("Wlayer1", "boutput", "M_Wlayer1", "M_boutput"):
        np.testing.assert_allclose(results[1][k], results[0][k], atol=1e-12)


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "relu", "linear"])
def test_activations_match_reference_any_shape(act):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 5)) * 4
    fast, ref = getattr(nn, act), getattr(R, act)
    np.testing.assert_allclose(fast(x), ref(x), atol=1e-12)
    np.testing.assert_allclose(getattr(nn, act + "_deriv")(fast(x)), getattr(R, act + "_deriv")(ref(x)), atol=1e-12)
    assert np.isscalar(fast(0.5))


def test_sigmoid_no_overflow_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = nn.sigmoid(np.array([-1000.0, 1000.0]))
    assert s[0] == 0.0 and s[1] == 1.0


def test_user_activation_functions_fall_back(toy):
    x, y = toy

    def leaky(v):
        return np.where(v > 0, v, 0.1 * v)

    def leaky_deriv(post):
        return np.where(post > 0, 1.0, 0.1)

    grads = []
    for mod in (R, nn):
        def run(mod=mod):  # called at once, in this iteration
            params = {}
            mod.initialize_weights(2, 6, params, "h")
            out = mod.forward(x, params, "h", leaky)
            gx = mod.backwards(np.ones_like(out), params, "h", leaky_deriv)
            return out, gx, params["grad_Wh"]
        grads.append(_seeded(run))
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, atol=1e-12)


def test_bad_input_errors_and_nothing_changes():
    params = {}
    with pytest.raises(ValueError, match="in_size"):
        nn.initialize_weights(0, 3, params, "x")
    assert params == {}
    nn.initialize_weights(3, 2, params, "a")
    with pytest.raises(KeyError, match="Wmissing"):
        nn.forward(np.ones((2, 3)), params, "missing")
    with pytest.raises(ValueError, match=r"W: expected shape \(4, m\)"):
        nn.forward(np.ones((2, 4)), params, "a")
    assert "cache_a" not in params
    with pytest.raises(KeyError, match="cache_"):
        nn.backwards(np.ones((2, 2)), params, "a")
    with pytest.raises(ValueError, match="batch_size"):
        nn.get_random_batches(np.ones((4, 2)), np.ones((4, 1)), 0)
    with pytest.raises(ValueError, match="same number of rows"):
        nn.get_random_batches(np.ones((4, 2)), np.ones((3, 1)), 2)
    with pytest.raises(ValueError, match="empty"):
        nn.get_random_batches(np.ones((0, 2)), np.ones((0, 1)), 2)


def test_last_batch_may_be_short():
    batches = _seeded(lambda: nn.get_random_batches(np.arange(14.0).reshape(7, 2), np.arange(7), 3))
    assert [len(b[0]) for b in batches] == [3, 3, 1]
    assert sorted(np.concatenate([b[1] for b in batches])) == list(range(7))


@pytest.mark.parametrize("hidden", ["sigmoid", "tanh", "relu", "linear"])
@pytest.mark.parametrize("final", ["softmax", "sigmoid", "linear"])
def test_gradient_check_passes_for_every_activation(hidden, final):
    rng = np.random.default_rng(11)
    params = {}
    _seeded(lambda: (nn.initialize_weights(3, 6, params, "layer1"), nn.initialize_weights(6, 4, params, "output")))
    x = rng.standard_normal((5, 3))
    y = np.eye(4)[rng.integers(0, 4, 5)] if final == "softmax" else rng.random((5, 4))
    err = gradient_check(params, x, y, [("layer1", hidden), ("output", final)])
    assert err < 1e-5


def test_gradient_check_detects_a_wrong_gradient(monkeypatch):
    """The check must be able to fail: a broken derivative is caught."""
    rng = np.random.default_rng(2)
    params = {}
    _seeded(lambda: (nn.initialize_weights(3, 4, params, "layer1"), nn.initialize_weights(4, 2, params, "output")))
    import fastnn.gradcheck as gc

    monkeypatch.setitem(gc._LAYER_FUNCS, "tanh", (nn.tanh, lambda a: np.ones_like(a)))
    err = gradient_check(params, rng.standard_normal((5, 3)), np.eye(2)[[0, 1, 0, 1, 1]],
                         [("layer1", "tanh"), ("output", "softmax")])
    assert err > 1e-2


def test_the_readme_drop_in_example_runs_as_written():
    """The README's fastnn.nn example, exactly as printed there, runs and ends with a finite loss."""
    import re
    from pathlib import Path

    readme = Path(__file__).resolve().parents[1] / "README.md"
    if not readme.exists():
        pytest.skip("README.md is not beside the tests")
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(encoding="utf-8"), re.S)
    example = next(b for b in blocks if "from fastnn.nn import *" in b)
    scope = {}
    exec(compile(example, "README.md", "exec"), scope)
    assert scope["params"]["Wlayer1"].shape == (1024, 64) and np.isfinite(scope["loss"])
