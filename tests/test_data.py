"""fastnn.data: the NIST36 .mat layout, MNIST idx files and the generated set.

Corrupt-file tests name their files ``bad.mat`` / ``bad.idx`` so the problem
phrase a test matches can never be satisfied by the path alone.
"""

import ast
import gzip
import importlib
import os
import stat
import struct
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from fastnn import data

SHARED = Path(
    os.environ.get("FASTNN_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data"
)
needs_hw36 = pytest.mark.skipif(
    not (SHARED / "hw36").is_dir(), reason=f"real hw36 data not found at {SHARED / 'hw36'} (set FASTNN_DATA)"
)
needs_mnist = pytest.mark.skipif(
    not (SHARED / "mnist").is_dir(), reason=f"real MNIST data not found at {SHARED / 'mnist'} (set FASTNN_DATA)"
)


@pytest.fixture(scope="module")
def small():
    return data.generate_nist36(3, seed=1)


# ---------------------------------------------------------------- the package

# The public names of fastnn.data when it was one module; each must keep working as fastnn.data.<name>.
ONE_MODULE_NAMES = (
    "CLASSES", "DATA_ENV_VAR", "GENERATED_SIZES", "HW36_SPLITS", "IMAGE_SIDE", "N_CLASSES", "N_PIXELS",
    "PIXEL_TOLERANCE", "find_data_dir", "generate_nist36", "generated_splits", "labels_to_chars",
    "load_dataset", "load_hw36", "load_mnist", "load_nist36", "mnist_binary", "mnist_multiclass",
    "mnist_to_nist36", "onehot", "read_idx", "save_nist36",
)
SUBMODULES = ("labels", "nist36", "mnist", "generated", "dataset")


def test_every_public_name_resolves():
    namespace = {}
    exec("from fastnn.data import *", namespace)  # fails on a name in __all__ that does not exist
    assert set(ONE_MODULE_NAMES) <= set(data.__all__)
    assert all(name in namespace for name in data.__all__)
    for modname in SUBMODULES:
        module = importlib.import_module(f"fastnn.data.{modname}")
        for name in module.__all__:  # re-exported, and the same object: each thing is defined once
            assert name in data.__all__, f"fastnn.data.{modname}.{name} is not re-exported"
            assert getattr(data, name) is getattr(module, name)
    assert data.HW36_SPLITS == ("train", "valid", "test", "extra")
    assert data.CLASSES == "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def test_no_private_imports_across_modules():
    package = Path(data.__file__).parent
    offenders = []
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("fastnn")):
                offenders += [f"{path.name}: {a.name}" for a in node.names if a.name.startswith("_")]
    assert not offenders


# ---------------------------------------------------------------- labels


def test_onehot_and_labels_to_chars():
    Y = data.onehot([2, 0, 1], 3)
    np.testing.assert_array_equal(Y, [[0, 0, 1], [1, 0, 0], [0, 1, 0]])
    assert Y.dtype == np.float64
    assert "".join(data.labels_to_chars(data.onehot([0, 25, 26, 35], 36))) == "AZ09"
    assert "".join(data.labels_to_chars(np.array([7, 30]))) == "H4"
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        data.onehot([3], 3)
    with pytest.raises(ValueError, match="36 columns"):
        data.labels_to_chars(np.eye(10))


@pytest.mark.parametrize("labels", ["indices", "onehot", "scores"])
def test_labels_to_chars_gives_one_character_per_label(labels):
    """An array of one-character strings, one per label (as scikit-learn's predict gives labels), that the
    class indices come back from; an empty input gives an empty array."""
    idx = np.random.default_rng(5).integers(0, data.N_CLASSES, 50)
    given = {"indices": idx, "onehot": data.onehot(idx, data.N_CLASSES),
             "scores": data.onehot(idx, data.N_CLASSES) * 0.9 + 0.001}[labels]
    chars = data.labels_to_chars(given)
    assert isinstance(chars, np.ndarray) and chars.dtype == np.dtype("<U1") and chars.shape == idx.shape
    np.testing.assert_array_equal([data.CLASSES.index(c) for c in chars], idx)  # round trip
    np.testing.assert_array_equal(data.labels_to_chars(list(idx)), chars)  # a list is taken as an array
    assert "".join(chars) == "".join(data.CLASSES[k] for k in idx)
    empty = data.labels_to_chars(given[:0])
    assert empty.shape == (0,) and empty.dtype == np.dtype("<U1")


