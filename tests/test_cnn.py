"""fastnn.layers and fastnn.cnn: shapes, bad input, the whole network against the reference and finite
differences, model files, and training through fastnn.train.Trainer."""

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

import _reference as R
import fastnn.functional as F
from fastnn.layers import (AvgPool2D, BatchNorm, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D, MaxPool2D,
                           images_to_rows, infer_shapes, layer_from_config, rows_to_images)
from fastnn.models import CNN, MLP, ModelFileError
from fastnn.models import cnn as cnn_module
from fastnn.train import Trainer, TrainingDiverged

OPTIMIZERS = ["sgd", "momentum", "nesterov", "adam"]
SHARED = Path(os.environ.get("FASTNN_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
needs_hw36 = pytest.mark.skipif(not (SHARED / "hw36").is_dir(),
                                reason=f"real hw36 data not found at {SHARED / 'hw36'} (set FASTNN_DATA)")


def small_layers(act="tanh"):
    """conv (same, stride 2) -> pool -> conv (valid, non-square kernel) -> flatten -> dense -> softmax."""
    return [Conv2D(2, 3, 3, stride=2, padding="same", activation=act), MaxPool2D(2),
            Conv2D(3, 4, (2, 1), activation=act), Flatten(), Dense(8, 5, act), Dense(5, 3, "softmax")]


def small_model(dtype="float64", seed=1, act="tanh"):
    return CNN((9, 8, 2), small_layers(act), dtype=dtype, seed=seed)


def small_data(rng, n=6, dtype="float64"):
    return rng.normal(size=(n, 9, 8, 2)).astype(dtype), np.eye(3, dtype=dtype)[rng.integers(0, 3, n)]


def bars(rng, n=96, side=8):
    """A small synthetic problem: one bright bar, horizontal (class 0) or vertical (class 1), in noise."""
    X = rng.normal(0, 0.2, (n, side, side, 1))
    y = rng.integers(0, 2, n)
    where = rng.integers(1, side - 1, n)
    for i in range(n):
        if y[i] == 0:
            X[i, where[i], 1:-1, 0] += 1.0
        else:
            X[i, 1:-1, where[i], 0] += 1.0
    return X, y


def bars_model(dtype="float64", seed=0):
    return CNN((8, 8, 1), [Conv2D(1, 4, 3, padding="same"), MaxPool2D(2), Flatten(), Dense(64, 2, "softmax")],
               dtype=dtype, seed=seed)


# ----------------------------------------------------------------------- shapes, layout, repr

def test_shapes_layout_and_repr():
    model = small_model()
    assert model.shapes == [(5, 4, 3), (2, 2, 3), (1, 2, 4), (8,), (5,), (3,)]
    assert infer_shapes((9, 8, 2), small_layers()) == model.shapes
    shapes = [p.shape for p in model.parameters()]
    assert shapes == [(3, 3, 2, 3), (3,), (2, 1, 3, 4), (4,), (8, 5), (5,), (5, 3), (3,)]
    assert model.theta.size == sum(int(np.prod(s)) for s in shapes) == 148
    # layer by layer, W then b, back to back in C order: the layout the compiled epoch shares
    off = 0
    for p in model.parameters():
        assert np.shares_memory(p, model.theta)
        assert p.ctypes.data == model.theta[off:].ctypes.data
        off += p.size
    assert model.offsets[1] is None and model.offsets[3] is None
    text = repr(model)
    assert text.splitlines()[0] == "CNN(input (9, 8, 2), loss='cross_entropy', float64, 148 parameters)"
    assert "Conv2D(2, 3, 3, stride=2, padding='same', activation='tanh') -> (5, 4, 3)" in text
    assert "MaxPool2D(2)" in text and "(8,)" in text and "57 parameters" in text and len(text.splitlines()) == 7


@pytest.mark.parametrize("shape,stride,padding,k", [((9, 8, 2), 1, "valid", (3, 3)), ((9, 8, 2), 2, "same", (3, 2)),
                                                    ((7, 7, 2), 3, "valid", (2, 3)), ((5, 6, 2), 2, "same", (5, 5))])
def test_conv_output_shape_agrees_with_the_kernels(shape, stride, padding, k):
    layer = Conv2D(2, 4, k, stride=stride, padding=padding)
    assert layer.output_shape(shape) == F.conv2d_output_shape(shape, (*k, 2, 4), stride, padding)


def test_layer_configs_round_trip():
    for layer in small_layers() + [Dense(3, 1, "sigmoid"), MaxPool2D(3)]:
        assert layer_from_config(json.loads(json.dumps(layer.config()))) == layer


BAD_MODELS = [
    # (layers, input shape, phrases the message must hold: the layer, the shape received, the one expected)
    ([Conv2D(1, 8, 5), MaxPool2D(2), Conv2D(8, 8, 20)], (32, 32, 1),
     ["layers[2] Conv2D(8, 8, 20", "(14, 14, 8)", "H >= 20 and W >= 20"]),
    ([Conv2D(3, 8, 3), Flatten(), Dense(10, 2)], (32, 32, 1),
     ["layers[0] Conv2D(3, 8, 3", "(32, 32, 1)", "expected 3 channels"]),
    ([Conv2D(1, 8, 3), Dense(10, 2)], (12, 12, 1), ["layers[1] Dense(10, 2", "(10, 10, 8)", "Flatten()"]),
    ([Flatten(), Dense(100, 3, "softmax")], (8, 8, 1), ["layers[1] Dense(100, 3", "(64,)", "expected (100,)"]),
    ([Flatten(), Conv2D(1, 2, 3), Flatten(), Dense(1, 2)], (8, 8, 1), ["layers[1] Conv2D", "(64,)", "(H, W, 1)"]),
    ([MaxPool2D(4), Flatten(), Dense(1, 2)], (3, 8, 1), ["layers[0] MaxPool2D(4)", "(3, 8, 1)", "H >= 4"]),
    ([Conv2D(1, 2, 3, stride=2), MaxPool2D(2), Flatten(), Dense(4, 2)], (5, 5, 1),
     ["layers[1] MaxPool2D(2)", "(2, 2, 2)", "H >= 2"]),  # (fits) control case replaced below
    ([Flatten(), Dense(64, 4, "softmax"), Dense(4, 2, "softmax")], (8, 8, 1), ["layers[1]", "softmax", "last"]),
    ([Conv2D(1, 2, 3)], (8, 8, 1), ["layers[0] Conv2D", "last layer must be a Dense"]),
]
BAD_MODELS[6] = ([Conv2D(1, 2, 3, stride=2), MaxPool2D(2), Flatten(), Dense(4, 2)], (4, 4, 1),
                 ["layers[1] MaxPool2D(2)", "(1, 1, 2)", "H >= 2 and W >= 2"])


@pytest.mark.parametrize("case", range(len(BAD_MODELS)))
def test_bad_architectures_are_named_before_anything_is_computed(case):
    layers, shape, phrases = BAD_MODELS[case]
    with pytest.raises(ValueError) as exc:
        CNN(shape, layers)
    for phrase in phrases:
        assert phrase in str(exc.value)


@pytest.mark.parametrize("kwargs,phrase", [
    (dict(stride=0), "Conv2D stride"), (dict(stride=(1, 2)), "Conv2D stride"), (dict(stride=1.5), "Conv2D stride"),
    (dict(padding="full"), "Conv2D padding"), (dict(padding=1), "Conv2D padding"),
    (dict(activation="softmax"), "Conv2D activation"), (dict(kernel_size=0), "Conv2D kernel_size"),
    (dict(kernel_size=(3, 3, 3)), "Conv2D kernel_size")])
def test_unsupported_conv_arguments(kwargs, phrase):
    args = dict(kernel_size=3) | kwargs
    with pytest.raises(ValueError, match=phrase):
        Conv2D(1, 2, **args)


def test_other_bad_descriptions():
    with pytest.raises(ValueError, match="MaxPool2D size"):
        MaxPool2D(0)
    with pytest.raises(ValueError, match="Dense n_out"):
        Dense(3, 0)
    with pytest.raises(ValueError, match="input_shape"):
        CNN((8, 8), [Flatten(), Dense(64, 2)])
    with pytest.raises(ValueError, match="at least one layer"):
        CNN((8, 8, 1), [])
    with pytest.raises(TypeError, match=r"layers\[1\]"):
        CNN((8, 8, 1), [Flatten(), "dense"])
    with pytest.raises(ValueError, match="needs a 'softmax'"):
        CNN((8, 8, 1), [Flatten(), Dense(64, 2, "tanh")], loss="cross_entropy")
    with pytest.raises(TypeError, match="dtype"):
        CNN((8, 8, 1), [Flatten(), Dense(64, 2, "softmax")], dtype="int32")
    with pytest.raises(ValueError, match="init"):
        CNN((8, 8, 1), [Flatten(), Dense(64, 2, "softmax")], init="zeros")


def test_bad_inputs_to_a_model(rng):
    model = CNN((32, 32, 1), [Conv2D(1, 2, 3), MaxPool2D(2), Flatten(), Dense(450, 3, "softmax")])
    with pytest.raises(ValueError, match=r"rows_to_images") as exc:
        model.predict(rng.random((2, 1024)))
    assert "(n_samples, 32, 32, 1)" in str(exc.value) and "(2, 1024)" in str(exc.value)
    with pytest.raises(ValueError, match=r"expected shape \(n_samples, 32, 32, 1\), got shape \(2, 32, 32, 3\)"):
        model.predict(rng.random((2, 32, 32, 3)))
    X = rng.random((2, 32, 32, 1))
    X[1, 3, 4, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.predict(X)
    with pytest.raises(TypeError, match="float"):
        model.predict(X.astype(complex))


# ----------------------------------------------------------------------- hw36 rows as images

def test_rows_to_images_round_trip(rng):
    X = rng.random((3, 1024))
    images = rows_to_images(X)
    assert images.shape == (3, 32, 32, 1) and images.flags.c_contiguous
    assert np.array_equal(images[1, :, :, 0], X[1].reshape(32, 32).T)  # the data README's convention
    assert np.array_equal(images_to_rows(images), X)
    assert np.array_equal(images_to_rows(images[..., 0]), X)
    assert rows_to_images(rng.random((2, 64)), side=8).shape == (2, 8, 8, 1)
    with pytest.raises(ValueError, match=r"\(n, 1024\)"):
        rows_to_images(rng.random((2, 1000)))
    with pytest.raises(ValueError, match="square"):
        images_to_rows(rng.random((2, 4, 5, 1)))


@needs_hw36
def test_rows_to_images_on_real_hw36_letters_are_upright():
    from fastnn.data import load_hw36

    X, Y = load_hw36(SHARED, "valid")
    ink = 1 - rows_to_images(X)[..., 0]  # ink = 1

    def sides(cls):  # the mean ink of a class in its top, bottom and left ten rows / columns
        mean = ink[Y[:, cls] == 1].mean(axis=0)
        return mean[:10].sum(), mean[-10:].sum(), mean[:, :10].sum()

    top, bottom, left = sides(19)  # 'T': a bar along the top (transposed, it would run down the left)
    assert top > 1.5 * bottom and top > 1.5 * left
    top, bottom, left = sides(11)  # 'L': a bar along the bottom (transposed, along the top)
    assert bottom > 1.5 * top


# ----------------------------------------------------------------------- the network's numbers

@pytest.mark.parametrize("dtype,tol", [("float64", 1e-9), ("float32", 2e-4)])
def test_forward_and_gradient_match_the_reference(dtype, tol, rng):
    model = small_model(dtype, act="relu")
    X, T = small_data(rng, dtype=dtype)
    P = model.predict_proba(X)
    assert P.dtype == dtype and P.shape == (6, 3)
    np.testing.assert_allclose(P, R.cnn_forward(model, model.theta, X), rtol=tol, atol=tol)
    loss, correct, grad = model.loss_gradient(X, T)
    ref_loss, ref_grad = R.cnn_loss_gradient(model, model.theta, X, T)
    assert grad.dtype == dtype and grad.shape == model.theta.shape
    np.testing.assert_allclose(loss, ref_loss, rtol=tol)
    np.testing.assert_allclose(grad, ref_grad, rtol=tol, atol=tol * max(1.0, np.abs(ref_grad).max()))
    assert correct == int((P.argmax(1) == T.argmax(1)).sum())


def test_finite_difference_gradient_through_a_whole_cnn(rng):
    """conv -> pool -> conv -> flatten -> dense -> dense -> softmax cross-entropy, float64, every parameter."""
    model = small_model("float64", act="tanh")
    X, T = small_data(rng, n=5)
    _, _, grad = model.loss_gradient(X, T)
    eps = 1e-6
    numeric = np.empty_like(grad)
    for k in range(model.theta.size):
        theta = model.theta.copy()
        theta[k] += eps
        up = model.loss_gradient(X, T, theta=theta)[0]
        theta[k] -= 2 * eps
        down = model.loss_gradient(X, T, theta=theta)[0]
        numeric[k] = (up - down) / (2 * eps)
    assert np.abs(grad).max() > 1e-2
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7)


def test_forward_in_chunks_is_the_same(rng, monkeypatch):
    """Chunks give the same outputs to rounding: OpenBLAS's kernels may round a product of 1 row otherwise
    than one of 11 (on a Zen 3, by 1 ulp in 6 of 33 float64 outputs)."""
    model = small_model()
    X, _ = small_data(rng, n=11)
    whole = model.forward(X)
    monkeypatch.setattr(cnn_module, "EVAL_ELEMENTS", 200)  # 1 sample per chunk
    assert model._chunk_rows() == 1
    np.testing.assert_allclose(model.forward(X), whole, rtol=1e-14, atol=0)
    np.testing.assert_array_equal(model.forward(X, logits=True).argmax(1), whole.argmax(1))


def test_predict_evaluate_and_parameters(rng):
    model = small_model()
    X, T = small_data(rng, n=7)
    y = T.argmax(1)
    assert model.predict(X).shape == (7,)
    loss, acc = model.evaluate(X, T)
    assert model.evaluate(X, y) == pytest.approx((loss, acc))
    ref_loss = R.cnn_loss_gradient(model, model.theta, X, T)[0] / 7
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    assert acc == np.mean(model.predict(X) == y)
    with pytest.raises(ValueError, match="empty"):
        model.evaluate(X[:0], T[:0])
    binary = CNN((4, 4, 1), [Flatten(), Dense(16, 1, "sigmoid")])
    assert binary.loss == "binary_cross_entropy" and binary.predict(rng.random((3, 4, 4, 1))).shape == (3,)
    regression = CNN((4, 4, 1), [Conv2D(1, 2, 3), Flatten(), Dense(8, 3, "linear")])
    assert regression.loss == "squared_error"
    assert np.isnan(regression.evaluate(rng.random((3, 4, 4, 1)), rng.random((3, 3)))[1])


def test_init_is_seeded_and_scaled():
    a, b, c = small_model(seed=3), small_model(seed=3), small_model(seed=4)
    assert np.array_equal(a.theta, b.theta) and not np.array_equal(a.theta, c.theta)
    big = CNN((16, 16, 8), [Conv2D(8, 64, 3), Flatten(), Dense(14 * 14 * 64, 10, "softmax")], seed=0)
    W_conv, b_conv, W_dense, _ = big.parameters()
    assert W_conv.std() == pytest.approx(np.sqrt(2 / (9 * 8)), rel=0.05)  # He before a ReLU
    assert W_dense.std() == pytest.approx(np.sqrt(2 / (14 * 14 * 64 + 10)), rel=0.05)  # Xavier before softmax
    assert not b_conv.any()


# ----------------------------------------------------------------------- model files

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_and_load_round_trip(tmp_path, dtype, rng):
    model = small_model(dtype, seed=5)
    path = model.save(tmp_path / "net")
    assert path.name == "net.npz"
    loaded = CNN.load(path)
    assert loaded.theta.dtype == dtype and np.array_equal(loaded.theta, model.theta)
    assert loaded.layers == model.layers and loaded.input_shape == model.input_shape and repr(loaded) == repr(model)
    X, _ = small_data(rng, dtype=dtype)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["format.npy", "input_shape.npy", "layers.npy", "loss.npy", "theta.npy"]


def _write_npz(path, **members):
    with open(path, "wb") as fh:
        np.savez(fh, **members)
    return path


def _members(model, **changes):
    out = dict(format=np.array("fastnn.CNN/1"), input_shape=np.array(model.input_shape, dtype=np.int64),
               layers=np.array(json.dumps([layer.config() for layer in model.layers])), loss=np.array(model.loss),
               theta=model.theta)
    out.update(changes)
    return out


def test_bad_model_files_are_refused(tmp_path):
    model = small_model()
    mlp_path = MLP([4, 3, 2], ["tanh", "softmax"]).save(tmp_path / "mlp.npz")
    with pytest.raises(ModelFileError, match=r"MLP.*fastnn.models.MLP.load"):
        CNN.load(mlp_path)
    with pytest.raises(ModelFileError, match=r"a CNN model file \(fastnn.CNN/1\).*fastnn.models.CNN.load"):
        MLP.load(model.save(tmp_path / "cnn.npz"))
    cases = {
        "text": ("hello\n", "text file"),
        "short_theta": (_members(model, theta=model.theta[:-1]), "147 parameters stored, but its layers need 148"),
        "theta_2d": (_members(model, theta=model.theta.reshape(4, 37)), "one flat vector"),
        "nan": (_members(model, theta=np.full_like(model.theta, np.nan)), "NaN"),
        "bad_json": (_members(model, layers=np.array("[{")), "invalid layer description"),
        "not_a_list": (_members(model, layers=np.array('{"type": "Flatten"}')), "a list of layers"),
        "unknown_layer": (_members(model, layers=np.array('[{"type": "LSTM"}]')), "invalid layer description"),
        "bad_args": (_members(model, layers=np.array('[{"type": "MaxPool2D", "size": 2, "x": 1}]')),
                     "invalid layer description"),
        "misfit": (_members(model, input_shape=np.array([3, 3, 2])), "invalid model description"),
        "huge": (_members(model, layers=np.array(json.dumps(
            [{"type": "Flatten"}, {"type": "Dense", "n_in": 144, "n_out": 10**9, "activation": "softmax"}]))),
            "more than the limit"),
        "shape_floats": (_members(model, input_shape=np.array([9.0, 8.0, 2.0])), "'input_shape' must be"),
        "format": (_members(model, format=np.array("fastnn.CNN/9")), "unknown model format"),
        "missing": ({"format": np.array("fastnn.CNN/1"), "theta": model.theta}, "missing"),
        "object": (None, "pickled"),
    }
    for name, (members, phrase) in cases.items():
        path = tmp_path / f"{name}.npz"
        if name == "text":
            path.write_text(members)
        elif name == "object":
            with open(path, "wb") as fh:
                np.savez(fh, **_members(model, layers=np.array([{"a": 1}], dtype=object)))
        else:
            _write_npz(path, **members)
        with pytest.raises(ModelFileError, match=phrase):
            CNN.load(path)
    with pytest.raises(ModelFileError, match="more than the limit of 100"):
        CNN.load(model.save(tmp_path / "ok.npz"), max_params=100)
    path = model.save(tmp_path / "trunc.npz")
    path.write_bytes(path.read_bytes()[:-300])
    with pytest.raises(ModelFileError):
        CNN.load(path)
    with pytest.raises(FileNotFoundError):
        CNN.load(tmp_path / "none.npz")
    with pytest.raises(ModelFileError, match="folder"):
        CNN.load(tmp_path)


# ----------------------------------------------------------------------- training

@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_training_reduces_the_loss(optimizer, rng):
    X, y = bars(rng)
    model = bars_model()
    lr = {"sgd": 0.02, "momentum": 0.005, "nesterov": 0.005, "adam": 0.03}[optimizer]
    before = model.evaluate(X, y)[0]
    hist = Trainer(model, optimizer=optimizer, lr=lr, batch_size=16, shuffle="epoch", progress=False,
                   weight_decay=1e-4).fit(X, y, 6)
    assert hist.train_loss[-1] < 0.5 * hist.train_loss[0]
    assert model.evaluate(X, y)[0] < 0.5 * before and model.evaluate(X, y)[1] > 0.9


def test_step_path_is_the_plain_optimizer_loop(rng):
    """Trainer(CNN) over three batches = loss_gradient per batch + the reference Adam update."""
    X, y = bars(rng, n=40)
    model = bars_model()
    theta = model.theta.copy()
    T = np.eye(2)[y]
    Trainer(model, optimizer="adam", lr=0.01, batch_size=16, shuffle="none", progress=False,
            weight_decay=1e-3).fit(X, y, 1)
    ref = bars_model()
    m1, m2 = np.zeros_like(theta), np.zeros_like(theta)
    for step, s in enumerate(range(0, 40, 16), start=1):
        _, grad = R.cnn_loss_gradient(ref, ref.theta, X[s:s + 16], T[s:s + 16])
        R.adam([ref.theta], [grad], [m1], [m2], step, 0.01, wd=1e-3)
    np.testing.assert_allclose(model.theta, ref.theta, rtol=1e-9, atol=1e-12)


def test_seeds_reproduce_and_differ(rng):
    X, y = bars(rng, n=48)
    runs = []
    for seed in (0, 0, 1):
        model = bars_model(seed=seed)
        Trainer(model, optimizer="momentum", lr=0.005, batch_size=16, shuffle="epoch", seed=seed,
                progress=False).fit(X, y, 2)
        runs.append(model.theta.copy())
    assert np.array_equal(runs[0], runs[1]) and not np.allclose(runs[0], runs[2])


def test_trainer_options_with_a_cnn(tmp_path, rng, capsys):
    X, y = bars(rng, n=64)
    Xv, yv = bars(rng, n=32)
    model = bars_model("float32")
    trainer = Trainer(model, optimizer="nesterov", lr=0.005, batch_size=16, lr_decay=0.5, lr_step=2,
                      checkpoint=tmp_path / "best.npz", progress=True, fused=True)
    assert trainer.fused is True and "fused=True" in repr(trainer)
    hist = trainer.fit(X, y, 4, valid=(Xv, yv))
    assert hist.lr == pytest.approx([0.005, 0.005, 0.0025, 0.0025])
    assert len(hist.valid_acc) == 4 and hist.best_epoch is not None
    best = CNN.load(tmp_path / "best.npz")
    assert np.array_equal(best.theta, trainer.best_theta)
    trainer.restore_best()
    assert model.evaluate(Xv, yv)[1] == pytest.approx(hist.valid_acc[hist.best_epoch])
    assert "epoch 4/4" in capsys.readouterr().err
    with pytest.raises(ValueError, match="rows_to_images|expected shape"):
        trainer.fit(X.reshape(64, -1), y, 1)
    with pytest.raises(ValueError, match="integer class indices"):
        trainer.fit(X, y + 5, 1)
    with pytest.raises(ValueError, match="optimizer"):
        Trainer(model, optimizer="rmsprop")
    with pytest.raises(ValueError, match="betas"):
        Trainer(model, optimizer="adam", betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="eps"):
        Trainer(model, optimizer="adam", eps=0.0)
    with pytest.raises(ValueError, match="batch_size"):
        Trainer(model, batch_size=0)
    with pytest.raises(ValueError, match="momentum"):
        Trainer(model, optimizer="momentum", momentum=float("nan"))


NETWORKS = {  # (input shape, layers, targets): every layer kind, both paddings, a stride, three losses
    "classifier": ((9, 8, 2), small_layers("relu"), "onehot"),
    "tanh_same": ((6, 7, 3), [Conv2D(3, 4, 3, padding="same", activation="tanh"), MaxPool2D(2),
                              Conv2D(4, 5, 2, stride=2, padding="same", activation="sigmoid"), Flatten(),
                              Dense(20, 4, "softmax")], "onehot"),
    "binary": ((8, 8, 1), [Conv2D(1, 3, 3), MaxPool2D(3), Flatten(), Dense(12, 1, "sigmoid")], "binary"),
    "regression": ((5, 5, 2), [Conv2D(2, 3, 2, activation="linear"), Flatten(), Dense(48, 6, "tanh"),
                               Dense(6, 3, "linear")], "values"),
    "avgpool": ((9, 7, 2), [Conv2D(2, 4, 3, padding="same", activation="relu"), AvgPool2D(2), MaxPool2D(2),
                            Flatten(), Dense(8, 3, "softmax")], "onehot"),
    "global_avgpool": ((7, 6, 1), [AvgPool2D(3), Conv2D(1, 5, 2, padding="same", activation="tanh"),
                                   GlobalAvgPool2D(), Dense(5, 3, "softmax")], "onehot"),
    "dropout": ((6, 6, 2), [Conv2D(2, 3, 3, padding="same", activation="relu"), Dropout(0.25), Flatten(),
                            Dense(108, 8, "sigmoid"), Dropout(0.5), Dense(8, 2, "softmax")], "onehot"),
}


def _network_data(rng, shape, layers, targets, n, dtype):
    X = rng.normal(size=(n, *shape)).astype(dtype)
    c = layers[-1].n_out
    if targets == "onehot":
        return X, np.eye(c, dtype=dtype)[rng.integers(0, c, n)]
    if targets == "binary":
        return X, rng.integers(0, 2, (n, 1)).astype(dtype)
    return X, rng.normal(size=(n, c)).astype(dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("net", list(NETWORKS))
def test_fused_epoch_matches_step_path(dtype, optimizer, net, rng):
    """The compiled epoch (functional.network_plan + train_epoch) against CNN.loss_gradient batch by batch:
    the parameters, the optimizer state and every epoch's loss, over three reshuffled epochs with a short
    last batch and weight decay."""
    shape, layers, targets = NETWORKS[net]
    X, T = _network_data(rng, shape, layers, targets, 37, dtype)
    results = []
    for fused in (True, False):
        model = CNN(shape, layers, dtype=dtype, seed=3)
        trainer = Trainer(model, optimizer=optimizer, lr=2e-3, batch_size=8, shuffle="epoch", seed=9, fused=fused,
                          progress=False, weight_decay=1e-3)
        assert trainer.fused is fused and isinstance(trainer.plan, F.NetworkPlan) is fused
        hist = trainer.fit(X, T, 3)
        results.append((model.theta.copy(), trainer.state1.copy(), trainer.state2.copy(), hist.train_loss,
                        hist.train_acc, trainer.step))
    tol = dict(rtol=2e-4, atol=2e-5) if dtype == "float32" else dict(rtol=1e-9, atol=1e-11)
    (t1, m1, v1, l1, a1, s1), (t2, m2, v2, l2, a2, s2) = results
    assert s1 == s2 == 15 and not np.allclose(t1, CNN(shape, layers, dtype=dtype, seed=3).theta)
    np.testing.assert_allclose(t1, t2, **tol)
    np.testing.assert_allclose(m1, m2, **tol)
    np.testing.assert_allclose(v1, v2, **tol)
    np.testing.assert_allclose(l1, l2, rtol=tol["rtol"])
    if targets != "values":
        assert np.max(np.abs(np.array(a1) - np.array(a2))) <= 1 / 37


def test_fused_epoch_in_progress_slices_and_threads_is_the_same(rng, capsys):
    X, T = small_data(rng, n=150, dtype="float32")
    thetas = []
    for progress, threads in ((False, 1), (False, 2), (True, "auto")):
        model = small_model("float32", act="relu")
        Trainer(model, optimizer="adam", lr=1e-2, batch_size=4, shuffle="epoch", progress=progress,
                threads=threads).fit(X, T, 2)
        thetas.append(model.theta.copy())
    assert np.array_equal(thetas[0], thetas[1]) and np.array_equal(thetas[0], thetas[2])


def test_stacks_the_compiled_epoch_does_not_run_train_step_by_step(rng):
    # (a BatchNorm after a dense layer's Dropout: the compiled epoch takes it before the Dropout only)
    model = CNN((6,), [Dense(6, 4, "tanh"), Dropout(0.1), BatchNorm(), Dense(4, 2, "softmax")])
    assert model.network_layers() is None
    trainer = Trainer(model, lr=0.05, batch_size=8, progress=False)
    assert trainer.fused is False and not isinstance(trainer.plan, F.NetworkPlan)
    X = rng.normal(size=(32, 6))
    y = (X[:, 0] > 0).astype(int)
    hist = trainer.fit(X, y, 20)
    assert hist.train_loss[-1] < 0.7 * hist.train_loss[0]


def test_divergence_rolls_back(rng):
    X, y = bars(rng, n=32)
    model = bars_model()
    trainer = Trainer(model, optimizer="momentum", lr=1e30, batch_size=8, progress=False)
    kept = [(model.theta.copy(), 0)]  # the parameters and step at the end of each finite epoch
    with pytest.raises(TrainingDiverged, match="rolled back"):
        trainer.fit(X * 1e10, y, 5, callback=lambda ep, h: kept.append((model.theta.copy(), trainer.step)))
    assert np.array_equal(model.theta, kept[-1][0]) and trainer.step == kept[-1][1]
    assert F.all_finite(trainer.state1)


# ----------------------------------------------------------------------- the hw36 recipe

def test_cnn_layers_fit_hw36_images():
    from fastnn.cnn_recipe import cnn_layers

    model = CNN((32, 32, 1), cnn_layers((4, 6), 5, 16))
    assert model.shapes[-1] == (36,) and model.layers[0].padding == "valid"
    assert [s for s in model.shapes if len(s) == 3][-1] == (7, 7, 6)


def test_train_cnn_folds_the_ink_inversion_exactly(rng):
    """The recipe trains on 1 - pixel; the model it returns takes the stored images and gives the numbers
    of the best epoch's validation."""
    from fastnn.cnn_recipe import train_cnn

    def split(n):
        y = rng.integers(0, 36, n)
        X = np.clip(rng.random((n, 1024)) * 0.3 + 0.7, 0, 1)
        X[np.arange(n), y * 28] = 0.0  # a dark pixel whose place tells the class
        return X, np.eye(36)[y]

    data = {"train": split(72), "valid": split(36)}
    model, hist, settings = train_cnn(data, conv=(3,), hidden=8, epochs=3, batch_size=16, dtype="float64",
                                      progress=False)
    assert settings["epochs"] == 3 and len(hist.valid_acc) == 3
    best = hist.best_epoch
    loss, acc = model.evaluate(rows_to_images(data["valid"][0]), data["valid"][1])
    assert acc == hist.valid_acc[best] and loss == pytest.approx(hist.valid_loss[best], rel=1e-10)
    with pytest.raises(ValueError, match="unknown settings"):
        train_cnn(data, widht=3)
