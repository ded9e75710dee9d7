"""The tasks end to end: small generated data for the mechanics, the real data for the headline numbers."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from fastnn import cli, tasks
from fastnn.data import generated_splits

SHARED = Path(os.environ.get("FASTNN_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
needs_hw36 = pytest.mark.skipif(not (SHARED / "hw36").is_dir(),
                                reason=f"real hw36 data not found at {SHARED / 'hw36'} (set FASTNN_DATA)")
needs_mnist = pytest.mark.skipif(not (SHARED / "mnist").is_dir(),
                                 reason=f"real MNIST data not found at {SHARED / 'mnist'} (set FASTNN_DATA)")


@pytest.fixture(scope="module")
def small():
    ds = generated_splits(seed=3, sizes=dict(train=12, valid=4, test=4))
    ds["source"] = "generated (test)"
    return ds


def _report(out, task):
    content = json.loads((out / f"{task}.json").read_text())
    assert (out / f"{task}.md").read_text().startswith("# ")
    for plot in content["plots"]:
        assert Path(plot).stat().st_size > 1000, plot
    return content


def test_classify_writes_curves_model_and_report(tmp_path, small):
    res = tasks.classify(out=tmp_path, dataset=small, epochs=3, progress=False)
    content = _report(tmp_path, "classify")
    assert set(content["headline"]) == {"valid_accuracy", "test_accuracy"}
    assert len(content["history"]["train_loss"]) == 3
    assert (tmp_path / "classify_model.npz").exists()
    assert 0 <= res["headline"]["test_accuracy"] <= 1


def test_weights_lr_study_confusion(tmp_path, small):
    res = tasks.classify(out=tmp_path, dataset=small, epochs=2, progress=False)
    w = tasks.first_layer_weights(out=tmp_path, model=res["model"], init_model=res["init_model"])
    assert w["headline"]["relative_weight_change"] > 0
    _report(tmp_path, "weights")
    lr = tasks.lr_study(out=tmp_path, dataset=small, epochs=2, progress=False)
    assert lr["headline"]["best_lr"] in (0.02, 0.002, 0.0002)
    _report(tmp_path, "lr_study")
    conf = tasks.confusion(out=tmp_path, model=res["model"], dataset=small)
    cm = conf["matrix"]
    assert cm.shape == (36, 36) and cm.sum() == small["test"][0].shape[0]
    assert conf["headline"]["test_accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    _report(tmp_path, "confusion")


def test_autoencoder_small(tmp_path, small):
    res = tasks.autoencoder(out=tmp_path, dataset=small, epochs=2, progress=False, classes="A7")
    assert np.isfinite(res["headline"]["psnr_db"])
    _report(tmp_path, "autoencoder")


def test_confusion_matrix_and_psnr():
    cm = tasks.confusion_matrix([0, 1, 1, 2], [0, 2, 1, 2], 3)
    np.testing.assert_array_equal(cm, [[1, 0, 0], [0, 1, 1], [0, 0, 1]])
    ref = np.zeros((2, 4))
    est = np.array([[0.1, 0.1, 0.1, 0.1], [0.0, 0.0, 0.0, 0.0]])
    p = tasks.psnr(ref, est)
    assert p[0] == pytest.approx(20.0) and np.isinf(p[1])
    with pytest.raises(ValueError, match="shape"):
        tasks.psnr(ref, est[:1])


def test_cli_prints_headline_lines(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FASTNN_DATA", raising=False)
    assert cli.main(["toy", "--epochs", "50"]) == 0
    out = capsys.readouterr().out
    assert "itr: 000" in out and "\nloss: " in out and "\naccuracy: " in out
    assert cli.main(["classify", "--epochs", "1", "--out", str(tmp_path), "--no-progress"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2].startswith("valid_accuracy: ") and lines[-1].startswith("test_accuracy: ")
    assert cli.main(["mnist-binary", "--data", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


@needs_hw36
def test_classify_coursework_recipe_reaches_the_numpy_reference(tmp_path):
    """The coursework protocol (seed 42) on hw36: the plain NumPy code gets 72.0% valid / 73.1% test."""
    res = tasks.classify(SHARED, tmp_path, progress=False)
    assert res["headline"]["valid_accuracy"] >= 0.7199
    assert res["headline"]["test_accuracy"] >= 0.7305


@needs_hw36
def test_autoencoder_psnr_on_hw36(tmp_path):
    res = tasks.autoencoder(SHARED, tmp_path, progress=False)
    assert res["headline"]["psnr_db"] >= 15.0


@needs_mnist
def test_mnist_binary(tmp_path):
    res = tasks.mnist_binary(SHARED, tmp_path, progress=False)
    assert res["headline"]["test_accuracy"] >= 0.95
    assert _report(tmp_path, "mnist_binary")["confusion"]["tp"] > 0


def test_report_values_keep_small_numbers_and_point_to_arrays(tmp_path):
    """autoencoder.md showed lr: 0.0000 for 3e-5, and confusion.md a truncated NumPy printout full of '...'."""
    from fastnn.tasks.common import write_report

    write_report(tmp_path, "t", "T", {"acc": 0.5}, {"lr": 3e-5, "matrix": np.ones((36, 36), int)}, [])
    md = (tmp_path / "t.md").read_text()
    assert "lr: 3e-05" in md and "..." not in md and "matrix: an array of shape (36, 36), in full in `t.json`" in md


# ------------------------------------------------------------------- the registry and the command line

@pytest.fixture
def global_rng():
    """The toy seeds NumPy's global generator: leave it as it was."""
    state = np.random.get_state()
    yield
    np.random.set_state(state)


