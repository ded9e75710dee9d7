"""The figures README.md states are the ones the code gives today, for those the suite can recompute in
seconds: recipe settings, limits and constants, the shipped OCR model's description and scores, what
``fastnn --version`` says.

Each check finds its sentence in the README by a regular expression (spaces in the patterns below match
any run of whitespace, so a sentence may wrap), reads the figure from it and compares it with the code's,
failing with the README line and the two values. A sentence the README no longer has fails too: reword
the pattern with the README. Left out (they need minutes of training or a timing): the CNN recipes', the
autoencoder's and the MNIST tasks' figures, the timing tables, the OCR model's 29,451 training rows and the
unseen pages' CER.
"""

import contextlib
import importlib
import inspect
import io
import os
import re
from pathlib import Path

import numpy as np
import pytest

import fastnn

README = Path(__file__).resolve().parents[1] / "README.md"
TEXT = README.read_text(encoding="utf-8")
SHARED = Path(os.environ.get("FASTNN_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
needs_hw36 = pytest.mark.skipif(not (SHARED / "hw36").is_dir(), reason=f"hw36 data not found at {SHARED}")


class Stated:
    """One README sentence matched by ``pattern``: ``.group(i)`` its figures, ``.check(i, code)`` each."""

    def __init__(self, pattern):
        self.match = re.search(pattern.replace(" ", r"\s+"), TEXT)
        assert self.match, f"README.md has no sentence matching {pattern!r} any more: reword the pattern here"
        self.line = TEXT.count("\n", 0, self.match.start()) + 1

    def group(self, i):
        return self.match.group(i)

    def where(self):
        return f"README.md line {self.line} ({' '.join(self.match.group(0).split())!r})"

    def check(self, i, code, convert=str):
        """Figure ``i`` of the sentence, converted by ``convert``, equals ``code`` (floats: to 1e-9)."""
        stated = convert(self.group(i))
        same = (np.isclose(stated, code, rtol=1e-9, atol=0) if isinstance(code, float) else stated == code)
        assert same, f"{self.where()} states {self.group(i)!r}; the code gives {code!r}"


def number(text):
    """'29,451' -> 29451, '1e-3' -> 0.001, '0.002' -> 0.002."""
    value = float(text.replace(",", ""))
    return int(value) if value.is_integer() and not re.search(r"[.e]", text) else value


def attr(name, *modules):
    """``name`` from the first of ``modules`` (dotted paths, newest layout first) that has it."""
    for module in modules:
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    raise AssertionError(f"none of {modules} has {name}")


def cnn_recipes():
    return attr("CNN_RECIPES", "fastnn.recipes", "fastnn.cnn_recipe")


def hw36_rows(split):
    from fastnn.data import load_hw36

    return len(load_hw36(SHARED, split)[0])


# ---- the tasks' recipes ---------------------------------------------------------------------------------------


def test_the_coursework_recipe_in_the_tasks_table():
    from fastnn.tasks import RECIPES

    s = Stated(r"\| `fastnn classify` \| 1024-(\d+)-36 (\w+) \+ softmax, batch (\d+), lr ([\d.]+), (\d+) epochs")
    r = RECIPES["coursework"]
    s.check(1, r["hidden"], int)
    s.check(2, r["activation"])
    s.check(3, r["batch_size"], int)
    s.check(4, float(r["lr"]), float)
    s.check(5, r["epochs"], int)


def test_the_strong_recipe():
    from fastnn.tasks import RECIPES

    s = Stated(r"the `strong` recipe \(1024-(\d+)-36 (\w+), (\w+) lr ([\d.e-]+), reshuffled every epoch, hw36's "
               r"(\d+) extra letters added, (\d+) epochs")
    r = RECIPES["strong"]
    s.check(1, r["hidden"], int)
    s.check(2, r["activation"], str.lower)
    s.check(3, r["optimizer"], str.lower)
    s.check(4, float(r["lr"]), float)
    assert r["shuffle"] == "epoch" and r["extra"] is True, f"{s.where()}: the recipe is {r}"
    s.check(6, r["epochs"], int)


@needs_hw36
def test_hw36_row_counts():
    s = Stated(r"hw36's (\d+) extra letters added")
    s.check(1, hw36_rows("extra"), int)
    s = Stated(r"train \+ extra = ([\d,]+) rows")
    s.check(1, hw36_rows("train") + hw36_rows("extra"), number)
    s = Stated(r"hw36's ([\d,]+) training rows in float32")
    s.check(1, hw36_rows("train"), number)
    copies = cnn_recipes()["small"]["copies"]
    s = Stated(r"\(([\d,]+): train \+ extra \+ one distorted copy\)")
    s.check(1, (1 + copies) * (hw36_rows("train") + hw36_rows("extra")), number)


@pytest.fixture(scope="module")
def hw36():
    from fastnn.data import load_dataset

    return load_dataset(SHARED, seed=42)


@needs_hw36
def test_the_coursework_accuracies(hw36, tmp_path):
    """``fastnn classify`` (the demo's first part; 3 seconds): the accuracies the README's first example and
    its "Measured on hw36" sentence quote."""
    from fastnn import tasks

    got = tasks.classify(SHARED, tmp_path, dataset=hw36, progress=False)["headline"]
    s = Stated(r"On hw36 it prints:\s+```\s+valid_accuracy: ([\d.]+)\s+test_accuracy: ([\d.]+)")
    s.check(1, f"{got['valid_accuracy']:.4f}")
    s.check(2, f"{got['test_accuracy']:.4f}")
    s = Stated(r"the coursework recipe reproduces the plain NumPy implementation's ([\d.]+)% validation / ([\d.]+)% "
               r"test accuracy")
    s.check(1, f"{100 * got['valid_accuracy']:.2f}")
    s.check(2, f"{100 * got['test_accuracy']:.2f}")


@needs_hw36
def test_the_strong_recipe_accuracies(hw36, tmp_path):
    """``fastnn classify --recipe strong`` (5 seconds): the accuracies of the "Measured on hw36" sentence."""
    from fastnn import tasks

    got = tasks.classify(SHARED, tmp_path, recipe="strong", dataset=hw36, progress=False)["headline"]
    s = Stated(r"the `strong` recipe \([^)]*\) reaches ([\d.]+)% validation / ([\d.]+)% test \(([\d.]+)% / ([\d.]+)% "
               r"where the products run on BLAS")
    # 30 epochs of Adam carry the products' rounding, which differs between the AVX-512 copy (the core's own
    # small products) and the others (BLAS's): the sentence gives both, this checks the running copy's.
    from fastnn._kernels import _core

    first = 1 if _core.direct_products() == "all" else 3
    s.check(first, f"{100 * got['valid_accuracy']:.1f}")
    s.check(first + 1, f"{100 * got['test_accuracy']:.1f}")


def test_the_autoencoder_settings(monkeypatch, tmp_path):
    """The tasks table's autoencoder: the network and the trainer ``tasks.autoencoder`` builds (caught as it
    is built, nothing trained)."""
    from fastnn import tasks, train

    s = Stated(r"\| `fastnn autoencoder` \| 1024-(\d+)-(\d+)-(\d+)-1024 \(ReLU x3, sigmoid\), momentum ([\d.]+), "
               r"lr ([\d.e-]+), x([\d.]+) every (\d+) epochs, batch (\d+), (\d+) epochs")
    seen = {}

    class Built(Exception):
        pass

    def spy(model, **kwargs):
        seen.update(model=model, **kwargs)
        raise Built

    monkeypatch.setattr(train, "Trainer", spy)
    autoencoder = tasks.autoencoder
    module = importlib.import_module(autoencoder.__module__)
    if hasattr(module, "Trainer"):
        monkeypatch.setattr(module, "Trainer", spy)
    from fastnn.data import generate_nist36

    X, _ = generate_nist36(1, seed=0)
    with pytest.raises(Built):
        autoencoder(out=tmp_path, dataset={"train": (X, X), "valid": (X, X), "test": (X, X)}, progress=False)
    model = seen["model"]
    for i, width in enumerate(model.sizes[1:4], start=1):
        s.check(i, width, int)
    assert model.sizes[0] == model.sizes[-1] == 1024, f"{s.where()}: the network is {model.sizes}"
    assert list(model.activations) == ["relu"] * 3 + ["sigmoid"], f"{s.where()}: {model.activations}"
    assert seen["optimizer"] == "momentum", f"{s.where()}: the optimizer is {seen['optimizer']!r}"
    s.check(4, float(seen["momentum"]), float)
    s.check(5, float(inspect.signature(autoencoder).parameters["lr"].default), float)
    assert float(seen["lr"]) == float(inspect.signature(autoencoder).parameters["lr"].default)
    s.check(6, float(seen["lr_decay"]), float)
    s.check(7, seen["lr_step"], int)
    s.check(8, seen["batch_size"], int)
    s.check(9, inspect.signature(autoencoder).parameters["epochs"].default, int)


def test_the_learning_rate_study_rates():
    from fastnn.tasks import lr_study

    s = Stated(r"\| `fastnn lr-study` \| learning rates ([\d.]+), ([\d.]+), ([\d.]+):")
    lr = inspect.signature(lr_study).parameters["lr"].default
    for i, rate in enumerate([lr * 10, lr, lr / 10], start=1):
        s.check(i, float(rate), float)


def test_the_cnn_recipes():
    recipes = cnn_recipes()
    named = Stated(r"`fastnn cnn --data DIR` trains the CNN of a recipe \(`(fastnn\.[\w.]+)\.CNN_RECIPES`")
    module = importlib.import_module(named.group(1))
    assert module.CNN_RECIPES == recipes, f"{named.where()}: {named.group(1)}.CNN_RECIPES is not the recipes'"

    small = recipes["small"]
    s = Stated(r"- `small` \(the default\): (\d)x\d conv (\d+) \('(\w+)'\) \+ pool, \dx\d conv (\d+) \('same'\) "
               r"\+ pool, (\d+) ReLU, softmax; Adam lr ([\d.e-]+) along a cosine, batch (\d+), (\d+) epochs, on "
               r"hw36's train split plus its \d+ extra letters and, every epoch, (\w+) freshly distorted copy")
    s.check(1, small["kernel"], int)
    s.check(2, small["conv"][0], int)
    s.check(3, small["padding"])
    s.check(4, small["conv"][1], int)
    s.check(5, small["hidden"], int)
    assert small["optimizer"] == "adam", f"{s.where()}: {small}"
    s.check(6, float(small["lr"]), float)
    s.check(7, small["batch_size"], int)
    s.check(8, small["epochs"], int)
    s.check(9, small["copies"], {"one": 1, "two": 2}.get)
    assert small["extra"] and small["invert"], f"{s.where()}: {small}"
    from fastnn.tasks.cnn import cnn

    assert inspect.signature(cnn).parameters["recipe"].default == "small", f"{s.where()}: the default recipe"

    wide = recipes["wide"]
    s = Stated(r"- `wide`: `small` with (\d+) and (\d+) channels and (\d+) ReLU units, (\d+) epochs")
    s.check(1, wide["conv"][0], int)
    s.check(2, wide["conv"][1], int)
    s.check(3, wide["hidden"], int)
    s.check(4, wide["epochs"], int)
    same = {k: v for k, v in small.items() if k not in ("conv", "hidden", "epochs")}
    assert {k: wide[k] for k in same} == same, f"{s.where()}: 'wide' differs from 'small' otherwise too: {wide}"

    plain = recipes["plain"]
    s = Stated(r"\(SGD on the summed loss, lr ([\d.]+) along a cosine,\s+batch (\d+), (\d+) epochs\), no augmentation "
               r"and no extra letters")
    s.check(1, float(plain["lr"]), float)
    s.check(2, plain["batch_size"], int)
    s.check(3, plain["epochs"], int)
    assert plain["optimizer"] == "sgd" and plain["copies"] == 0 and not plain["extra"], f"{s.where()}: {plain}"
    s = Stated(r"\((\d)x\d conv (\d+) and \dx\d conv (\d+), both '(\w+)', each with a 2x2 max-pool, (\d+) ReLU")
    s.check(1, plain["kernel"], int)
    s.check(2, plain["conv"][0], int)
    s.check(3, plain["conv"][1], int)
    s.check(4, plain["padding"])
    s.check(5, plain["hidden"], int)

    regular = recipes["regular"]
    s = Stated(r"- `regular`: `small` with issue 22's layers and controls: a BatchNorm after each convolution "
               r"\(after its ReLU, before the pool\), (\w+) with weight decay ([\d.]+) and a one-cycle rate peaking "
               r"at ([\d.e-]+) over the run's batches, (\d+) epochs; the rest as `small`")
    s.check(1, regular["optimizer"], str.lower)
    s.check(2, float(regular["weight_decay"]), float)
    s.check(3, float(regular["lr"]), float)
    s.check(4, regular["epochs"], int)
    assert regular["batch_norm"] and regular["lr_schedule"] == "onecycle", f"{s.where()}: {regular}"
    changed = ("optimizer", "weight_decay", "lr", "epochs", "batch_norm", "lr_schedule")
    assert {k: v for k, v in regular.items() if k not in changed} == {k: v for k, v in small.items()
                                                                      if k not in changed}, f"{s.where()}: {regular}"


# ---- the shipped OCR model ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped():
    from fastnn.ocr.model import SHIPPED_MODEL, OCRModel

    return SHIPPED_MODEL, OCRModel.load(SHIPPED_MODEL)


def test_the_shipped_ocr_model_file(shipped):
    path, model = shipped
    s = Stated(r"`fastnn/ocr/ocr_model.npz` \(([\d.]+) MB: the recipe's two networks, a 1024-(\d+)-(\d+)-36 MLP")
    s.check(1, round(path.stat().st_size / 2**20, 1), float)
    mlp = model.members[0]
    s.check(2, mlp.sizes[1], int)
    s.check(3, mlp.sizes[2], int)
    assert len(model.members) == 2 and len(mlp.sizes) == 4, f"{s.where()}: {model!r}"


def test_the_shipped_ocr_model_scores(shipped):
    """The scores the README quotes are those the file describes itself with (``ocr-train`` measured them)."""
    _, model = shipped
    scores = model.meta["scores"]
    s = Stated(r"scores: ([\d.]+)% on the held-out hw36 test split cut from generated pages \(the MLP alone "
               r"([\d.]+)%, the CNN alone ([\d.]+)%; ([\d.]+)% re-cropped, ([\d.]+)% as stored\), and (\d+)% CER "
               r"on both photographed pages")
    for i, key in enumerate(["", "_mlp", "_cnn", "_recropped", "_as_stored"], start=1):
        s.check(i, round(100 * scores[f"hw36_test_accuracy{key}"], 1), float)
    assert len(scores["pages"]) == 2, f"{s.where()}: the file scores {sorted(scores['pages'])}"
    s.check(6, round(100 * max(page["cer"] for page in scores["pages"].values())), int)


def test_the_ocr_recipe(shipped):
    from fastnn.ocr import model as ocr_model

    _, model = shipped
    meta = model.meta["recipe"]
    s = Stated(r"The classifier is `fastnn.ocr.model`'s recipe \(version (\d+)\)")
    s.check(1, ocr_model.RECIPE_VERSION, int)
    s.check(1, model.meta["recipe_version"], int)
    s = Stated(r"hw36 train \+ valid \+ extra and (\d+) MNIST digits per class")
    s.check(1, inspect.signature(ocr_model.training_set).parameters["mnist_per_digit"].default, int)
    assert model.meta["data"]["hw36"] == ["train", "valid", "extra"], f"{s.where()}: {model.meta['data']}"
    s = Stated(r"\(`fastnn.ocr.synth`: (\d+) to a page")
    s.check(1, ocr_model.PER_PAGE, int)
    s.check(1, meta["per_page"], int)
    s = Stated(r"the 1024-(\d+)-(\d+)-36 ReLU MLP \((\d+) epochs, batch (\d+)\) and `[\w.]+`'s? `(\w+)` CNN \(two "
               r"(\d)x\d conv \+ 2x2 max-pool blocks of (\d+) and (\d+) channels, (\d+) ReLU units; (\d+) epochs, "
               r"batch (\d+)\)")
    for hidden in (ocr_model.HIDDEN, meta["mlp"]["hidden"], model.members[0].sizes[1:-1]):
        s.check(1, hidden[0], int)
        s.check(2, hidden[1], int)
    s.check(3, ocr_model.EPOCHS, int)
    s.check(3, meta["mlp"]["epochs"], int)
    s.check(4, meta["mlp"]["batch_size"], int)
    s.check(5, ocr_model.CNN_RECIPE)
    cnn = cnn_recipes()[ocr_model.CNN_RECIPE]
    for recipe in (cnn, meta["cnn"]):
        s.check(6, recipe["kernel"], int)
        s.check(7, recipe["conv"][0], int)
        s.check(8, recipe["conv"][1], int)
        s.check(9, recipe["hidden"], int)
        s.check(10, recipe["epochs"], int)
        s.check(11, recipe["batch_size"], int)


# ---- limits and constants -------------------------------------------------------------------------------------


@pytest.mark.parametrize("env, name", [("FASTNN_MAX_IMAGE_PIXELS", "MAX_IMAGE_PIXELS"),
                                       ("FASTNN_MAX_DECODED_PIXELS", "MAX_DECODED_PIXELS"),
                                       ("FASTNN_MAX_LOADED_PIXELS", "MAX_LOADED_PIXELS")])
def test_the_image_limits(env, name):
    s = Stated(rf"\| (\d+) megapixels \| `{env}` \|")
    s.check(1, attr(name, "fastnn.ocr.image") / 1e6, float)


def test_the_model_file_limits():
    modules = ("fastnn.models.fileformat", "fastnn.models")
    s = Stated(r"\| ([\d,]+) \| `MLP.load\(path, max_params=N\)`, `(\w+)` \|")
    s.check(1, attr("MAX_MODEL_PARAMS", *modules), number)
    s.check(2, attr("MAX_PARAMS_ENV", *modules))
    s = Stated(r"\| a model file's layers; each of its small members \(format, sizes, activations, loss\) \| "
               r"(\d+) layers; (\d+) KiB \|")
    s.check(1, attr("MAX_MODEL_LAYERS", *modules), int)
    s.check(2, attr("MAX_MODEL_META_BYTES", *modules) / 1024, float)


def test_the_text_limits():
    s = Stated(r"\| the expected text of `fastnn ocr-eval` \| (\d+) MB of UTF-8 \|")
    s.check(1, attr("MAX_EXPECTED_BYTES", "fastnn.tasks.ocr", "fastnn.tasks.pages") / 2**20, float)
    s = Stated(r"\| a word list \(`--lexicon`, `Lexicon.from_file`\); its words \| (\d+) MB of UTF-8; (\d+) characters")
    s.check(1, attr("MAX_LEXICON_BYTES", "fastnn.ocr.lexicon") / 2**20, float)
    s.check(2, attr("MAX_WORD_LENGTH", "fastnn.ocr.lexicon"), int)


def test_the_malloc_thresholds():
    s = Stated(r"fixes malloc's thresholds \(arrays up to (\d+) MiB from the heap, up to (\d+) MiB of freed "
               r"heap kept\)")
    s.check(1, attr("MALLOC_MMAP_THRESHOLD", "fastnn._config") / 2**20, float)
    s.check(2, attr("MALLOC_TRIM_THRESHOLD", "fastnn._config") / 2**20, float)


def test_keep_cols_bytes_and_its_module():
    s = Stated(r"`KEEP_COLS_BYTES` \((\d+) MiB, `(fastnn\.[\w.]+)`")
    try:
        value = importlib.import_module(s.group(2)).KEEP_COLS_BYTES
    except (ImportError, AttributeError) as exc:
        raise AssertionError(f"{s.where()} names {s.group(2)} for KEEP_COLS_BYTES: {exc!r}") from None
    s.check(1, value / 2**20, float)


def test_version_names_the_core_copy():
    """``fastnn --version`` prints the version and, as the README says, which copy of the core is loaded."""
    from fastnn import cli
    from fastnn.functional import core_info

    s = Stated(r"`fastnn --version` and `fastnn.functional.core_info\(\)` say which copy is loaded")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code in (0, None)
    text = out.getvalue()
    assert fastnn.__version__ in text, f"{s.where()}: --version printed {text!r}"
    assert core_info()["core"] in text, f"{s.where()}: --version printed {text!r}, core_info() says {core_info()}"
