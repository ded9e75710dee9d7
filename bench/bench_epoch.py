"""Whole training epochs: the drop-in API, the fused epoch, and the baselines people would otherwise use.

(a) the coursework training loop written against ``fastnn.nn`` and against the plain NumPy
    ``nn.py`` (1024-64-36, batch 32, float64, 10800 samples); the two must give the same losses;
(b) the fused epoch (float32 and float64) at batch 32, 128 and 1024 against the NumPy float64
    loop, PyTorch eager and scikit-learn's ``MLPClassifier.partial_fit`` (one epoch per call);
(c) the 1024-32-32-32-1024 autoencoder (momentum, squared error) against its NumPy loop.

Every round starts from the same initial parameters (reset in ``setup``, outside the timing),
after one warm-up round.  The data are random hw36-shaped images from ``fastnn.benchmark.make_data``.
"""

import types

import numpy as np
import pytest

import fastnn.nn as fnn
from fastnn import benchmark as B
from fastnn.models import MLP

N_SAMPLES = 10800
HIDDEN = 64
LR = 2e-3
SEED = 0
ROUNDS = 3


@pytest.fixture(scope="module")
def hw36():
    """10800 random hw36-shaped samples: X (N, 1024) in [0, 1), one-hot Y (N, 36), float64."""
    return B.make_data(N_SAMPLES, seed=SEED)


# ------------------------------------------------------- (a) the coursework loop, drop-in

def _np_initialize_weights(in_size, out_size, params, name=""):
    limit = np.sqrt(3.0 * 2.0 / (in_size + out_size))
    params["W" + name] = np.random.uniform(-limit, limit, (in_size, out_size))
    params["b" + name] = np.zeros(out_size)


def _np_forward(X, params, name="", activation=None):
    pre_act = X @ params["W" + name] + params["b" + name]
    post_act = activation(pre_act)
    params["cache_" + name] = (X, pre_act, post_act)
    return post_act


def _np_backwards(delta, params, name="", activation_deriv=None):
    X, pre_act, post_act = params["cache_" + name]
    delta_pre = activation_deriv(post_act) * delta
    params["grad_W" + name] = X.T @ delta_pre
    params["grad_b" + name] = np.sum(delta_pre, axis=0)
    return delta_pre @ params["W" + name].T


def _np_get_random_batches(x, y, batch_size):
    idx = np.random.permutation(x.shape[0])
    return [(x[idx[i:i + batch_size]], y[idx[i:i + batch_size]]) for i in range(0, x.shape[0], batch_size)]


def _np_loss_and_acc(y, probs):
    return -np.sum(y * np.log(probs)), np.mean(np.argmax(y, axis=1) == np.argmax(probs, axis=1))


#: The coursework's plain NumPy nn.py (the baseline the drop-in replaces).
numpy_nn = types.SimpleNamespace(
    initialize_weights=_np_initialize_weights,
    sigmoid=lambda x: 1.0 / (1.0 + np.exp(-x)),
    sigmoid_deriv=lambda a: a * (1.0 - a),
    linear_deriv=lambda a: np.ones_like(a),
    softmax=lambda x: (lambda s: s / np.sum(s, axis=1, keepdims=True))(np.exp(x - np.max(x, axis=1, keepdims=True))),
    forward=_np_forward,
    backwards=_np_backwards,
    get_random_batches=_np_get_random_batches,
    compute_loss_and_acc=_np_loss_and_acc,
)
MODULES = {"numpy": numpy_nn, "fastnn.nn": fnn}


def coursework_setup(nn, x, y, hidden=HIDDEN, batch_size=32, seed=SEED):
    """The coursework's set-up: seed the global RNG, initialise two layers, draw the batches once."""
    np.random.seed(seed)
    params = {}
    nn.initialize_weights(x.shape[1], hidden, params, "layer1")
    nn.initialize_weights(hidden, y.shape[1], params, "output")
    return params, nn.get_random_batches(x, y, batch_size)