@pytest.mark.parametrize("bad, message", [
    ([36], r"integers in \[0, 36\)"), ([-1], r"integers in \[0, 36\)"), ([1.5], r"integers in \[0, 36\)"),
    ([np.nan], r"integers in \[0, 36\)"), (["A"], r"integers in \[0, 36\)"), (np.zeros((3, 10)), "36 columns"),
    (np.zeros((2, 36, 1)), "1-D or 2-D"), (np.int64(3), "1-D or 2-D"),
])
def test_labels_to_chars_refuses_what_is_not_labels(bad, message):
    with pytest.raises(ValueError, match=message):
        data.labels_to_chars(bad)


# ---------------------------------------------------------------- NIST36 .mat


def test_save_load_round_trip(tmp_path, small):
    X, Y = small
    path = tmp_path / "nist36_train.mat"
    data.save_nist36(path, "train", X, Y)
    assert [p.name for p in tmp_path.iterdir()] == ["nist36_train.mat"]  # no temp file left
    raw = scipy.io.loadmat(path)
    assert raw["train_labels"].dtype == np.uint8  # same layout as the shared hw36 files
    X2, Y2 = data.load_nist36(path)  # split inferred from the single *_data key
    assert X2.dtype == Y2.dtype == np.float64
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(Y2, Y)
    X3, Y3 = data.load_hw36(tmp_path, "train")  # the coursework's nist36_* name is found
    np.testing.assert_array_equal(X3, X)
    np.testing.assert_array_equal(Y3, Y)


def test_load_hw36_finds_the_hw36_subfolder(tmp_path, small):
    X, Y = small
    (tmp_path / "hw36").mkdir()
    data.save_nist36(tmp_path / "hw36" / "hw36_valid.mat", "valid", X, Y)
    for where in (tmp_path, tmp_path / "hw36"):
        np.testing.assert_array_equal(data.load_hw36(where, "valid")[0], X)
    with pytest.raises(FileNotFoundError, match="hw36_test.mat"):
        data.load_hw36(tmp_path, "test")
    with pytest.raises(ValueError, match="split must be one of"):
        data.load_hw36(tmp_path, "training")


def test_save_is_atomic_and_keeps_mode(tmp_path, small):
    X, Y = small
    path = tmp_path / "keep.mat"
    old = os.umask(0o022)  # a new file gets the mode the umask gives it
    try:
        data.save_nist36(path, "train", X, Y)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    path.chmod(0o600)
    before = path.read_bytes()
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        data.save_nist36(path, "train", bad, Y)
    assert path.read_bytes() == before  # a failed save leaves the old file whole
    data.save_nist36(path, "train", X[:36], Y[:36])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert data.load_nist36(path)[0].shape == (36, 1024)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.mat"]
    with pytest.raises(ValueError, match="MATLAB variable name"):
        data.save_nist36(path, "1st", X, Y)


def test_pixel_tolerance_is_clipped(tmp_path, small):
    X, Y = small
    X = X.copy()
    X[0, 0], X[0, 1] = -0.5e-6, 1 + 0.5e-6
    path = tmp_path / "edge.mat"
    scipy.io.savemat(path, {"test_data": X, "test_labels": Y})
    X2, _ = data.load_nist36(path, "test")
    assert X2[0, 0] == 0.0 and X2[0, 1] == 1.0


