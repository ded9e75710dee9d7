"""The CNN recipe study (issue 22, part 5): ``train_cnn``'s new settings (BatchNorm, Dropout, a
GlobalAvgPool2D head, per-batch schedules, the loss reduction), the recipes that use them, and
``bench/cnn_study.py``'s command line.

Mechanics only, on a few generated rows: no accuracy is asserted (the study's figures take minutes of
training on hw36; the README gives the command that measures them).
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastnn.layers import BatchNorm, Dense, Dropout, Flatten, GlobalAvgPool2D, rows_to_images
from fastnn.models import CNN
from fastnn.recipes import CNN_OPTIONS, CNN_RECIPES, cnn_layers, train_cnn
from fastnn.train import onecycle_rates

pytestmark = pytest.mark.filterwarnings("ignore::fastnn.train.ChanceLevelWarning")  # a few rows, a few epochs
BENCH = Path(__file__).resolve().parents[1] / "bench"
TINY = dict(conv=(3, 4), hidden=8, copies=0, dtype="float64")


def _split(rng, n):
    y = rng.integers(0, 36, n)
    X = np.clip(rng.random((n, 1024)) * 0.3 + 0.7, 0, 1)
    X[np.arange(n), y * 28] = 0.0
    return X, np.eye(36)[y]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(4)
    return {"train": _split(rng, 96), "valid": _split(rng, 48)}


def _network(s):
    opt = {k: s.get(k, v) for k, v in CNN_OPTIONS.items()}
    return cnn_layers(s["conv"], s["kernel"], s["hidden"], 36, padding=s["padding"], batch_norm=opt["batch_norm"],
                      dropout=opt["dropout"], head=opt["head"])


@pytest.mark.parametrize("name", sorted(CNN_RECIPES))
def test_every_recipe_builds_its_model(name):
    s = CNN_RECIPES[name]
    model = CNN((32, 32, 1), _network(s), dtype=s["dtype"], seed=0)
    assert model.n_outputs == 36 and model.predict_proba(np.zeros((2, 32, 32, 1), s["dtype"])).shape == (2, 36)
    assert set(s) - set(CNN_RECIPES["small"]) <= set(CNN_OPTIONS), f"{name}: settings train_cnn does not know"


def test_the_options_defaults_are_todays_network_and_numbers(data):
    """A recipe without the new settings and one stating their defaults train to the same bits."""
    assert cnn_layers() == cnn_layers(batch_norm=False, dropout=0.0, head="flatten")
    a, ha, _ = train_cnn(data, recipe="small", epochs=2, progress=False, **TINY)
    b, hb, _ = train_cnn(data, recipe="small", epochs=2, progress=False, **TINY, **CNN_OPTIONS)
    assert np.array_equal(a.theta, b.theta) and ha.valid_acc == hb.valid_acc and ha.lr == hb.lr


def test_the_network_options():
    layers = cnn_layers(batch_norm=True, dropout=0.25)
    kinds = [type(layer).__name__ for layer in layers]
    assert kinds == ["Conv2D", "BatchNorm", "MaxPool2D", "Conv2D", "BatchNorm", "MaxPool2D", "Flatten", "Dropout",
                     "Dense", "Dropout", "Dense"]
    assert all(layer.rate == 0.25 for layer in layers if isinstance(layer, Dropout))
    gap = cnn_layers(head="gap")
    assert isinstance(gap[-3], GlobalAvgPool2D) and gap[-2] == Dense(32, 128, "relu")
    assert not any(isinstance(layer, (Flatten, BatchNorm, Dropout)) for layer in gap)
    for bad, match in ((dict(head="flat"), "head: expected one of"), (dict(dropout=1.0), "dropout: expected a rate"),
                       (dict(dropout=True), "dropout: expected a rate")):
        with pytest.raises(ValueError, match=match):
            cnn_layers(**bad)


def test_unknown_settings_and_schedules_are_refused(data):
    with pytest.raises(ValueError, match=r"unknown settings \['batchnorm'\].*may add"):
        train_cnn(data, recipe="small", batchnorm=True, progress=False)
    with pytest.raises(ValueError, match="lr_schedule: expected one of"):
        train_cnn(data, recipe="small", lr_schedule="linear", progress=False)


def test_onecycle_runs_over_the_whole_run_not_each_epoch(data):
    """train_cnn fits one epoch at a time: its one-cycle rates are those of the whole run's batches."""
    _, hist, s = train_cnn(data, recipe="small", epochs=3, lr=2e-3, lr_schedule="onecycle", optimizer="adamw",
                           weight_decay=0.05, progress=False, **TINY)
    batches = -(-s["train_rows"] // s["batch_size"])
    whole = onecycle_rates(2e-3, 0, 3 * batches, 3 * batches)
    assert np.allclose(hist.lr, whole[::batches], rtol=1e-12)


def test_the_best_epoch_keeps_its_batchnorm_statistics(data):
    """The model returned is the best validation epoch's, running statistics included: it scores what that
    epoch scored (and it takes the images as stored, the ink inversion folded into the first convolution)."""
    model, hist, _ = train_cnn(data, recipe="small", epochs=3, batch_norm=True, dropout=0.3, progress=False, **TINY)
    assert any(isinstance(layer, BatchNorm) for layer in model.layers)
    assert hist.best_epoch < 2, "the check needs a best epoch before the last"
    loss, acc = model.evaluate(rows_to_images(data["valid"][0]), data["valid"][1])
    assert acc == hist.valid_acc[hist.best_epoch]
    assert loss == pytest.approx(hist.valid_loss[hist.best_epoch], rel=1e-9)


# ------------------------------------------------------------------------- bench/cnn_study.py

needs_bench = pytest.mark.skipif(not (BENCH / "cnn_study.py").is_file(),
                                 reason="bench/ is not beside the tests (an installed copy of the tests)")


@needs_bench
def test_the_study_script_help_runs():
    proc = subprocess.run([sys.executable, str(Path("bench") / "cnn_study.py"), "--help"], cwd=BENCH.parent,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    for option in ("--data", "--epochs", "--only", "--seed", "--json"):
        assert option in text, (option, proc.stdout)


@needs_bench
def test_the_study_candidates_are_small_plus_known_settings():
    spec = importlib.util.spec_from_file_location("cnn_study", BENCH / "cnn_study.py")
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    assert study.CANDIDATES[study.BASELINE] == {}
    for name, settings in study.CANDIDATES.items():
        s = {**CNN_RECIPES["small"], **settings}
        assert set(settings) <= set(s) | set(CNN_OPTIONS), name
        CNN((32, 32, 1), _network(s), dtype="float32", seed=0)
    rows = {"small": dict(valid_acc=0.9), "small+bn": dict(valid_acc=0.9), "small+gap": dict(valid_acc=0.8)}
    assert study.choose(rows) == "small"  # a tie keeps the baseline
    rows["small+gap"]["valid_acc"] = 0.95
    assert study.choose(rows) == "small+gap"


@needs_bench
def test_regular_is_the_candidate_the_study_chose():
    """CNN_RECIPES['regular'] is the study's 'small+bn+adamw-onecycle' exactly (so the recipe trains the numbers
    the README's table gives it), and `fastnn cnn --recipe regular` has its MLP."""
    from fastnn.recipes import MLP_RECIPE_OF

    spec = importlib.util.spec_from_file_location("cnn_study", BENCH / "cnn_study.py")
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    assert CNN_RECIPES["regular"] == {**CNN_RECIPES["small"], **study.CANDIDATES["small+bn+adamw-onecycle"]}
    assert MLP_RECIPE_OF["regular"] == "strong"
