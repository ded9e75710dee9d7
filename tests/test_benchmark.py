"""bench/epoch_benchmark.py, the epoch benchmark and its baselines (not part of the installed package): it runs
at tiny sizes, returns its keys, its baselines compute what fastnn computes, and its command line works.

Imported by path from the checkout's bench/ (skipped where the tests run without it, an installed copy).
Correctness only: no timing is asserted here.
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastnn.models import MLP

BENCH = Path(__file__).resolve().parents[1] / "bench"
if not (BENCH / "epoch_benchmark.py").is_file():
    pytest.skip("bench/ is not beside the tests (an installed copy of the tests)", allow_module_level=True)
_spec = importlib.util.spec_from_file_location("epoch_benchmark", BENCH / "epoch_benchmark.py")
B = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(B)

N, HIDDEN, BATCH, LR = 150, 8, 32, 2e-3  # 150 rows: the last batch is short


@pytest.fixture
def data():
    return B.make_data(N, seed=3)


def _model_like(params, sizes, activations, dtype="float64"):
    model = MLP(sizes, activations, dtype=dtype, seed=0)
    for l, (W, b) in enumerate(zip(model.weights, model.biases), start=1):
        W[...] = params[f"W{l}"]
        b[...] = params[f"b{l}"]
    return model


def test_make_data_shapes_and_one_hot(data):
    X, Y = data
    assert X.shape == (N, 1024) and Y.shape == (N, 36) and X.dtype == np.float64
    assert X.min() >= 0 and X.max() < 1
    np.testing.assert_array_equal(Y.sum(axis=1), 1)
    X32, _ = B.make_data(5, seed=3, dtype="float32")
    assert X32.dtype == np.float32


def test_init_params_matches_mlp_init():
    params = B.init_params((1024, HIDDEN, 36), seed=4)
    model = MLP((1024, HIDDEN, 36), ["sigmoid", "softmax"], seed=4)
    np.testing.assert_allclose(params["W1"], model.weights[0], rtol=1e-12)
    np.testing.assert_allclose(params["W2"], model.weights[1], rtol=1e-12)


def test_numpy_epoch_equals_fused_epoch_first_epoch(data):
    X, Y = data
    sizes = (1024, HIDDEN, 36)
    params = B.init_params(sizes, seed=1)
    order = np.random.default_rng(2).permutation(N)
    model = _model_like(params, sizes, ["sigmoid", "softmax"])
    fused_loss, fused_correct = B.FusedEpoch(model, X, Y, order, optimizer="sgd", lr=LR, batch_size=BATCH)()
    np_params = {k: v.copy() for k, v in params.items()}
    np_loss, np_acc = B.numpy_epoch(X, Y, np_params, BATCH, LR, order=order)
    assert np_loss == pytest.approx(fused_loss, rel=1e-9)
    np.testing.assert_allclose(model.weights[0], np_params["W1"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model.biases[1], np_params["b2"], rtol=1e-9, atol=1e-12)
    assert 0 <= np_acc <= 1 and 0 <= fused_correct <= N


def test_fused_epoch_equals_trainer_fit(data):
    """FusedEpoch times exactly what Trainer.fit runs: the same first-epoch loss from the same order."""
    from fastnn.train import Trainer

    X, Y = data
    sizes = (1024, HIDDEN, 36)
    params = B.init_params(sizes, seed=1)
    order = np.random.default_rng(7).permutation(N)  # Trainer(seed=7, shuffle='once') draws this order
    a = _model_like(params, sizes, ["sigmoid", "softmax"])
    b = _model_like(params, sizes, ["sigmoid", "softmax"])
    loss, _ = B.FusedEpoch(a, X, Y, order, lr=LR, batch_size=BATCH)()
    hist = Trainer(b, lr=LR, batch_size=BATCH, seed=7, progress=False).fit(X, Y, epochs=1)
    assert hist.train_loss[0] == pytest.approx(loss / N, rel=1e-12)
    np.testing.assert_array_equal(a.theta, b.theta)


def test_numpy_autoencoder_epoch_equals_fused(data):
    X, _ = data
    params = B.init_params(B.AUTOENCODER_SIZES, seed=5)
    order = np.random.default_rng(6).permutation(N)
    model = _model_like(params, B.AUTOENCODER_SIZES, B.AUTOENCODER_ACTIVATIONS)
    fused = B.FusedEpoch(model, X, None, order, optimizer="momentum", lr=3e-5, momentum=0.9, batch_size=36)
    np_params = {k: v.copy() for k, v in params.items()}
    for _ in range(2):  # the second epoch also checks the carried momentum buffers
        fused_loss, _ = fused()
        np_loss = B.numpy_autoencoder_epoch(X, np_params, 36, 3e-5, momentum=0.9, order=order)
        assert np_loss == pytest.approx(fused_loss, rel=1e-9)
    np.testing.assert_allclose(model.weights[3], np_params["W4"], rtol=1e-9, atol=1e-12)


def test_torch_epoch_equals_numpy_epoch(data):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (optional baseline)")
    X, Y = data
    params = B.init_params((1024, HIDDEN, 36), seed=1)
    order = np.random.default_rng(2).permutation(N)
    net = B.torch_mlp(params, "float64")
    t_loss, t_acc = B.torch_epoch(X, Y.argmax(axis=1), net, BATCH, LR, order=order)
    np_loss, _ = B.numpy_epoch(X, Y, {k: v.copy() for k, v in params.items()}, BATCH, LR, order=order)
    assert t_loss == pytest.approx(np_loss, rel=1e-9)
    assert 0 <= t_acc <= 1
    assert net[0].weight.dtype == torch.float64


@pytest.mark.parametrize("torch_flag", [False, True])
def test_bench_epoch_returns_its_keys(torch_flag):
    r = B.bench_epoch(batch_size=16, dtype="float32", hidden=HIDDEN, n_samples=64, epochs=1, torch=torch_flag)
    for key in ("fused_s_per_epoch", "numpy_s_per_epoch", "speedup_vs_numpy"):
        assert r[key] > 0
    if not torch_flag:
        assert "torch_s_per_epoch" not in r
    else:
        try:
            import torch  # noqa: F401
        except ImportError:
            assert "torch_skipped" in r
        else:
            assert r["torch_s_per_epoch"] > 0 and r["speedup_vs_torch"] > 0


def test_bench_autoencoder_epoch_returns_its_keys():
    r = B.bench_autoencoder_epoch(batch_size=36, dtype="float64", n_samples=80, epochs=1)
    for key in ("fused_s_per_epoch", "numpy_s_per_epoch", "speedup_vs_numpy"):
        assert r[key] > 0


@pytest.mark.parametrize("kwargs", [dict(batch_size=0), dict(batch_size=-3), dict(batch_size=2.5),
                                    dict(dtype="float16"), dict(dtype="int64"), dict(dtype="nonsense"),
                                    dict(epochs=0), dict(n_samples=0), dict(lr=0.0), dict(lr=float("nan"))])
def test_bench_epoch_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        B.bench_epoch(**{"n_samples": 32, "epochs": 1, "torch": False, **kwargs})


@pytest.mark.parametrize("kwargs", [dict(batch_size=0), dict(dtype="complex128"), dict(momentum=1.5)])
def test_bench_autoencoder_epoch_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        B.bench_autoencoder_epoch(**{"n_samples": 36, "epochs": 1, **kwargs})


def test_numpy_epoch_rejects_bad_batch_size(data):
    X, Y = data
    with pytest.raises(ValueError, match="batch_size"):
        B.numpy_epoch(X, Y, B.init_params((1024, 4, 36)), 0, LR)


def test_the_benchmark_suite_collects():
    """`make bench` collects every module of bench/ (a stale import there once stopped the whole suite, and
    nothing ran bench/ in CI): pytest --collect-only, in a child process from bench/, as `make bench` runs it."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
                          cwd=BENCH, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " collected" in proc.stdout and "error" not in proc.stdout.lower(), proc.stdout[-3000:]


