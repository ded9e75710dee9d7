"""`fastnn cnn`: the convolutional classifier beside the MLP, its files, its headline lines and its options.

The mechanics run on small generated data; a real hw36 run of a whole recipe takes minutes, so the one
test of its accuracy runs only when FASTNN_SLOW_TESTS=1.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from fastnn import cli
from fastnn.cnn import CNN
from fastnn.data import generated_splits
from fastnn.layers import rows_to_images
from fastnn.tasks import cnn as cnn_task

SHARED = Path(os.environ.get("FASTNN_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
HEADLINE = ["valid_accuracy", "test_accuracy", "mlp_test_accuracy", "s_per_epoch"]


@pytest.fixture(scope="module")
def small():
    ds = generated_splits(seed=5, sizes=dict(train=4, valid=2, test=2))
    ds["source"] = "generated (test)"
    return ds


@pytest.mark.parametrize("recipe, mlp_recipe", [("plain", "coursework"), ("small", "strong"), ("regular", "strong")])
def test_cnn_task_writes_curves_confusion_report_and_model(tmp_path, small, recipe, mlp_recipe):
    res = cnn_task.cnn(out=tmp_path, dataset=small, recipe=recipe, epochs=2, save=tmp_path / "m.npz", progress=False)
    content = json.loads((tmp_path / "cnn.json").read_text())
    assert list(content["headline"]) == HEADLINE
    assert content["recipe"] == recipe and content["mlp_recipe"] == mlp_recipe
    assert content["plots"] == [str(tmp_path / "cnn_curves.png"), str(tmp_path / "cnn_confusion.png")]
    for plot in content["plots"]:
        assert Path(plot).read_bytes().startswith(b"\x89PNG")
    md = (tmp_path / "cnn.md").read_text()
    assert md.startswith("# Convolutional classifier") and "![cnn_curves](cnn_curves.png)" in md
    # both models trained the epochs asked for; the CNN's settings are the recipe's
    assert len(content["history"]["train_loss"]) == len(content["mlp_history"]["valid_acc"]) == 2
    assert content["settings"]["copies"] == (0 if recipe == "plain" else 1)
    assert content["mlp_settings"]["hidden"] == (64 if recipe == "plain" else 256)
    # the generated set has no extra letters: each model trained on the training rows alone
    n_train = small["train"][0].shape[0]
    assert content["settings"]["train_rows"] == content["mlp_settings"]["train_rows"] == n_train
    assert content["rows_per_epoch"] == n_train * (1 if recipe == "plain" else 2)
    # the confusion matrix is the CNN's on test and agrees with the headline
    cm = np.array(content["matrix"])
    Xt, Yt = small["test"]
    assert cm.shape == (36, 36) and cm.sum() == Xt.shape[0]
    assert content["headline"]["test_accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert res["headline"]["mlp_test_accuracy"] == res["mlp"].evaluate(Xt, Yt)[1]
    assert res["headline"]["s_per_epoch"] == pytest.approx(np.median(content["history"]["seconds"]))
    # the saved CNN takes the stored images and predicts as the trained one
    loaded = CNN.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.predict(rows_to_images(Xt)), res["model"].predict(rows_to_images(Xt)))


def test_cli_cnn_on_the_generated_set_prints_its_headline_last(tmp_path, capsys, monkeypatch):
    """With no data folder the task trains on the generated set and says so (a smaller one here: the whole
    set takes 6 s to draw)."""
    import fastnn.data

    def load_dataset(data=None, seed=0):
        assert data is None and fastnn.data.find_data_dir(data) is None  # the fallback load_dataset takes
        return dict(generated_splits(seed=seed, sizes=dict(train=3, valid=1, test=1)),
                    source="generated (synthetic fonts)")

    monkeypatch.delenv("FASTNN_DATA", raising=False)
    monkeypatch.setattr(fastnn.data, "load_dataset", load_dataset)
    assert cli.main(["cnn", "--recipe", "plain", "--epochs", "1", "--out", str(tmp_path), "--no-progress"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert [line.split(": ")[0] for line in lines[-4:]] == HEADLINE
    for line in lines[-4:]:
        float(line.split(": ")[1])
    assert "data: generated (synthetic fonts), not handwriting" in captured.err
    assert f"output: {tmp_path}" in captured.err
    assert json.loads((tmp_path / "cnn.json").read_text())["data"] == "generated (synthetic fonts)"


def test_cnn_help_lists_its_options(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["cnn", "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps at the terminal's width
    for option in ("--data", "--out", "--seed", "--progress", "--no-progress", "--recipe", "--epochs", "--lr",
                   "--save"):
        assert f"{option} " in text, option
    assert "{plain,regular,small,wide}" in text and "(default small)" in text


def test_the_task_offers_the_cnn_recipes_and_refuses_others(tmp_path, small, capsys):
    from fastnn.recipes import CNN_RECIPES, MLP_RECIPE_OF, MLP_RECIPES

    assert set(cnn_task.CNN_RECIPE_NAMES) == set(CNN_RECIPES) == set(MLP_RECIPE_OF)  # each CNN with its MLP
    assert set(MLP_RECIPE_OF.values()) <= set(MLP_RECIPES)
    with pytest.raises(ValueError, match="recipe: expected one of"):
        cnn_task.cnn(out=tmp_path, dataset=small, recipe="large")
    with pytest.raises(SystemExit):
        cli.main(["cnn", "--epochs", "0"])
    assert "expected a positive integer" in capsys.readouterr().err


@pytest.mark.skipif(os.environ.get("FASTNN_SLOW_TESTS") != "1" or not (SHARED / "hw36").is_dir(),
                    reason="a whole 'small' recipe on hw36 takes minutes: set FASTNN_SLOW_TESTS=1 (and the data)")
def test_small_recipe_on_hw36_reaches_92_percent(tmp_path):
    res = cnn_task.cnn(SHARED, tmp_path, recipe="small", progress=False)
    assert res["headline"]["test_accuracy"] >= 0.92


def test_plain_recipe_is_the_issue_network_on_the_stored_pixels():
    """'plain' trains 3x3 'same' convolutions on the pixels as stored: nothing to fold, and the model it
    returns gives the numbers of its best validation epoch; an inversion cannot be folded into 'same'."""
    from fastnn.recipes import train_cnn

    rng = np.random.default_rng(4)

    def split(n):
        y = rng.integers(0, 36, n)
        X = np.clip(rng.random((n, 1024)) * 0.3 + 0.7, 0, 1)
        X[np.arange(n), y * 28] = 0.0
        return X, np.eye(36)[y]

    data = {"train": split(72), "valid": split(36)}
    model, hist, s = train_cnn(data, recipe="plain", conv=(3, 4), hidden=8, epochs=3, dtype="float64", progress=False)
    assert [layer.padding for layer in model.layers if hasattr(layer, "padding")] == ["same", "same"]
    assert model.layers[0].kernel_size == (3, 3) and model.shapes[3] == (8, 8, 4)
    assert s["optimizer"] == "sgd" and s["copies"] == 0 and not s["invert"]
    loss, acc = model.evaluate(rows_to_images(data["valid"][0]), data["valid"][1])
    assert acc == hist.valid_acc[hist.best_epoch] and loss == pytest.approx(hist.valid_loss[hist.best_epoch], rel=1e-10)
    with pytest.raises(ValueError, match="invert=True needs padding 'valid'"):
        train_cnn(data, recipe="plain", invert=True)
