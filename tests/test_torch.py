"""PyTorch interop (fastnn.torch): the same weights both ways, and the same training steps as torch.optim.

Skipped as a whole when PyTorch is not installed: it is optional (``pip install 'fastnn[torch]'``).
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed (optional: pip install 'fastnn[torch]')")

from fastnn.cnn import CNN  # noqa: E402
from fastnn.layers import Conv2D, Dense, Flatten, MaxPool2D  # noqa: E402
from fastnn.models import MLP  # noqa: E402
from fastnn.torch import from_torch, to_torch  # noqa: E402
from fastnn.train import Trainer  # noqa: E402

NETS = {
    "classifier": ([12, 10, 5], ["sigmoid", "softmax"]),
    "deep": ([12, 9, 7, 5], ["relu", "tanh", "softmax"]),
    "binary": ([12, 6, 1], ["tanh", "sigmoid"]),
    "regressor": ([12, 8, 3], ["tanh", "linear"]),
}
TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@pytest.fixture
def one_torch_thread():
    """Tiny networks: one thread each for torch and fastnn, so that neither's idle threads slow the other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _model(net, dtype, rng):
    model = MLP(*NETS[net], dtype=dtype, seed=2)
    for b in model.biases:
        b[...] = rng.normal(0, 0.3, b.shape)
    return model


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("net", list(NETS))
def test_to_torch_and_back_keep_the_function_and_the_weights(rng, net, dtype):
    model = _model(net, dtype, rng)
    seq = to_torch(model)
    assert all(p.dtype == TORCH_DTYPES[dtype] for p in seq.parameters())
    np.testing.assert_array_equal(seq[0].weight.detach().numpy(), model.weights[0].T)
    X = rng.normal(size=(9, model.sizes[0])).astype(dtype)
    with torch.no_grad():
        out = seq(torch.from_numpy(X)).numpy()
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(out, model.forward(X), rtol=0, atol=tol)
    back = from_torch(seq)
    assert (back.sizes, back.activations, back.loss, back.dtype) == (model.sizes, model.activations, model.loss,
                                                                     model.dtype)
    np.testing.assert_array_equal(back.theta, model.theta)
    # without its last activation (left to the loss), and read back with it named
    bare = to_torch(model, logits=True)
    assert isinstance(bare[-1], torch.nn.Linear)
    if model.activations[-1] in ("softmax", "sigmoid"):
        again = from_torch(bare, output_activation=model.activations[-1])
        assert again.activations == model.activations
        np.testing.assert_array_equal(again.theta, model.theta)


def test_from_torch_reads_a_hand_built_network():
    nn = torch.nn
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Sequential(nn.Identity(), nn.Linear(5, 4, bias=False)),
                        nn.Linear(4, 3), nn.Softmax(dim=1))
    model = from_torch(seq)
    assert model.sizes == [6, 5, 4, 3] and model.activations == ["relu", "linear", "softmax"]
    assert model.dtype == np.float32 and not model.biases[1].any()
    X = np.random.default_rng(0).random((4, 6), dtype=np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(model.forward(X), seq(torch.from_numpy(X)).numpy(), atol=1e-6)


@pytest.mark.parametrize("seq,error,match", [
    (lambda nn: nn.Sequential(nn.Linear(4, 3), nn.LeakyReLU()), TypeError, r"module\[1\].*LeakyReLU"),
    (lambda nn: nn.Sequential(nn.Conv2d(1, 2, 3)), TypeError, r"module\[0\].*Conv2d"),
    (lambda nn: nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=0)), ValueError, "dim=0"),
    (lambda nn: nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=-1), nn.Linear(3, 2)), ValueError, "last"),
    (lambda nn: nn.Sequential(nn.ReLU(), nn.Linear(4, 3)), ValueError, "must follow a Linear"),
    (lambda nn: nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Tanh()), ValueError, "must follow a Linear"),
    (lambda nn: nn.Sequential(nn.Linear(4, 3), nn.Linear(2, 1)), ValueError, "takes 2 features"),
    (lambda nn: nn.Sequential(nn.Linear(4, 3).half()), TypeError, "float32"),
    (lambda nn: nn.Sequential(), ValueError, "no Linear"),
])
def test_from_torch_names_what_it_cannot_read(seq, error, match):
    with pytest.raises(error, match=match):
        from_torch(seq(torch.nn))
    with pytest.raises(TypeError, match="MLP"):
        to_torch(torch.nn.Linear(2, 2))


# ------------------------------------------------------------------- 50 training steps, fastnn vs torch.optim

def _torch_optimizer(name, params, lr, wd):
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd)
    momentum = 0.0 if name == "sgd" else 0.9
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=name == "nesterov", weight_decay=wd)


