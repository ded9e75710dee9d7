"""Whole training epochs: the drop-in API, the fused epoch, and the baselines people would otherwise use.

(a) the coursework training loop written against ``fastnn.nn`` and against the plain NumPy
    ``nn.py`` (1024-64-36, batch 32, float64, 10800 samples); the two must give the same losses;
(b) the fused epoch (float32 and float64) at batch 32, 128 and 1024 against the NumPy float64
    loop, PyTorch eager and scikit-learn's ``MLPClassifier.partial_fit`` (one epoch per call);
(c) the 1024-32-32-32-1024 autoencoder (momentum, squared error) against its NumPy loop.

Every round starts from the same initial parameters (reset in ``setup``, outside the timing),
after one warm-up round.  The data are random hw36-shaped images from
``epoch_benchmark.make_data`` (beside this file, with the baselines).
"""

import numpy as np
import pytest

import epoch_benchmark as B
import fastnn.nn as fnn
from fastnn import coursework
from fastnn.coursework import numpy_nn
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

#: The coursework's plain NumPy nn.py (the baseline the drop-in replaces) and the drop-in itself.
MODULES = {"numpy": numpy_nn, "fastnn.nn": fnn}


def coursework_setup(nn, x, y, hidden=HIDDEN, batch_size=32, seed=SEED):
    """The coursework's set-up (fastnn.coursework.setup): seeded global RNG, two layers, batches drawn once."""
    return coursework.setup(nn, x, y, hidden, batch_size, seed)


def coursework_epoch(nn, params, batches, lr=LR):
    """One epoch of the coursework's training loop (fastnn.coursework.epoch) on the module ``nn``."""
    return coursework.epoch(nn, params, batches, lr)


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