def coursework_epoch(nn, params, batches, lr=LR):
    """One epoch of the coursework's training loop, written against the module ``nn``."""
    total_loss = 0.0
    total_acc = 0.0
    for xb, yb in batches:
        h1 = nn.forward(xb, params, "layer1", nn.sigmoid)
        probs = nn.forward(h1, params, "output", nn.softmax)
        loss, acc = nn.compute_loss_and_acc(yb, probs)
        total_loss += loss
        total_acc += acc
        delta1 = probs - yb
        delta2 = nn.backwards(delta1, params, "output", nn.linear_deriv)
        nn.backwards(delta2, params, "layer1", nn.sigmoid_deriv)
        for k in ("layer1", "output"):
            params["W" + k] -= lr * params["grad_W" + k]
            params["b" + k] -= lr * params["grad_b" + k]
    return total_loss, total_acc / len(batches)


@pytest.fixture(scope="module")
def numpy_reference(hw36):
    """The plain NumPy loop's first-epoch (loss, accuracy), the numbers the drop-in must reproduce."""
    x, y = hw36
    params, batches = coursework_setup(numpy_nn, x, y)
    return coursework_epoch(numpy_nn, params, batches)


@pytest.mark.parametrize("module", list(MODULES))
@pytest.mark.benchmark(group="dropin")
def bench_dropin_epoch(benchmark, tag, hw36, numpy_reference, module):
    """The coursework loop with ``from fastnn.nn import *`` vs plain NumPy: 1024-64-36, batch 32, float64."""
    x, y = hw36
    nn = MODULES[module]
    tag("dropin b=32 float64", module, "float64", fastnn=module != "numpy")
    loss, acc = benchmark.pedantic(lambda params, batches: coursework_epoch(nn, params, batches),
                                   setup=lambda: (coursework_setup(nn, x, y), {}), rounds=ROUNDS,
                                   iterations=1, warmup_rounds=1)
    # A correctness check, not a timing one: the drop-in gives the NumPy loop's numbers.
    ref_loss, ref_acc = numpy_reference
    assert abs(loss - ref_loss) <= 1e-9 * abs(ref_loss), (loss, ref_loss)
    assert abs(acc - ref_acc) <= 1e-12, (acc, ref_acc)


# -------------------------------------------------------------- (b) the fused epoch

def _fused(x, y, dtype, batch_size, order, params):
    model = MLP([x.shape[1], HIDDEN, y.shape[1]], ["sigmoid", "softmax"], dtype=dtype, seed=SEED)
    epoch = B.FusedEpoch(model, x.astype(dtype), y.astype(dtype), order, optimizer="sgd", lr=LR,
                         batch_size=batch_size)
    theta0 = np.r_[params["W1"].ravel(), params["b1"], params["W2"].ravel(), params["b2"]]  # MLP's theta layout

    def reset():
        model.theta[...] = theta0

    return epoch, reset


def _numpy(x, y, dtype, batch_size, order, params):
    state = {}

    def reset():
        state.update({k: v.copy() for k, v in params.items()})

    return lambda: B.numpy_epoch(x, y, state, batch_size, LR, order=order), reset


def _torch(x, y, dtype, batch_size, order, params):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch, CPU build)")
    net = B.torch_mlp(params, dtype)
    state0 = {k: v.clone() for k, v in net.state_dict().items()}
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=dtype))
    yt = torch.from_numpy(y.argmax(axis=1))
    def reset():
        net.load_state_dict(state0)  # (its return value must not reach pedantic, which would take it as args)

    return lambda: B.torch_epoch(xt, yt, net, batch_size, LR, order=order), reset


