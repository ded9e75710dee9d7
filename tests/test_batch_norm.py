"""fastnn.layers.BatchNorm and fastnn.functional's batch normalisation: against NumPy references and finite
differences; a CNN with BatchNorm in training and inference, its files, and PyTorch/ONNX parity."""

import numpy as np
import pytest

import _reference as R
import fastnn.functional as F
from fastnn.layers import BatchNorm, Conv2D, Dense, Flatten, MaxPool2D
from fastnn.models import CNN, ModelFileError
from fastnn.train import Trainer

DTYPES = ["float32", "float64"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7, 3), (1, 4), (4, 5, 3, 2), (2, 1, 1, 6)])
def test_forward_and_backward_match_the_reference(dtype, shape, rng):
    X = (rng.normal(size=shape) * 3 + 1).astype(dtype)
    C = shape[-1]
    gamma, beta = rng.normal(size=C).astype(dtype), rng.normal(size=C).astype(dtype)
    r = F.batch_norm_forward(X, gamma, beta, eps=1e-5)
    Y, mean, var = R.batch_norm_forward(X, gamma, beta, 1e-5)
    np.testing.assert_allclose(r.Y, Y, **R.tol(dtype))
    np.testing.assert_allclose(r.mean, mean, rtol=1e-12 if dtype == "float64" else 1e-6, atol=1e-12)
    np.testing.assert_allclose(r.var, var, rtol=1e-10 if dtype == "float64" else 1e-5, atol=1e-12)
    assert r.Y.dtype == X.dtype and r.mean.dtype == np.float64
    dY = rng.normal(size=shape).astype(dtype)
    dX, dgamma, dbeta = F.batch_norm_backward(dY, X, gamma, r.mean, r.invstd)
    ref = R.batch_norm_backward(dY, X, gamma, 1e-5)
    for got, want in zip((dX, dgamma, dbeta), ref):
        np.testing.assert_allclose(got, want, rtol=R.tol(dtype)["rtol"], atol=10 * R.tol(dtype)["atol"])


def test_the_backward_is_the_derivative(rng):
    X, dY = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    gamma, beta = rng.normal(size=3), rng.normal(size=3)
    r = F.batch_norm_forward(X, gamma, beta)
    dX, dgamma, dbeta = F.batch_norm_backward(dY, X, gamma, r.mean, r.invstd)

    def f(X=X, gamma=gamma, beta=beta):
        return np.vdot(F.batch_norm_forward(X, gamma, beta).Y, dY)

    for arr, got, name in ((X, dX, "X"), (gamma, dgamma, "gamma"), (beta, dbeta, "beta")):
        numeric = np.zeros_like(arr)
        for idx in np.ndindex(*arr.shape):
            up, down = arr.copy(), arr.copy()
            up[idx] += 1e-6
            down[idx] -= 1e-6
            numeric[idx] = (f(**{name: up}) - f(**{name: down})) / 2e-6
        np.testing.assert_allclose(got, numeric, atol=1e-7, err_msg=name)