def test_every_registered_task_is_a_subcommand_with_its_help(capsys):
    """fastnn --help lists every task of the registry, and fastnn TASK --help describes each, with the
    common options its function takes (--data, --out, --seed, --progress / --no-progress)."""
    from fastnn.tasks.registry import load_tasks

    registered = load_tasks()
    assert {"toy", "classify", "weights", "lr-study", "confusion", "autoencoder", "mnist-binary", "mnist-multiclass",
            "demo", "ocr", "ocr-eval", "ocr-train"} <= set(registered)
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    listing = capsys.readouterr().out
    for name, task in registered.items():
        assert f"\n    {name} " in listing or f"\n    {name}\n" in listing, name
        with pytest.raises(SystemExit) as exc:
            cli.main([name, "--help"])
        assert exc.value.code == 0, name
        text = capsys.readouterr().out
        assert text.startswith(f"usage: fastnn {name} "), text
        for option in ("data", "out", "seed"):
            assert (f"--{option} " in text) == (option in task.common), (name, option)
        assert ("--no-progress" in text) == ("progress" in task.common), name
    # the tasks the README says take all four
    for name in ("classify", "weights", "lr-study", "confusion", "autoencoder", "mnist-binary", "mnist-multiclass",
                 "demo"):
        assert registered[name].common == ("data", "out", "seed", "progress"), name
    assert registered["toy"].common == ("out", "seed", "progress")
    assert registered["ocr"].common == registered["ocr-eval"].common == ("data", "progress")
    assert registered["ocr-train"].common == ("data", "out", "seed", "progress")


def test_the_readme_task_table_names_every_task():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    from fastnn.tasks.registry import load_tasks

    for name in load_tasks():
        assert f"| `fastnn {name}" in readme, name


def test_register_refuses_a_second_task_of_a_name_and_an_option_the_function_lacks():
    from fastnn.tasks.registry import TASKS, Option, register

    def f(data=None, *, epochs=3):
        return {"headline": {}}

    with pytest.raises(ValueError, match="registered twice"):
        register("toy", f, help="x")
    with pytest.raises(ValueError, match="--lr passes lr="):
        register("test-only", f, help="x", options=[Option("--lr", type=float)])
    assert "test-only" not in TASKS


def test_toy_out_writes_its_report_and_curves(tmp_path, capsys, global_rng):
    """`fastnn toy --out x` failed with `unrecognized arguments`; now it writes a report and prints the same."""
    assert cli.main(["toy", "--epochs", "50"]) == 0
    plain = capsys.readouterr().out
    assert cli.main(["toy", "--epochs", "50", "--out", str(tmp_path / "toy")]) == 0
    captured = capsys.readouterr()
    assert captured.out == plain and f"output: {tmp_path / 'toy'}" in captured.err
    content = _report(tmp_path / "toy", "toy")
    assert content["plots"] == [str(tmp_path / "toy" / "toy_curves.png")]
    assert len(content["history"]["loss"]) == 50
    assert f"loss: {content['headline']['loss']:.4f}" in plain
    assert cli.main(["toy", "--epochs", "50", "--no-progress"]) == 0
    assert "itr:" not in capsys.readouterr().out


def test_plots_are_replaced_atomically_and_new_ones_take_the_umask(tmp_path, global_rng):
    """A plot used to be written in place by fig.savefig(path): a killed task left half a PNG, and anyone
    reading the old one saw it change under them.  Now it is a temporary file, then a rename."""
    import stat

    out = tmp_path / "out"
    out.mkdir()
    old = out / "toy_curves.png"
    old.write_bytes(b"the previous plot")
    os.link(old, tmp_path / "reader.png")  # a reader still holding the previous file
    previous = os.umask(0o027)
    try:
        tasks.toy(out=out, epochs=3, progress=False)
        tasks.toy(out=tmp_path / "new", epochs=3, progress=False)
    finally:
        os.umask(previous)
    assert (tmp_path / "reader.png").read_bytes() == b"the previous plot"  # renamed over, not rewritten
    assert old.read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["toy.json", "toy.md", "toy_curves.png"]
    assert sorted(p.name for p in out.iterdir()) == ["toy.json", "toy.md", "toy_curves.png"]
    assert stat.S_IMODE((tmp_path / "new" / "toy_curves.png").stat().st_mode) == 0o640