def _sklearn(x, y, dtype, batch_size, order, params):
    neural_network = pytest.importorskip("sklearn.neural_network",
                                         reason="scikit-learn is not installed (optional baseline)")
    clf = neural_network.MLPClassifier(hidden_layer_sizes=(HIDDEN,), activation="logistic", solver="sgd",
                                       batch_size=batch_size, learning_rate_init=LR * batch_size, momentum=0.0,
                                       nesterovs_momentum=False, alpha=0.0, shuffle=True, random_state=SEED)
    xs = np.ascontiguousarray(x, dtype=dtype)
    labels = y.argmax(axis=1)
    classes = np.arange(y.shape[1])
    clf.partial_fit(xs[:batch_size], labels[:batch_size], classes=classes)  # initialises the network
    return lambda: clf.partial_fit(xs, labels), lambda: None


EPOCH_IMPLS = [("fused", "float32"), ("fused", "float64"), ("numpy", "float64"), ("torch", "float32"),
               ("torch", "float64"), ("sklearn", "float32"), ("sklearn", "float64")]
RUNNERS = {"fused": _fused, "numpy": _numpy, "torch": _torch, "sklearn": _sklearn}


@pytest.mark.parametrize("impl,dtype", EPOCH_IMPLS, ids=[f"{i}-{d}" for i, d in EPOCH_IMPLS])
@pytest.mark.parametrize("batch_size", [32, 128, 1024])
@pytest.mark.benchmark(group="epoch")
def bench_epoch(benchmark, tag, hw36, batch_size, impl, dtype):
    """One epoch of the 1024-64-36 sigmoid/softmax classifier, plain SGD on the summed cross-entropy."""
    x, y = hw36
    order = np.random.default_rng(SEED).permutation(x.shape[0])
    params = B.init_params((x.shape[1], HIDDEN, y.shape[1]), seed=SEED)
    run, reset = RUNNERS[impl](x, y, dtype, batch_size, order, params)
    tag(f"epoch b={batch_size}", impl, dtype, fastnn=impl == "fused", any_dtype=impl == "numpy")
    benchmark.pedantic(run, setup=reset, rounds=ROUNDS if impl != "fused" else 5, iterations=1, warmup_rounds=1)


# ------------------------------------------------------------------ (c) autoencoder

@pytest.mark.parametrize("impl,dtype", [("fused", "float32"), ("fused", "float64"), ("numpy", "float64")],
                         ids=["fused-float32", "fused-float64", "numpy-float64"])
@pytest.mark.benchmark(group="autoencoder")
def bench_autoencoder_epoch(benchmark, tag, hw36, impl, dtype):
    """One epoch of the 1024-32-32-32-1024 relu/relu/relu/sigmoid autoencoder: batch 36, momentum 0.9."""
    x, _ = hw36
    batch_size, lr = 36, 3e-5
    order = np.random.default_rng(SEED).permutation(x.shape[0])
    params = B.init_params(B.AUTOENCODER_SIZES, seed=SEED)
    tag(f"autoencoder b={batch_size}", impl, dtype, fastnn=impl == "fused", any_dtype=impl == "numpy")
    if impl == "fused":
        model = MLP(B.AUTOENCODER_SIZES, B.AUTOENCODER_ACTIVATIONS, dtype=dtype, seed=SEED)
        epoch = B.FusedEpoch(model, x.astype(dtype), None, order, optimizer="momentum", lr=lr, momentum=0.9,
                             batch_size=batch_size)
        theta0 = np.concatenate([np.r_[params[f"W{l}"].ravel(), params[f"b{l}"]] for l in range(1, 5)])

        def reset():
            model.theta[...] = theta0
            epoch.trainer.state1[...] = 0

        benchmark.pedantic(epoch, setup=reset, rounds=5, iterations=1, warmup_rounds=1)
    else:
        state = {}

        def reset():
            state.clear()
            state.update({k: v.copy() for k, v in params.items()})

        benchmark.pedantic(lambda: B.numpy_autoencoder_epoch(x, state, batch_size, lr, momentum=0.9, order=order),
                           setup=reset, rounds=ROUNDS, iterations=1, warmup_rounds=1)