def _torch_loss(net, out, target):
    """fastnn's losses, summed over the batch (fastnn's lr is for the gradient of the summed loss)."""
    if NETS[net][1][-1] == "softmax":
        return torch.nn.functional.cross_entropy(out, target, reduction="sum")
    if NETS[net][1][-1] == "sigmoid":
        return torch.nn.functional.binary_cross_entropy_with_logits(out, target, reduction="sum")
    return ((out - target) ** 2).sum()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adam"])
@pytest.mark.parametrize("net", list(NETS))
def test_fifty_steps_match_torch_optim(rng, one_torch_thread, net, optimizer, dtype):
    """From the same initial weights and the same 50 batches, fastnn's fused epoch (run one batch at a time, so
    that every step's loss is seen) and torch.optim give the same loss at every step, and the same weights at
    the end, within the dtype's tolerance."""
    model = _model(net, dtype, rng)
    seq = to_torch(model, logits=True)
    n, bs, steps = 400, 16, 50
    X = rng.normal(size=(n, model.sizes[0])).astype(dtype)
    c = model.sizes[-1]
    if NETS[net][1][-1] == "softmax":
        labels = rng.integers(0, c, n)
        T, target = np.eye(c, dtype=dtype)[labels], torch.from_numpy(labels)
    elif NETS[net][1][-1] == "sigmoid":
        T = rng.integers(0, 2, (n, 1)).astype(dtype)
        target = torch.from_numpy(T)
    else:
        T = rng.normal(size=(n, c)).astype(dtype)
        target = torch.from_numpy(T)
    batches = [rng.choice(n, bs, replace=False) for _ in range(steps)]  # the same batches for both
    lr = {"adam": 3e-3, "sgd": 0.02, "momentum": 0.01, "nesterov": 0.01}[optimizer]
    wd = 1e-3
    trainer = Trainer(model, optimizer=optimizer, lr=lr, momentum=0.9, weight_decay=wd, batch_size=bs,
                      progress=False)
    opt = _torch_optimizer(optimizer, seq.parameters(), lr, wd)
    Xt = torch.from_numpy(X)
    ours, theirs = [], []
    for idx in batches:
        loss, _ = trainer.run_epoch(X, T, np.ascontiguousarray(idx, dtype=np.int64), threads=1)
        ours.append(loss)
        opt.zero_grad()
        out = seq(Xt[torch.from_numpy(idx)])
        batch_loss = _torch_loss(net, out, target[torch.from_numpy(idx)])
        batch_loss.backward()
        opt.step()
        theirs.append(batch_loss.item())
    assert trainer.step == steps
    rtol, atol = (2e-4, 1e-5) if dtype == "float32" else (1e-10, 1e-12)
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol * bs)
    back = from_torch(seq, output_activation=model.activations[-1] if model.loss != "squared_error" else None)
    np.testing.assert_allclose(model.theta, back.theta, rtol=rtol, atol=atol * 10)
    assert not np.allclose(ours, ours[0], rtol=1e-2)  # the weights moved


# ------------------------------------------------------------------------------------------------- CNN

CNNS = {  # (input_shape, layers): valid/same padding, strides 1 and 2, 1 and 3 channels, odd sizes
    "valid-s1-gray": ((9, 11, 1), lambda: [Conv2D(1, 4, 3), MaxPool2D(2), Flatten(), Dense(4 * 3 * 4, 5, "softmax")]),
    "same-s2-rgb": ((9, 7, 3), lambda: [Conv2D(3, 4, 3, stride=2, padding="same", activation="tanh"),
                                        Conv2D(4, 5, (2, 3), padding="same"), MaxPool2D(2), Flatten(),
                                        Dense(5 * 2 * 2, 6, "relu"), Dense(6, 4, "softmax")]),
    "same-even-s2": ((8, 9, 3), lambda: [Conv2D(3, 3, 4, stride=2, padding="same", activation="sigmoid"),
                                         Conv2D(3, 2, 3, stride=2, activation="linear"), Flatten(),
                                         Dense(1 * 2 * 2, 1, "sigmoid")]),
    "valid-s2-deep": ((13, 13, 1), lambda: [Conv2D(1, 3, 3, stride=2), Conv2D(3, 4, 2, padding="same"),
                                            MaxPool2D(3), Flatten(), Dense(2 * 2 * 4, 3, "linear")]),
}


def _cnn(name, dtype, seed=3):
    shape, layers = CNNS[name]
    model = CNN(shape, layers(), dtype=dtype, seed=seed)
    model.theta[...] += np.random.default_rng(seed).normal(0, 0.2, model.theta.size)  # biases away from zero too
    return model