# ------------------------------------------------ issue 21: the baseline's BLAS threads and the load

TINY = dict(batch_size=16, dtype="float32", hidden=HIDDEN, n_samples=64, epochs=1, torch=False)


def _blas_threads_during(monkeypatch, name):
    """Replace the baseline ``B.<name>`` with one that records, at each call, the threads of the BLAS libraries
    threadpoolctl sees other than fastnn's private OpenBLAS, and fastnn's team size."""
    threadpoolctl = pytest.importorskip("threadpoolctl", reason="threadpoolctl sets the baseline's BLAS threads")
    from fastnn import functional as F

    seen = []
    real = getattr(B, name)

    def recording(*args, **kwargs):
        blas = [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"
                and "scipy_openblas32" not in lib["filepath"]]
        seen.append((blas, F.get_num_threads()))
        return real(*args, **kwargs)

    monkeypatch.setattr(B, name, recording)
    return seen


def test_the_numpy_baseline_runs_with_one_blas_thread_by_default(monkeypatch):
    from fastnn import functional as F

    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = [(lib["filepath"], lib["num_threads"]) for lib in threadpoolctl.threadpool_info()]
    seen = _blas_threads_during(monkeypatch, "numpy_epoch")
    r = B.bench_epoch(**TINY)
    assert len(seen) == 2  # the warm-up epoch and the measured one
    for blas, team in seen:
        assert blas and set(blas) == {1}, seen
        assert team == F.get_num_threads()  # a BLAS limit leaves fastnn's team alone
    assert r["baseline_threads"] == 1 and r["conditions"]["numpy_blas_threads"] == 1
    # the limit holds only while the baseline runs
    assert [(lib["filepath"], lib["num_threads"]) for lib in threadpoolctl.threadpool_info()] == before


