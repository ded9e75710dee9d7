"""fastnn.ocr.OCRModel (the averaged networks, one safe file) and fastnn.ocr.synth (the pages its training
characters are cut from)."""

import pickle
import zipfile

import numpy as np
import pytest
from _zipfiles import rezip

from fastnn.cnn import CNN
from fastnn.cnn_recipe import cnn_layers
from fastnn.data import generate_nist36
from fastnn.layers import rows_to_images
from fastnn.models import MLP, ModelFileError
from fastnn.ocr import OCRModel, crop_characters, find_letters, recrop_rows
from fastnn.ocr.synth import glyph_page, page_crops, photograph


def _pair(dtype="float32"):
    mlp = MLP([1024, 20, 36], ["relu", "softmax"], dtype=dtype, seed=1)
    cnn = CNN((32, 32, 1), cnn_layers((4, 8), 5, 16), dtype=dtype, seed=2)
    return mlp, cnn


@pytest.fixture(scope="module")
def rows():
    X, _ = generate_nist36(2, seed=0, split="test")
    return X


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_probabilities_are_the_members_mean(rows, dtype):
    mlp, cnn = _pair(dtype)
    P = OCRModel([mlp, cnn]).predict_proba(rows)
    expected = (mlp.predict_proba(rows.astype(dtype)) + cnn.predict_proba(rows_to_images(rows.astype(dtype)))) / 2
    np.testing.assert_allclose(P, expected, rtol=0, atol=1e-12 if dtype == "float64" else 1e-7)
    assert P.dtype == np.float64 and np.allclose(P.sum(axis=1), 1)
    assert np.array_equal(OCRModel([mlp, cnn]).predict(rows), expected.argmax(axis=1))


def test_non_contiguous_and_read_only_rows_give_the_same_probabilities(rows):
    model = OCRModel(_pair())
    wide = np.repeat(rows, 2, axis=1)[:, ::2]  # a strided view of the same values
    frozen = rows.copy()
    frozen.setflags(write=False)
    np.testing.assert_array_equal(model.predict_proba(wide), model.predict_proba(rows))
    np.testing.assert_array_equal(model.predict_proba(frozen), model.predict_proba(rows))


@pytest.mark.parametrize("storage", [None, "float16"])
def test_save_and_load_round_trip(tmp_path, rows, storage):
    model = OCRModel(_pair(), meta={"recipe_version": 99, "note": "ünïcode"})
    path = model.save(tmp_path / "ocr", storage=storage)
    assert path.suffix == ".npz"
    back = OCRModel.load(path)
    assert back.meta == {"recipe_version": 99, "note": "ünïcode"}
    assert [type(m) for m in back.members] == [MLP, CNN]
    for a, b in zip(model.members, back.members):
        assert b.dtype == np.float32
        if storage is None:
            np.testing.assert_array_equal(a.theta, b.theta)
        else:
            np.testing.assert_array_equal(a.theta.astype(np.float16).astype(np.float32), b.theta)
    if storage is None:
        np.testing.assert_array_equal(back.predict_proba(rows), model.predict_proba(rows))
    with zipfile.ZipFile(path) as zf:  # each network as its own save stores it, under m<i>/
        names = set(zf.namelist())
    assert {"format.npy", "members.npy", "meta.npy", "m0/sizes.npy", "m1/layers.npy", "m1/theta.npy"} <= names


def test_a_single_network_file_is_an_ocr_model(tmp_path, rows):
    mlp, cnn = _pair()
    for net in (mlp, cnn):
        path = net.save(tmp_path / f"{type(net).__name__}.npz", meta={"by": "hand"})
        (loaded,) = OCRModel.load(path).members
        assert type(loaded) is type(net) and OCRModel.load(path).meta == {"by": "hand"}
        np.testing.assert_array_equal(OCRModel([loaded]).predict_proba(rows), OCRModel([net]).predict_proba(rows))


def test_networks_of_the_wrong_shape_are_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match=r"member 0 maps 64 inputs to 36 softmax outputs"):
        OCRModel([MLP([64, 36], ["softmax"])])
    with pytest.raises(ValueError, match=r"member 1 maps 1024 inputs to 10 softmax outputs"):
        OCRModel([MLP([1024, 36], ["softmax"]), MLP([1024, 10], ["softmax"])])
    with pytest.raises(ValueError, match=r"member 0 maps \(28, 28, 1\) images"):
        OCRModel([CNN((28, 28, 1), cnn_layers((4,), 5, 8, side=28))])
    with pytest.raises(TypeError, match="member 0 is a str"):
        OCRModel(["model.npz"])
    with pytest.raises(ValueError, match="at least one network"):
        OCRModel([])
    path = MLP([1024, 10], ["softmax"]).save(tmp_path / "ten.npz")
    with pytest.raises(ModelFileError, match=r"ten\.npz: not an OCR model: member 0 maps 1024 inputs to 10"):
        OCRModel.load(path)
    with pytest.raises(ValueError, match=r"expected rows of 1024 pixels \(n, 1024\), got shape \(3, 32, 32\)"):
        OCRModel([MLP([1024, 36], ["softmax"])]).predict_proba(np.ones((3, 32, 32)))


def _npy(value):
    import io

    buf = io.BytesIO()
    np.save(buf, value)
    return buf.getvalue()