def _bad_mat(tmp_path, small, case):
    """Write a broken NIST36 file; return (path, split to pass)."""
    X, Y = small
    path = tmp_path / "bad.mat"
    full = tmp_path / "full.mat"
    data.save_nist36(full, "train", X, Y)
    good = full.read_bytes()
    split = None
    if case == "garbage":
        path.write_bytes(b"this is not a MATLAB file at all" * 10)
    elif case == "empty":
        path.write_bytes(b"")
    elif case.startswith("truncated"):
        cut = {"truncated_header": 100, "truncated_data": len(good) // 2}[case]
        path.write_bytes(good[:cut])
    else:
        X2, Y2 = X.copy(), Y.copy()
        keys = ["train_data", "train_labels"]
        if case == "wrong_keys":
            keys, split = ["images", "labels"], "train"
        elif case == "no_data_key":
            keys = ["images", "labels"]
        elif case == "two_data_keys":
            scipy.io.savemat(path, {"train_data": X2, "train_labels": Y2, "valid_data": X2})
            return path, None
        elif case == "rows":
            Y2 = Y2[:-2]
        elif case == "nan":
            X2[1, 5] = np.nan
        elif case == "inf":
            X2[2, 7] = np.inf
        elif case == "scale255":
            X2 = X2 * 255
        elif case == "negative":
            X2[0, 0] = -0.2
        elif case == "two_ones":
            Y2[4, (Y2[4].argmax() + 1) % 36] = 1
        elif case == "no_one":
            Y2[4] = 0
        elif case == "fraction":
            Y2[4] = Y2[4] * 0.5
        elif case == "label_columns":
            Y2 = Y2[:, :35]
        elif case == "pixel_columns":
            X2 = X2[:, :1000]
        elif case == "text":
            X2 = np.array(["abc"] * X2.shape[0])
        scipy.io.savemat(path, {keys[0]: X2, keys[1]: Y2})
    return path, split


@pytest.mark.parametrize(
    "case, problem",
    [
        ("garbage", "not a readable .mat file"),
        ("empty", "not a readable .mat file"),
        ("truncated_header", "not a readable .mat file|empty or truncated"),
        ("truncated_data", "corrupt or truncated"),
        ("wrong_keys", r"missing key\(s\) \['train_data', 'train_labels'\]; keys found: \['images', 'labels'\]"),
        ("no_data_key", r"exactly one '<split>_data' key, found keys \['images', 'labels'\]"),
        ("two_data_keys", r"exactly one '<split>_data' key.*'valid_data'"),
        ("rows", "data has 108 rows but labels have 106 rows"),
        ("nan", "NaN/inf pixels"),
        ("inf", "NaN/inf pixels"),
        ("scale255", r"must lie in \[0, 1\].*divide by 255"),
        ("negative", r"must lie in \[0, 1\], found min -0.2"),
        ("two_ones", "not one-hot.*row 4"),
        ("no_one", "not one-hot.*row 4"),
        ("fraction", "not one-hot.*row 4"),
        ("label_columns", r"one-hot with shape \(N, 36\), got \(108, 35\)"),
        ("pixel_columns", r"shape \(N, 1024\).*got \(108, 1000\)"),
        ("text", "not a numeric array"),
    ],
)
def test_corrupt_mat_files_name_the_file_and_problem(tmp_path, small, case, problem):
    path, split = _bad_mat(tmp_path, small, case)
    with pytest.raises(ValueError, match=problem) as info:
        data.load_nist36(path, split)
    assert str(info.value).startswith(str(path))


def test_missing_mat_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.mat"):
        data.load_nist36(tmp_path / "nothere.mat")


# ---------------------------------------------------------------- data folder


def test_find_data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("FASTNN_DATA", raising=False)
    assert data.find_data_dir() is None
    assert data.find_data_dir(tmp_path) == tmp_path.resolve()
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path))
    assert data.find_data_dir() == tmp_path.resolve()
    other = tmp_path / "other"
    other.mkdir()
    assert data.find_data_dir(other) == other.resolve()  # the argument beats the environment
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "gone"))
    with pytest.raises(FileNotFoundError, match=r"gone \(from \$FASTNN_DATA\) does not exist"):
        data.find_data_dir()
    with pytest.raises(FileNotFoundError, match="from the data argument"):
        data.find_data_dir(tmp_path / "missing")


