"""fastnn.data: the NIST36 .mat layout, MNIST idx files and the generated set."""

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from fastnn import data

SHARED = Path(os.environ.get("FASTNN_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"real data not found at {SHARED} (set FASTNN_DATA)")


@pytest.fixture(scope="module")
def small():
    return data.generate_nist36(3, seed=1)


def test_save_load_round_trip(tmp_path, small):
    X, Y = small
    path = tmp_path / "nist36_train.mat"
    data.save_nist36(path, "train", X, Y)
    X2, Y2 = data.load_nist36(path)
    np.testing.assert_allclose(X2, X)
    np.testing.assert_array_equal(Y2, Y)
    assert [p.name for p in tmp_path.iterdir()] == ["nist36_train.mat"]  # nothing temporary left
    X3, _ = data.load_hw36(tmp_path, "train")  # the coursework's own nist36_* names are found
    np.testing.assert_allclose(X3, X)


@pytest.mark.parametrize("case, message", [
    ("garbage", "not a readable .mat"),
    ("truncated", "mat"),
    ("wrong_keys", "keys found"),
    ("rows", "rows"),
    ("nan", "NaN"),
    ("range", r"\[0, 1\]"),
    ("not_onehot", "one-hot"),
    ("columns", "1024"),
])
def test_corrupt_mat_files_name_the_file_and_problem(tmp_path, small, case, message):
    X, Y = small
    path = tmp_path / f"{case}.mat"
    if case == "garbage":
        path.write_bytes(b"this is not a mat file at all" * 10)
    elif case == "truncated":
        data.save_nist36(tmp_path / "ok.mat", "train", X, Y)
        path.write_bytes((tmp_path / "ok.mat").read_bytes()[:300])
    else:
        X2, Y2 = X.copy(), Y.copy()
        keys = ("train_data", "train_labels")
        if case == "wrong_keys":
            keys = ("images", "labels")
        elif case == "rows":
            Y2 = Y2[:-2]
        elif case == "nan":
            X2[1, 5] = np.nan
        elif case == "range":
            X2 = X2 * 255
        elif case == "not_onehot":
            Y2[0, :] = 1
        elif case == "columns":
            X2 = X2[:, :1000]
        scipy.io.savemat(path, {keys[0]: X2, keys[1]: Y2})
    with pytest.raises(ValueError, match=message) as info:
        data.load_nist36(path, "train" if case == "wrong_keys" else None)
    assert path.name in str(info.value)


def _write_idx(path, arr, gz):
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    raw = header + arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx_round_trip(tmp_path, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    labels = np.arange(20, dtype=np.uint8) % 10
    suffix = ".gz" if gz else ""
    _write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", images, gz)
    _write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", labels, gz)
    got_images, got_labels = data.load_mnist(tmp_path, "train")
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    X, y = data.mnist_binary(got_images, got_labels, 5, 8, n_per_class=2, seed=0)
    assert X.shape == (4, 784) and sorted(y[:, 0].tolist()) == [0, 0, 1, 1]
    assert 0 <= X.min() and X.max() <= 1
    Xn = data.mnist_to_nist36(got_images[:3])
    assert Xn.shape == (3, 1024)
    up = Xn[0].reshape(32, 32).T  # upright, dark ink on white, 2-pixel white margin
    np.testing.assert_allclose(up[2:30, 2:30], 1 - images[0] / 255.0)
    assert np.all(up[:2] == 1)


def test_bad_idx_files(tmp_path):
    bad = tmp_path / "bad-magic"
    bad.write_bytes(b"\x12\x34\x08\x01" + b"\x00" * 20)
    with pytest.raises(ValueError, match="bad-magic"):
        data.read_idx(bad)
    short = tmp_path / "short"
    _write_idx(short, np.zeros((10, 28, 28), np.uint8), gz=False)
    short.write_bytes(short.read_bytes()[:500])
    with pytest.raises(ValueError, match="short.*(truncated|size)"):
        data.read_idx(short)


def test_generated_set_is_deterministic_and_upright():
    X1, Y1 = data.generate_nist36(4, seed=7)
    X2, Y2 = data.generate_nist36(4, seed=7)
    X3, _ = data.generate_nist36(4, seed=8)
    np.testing.assert_array_equal(X1, X2)
    assert not np.array_equal(X1, X3)
    assert X1.shape == (144, 1024) and Y1.shape == (144, 36)
    assert (Y1.argmax(axis=1) == np.repeat(np.arange(36), 4)).all()  # sorted by class, like hw36
    assert 0 <= X1.min() and X1.max() <= 1 and X1.mean() > 0.5  # dark ink on a white page
    ink = 1 - X1[Y1.argmax(axis=1) == data.CLASSES.index("I")].reshape(-1, 32, 32).transpose(0, 2, 1)
    rows, cols = ink.sum(axis=(0, 2)), ink.sum(axis=(0, 1))
    assert rows.max() / rows.sum() < cols.max() / cols.sum()  # an upright 'I' is a vertical stroke


def test_load_dataset_falls_back_to_generated(monkeypatch):
    monkeypatch.delenv("FASTNN_DATA", raising=False)
    ds = data.load_dataset(seed=0)
    assert ds["source"].startswith("generated")
    assert ds["train"][0].shape == (10800, 1024)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load_dataset("/nonexistent/fastnn-data")


@needs_shared
def test_real_hw36_and_mnist():
    sizes = {"train": 10800, "valid": 3600, "test": 1800, "extra": 5715}
    for split, n in sizes.items():
        X, Y = data.load_hw36(SHARED, split)
        assert X.shape == (n, 1024) and Y.shape == (n, 36)
        assert 0 <= X.min() and X.max() <= 1
        assert np.all(np.diff(Y.argmax(axis=1)) >= 0)  # sorted by class
    images, labels = data.load_mnist(SHARED, "test")
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