def test_inference_and_the_running_update(rng):
    X = rng.normal(size=(5, 4)).astype(np.float32)
    gamma, beta = np.full(4, 2, np.float32), np.full(4, 0.5, np.float32)
    rm, rv = rng.normal(size=4), rng.random(4) + 0.5
    Y = F.batch_norm_inference(X, gamma, beta, rm, rv, eps=1e-3)
    np.testing.assert_allclose(Y, 2 * (X - rm) / np.sqrt(rv + 1e-3) + 0.5, rtol=1e-5)
    mean, var = np.zeros(4), np.ones(4)
    r = F.batch_norm_forward(X, gamma, beta)
    F.update_running_stats(mean, var, r.mean, r.var, 5, 0.1)
    np.testing.assert_allclose(mean, 0.1 * X.astype(np.float64).mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(var, 0.9 + 0.1 * X.astype(np.float64).var(axis=0, ddof=1), rtol=1e-6)


@pytest.mark.parametrize("bad, match", [(dict(gamma=np.ones(2)), "gamma: expected shape \\(3,\\)"),
                                        (dict(eps=0.0), "eps"), (dict(X=np.ones((0, 3))), "at least one sample"),
                                        (dict(X=np.ones(3)), "expected an \\(n, C\\) batch")])
def test_bad_arguments_are_named(bad, match):
    args = dict(X=np.ones((4, 3)), gamma=np.ones(3), beta=np.zeros(3)) | {k: v for k, v in bad.items() if k != "eps"}
    with pytest.raises(ValueError, match=match):
        F.batch_norm_forward(args["X"], args["gamma"], args["beta"], **{k: v for k, v in bad.items() if k == "eps"})
    with pytest.raises(ValueError, match="BatchNorm momentum"):
        BatchNorm(momentum=1.5)


# ------------------------------------------------------------------------------------------- in a CNN

def _model(dtype="float64", seed=1):
    return CNN((6, 6, 2), [Conv2D(2, 4, 3, padding="same", activation="relu"), BatchNorm(), MaxPool2D(2), Flatten(),
                           Dense(36, 8, "tanh"), BatchNorm(momentum=0.2), Dense(8, 3, "softmax")],
               dtype=dtype, seed=seed)


def test_the_cnn_fills_in_the_channels_and_starts_as_pytorch_does():
    model = _model()
    assert model.layers[1] == BatchNorm(4) and model.layers[5] == BatchNorm(8, momentum=0.2)
    gamma, beta = model.layer_parameters(model.theta, 1)
    assert np.all(gamma == 1) and np.all(beta == 0)
    mean, var = model.running_stats(5)
    assert np.all(mean == 0) and np.all(var == 1) and model.running.size == 2 * (4 + 8)
    with pytest.raises(ValueError, match=r"layers\[1\] BatchNorm\(5\).*with 4 channels, expected 5"):
        CNN((6, 6, 2), [Conv2D(2, 4, 3), BatchNorm(5), Flatten(), Dense(64, 2, "softmax")])


def test_the_gradient_through_the_batch_statistics(rng):
    model = _model()
    X = rng.normal(size=(5, 6, 6, 2))
    T = np.eye(3)[rng.integers(0, 3, 5)]
    _, _, grad = model.loss_gradient(X, T)
    theta = model.theta.copy()
    for j in rng.choice(theta.size, 30, replace=False):
        up, down = theta.copy(), theta.copy()
        up[j] += 1e-6
        down[j] -= 1e-6
        numeric = (model.loss_gradient(X, T, theta=up)[0] - model.loss_gradient(X, T, theta=down)[0]) / 2e-6
        assert abs(numeric - grad[j]) <= 1e-6 + 1e-5 * abs(numeric), (j, numeric, grad[j])
    assert np.all(model.running_stats(1)[0] == 0)  # a gradient check keeps no statistics


def test_training_updates_the_running_statistics_and_inference_uses_them(rng):
    model = _model()
    X = rng.normal(size=(16, 6, 6, 2)) + 2
    y = rng.integers(0, 3, 16)
    Trainer(model, optimizer="adam", lr=1e-3, batch_size=8, progress=False).fit(X, y, 1)
    assert model.running_stats(1)[0].mean() > 0.01  # pulled toward the batches' means
    P = model.predict_proba(X[:4])
    Z = model._run(X[:4], model.theta, False, keep=True)[0]  # with the batch's statistics
    assert not np.allclose(P, Z)
    np.testing.assert_allclose(P.sum(axis=1), 1)


def test_running_statistics_save_load_and_refuse_damage(tmp_path, rng):
    from _zipfiles import rezip

    model = _model("float32")
    model.running[...] = rng.random(model.running.size)
    path = model.save(tmp_path / "bn.npz")
    back = CNN.load(path)
    assert back.layers == model.layers and np.array_equal(back.running, model.running)
    X = rng.normal(size=(3, 6, 6, 2)).astype(np.float32)
    assert np.array_equal(back.predict_proba(X), model.predict_proba(X))
    members = dict(np.load(path))
    for name, damage in (("missing", None), ("negative", -np.ones_like(members["running"])),
                         ("short", members["running"][:-1])):
        changed = dict(members)
        if damage is None:
            del changed["running"]
        else:
            changed["running"] = damage
        bad = tmp_path / f"{name}.npz"
        np.savez(bad, **changed)
        with pytest.raises(ModelFileError, match="running"):
            CNN.load(bad)
    assert rezip  # (the shared helper is importable here, for damage at the byte level elsewhere)


def test_pytorch_parity_in_training_and_both_ways(rng):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (optional: pip install 'fastnn[torch]')")
    from fastnn.torch import from_torch, to_torch

    model = _model("float64")
    X = rng.normal(size=(5, 6, 6, 2))
    T = np.eye(3)[rng.integers(0, 3, 5)]
    net = to_torch(model, logits=True).train()
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net) == 1
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in net) == 1
    out = net(torch.from_numpy(X.transpose(0, 3, 1, 2).copy()))
    loss = torch.nn.functional.cross_entropy(out, torch.from_numpy(T.argmax(1)), reduction="sum")
    loss.backward()
    ours, _, grad = model.loss_gradient(X, T, training=(0, 0))
    np.testing.assert_allclose(ours, loss.item(), rtol=1e-10)
    bn = [m for m in net if isinstance(m, torch.nn.BatchNorm2d)][0]
    np.testing.assert_allclose(model.running_stats(1)[0], bn.running_mean.numpy(), rtol=1e-10)
    np.testing.assert_allclose(model.running_stats(1)[1], bn.running_var.numpy(), rtol=1e-10)
    np.testing.assert_allclose(model.layer_parameters(grad, 1)[0], bn.weight.grad.numpy(), rtol=1e-8, atol=1e-12)
    net.eval()
    with torch.no_grad():
        got = torch.softmax(net(torch.from_numpy(X.transpose(0, 3, 1, 2).copy())), -1).numpy()
    np.testing.assert_allclose(got, model.predict_proba(X), atol=1e-10)
    back = from_torch(to_torch(model), input_shape=model.input_shape)
    assert back.layers == model.layers and np.array_equal(back.running, model.running)


def test_onnx_runs_the_inference_form(tmp_path, rng):
    pytest.importorskip("onnx", reason="onnx is not installed (optional: pip install 'fastnn[onnx]')")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (optional)")
    from fastnn.onnx import to_onnx

    model = _model("float32")
    model.running[...] = rng.random(model.running.size) + 0.5
    X = rng.normal(size=(4, 6, 6, 2)).astype(np.float32)
    path = to_onnx(model, tmp_path / "bn.onnx")
    got = ort.InferenceSession(str(path)).run(None, {"input": X})[0]
    np.testing.assert_allclose(got, model.predict_proba(X), atol=1e-5)


def test_a_diverged_fit_rolls_the_running_statistics_back_too(rng):
    from fastnn.train import TrainingDiverged

    model = _model()
    X = rng.normal(size=(16, 6, 6, 2))
    y = rng.integers(0, 3, 16)
    trainer = Trainer(model, optimizer="sgd", lr=1e-3, batch_size=8, progress=False)
    trainer.fit(X, y, 1)
    kept = model.running.copy()
    trainer.lr = 1e300  # the next epoch diverges after its first batch has updated the running statistics
    with pytest.raises(TrainingDiverged):
        trainer.fit(X, y, 1)
    np.testing.assert_array_equal(model.running, kept)