def test_load_dataset_prefers_real_files(tmp_path, monkeypatch, small):
    monkeypatch.delenv("FASTNN_DATA", raising=False)
    X, Y = small
    (tmp_path / "hw36").mkdir()
    for split in ("train", "valid", "test"):
        data.save_nist36(tmp_path / "hw36" / f"hw36_{split}.mat", split, X, Y)
    ds = data.load_dataset(tmp_path)
    assert ds["source"] == f"hw36 at {tmp_path.resolve()}"
    np.testing.assert_array_equal(ds["valid"][0], X)
    (tmp_path / "hw36" / "hw36_test.mat").unlink()
    with pytest.raises(FileNotFoundError, match="hw36_test.mat"):  # no silent fallback
        data.load_dataset(tmp_path)


def test_load_dataset_falls_back_to_generated(monkeypatch):
    monkeypatch.delenv("FASTNN_DATA", raising=False)
    ds = data.load_dataset(seed=0)
    assert ds["source"] == "generated (synthetic fonts)"
    assert {k: v[0].shape for k, v in ds.items() if k != "source"} == {
        "train": (10800, 1024),
        "valid": (3600, 1024),
        "test": (1800, 1024),
    }
    assert not np.array_equal(ds["train"][0][:1800], ds["test"][0])


# ---------------------------------------------------------------- MNIST idx


def _idx_bytes(arr, code=0x08, dtype=">u1"):
    header = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + np.asarray(arr, dtype=dtype).tobytes()


def _write_idx(path, arr, gz):
    raw = _idx_bytes(arr)
    path.write_bytes(gzip.compress(raw) if gz else raw)


@pytest.mark.parametrize("code, dtype", [(0x08, ">u1"), (0x0B, ">i2"), (0x0C, ">i4"), (0x0D, ">f4"), (0x0E, ">f8")])
@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_types(tmp_path, code, dtype, gz):
    arr = np.arange(2 * 3 * 4).reshape(2, 3, 4).astype(dtype)
    raw = _idx_bytes(arr, code, dtype)
    path = tmp_path / "x.idx"
    path.write_bytes(gzip.compress(raw) if gz else raw)
    got = data.read_idx(path)
    np.testing.assert_array_equal(got, arr)
    assert got.dtype == np.dtype(dtype).newbyteorder("=") and got.flags.writeable


@pytest.mark.parametrize(
    "case, problem",
    [
        ("bad_magic", "bad magic 12340801"),
        ("empty", "bad magic empty file"),
        ("type_code", "unknown type code 0x07"),
        ("truncated", r"truncated idx data: header dims \(10, 28, 28\)"),
        ("trailing", "trailing bytes after idx data"),
        ("short_header", "truncated idx header"),
        ("gzip_truncated", "corrupt or truncated gzip"),
        ("gzip_garbage", "corrupt or truncated gzip"),
        ("text", "bad magic"),
    ],
)
def test_bad_idx_files_name_the_file_and_problem(tmp_path, case, problem):
    good = _idx_bytes(np.zeros((10, 28, 28), np.uint8))
    raw = {
        "bad_magic": b"\x12\x34\x08\x01" + b"\x00" * 20,
        "empty": b"",
        "type_code": b"\x00\x00\x07\x01" + struct.pack(">I", 3) + b"abc",
        "truncated": good[:500],
        "trailing": good + b"\x00\x00",
        "short_header": good[:10],
        "gzip_truncated": gzip.compress(good)[:40],
        "gzip_garbage": b"\x1f\x8b" + b"garbage that is no deflate stream" * 3,
        "text": b"<html>404 not found</html>",
    }[case]
    path = tmp_path / "bad.idx"
    path.write_bytes(raw)
    with pytest.raises(ValueError, match=problem) as info:
        data.read_idx(path)
    assert str(info.value).startswith(str(path))


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("nested", [True, False])
def test_load_mnist_from_small_files(tmp_path, gz, nested):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    labels = (np.arange(20) % 10).astype(np.uint8)
    folder = tmp_path / "mnist" if nested else tmp_path
    folder.mkdir(exist_ok=True)
    suffix = ".gz" if gz else ""
    _write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", images, gz)
    _write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", labels, gz)
    got_images, got_labels = data.load_mnist(tmp_path, "test")
    assert got_images.dtype == got_labels.dtype == np.uint8
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        data.load_mnist(tmp_path, "train")


