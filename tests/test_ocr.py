"""fastnn.ocr: segmentation and grouping on generated pages, bad input, CER, and the two real pages."""

import os
from pathlib import Path

import numpy as np
import pytest

from fastnn import ocr
from fastnn.data import generate_nist36

SHARED = Path(os.environ.get("FASTNN_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
PAGES = SHARED / "ocr"
needs_pages = pytest.mark.skipif(not PAGES.is_dir(), reason=f"photographed pages not found at {PAGES}")
needs_hw36 = pytest.mark.skipif(not (SHARED / "hw36").is_dir(), reason=f"hw36 data not found at {SHARED}")
needs_mnist = pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason=f"MNIST not found at {SHARED / 'mnist'}")
#: FASTNN_TEST_FULL_OCR_RECIPE=1 trains the whole OCR recipe's MLP (5 minutes) and compares it with the shipped one.
FULL_RECIPE = os.environ.get("FASTNN_TEST_FULL_OCR_RECIPE") == "1"
needs_full_recipe = pytest.mark.skipif(not FULL_RECIPE, reason="the whole OCR recipe takes 5 minutes: set "
                                       "FASTNN_TEST_FULL_OCR_RECIPE=1 (the suite runs it on a fixed slice)")

LAYOUT = ["HELLO WORLD 42", "FAST NN", "A B C 7"]


def _page(rng, glyphs, layout=LAYOUT, slant=0.02, size=64, shade=True):
    """Paste 32x32 glyph images (dark on white) onto a page with known lines and words.

    Returns the RGB uint8 page and the true boxes per line, per word.
    """
    H, W = 120 + 2 * size * len(layout), 160 + max(len(t) for t in layout) * int(size * 1.1)
    page = np.ones((H, W))
    truth = []
    y = 60
    for text in layout:
        x = 60
        words = []
        for word in text.split(" "):
            boxes = []
            for ch in word:
                g = glyphs[ch][rng.integers(len(glyphs[ch]))]
                big = np.kron(g, np.ones((size // 32, size // 32)))
                yy = int(y + slant * x)
                page[yy:yy + size, x:x + size] = np.minimum(page[yy:yy + size, x:x + size], big)
                ink = np.argwhere(big < 0.5)
                boxes.append([yy + ink[:, 0].min(), x + ink[:, 1].min(), yy + ink[:, 0].max() + 1,
                              x + ink[:, 1].max() + 1])
                x += int(size * 0.95)
            words.append(boxes)
            x += int(size * 1.2)
        truth.append(words)
        y += 2 * size
    if shade:  # uneven lighting and sensor noise
        yy, xx = np.mgrid[0:H, 0:W]
        page = page * (0.65 + 0.35 * xx / W) * (0.9 + 0.1 * yy / H)
        page = np.clip(page + rng.normal(0, 0.03, page.shape), 0, 1)
    return (np.stack([page] * 3, axis=-1) * 255).astype(np.uint8), truth


@pytest.fixture(scope="module")
def glyphs():
    """Character images by class: the real hw36 test split's are used when present, else generated ones."""
    X, Y = generate_nist36(4, seed=11, split="test")
    if (SHARED / "hw36").is_dir():
        from fastnn.data import load_hw36

        X, Y = load_hw36(SHARED, "test")
    up = X.reshape(-1, 32, 32).transpose(0, 2, 1)
    labels = Y.argmax(axis=1)
    return {ch: up[labels == k][:20] for k, ch in enumerate(ocr.CLASSES)}


def _iou(a, b):
    y1, x1 = max(a[0], b[0]), max(a[1], b[1])
    y2, x2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, y2 - y1) * max(0, x2 - x1)
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_generated_page_segmentation_and_grouping(glyphs, seed):
    rng = np.random.default_rng(seed)
    page, truth = _page(rng, glyphs)
    boxes, binary = ocr.find_letters(page)
    assert binary.shape == page.shape[:2] and set(np.unique(binary)) <= {0.0, 1.0}
    flat_truth = [b for line in truth for word in line for b in word]
    assert len(boxes) == len(flat_truth)
    lines = ocr.group_lines(boxes)
    assert [len(line) for line in lines] == [len(t.split()) for t in LAYOUT]
    assert [[len(w) for w in line] for line in lines] == [[len(w) for w in t.split()] for t in LAYOUT]
    for line, tline in zip(lines, truth):
        for word, tword in zip(line, tline):
            for i, tb in zip(word, tword):
                assert _iou(boxes[i], tb) > 0.6


def test_different_letter_sizes_and_blue_ink(glyphs):
    rng = np.random.default_rng(5)
    page, truth = _page(rng, glyphs, layout=["BIG 12", "SMALL"], size=96, slant=-0.03)
    blue = page.copy()
    blue[..., 2] = np.maximum(blue[..., 2], 200)  # ink keeps its blue channel: blue ink
    boxes, _ = ocr.find_letters(blue)
    lines = ocr.group_lines(boxes)
    assert [[len(w) for w in line] for line in lines] == [[3, 2], [5]]


def test_recrop_rows_frames_rows_like_page_crops(glyphs):
    """recrop_rows lays a row out exactly as crop_characters lays out the same ink on a page, whatever the
    row's own framing (position, size); a row without ink stays blank; a wrong width is refused."""
    up = glyphs["G"][0]  # upright, dark ink on white
    row = up.T.reshape(1, -1)
    binary = np.zeros((100, 120))
    binary[30:62, 40:72] = up < 0.5  # the same ink pasted onto a page
    ink = np.argwhere(binary)
    box = [ink[:, 0].min(), ink[:, 1].min(), ink[:, 0].max() + 1, ink[:, 1].max() + 1]
    np.testing.assert_array_equal(ocr.recrop_rows(row), ocr.crop_characters(binary, [box]))
    rows, cols = np.nonzero(up < 0.5)
    dy, dx = 31 - rows.max(), -cols.min()  # as far down and left as the ink goes without leaving the square
    assert (dy, dx) != (0, 0)
    shifted = np.roll(up, (dy, dx), axis=(0, 1))
    np.testing.assert_array_equal(ocr.recrop_rows(shifted.T.reshape(1, -1)), ocr.recrop_rows(row))
    assert not np.array_equal(shifted, up)
    both = ocr.recrop_rows(np.vstack([np.ones(1024), row[0]]))
    assert (both[0] == 1.0).all() and both[1].min() < 0.1
    with pytest.raises(ValueError, match="1024 pixels"):
        ocr.recrop_rows(np.ones((2, 784)))


@needs_hw36
def test_ocr_training_set_refuses_unknown_held_out_splits():
    from fastnn.ocr.model import training_set

    with pytest.raises(ValueError, match="held_out.*'tset'"):
        training_set(SHARED, held_out=("tset",))


def test_blank_page_gives_empty_text():
    page = np.full((600, 800, 3), 230, np.uint8)
    page = (page * np.linspace(0.7, 1.0, 800)[None, :, None]).astype(np.uint8)

    class Never:
        def predict_proba(self, X):
            raise AssertionError("no character should reach the classifier")

    res = ocr.read_text(page, Never())
    assert res.text == "" and len(res.boxes) == 0


def test_image_formats(glyphs):
    rng = np.random.default_rng(3)
    page, _ = _page(rng, glyphs, layout=["AB"], shade=False)
    expected = len(ocr.find_letters(page)[0])
    gray16 = (page[..., 0].astype(np.uint16) * 257)
    rgba = np.dstack([page, np.full(page.shape[:2], 255, np.uint8)])
    for img in (page[..., 0], gray16, rgba, page.astype(np.float64) / 255):
        assert len(ocr.find_letters(img)[0]) == expected == 2


def test_bad_files_are_named(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with pytest.raises(ValueError, match="notes.txt"):
        ocr.load_image(text)
    from skimage import io

    good = tmp_path / "page.png"
    io.imsave(good, np.full((64, 64), 200, np.uint8), check_contrast=False)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:40])
    with pytest.raises(ValueError, match="truncated.png"):
        ocr.load_image(truncated)
    with pytest.raises(ValueError, match="missing.jpg.*no such file"):
        ocr.load_image(tmp_path / "missing.jpg")


def test_huge_image_is_downscaled(tmp_path):
    from skimage import io

    path = tmp_path / "huge.png"
    io.imsave(path, np.full((7100, 7500), 255, np.uint8), check_contrast=False)  # 53 megapixels
    img = ocr.load_image(path)
    assert img.shape[0] * img.shape[1] <= 50_000_000


def test_cer():
    assert ocr.levenshtein("KITTEN", "SITTING") == 3
    assert ocr.cer("HELLO WORLD", "HELLO WORLD") == 0
    assert ocr.cer("HELL0 WORLD", "hello world") == pytest.approx(1 / 11)
    assert ocr.cer("HELLOWORLD", "HELLO WORLD") == pytest.approx(1 / 11)
    assert ocr.cer("HELLOWORLD", "HELLO WORLD", ignore_spaces=True) == 0
    assert ocr.cer("1. TO DO", "1 TO DO") == 0  # punctuation is dropped


@needs_pages
@pytest.mark.parametrize("name, lines", [("01_list", [3, 6, 5, 5, 5, 3, 4, 2]), ("02_letters", [7, 7, 7, 5, 10])])
def test_real_pages_segment_into_the_expected_lines_and_words(name, lines):
    expected = (PAGES / f"{name}.txt").read_text().split("\n")
    boxes, _ = ocr.find_letters(ocr.load_image(PAGES / f"{name}.jpg"))
    grouped = ocr.group_lines(boxes)
    assert [len(line) for line in grouped] == lines
    assert [[len(w) for w in line] for line in grouped] == [[len(w) for w in t.split()] for t in expected if t]


@pytest.fixture(scope="module")
def ocr_model():
    """The recipe's MLP, for the tests that read the real pages: the shipped model's MLP alone, as the recipe
    trained it (that the recipe still trains it is checked on a fixed slice below, and in full with
    FASTNN_TEST_FULL_OCR_RECIPE=1, when this fixture trains it from the committed recipe instead: about 5
    minutes on 2 cores, never the user's cache, nothing written to the home folder).

    Set FASTNN_OCR_MODEL to a model file to use that one while iterating on the pipeline.
    """
    from fastnn.ocr.model import SHIPPED_MODEL, OCRModel, train_ocr_model

    if os.environ.get("FASTNN_OCR_MODEL"):
        return OCRModel.load(os.environ["FASTNN_OCR_MODEL"])
    if FULL_RECIPE:
        return train_ocr_model(SHARED, progress=False, members=("mlp",))[0]
    return OCRModel([OCRModel.load(SHIPPED_MODEL).members[0]])


@needs_pages
@needs_hw36
@pytest.mark.parametrize("name", ["01_list", "02_letters"])
def test_real_pages_character_error_rate(ocr_model, name):
    expected = (PAGES / f"{name}.txt").read_text()
    text = ocr.read_text(ocr.load_image(PAGES / f"{name}.jpg"), ocr_model).text
    assert ocr.cer(text, expected) <= 0.08, text
    assert ocr.cer(text, expected, ignore_spaces=True) <= 0.05, text


@needs_pages
@needs_hw36
def test_ocr_command_line(ocr_model, tmp_path, capsys):
    import json

    from fastnn import cli

    model_path = str(ocr_model.save(tmp_path / "ocr.npz"))
    page, expected = PAGES / "02_letters.jpg", PAGES / "02_letters.txt"
    assert cli.main(["ocr-eval", str(page), str(expected), "--model", model_path]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2].startswith("cer: ") and lines[-1].startswith("cer_nospace: ")
    assert float(lines[-1].split(": ")[1]) <= 0.05
    boxes_png = tmp_path / "boxes.png"
    assert cli.main(["ocr", str(page), "--model", model_path, "--json", "--boxes", str(boxes_png)]) == 0
    result = json.loads(capsys.readouterr().out)
    chars = [c for line in result[0]["lines"] for word in line["words"] for c in word["characters"]]
    assert len(chars) == 36 and boxes_png.stat().st_size > 1000
    assert all(0 <= c["confidence"] <= 1 and c["width"] > 0 and c["height"] > 0 for c in chars)
    assert cli.main(["ocr", str(tmp_path / "boxes.json"), "--model", model_path]) == 2
    assert "boxes.json" in capsys.readouterr().err


@needs_hw36
@needs_full_recipe
def test_the_shipped_model_is_what_the_recipe_trains(ocr_model):
    """The whole recipe, run here (FASTNN_TEST_FULL_OCR_RECIPE=1), rebuilds the shipped model's MLP: on the
    machine that built it the half-precision weights are the same bits; elsewhere (another BLAS kernel,
    another JPEG library under the generated pages) the two must still agree on nearly every held-out
    character cut from a page, and score alike.

    What "nearly" is, measured: four builds of this recipe whose products rounded differently (another CPU's
    OpenBLAS kernels, another cut of the core's products) agree on 96.3-96.6% of these characters, pair by
    pair, and score 85.4-85.9%; the recipe before (another augmentation) agrees with them on 91.0-91.3% and
    scores 84.1%."""
    from fastnn.data import load_hw36
    from fastnn.models import MLP
    from fastnn.ocr.build import SCORE_PAGES_SEED
    from fastnn.ocr.model import PER_PAGE, SHIPPED_MODEL, OCRModel
    from fastnn.ocr.synth import page_crops

    if os.environ.get("FASTNN_OCR_MODEL"):
        pytest.skip("FASTNN_OCR_MODEL is set: the fixture did not train the recipe")
    shipped = OCRModel([OCRModel.load(SHIPPED_MODEL).members[0]])
    (mlp,) = ocr_model.members
    trained = MLP(mlp.sizes, mlp.activations, dtype="float32")
    trained.theta[...] = mlp.theta.astype(np.float16)
    X, Y = load_hw36(SHARED, "test")
    X, _ = page_crops(X, seed=SCORE_PAGES_SEED, per_page=PER_PAGE)
    ours, theirs = OCRModel([trained]).predict(X), shipped.predict(X)
    agree = np.mean(ours == theirs)
    assert agree >= 0.94, f"the recipe's MLP and the shipped one agree on {agree:.1%} of hw36 test"
    labels = np.asarray(Y).argmax(axis=1)
    ours, theirs = np.mean(ours == labels), np.mean(theirs == labels)
    assert abs(ours - theirs) <= 0.01, f"the recipe's MLP scores {ours:.1%}, the shipped one {theirs:.1%}"


# ---- the recipe on a fixed slice: what the suite runs instead of the whole recipe (5 minutes) ----------------

#: Every n-th row of each hw36 split the slice keeps (hw36 test, held out, is scored), and the MNIST digits
#: per class: about 2,200 training rows, 29 pages, against the recipe's 29,451 rows (368 pages).
SLICE_STEP = {"train": 10, "valid": 10, "extra": 10, "test": 5}
SLICE_MNIST_PER_DIGIT = 20
#: What the recipe (seed 0, its 16 epochs and 1 distorted copy) gives on the slice, measured once with the
#: code that rebuilds the shipped model (fastnn 0.1.0, recipe version 4): the training rows, the MLP's
#: loss per epoch, and on the 360 held-out hw36 test characters cut from pages, the accuracy of its
#: half-precision MLP and of the shipped model's, and the share of characters the two read alike.
SLICE_EXPECTED = {
    "rows": 2212,
    "train_loss": [2.678759, 1.877365, 1.644160, 1.432794, 1.321779, 1.199884, 1.091667, 1.025943,
                   0.927337, 0.919421, 0.871594, 0.816692, 0.784251, 0.798627, 0.760341, 0.766172],
    "held_out_accuracy": 271 / 360,
    "shipped_accuracy": 316 / 360,
    "agreement_with_shipped": 287 / 360,
}
#: The runs are deterministic for a seed: 1 or 2 threads, the core's v3 and v4 copies give the same bits.
#: The v2 copy (no FMA) rounds otherwise: its losses differ by up to 0.14%, its held-out figures by about a
#: point (measured). The tolerances allow that noise a few times over, not another run: seed 1 instead of 0
#: moves the losses by 2-6% and the accuracy by 3 points.
SLICE_LOSS_RTOL = 1e-2
SLICE_SHARE_ATOL = 0.02


@pytest.fixture(scope="module")
def recipe_on_a_slice(tmp_path_factory):
    """The OCR recipe's MLP trained by ``train_ocr_model`` itself on a data folder holding the fixed slice
    (SLICE_STEP, SLICE_MNIST_PER_DIGIT), scored as ``build_ocr_model`` scores it: about a minute."""
    from fastnn import data
    from fastnn.ocr import model as ocr_model
    from fastnn.ocr.build import SCORE_PAGES_SEED
    from fastnn.ocr.synth import page_crops

    folder = tmp_path_factory.mktemp("ocr-slice")
    (folder / "hw36").mkdir()
    for split, step in SLICE_STEP.items():
        X, Y = data.load_hw36(SHARED, split)
        data.save_nist36(folder / "hw36" / f"hw36_{split}.mat", split, X[::step], Y[::step])
    (folder / "mnist").symlink_to((SHARED / "mnist").resolve())
    whole, rows = ocr_model.training_set, []

    def counting(*args, **kwargs):  # the recipe's own training set, its rows counted
        X, Y = whole(*args, **kwargs)
        rows.append(len(X))
        return X, Y

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ocr_model, "training_set", counting)
        trained, histories = ocr_model.train_ocr_model(folder, progress=False, members=("mlp",),
                                                       mnist_per_digit=SLICE_MNIST_PER_DIGIT)
    (mlp,) = trained.members
    mlp.theta[...] = mlp.theta.astype(np.float16)  # as ocr-train saves it
    X, Y = data.load_hw36(folder, "test")
    crops, _ = page_crops(X, seed=SCORE_PAGES_SEED, per_page=ocr_model.PER_PAGE)
    ours = ocr_model.OCRModel([mlp]).predict(crops)
    shipped = ocr_model.OCRModel([ocr_model.OCRModel.load(ocr_model.SHIPPED_MODEL).members[0]]).predict(crops)
    labels = Y.argmax(axis=1)
    return {"rows": rows[0], "train_loss": list(histories["mlp"].train_loss),
            "held_out_accuracy": float(np.mean(ours == labels)), "shipped_accuracy": float(np.mean(shipped == labels)),
            "agreement_with_shipped": float(np.mean(ours == shipped))}


@needs_hw36
@needs_mnist
def test_the_recipe_on_a_fixed_slice_gives_the_stored_numbers(recipe_on_a_slice):
    """The OCR recipe (its data, its page crops, its distortions, its training), run on a fixed slice of the
    data, gives what it gave when it rebuilt the shipped model: a change to any of them, or to the shipped
    model, shows here. The whole recipe is ``fastnn ocr-train`` (and FASTNN_TEST_FULL_OCR_RECIPE=1)."""
    got, want = recipe_on_a_slice, SLICE_EXPECTED
    assert got["rows"] == want["rows"], f"the slice's training rows: {got['rows']}, stored {want['rows']} ({got})"
    np.testing.assert_allclose(got["train_loss"], want["train_loss"], rtol=SLICE_LOSS_RTOL,
                               err_msg=f"the MLP's training loss per epoch on the slice ({got})")
    for key in ("held_out_accuracy", "shipped_accuracy", "agreement_with_shipped"):
        assert abs(got[key] - want[key]) <= SLICE_SHARE_ATOL, f"{key}: {got[key]:.4f}, stored {want[key]:.4f} ({got})"