def test_building_the_command_line_imports_no_task_s_heavy_modules():
    """The parser imports every task module (see fastnn.tasks.registry): they must leave the compiled core,
    the models, the data readers, the OCR and matplotlib to the task that runs, or every `fastnn toy`
    pays for all of them."""
    import subprocess
    import sys

    script = ("import sys, fastnn.cli; fastnn.cli.build_parser(); "
              "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('fastnn', 'matplotlib', 'scipy', "
              "'skimage', 'torch'))))")
    env = dict(os.environ, PYTHONPATH=str(Path(tasks.__file__).resolve().parents[2]))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    loaded = set(proc.stdout.split())
    assert {"fastnn.tasks.toy_network", "fastnn.tasks.ocr", "fastnn.sweep.command"} <= loaded, loaded
    heavy = {"fastnn._kernels", "fastnn.nn", "fastnn.functional", "fastnn.models", "fastnn.train", "fastnn.data",
             "fastnn.ocr", "fastnn.ocr_model", "matplotlib", "scipy", "skimage", "torch"}
    imported = sorted(m for m in loaded if any(m == h or m.startswith(h + ".") for h in heavy))
    assert not imported, imported


def test_the_tasks_never_import_the_sweep_which_sits_above_them():
    """`fastnn sweep` runs the tasks, so the tasks (all of them, as load_tasks imports them) import no module
    of fastnn.sweep; the command line imports the sweep's command besides them."""
    import subprocess
    import sys

    script = ("import sys, fastnn.tasks.registry as r; names = sorted(r.load_tasks()); "
              "print(' '.join(m for m in sys.modules if m.startswith('fastnn.sweep'))); print(' '.join(names))")
    env = dict(os.environ, PYTHONPATH=str(Path(tasks.__file__).resolve().parents[2]))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    swept, names = proc.stdout.split("\n")[:2]
    assert swept == "", swept
    assert "sweep" not in names.split() and "ocr" in names.split(), names
    from fastnn.tasks.registry import TASKS

    cli.build_parser()
    assert TASKS["sweep"].function.__module__ == "fastnn.sweep.command"


def test_the_recipes_live_in_one_module_and_their_old_names_still_work():
    import fastnn.cnn_recipe
    import fastnn.tasks.classifier
    import fastnn.tasks.cnn
    from fastnn import recipes

    assert fastnn.cnn_recipe.CNN_RECIPES is recipes.CNN_RECIPES
    assert fastnn.cnn_recipe.train_cnn is recipes.train_cnn and fastnn.cnn_recipe.cnn_layers is recipes.cnn_layers
    assert tasks.RECIPES is fastnn.tasks.classifier.RECIPES is recipes.RECIPES is recipes.MLP_RECIPES
    assert fastnn.tasks.cnn.MLP_RECIPE_OF is recipes.MLP_RECIPE_OF
    assert set(recipes.MLP_RECIPE_OF) == set(recipes.CNN_RECIPES)
    assert set(recipes.MLP_RECIPE_OF.values()) <= set(recipes.MLP_RECIPES)


def _one_epoch_history():
    from fastnn.train import History

    return History(train_loss=[0.9], train_acc=[0.6], valid_loss=[1.0], valid_acc=[0.55])


@pytest.mark.parametrize("plot", ["curves", "two_models", "lr_study", "toy", "autoencoder"])
def test_a_one_epoch_plot_has_whole_epochs_on_its_x_axis(plot, tmp_path, monkeypatch, small):
    """A one-epoch run's curves were drawn with epoch ticks 0.96, 0.98 ... 1.04: epochs are whole numbers."""
    from fastnn.tasks import classifier, cnn, common, reconstruction, toy_network

    kept = []
    for module in (common, classifier, cnn, toy_network, reconstruction):
        monkeypatch.setattr(module, "save_figure", lambda fig, path, **kw: kept.append(fig) or Path(path))
    if plot == "curves":
        common.plot_curves(_one_epoch_history(), tmp_path / "curves.png", "one epoch")
    elif plot == "two_models":
        cnn.plot_two_models([("CNN", _one_epoch_history()), ("MLP", _one_epoch_history())], tmp_path / "c.png", "x")
    elif plot == "lr_study":
        classifier.lr_study(out=tmp_path, dataset=small, epochs=1, progress=False)
    elif plot == "toy":
        toy_network.toy(out=tmp_path, epochs=1, progress=False)
    else:
        reconstruction.autoencoder(out=tmp_path, dataset=small, epochs=1, progress=False)
        kept[:] = kept[:1]  # (the loss curve; the reconstructions are images)
    axes = [ax for fig in kept for ax in fig.axes]
    assert axes
    for ax in axes:
        lo, hi = ax.get_xlim()
        shown = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert shown and all(float(t).is_integer() for t in shown), (ax.get_title(), list(ax.get_xticks()))
    common.pyplot().close("all")