def test_load_mnist_count_mismatch(tmp_path):
    _write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((5, 28, 28), np.uint8), gz=False)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(4, np.uint8), gz=False)
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte: 4 labels but .* 5 images"):
        data.load_mnist(tmp_path, "train")


@pytest.fixture(scope="module")
def digits():
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(10, dtype=np.uint8), 6)
    rng.shuffle(labels)
    images = rng.integers(0, 256, (labels.size, 28, 28), dtype=np.uint8)
    images[:, 0, 0] = np.arange(labels.size)  # a pixel that identifies the source row
    return images, labels


def test_mnist_binary(digits):
    images, labels = digits
    X, y = data.mnist_binary(images, labels, pos=5, neg=8, n_per_class=4, seed=0)
    assert X.shape == (8, 784) and y.shape == (8, 1) and X.dtype == y.dtype == np.float64
    src = np.rint(X[:, 0] * 255).astype(int)  # the identifying pixel
    np.testing.assert_array_equal(labels[src], [8] * 4 + [5] * 4)  # neg block, then pos
    np.testing.assert_array_equal(y[:, 0], [0] * 4 + [1] * 4)  # y = 1 for pos
    np.testing.assert_allclose(X, images[src].reshape(8, -1) / 255.0)
    X2, _ = data.mnist_binary(images, labels, n_per_class=4, seed=0)
    np.testing.assert_array_equal(X, X2)
    X3, _ = data.mnist_binary(images, labels, n_per_class=4, seed=1)
    assert not np.array_equal(X, X3)
    assert data.mnist_binary(images, labels, n_per_class=None)[0].shape == (12, 784)
    with pytest.raises(ValueError, match="asked for 7 samples of class 8 but only 6 exist"):
        data.mnist_binary(images, labels, n_per_class=7)


def test_mnist_multiclass(digits):
    images, labels = digits
    X, Y = data.mnist_multiclass(images, labels, n_per_class=3, seed=0)
    assert X.shape == (30, 784) and Y.shape == (30, 10)
    np.testing.assert_array_equal(Y.argmax(axis=1), np.repeat(np.arange(10), 3))
    src = np.rint(X[:, 0] * 255).astype(int)
    np.testing.assert_array_equal(labels[src], Y.argmax(axis=1))
    assert len(set(src)) == 30  # drawn without replacement
    Xall, _ = data.mnist_multiclass(images, labels, n_per_class=None)
    assert Xall.shape == (60, 784)


def test_mnist_to_nist36_layout(digits):
    images = digits[0][:3]
    Xn = data.mnist_to_nist36(images)
    assert Xn.shape == (3, 1024) and Xn.dtype == np.float64
    up = Xn[0].reshape(32, 32).T  # upright, dark ink on white, 2-pixel white margin
    np.testing.assert_allclose(up[2:30, 2:30], 1 - images[0] / 255.0)
    assert np.all(up[:2] == 1) and np.all(up[:, -2:] == 1)
    np.testing.assert_allclose(data.mnist_to_nist36(images / 255.0), Xn)


# ---------------------------------------------------------------- generated set


def test_generated_set_is_deterministic():
    X1, Y1 = data.generate_nist36(4, seed=7)
    X2, Y2 = data.generate_nist36(4, seed=7)
    assert X1.tobytes() == X2.tobytes() and Y1.tobytes() == Y2.tobytes()
    assert not np.array_equal(X1, data.generate_nist36(4, seed=8)[0])
    assert not np.array_equal(X1, data.generate_nist36(4, seed=7, split="valid")[0])
    splits = data.generated_splits(seed=7, sizes={"train": 4, "test": 1})
    assert list(splits) == ["train", "test"]
    np.testing.assert_array_equal(splits["train"][0], X1)
    assert splits["test"][0].shape == (36, 1024)