def _run(seq, images):
    with torch.no_grad():
        return seq(torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))).numpy()  # NHWC -> NCHW


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("net", list(CNNS))
def test_cnn_to_torch_and_back(rng, net, dtype):
    model = _cnn(net, dtype)
    seq = to_torch(model)
    assert all(p.dtype == TORCH_DTYPES[dtype] for p in seq.parameters())
    conv = next(m for m in seq if isinstance(m, torch.nn.Conv2d))
    np.testing.assert_array_equal(conv.weight.detach().numpy(), model.parameters()[0].transpose(3, 2, 0, 1))
    tol = 1e-5 if dtype == "float32" else 1e-12
    for n in (1, 7):
        X = rng.normal(size=(n, *model.input_shape)).astype(dtype)
        np.testing.assert_allclose(_run(seq, X), model.predict_proba(X), rtol=0, atol=tol)
    back = from_torch(seq, input_shape=model.input_shape)
    assert (back.layers, back.loss, back.dtype, back.input_shape) == (model.layers, model.loss, model.dtype,
                                                                      model.input_shape)
    np.testing.assert_array_equal(back.theta, model.theta)
    bare = to_torch(model, logits=True)
    X = rng.normal(size=(3, *model.input_shape)).astype(dtype)
    np.testing.assert_allclose(_run(bare, X), model.forward(X, logits=True), rtol=0, atol=tol)
    if model.layers[-1].activation in ("softmax", "sigmoid"):
        again = from_torch(bare, input_shape=model.input_shape, output_activation=model.layers[-1].activation)
        assert again.layers == model.layers
        np.testing.assert_array_equal(again.theta, model.theta)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
def test_from_torch_reads_a_hand_built_cnn():
    """padding='same' (stride 1; PyTorch too puts an even kernel's extra zeros at the bottom/right), an explicit
    ZeroPad2d, a symmetric padding=1, a Conv2d without bias."""
    nn = torch.nn
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Conv2d(3, 4, 4, padding="same"), nn.ReLU(), nn.ZeroPad2d((0, 1, 0, 1)),
                        nn.Conv2d(4, 2, 2, stride=2), nn.Conv2d(2, 3, 3, padding=1, bias=False), nn.Tanh(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(3 * 2 * 2, 5), nn.Softmax(dim=1))
    model = from_torch(seq, input_shape=(9, 9, 3))
    assert model.layers == [Conv2D(3, 4, 4, padding="same"), Conv2D(4, 2, 2, stride=2, padding="same",
                                                                    activation="linear"),
                            Conv2D(2, 3, 3, padding="same", activation="tanh"), MaxPool2D(2), Flatten(),
                            Dense(12, 5, "softmax")]
    assert not model.layer_parameters(model.theta, 2)[1].any()
    X = np.random.default_rng(0).random((4, 9, 9, 3), dtype=np.float32)
    np.testing.assert_allclose(model.predict_proba(X), _run(seq, X), rtol=0, atol=1e-6)


@pytest.mark.parametrize("seq,error,match", [
    (lambda nn: nn.Sequential(nn.Conv2d(1, 2, 3), nn.LayerNorm([2, 5, 5])), TypeError, r"module\[1\].*LayerNorm"),
    (lambda nn: nn.Sequential(nn.Conv2d(1, 2, 3), nn.Upsample(scale_factor=2)), TypeError, r"module\[1\].*Upsample"),
    (lambda nn: nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2, affine=False)), ValueError,
     r"module\[1\].*affine=True"),
    (lambda nn: nn.Sequential(nn.Conv2d(1, 2, 3, dilation=2)), ValueError, r"module\[0\].*dilation"),
    (lambda nn: nn.Sequential(nn.Conv2d(2, 2, 3, groups=2)), ValueError, r"module\[0\].*groups"),
    (lambda nn: nn.Sequential(nn.Conv2d(1, 2, 3, padding=2)), ValueError, r"module\[0\].*neither 'valid'"),
    (lambda nn: nn.Sequential(nn.Conv2d(1, 2, 3, stride=(1, 2))), ValueError, "one stride"),
    (lambda nn: nn.Sequential(nn.MaxPool2d(2, stride=1)), ValueError, r"module\[0\].*stride = size"),
    (lambda nn: nn.Sequential(nn.Conv2d(3, 2, 3)), ValueError, "3 channels"),
    (lambda nn: nn.Sequential(nn.Flatten(), nn.Linear(100, 2)), ValueError, r"module\[1\].*\(49,\)"),
    (lambda nn: nn.Sequential(nn.ZeroPad2d(1), nn.ReLU()), ValueError, "just before a Conv2d"),
    (lambda nn: nn.Sequential(nn.MaxPool2d(2), nn.ReLU()), ValueError, "must follow a Conv2d or Linear"),
])
def test_from_torch_names_the_cnn_module_it_cannot_read(seq, error, match):
    with pytest.raises(error, match=match):
        from_torch(seq(torch.nn), input_shape=(7, 7, 1))