@pytest.mark.parametrize("case, message", [
    ("unknown kind", r"member 1 is a 'RNN', expected 'MLP' or 'CNN'"),
    ("missing member", r"not a fastnn CNN file \(missing \['format', 'input_shape', 'layers', 'loss', 'theta'\]\)"),
    ("other format", r"unknown model format 'fastnn.Tree/1'"),
    ("members not names", r"'members' must name 1 to 16 networks"),
    ("format not a string", r"'format' must be a string, got a int64 array of shape \(2,\)"),
    ("damaged theta", r"damaged|stored, but"),
])
def test_damaged_files_are_refused_with_what_is_wrong(tmp_path, case, message):
    good = OCRModel(_pair()).save(tmp_path / "good.npz")

    def change(name, data):
        if case == "unknown kind" and name == "members.npy":
            return _npy(np.array(["MLP", "RNN"]))
        if case == "missing member" and name.startswith("m1/"):
            return None
        if case == "other format" and name == "format.npy":
            return _npy(np.array("fastnn.Tree/1"))
        if case == "members not names" and name == "members.npy":
            return _npy(np.arange(3))
        if case == "format not a string" and name == "format.npy":
            return _npy(np.arange(2))
        if case == "damaged theta" and name == "m0/theta.npy":
            return data[: len(data) // 2]
        return data

    bad = rezip(good, tmp_path / "bad.npz", change)
    with pytest.raises(ModelFileError, match=message) as info:
        OCRModel.load(bad)
    assert "bad.npz" in str(info.value)


def test_pickles_are_never_loaded(tmp_path):
    path = tmp_path / "evil.npz"
    path.write_bytes(pickle.dumps({"theta": [1, 2, 3]}))
    with pytest.raises(ModelFileError, match="pickle"):
        OCRModel.load(path)
    with pytest.raises(FileNotFoundError):
        OCRModel.load(tmp_path / "absent.npz")


def test_the_parameter_limit_holds_for_each_network(tmp_path):
    path = OCRModel(_pair()).save(tmp_path / "m.npz")
    with pytest.raises(ModelFileError, match="more than the limit of 1,000"):
        OCRModel.load(path, max_params=1000)


# ---- synth: the pages the recipe's characters are cut from -------------------------------------------------

def test_photograph_is_a_seeded_uint8_photo():
    alpha = np.zeros((300, 400), np.float32)
    alpha[100:200, 150:170] = 1
    a = photograph(alpha, np.random.default_rng(3), first_rule=120, pitch=90)
    b = photograph(alpha, np.random.default_rng(3), first_rule=120, pitch=90)
    assert a.shape == (300, 400, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert a[150, 160].mean() < a[20, 20].mean() - 60  # the ink is darker than the paper


def test_glyph_page_draws_each_row_where_it_says(rows):
    image, rects = glyph_page(rows[:30], np.random.default_rng(0))
    assert image.dtype == np.uint8 and image.shape[2] == 3 and rects.shape == (30, 4)
    gray = image.mean(axis=2)
    for y1, x1, y2, x2 in rects:
        assert gray[y1:y2, x1:x2].min() < np.median(gray) - 60  # ink inside every rectangle
    assert np.all(rects[:, 2] > rects[:, 0]) and np.all(rects[:, 3] > rects[:, 1])


def test_page_crops_are_the_pipelines_crops_of_each_row(rows):
    X = rows[:40]
    crops, found = page_crops(X, seed=5, per_page=20)
    assert crops.shape == (40, 1024) and crops.dtype == np.float32 and found.mean() >= 0.9
    # the first page, made and read here the same way, gives the same crops for the rows found on it
    image, rects = glyph_page(X[:20], np.random.default_rng([5, 0]))
    boxes, binary = find_letters(image)
    centres = np.c_[(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2]
    for i in np.flatnonzero(found[:20]):
        y1, x1, y2, x2 = rects[i]
        inside = (centres[:, 0] >= y1) & (centres[:, 0] < y2) & (centres[:, 1] >= x1) & (centres[:, 1] < x2)
        (j,) = np.flatnonzero(inside)
        np.testing.assert_allclose(crops[i], crop_characters(binary, boxes[j:j + 1])[0], atol=1e-6)
    # a page crop looks like the row re-cropped (the same character, framed the same way)
    assert np.abs(crops[found] - recrop_rows(X)[found]).mean() < 0.1
    if not found.all():
        np.testing.assert_allclose(crops[~found], recrop_rows(X[~found]), atol=1e-6)


def test_page_crops_depend_on_the_seed_only(rows):
    a, fa = page_crops(rows[:30], seed=1, per_page=10, workers=1)
    b, fb = page_crops(rows[:30], seed=1, per_page=10, workers=3)
    c, _ = page_crops(rows[:30], seed=2, per_page=10)
    assert np.array_equal(a, b) and np.array_equal(fa, fb) and not np.array_equal(a, c)
    seen = []
    page_crops(rows[:30], seed=1, per_page=10, on_progress=seen.append)
    assert seen == pytest.approx([1 / 3, 2 / 3, 1])


@pytest.mark.parametrize("kwargs, message", [({"per_page": 0}, "per_page: expected a whole number"),
                                             ({"per_page": 2.5}, "per_page: expected a whole number")])
def test_page_crops_refuses_bad_arguments(rows, kwargs, message):
    with pytest.raises(ValueError, match=message):
        page_crops(rows[:3], **kwargs)
    with pytest.raises(ValueError, match=r"expected rows of 1024 pixels, got shape \(3, 32, 32\)"):
        page_crops(np.ones((3, 32, 32)))