def test_generated_set_layout():
    X, Y = data.generate_nist36(6, seed=0)
    assert X.shape == (216, 1024) and Y.shape == (216, 36)
    assert X.dtype == Y.dtype == np.float64
    np.testing.assert_array_equal(Y.argmax(axis=1), np.repeat(np.arange(36), 6))  # sorted like hw36
    np.testing.assert_array_equal(Y.sum(axis=1), 1)
    assert 0 <= X.min() and X.max() <= 1
    up = X.reshape(-1, 32, 32).transpose(0, 2, 1)
    assert np.median(up[:, [0, -1]][:, :, [0, -1]]) > 0.95  # white page in the corners
    assert (X < 0.5).mean() < 0.3 and np.all((X < 0.5).sum(axis=1) > 20)  # some dark ink, not too much
    for char in "I1":
        ink = 1 - up[Y.argmax(axis=1) == data.CLASSES.index(char)]
        cols = ink.sum(axis=(0, 1))  # ink per column of the upright image
        rows = ink.sum(axis=(0, 2))
        # an upright 'I' or '1' is a vertical stroke: its ink sits in a narrow band of columns
        # and spreads over many rows; stored untransposed it would be the other way round
        assert np.sort(cols)[-10:].sum() / cols.sum() > 0.75
        assert np.sort(rows)[-10:].sum() / rows.sum() < 0.6
    assert data.generate_nist36(0)[0].shape == (0, 1024)


def test_generated_set_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n_per_class"):
        data.generate_nist36(-1)
    with pytest.raises(ValueError, match="seed"):
        data.generate_nist36(1, seed=-3)
    with pytest.raises(ValueError, match="split"):
        data.generate_nist36(1, split="")


# ---------------------------------------------------------------- real shared data


@needs_hw36
@pytest.mark.parametrize("split, n", [("train", 10800), ("valid", 3600), ("test", 1800), ("extra", 5715)])
def test_real_hw36(split, n):
    X, Y = data.load_hw36(SHARED, split)
    assert X.shape == (n, 1024) and Y.shape == (n, 36)
    assert 0 <= X.min() and X.max() <= 1
    classes = Y.argmax(axis=1)
    assert np.all(np.diff(classes) >= 0)  # sorted by class
    counts = np.bincount(classes, minlength=36)
    if split == "extra":
        assert counts[26:].sum() == 0  # letters only
    else:
        np.testing.assert_array_equal(counts, n // 36)
    assert np.median(X) == 1.0  # white page


@needs_mnist
def test_real_mnist():
    train_images, train_labels = data.load_mnist(SHARED, "train")
    test_images, test_labels = data.load_mnist(SHARED / "mnist", "test")
    assert train_images.shape == (60000, 28, 28) and train_labels.shape == (60000,)
    assert test_images.shape == (10000, 28, 28) and test_labels.shape == (10000,)
    assert np.bincount(train_labels).min() > 5000
    assert np.median(train_images) == 0  # white ink on black


@needs_hw36
@needs_mnist
def test_mnist_to_nist36_matches_the_hw36_digits():
    images, _ = data.load_mnist(SHARED, "train")
    X, Y = data.load_hw36(SHARED, "valid")
    digits = X[Y.argmax(axis=1) >= 26]
    known = set()
    for start in range(0, len(images), 10000):  # chunks: all at once is 490 MB of float64
        converted = data.mnist_to_nist36(images[start : start + 10000])
        known.update(row.tobytes() for row in np.rint(converted * 255).astype(np.uint8))
    found = sum(row.tobytes() in known for row in np.rint(digits * 255).astype(np.uint8))
    assert found > 0.5 * len(digits)  # hw36 digits were made from MNIST this very way