def test_baseline_threads_is_honoured(monkeypatch):
    seen = _blas_threads_during(monkeypatch, "numpy_epoch")
    r = B.bench_epoch(**TINY, baseline_threads=2)
    assert seen and all(blas and set(blas) == {2} for blas, _ in seen), seen
    assert r["conditions"]["numpy_blas_threads"] == 2


def test_the_autoencoder_baseline_runs_with_one_blas_thread_by_default(monkeypatch):
    seen = _blas_threads_during(monkeypatch, "numpy_autoencoder_epoch")
    r = B.bench_autoencoder_epoch(batch_size=36, dtype="float64", n_samples=72, epochs=1)
    assert seen and all(blas and set(blas) == {1} for blas, _ in seen), seen
    assert r["conditions"]["numpy_blas_threads"] == 1


def test_the_conditions_are_in_the_result():
    from fastnn import functional as F

    r = B.bench_epoch(**TINY)
    c = r["conditions"]
    assert c["fastnn_threads"] == F.get_num_threads() and c["cpus"] >= 1
    for key in ("load_start", "load_end"):
        assert c[key] is None or c[key] >= 0
    assert "numpy_blas_threads" in c
    if c["numpy_blas_threads"] is None:
        assert "threadpoolctl" in c["baseline_threads_note"]
    assert "conditions" not in B._headline(r)  # the headline stays numbers


def test_without_threadpoolctl_the_result_says_the_threads_were_not_set(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_threadpoolctl(name, *args, **kwargs):
        if name == "threadpoolctl":
            raise ImportError("No module named 'threadpoolctl'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_threadpoolctl)
    r = B.bench_epoch(**TINY)
    assert r["numpy_s_per_epoch"] > 0
    assert r["conditions"]["numpy_blas_threads"] is None
    assert "could not be set" in r["conditions"]["baseline_threads_note"]
    assert any(line.startswith("note: threadpoolctl is not installed") for line in B._notes(r))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bench_epoch_rejects_bad_baseline_threads(bad):
    with pytest.raises(ValueError, match="baseline_threads"):
        B.bench_epoch(**{**TINY, "baseline_threads": bad})


def test_the_command_line_prints_the_threads_and_the_load_and_writes_its_report(tmp_path, capsys):
    """No --n-samples: one batch of the 10800 samples, one hidden unit, one epoch."""
    argv = ["--batch-size", "10800", "--hidden", "1", "--epochs", "1", "--no-torch", "--seed", "3",
            "--out", str(tmp_path)]
    assert B.main(argv + ["--baseline-threads", "2"]) == 0
    out, err = capsys.readouterr()
    assert f"output: {tmp_path}" in err.splitlines()
    content = json.loads((tmp_path / "bench_epoch.json").read_text())
    assert (tmp_path / "bench_epoch.md").read_text().startswith("# ")
    assert set(content["headline"]) == {"fused_s_per_epoch", "numpy_s_per_epoch", "speedup_vs_numpy"}
    assert content["seed"] == 3 and content["hidden"] == 1 and "hidden: 1" in out.splitlines()
    lines = [line for line in err.splitlines() if line.startswith("threads: ")]
    assert len(lines) == 1, err
    assert lines[0].startswith("threads: fastnn ") and "; load " in lines[0]
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        assert "numpy BLAS unknown" in lines[0]
    else:
        assert ", numpy BLAS 2;" in lines[0]
    assert "baseline_threads: 2" in out.splitlines()


@pytest.mark.parametrize("argv", [["--baseline-threads", "0"], ["--batch-size", "-3"]])
def test_the_command_line_refuses_bad_arguments_before_anything_runs(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        B.main(argv)
    assert exc.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and argv[0] in errors[0] and "positive integer" in errors[0], errors


# ------------------------------------------------ issue 21: the baselines live in bench/, not in the package

def test_the_script_runs_from_the_checkout():
    """`python bench/epoch_benchmark.py --help` from the repository (as `make bench-epoch` runs it) lists the
    options `fastnn bench-epoch` had, with the defaults of bench_epoch."""
    proc = subprocess.run([sys.executable, str(Path("bench") / "epoch_benchmark.py"), "--help"], cwd=BENCH.parent,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    for option in ("--out DIR", "--seed SEED", "--batch-size", "--dtype {float32,float64}", "--hidden", "--epochs",
                   "--no-torch", "--baseline-threads N"):
        assert option in text, (option, proc.stdout)
    assert "(default 32)" in text and "(default 1:" in text


def test_the_installed_package_holds_no_epoch_benchmark(tmp_path, capsys):
    """No `fastnn bench-epoch` command and no fastnn.tasks.epoch_benchmark module: the harness is bench/'s."""
    from fastnn import cli
    from fastnn.tasks.registry import load_tasks

    assert importlib.util.find_spec("fastnn.tasks.epoch_benchmark") is None
    assert "bench-epoch" not in load_tasks()
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "bench-epoch" not in capsys.readouterr().out
