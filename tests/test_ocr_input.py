"""fastnn.ocr on hostile and unlucky input (issue 10): thin images, decompression bombs, an unwritable model
cache, and the messages for files that are not images, corrupt cached models and broken model outputs.

Memory cases run in a subprocess whose address space is limited to what it uses after its imports plus a few
hundred MB, so a regression fails with a MemoryError instead of swapping the machine. The huge images are tiny
files that only *declare* a huge size.
"""

import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import ocr

ROOT = Path(fastnn.__file__).resolve().parents[1]
HEADROOM_MB = 300  # address space allowed beyond what the subprocess holds after its imports
needs_rlimit = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux's")

_PRELUDE = """
import json, os, resource, sys, warnings
import numpy as np
import PIL.Image, PIL.ImageOps, PIL.PngImagePlugin, PIL.JpegImagePlugin
import scipy.ndimage, skimage.filters, skimage.morphology
import fastnn.ocr.model
from fastnn import cli, ocr
from fastnn.models import MLP

def _vm():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024

def limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (_vm() + {headroom} * 2**20, resource.RLIM_INFINITY))

def outcome(fn, *args, **kwargs):
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = fn(*args, **kwargs)
        return {{"ok": True, "value": value, "warnings": [str(w.message) for w in caught]}}
    except BaseException as exc:
        return {{"ok": False, "error": type(exc).__name__, "message": str(exc)}}
"""


def _run_limited(body, cwd):
    """Run ``body`` in a fresh interpreter under an address-space limit; returns the JSON it prints last."""
    code = _PRELUDE.format(headroom=HEADROOM_MB) + textwrap.dedent(body)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def _png_declaring(path, width, height):
    """A valid-looking 8-bit gray PNG of ~80 bytes whose header declares width x height pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" + b"\xff" * 1000)  # the start of the first row only
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))
    return path


def _page_jpeg(path, **save):
    """A 2400x1800 JPEG: light paper with one dark rectangle in the middle third."""
    from PIL import Image

    a = np.full((1800, 2400), 240, np.uint8)
    a[600:1200, 800:1600] = 20
    Image.fromarray(a).convert("RGB").save(path, quality=90, **save)
    return path


# --------------------------------------------------------------------------
# item 1: thin images
# --------------------------------------------------------------------------
@needs_rlimit
def test_thin_images_take_bounded_memory_and_give_no_letters(tmp_path):
    # 100000x1 needed 1.5 GB (the mask enlarged by the skipped downscale factor), 300000x7 tried 276 GiB
    res = _run_limited("""
        from PIL import Image
        Image.new("L", (100000, 1), 255).save("t.png")
        MLP([1024, 36], ["softmax"]).save("m.npz")
        limit_memory()
        out = {}
        for w, h in [(100000, 1), (300000, 1), (300000, 7)]:
            def run():
                boxes, binary = ocr.find_letters(np.full((h, w), 255, np.uint8))
                return [list(boxes.shape), list(binary.shape), float(binary.max())]
            out[f"{w}x{h}"] = outcome(run)
        out["cli"] = outcome(cli.main, ["ocr", "t.png", "--model", "m.npz"])
        print(json.dumps(out))
    """, tmp_path)
    for (w, h), key in [((100000, 1), "100000x1"), ((300000, 1), "300000x1"), ((300000, 7), "300000x7")]:
        r = res[key]
        assert r["ok"], r
        assert r["value"] == [[0, 4], [h, w], 0.0]
        assert any("too thin" in m and key in m for m in r["warnings"]), r
    assert res["cli"]["ok"] and res["cli"]["value"] == 0, res["cli"]


@pytest.mark.parametrize("shape", [(40000, 20), (20, 40000)])
def test_thin_image_gives_no_letters_instead_of_a_reshape_error(shape):
    # was: "cannot reshape array of size 800000 into shape (1,200,200,200)"
    image = np.full(shape, 255, np.uint8)
    with pytest.warns(RuntimeWarning, match=rf"{shape[1]}x{shape[0]} image is too thin.*work_size"):
        boxes, binary = ocr.find_letters(image)
    assert boxes.shape == (0, 4) and binary.shape == shape and not binary.any()

    class Never:
        def predict_proba(self, X):
            raise AssertionError("no character should reach the classifier")

    with pytest.warns(RuntimeWarning, match="too thin"):
        assert ocr.read_text(image, Never()).text == ""


def test_thin_strip_is_read_with_a_larger_work_size():
    # work_size 40000 keeps a 30x40000 strip at full size: the background estimate must cope with a working
    # copy thinner than its block size (it used to fail to reshape)
    strip = np.full((30, 40000), 255, np.uint8)
    strip[5:25, 1000:1004] = 0  # a "U" drawn with three strokes
    strip[5:25, 1020:1024] = 0
    strip[22:25, 1000:1024] = 0
    boxes, binary = ocr.find_letters(strip, work_size=40000)
    assert boxes.tolist() == [[4, 999, 26, 1025]] and binary.shape == strip.shape
    boxes_t, _ = ocr.find_letters(strip.T.copy(), work_size=40000)
    assert boxes_t.tolist() == [[999, 4, 1025, 26]]


@pytest.mark.parametrize("work_size", [0, -5, float("nan"), "1600"])
def test_find_letters_refuses_a_bad_work_size(work_size):
    with pytest.raises(ValueError, match="work_size"):
        ocr.find_letters(np.ones((100, 100)), work_size=work_size)


# --------------------------------------------------------------------------
# item 2: decompression bombs
# --------------------------------------------------------------------------
@needs_rlimit
def test_declared_size_is_checked_before_decoding(tmp_path):
    # a 1 KB PNG declaring 100000x100000 took 8.4 s and 540 MB (5.3 GB under an 8 GB limit), then failed
    # with an empty message; one declaring 15000x15000 (under the 500 MP limit, over the 100 MP decoding
    # limit, and PNG has no reduced-size decoding) must be refused too, with the other limit named
    _png_declaring(tmp_path / "bomb.png", 100000, 100000)
    _png_declaring(tmp_path / "big.png", 15000, 15000)
    assert (tmp_path / "bomb.png").stat().st_size < 200
    res = _run_limited("""
        limit_memory()
        print(json.dumps({name: outcome(lambda: list(ocr.load_image(name).shape)) for name in ("bomb.png", "big.png")}))
    """, tmp_path)
    bomb, big = res["bomb.png"], res["big.png"]
    assert not bomb["ok"] and bomb["error"] == "ValueError", bomb
    assert re.search(r"bomb\.png.*100000x100000.*500 megapixels.*FASTNN_MAX_IMAGE_PIXELS", bomb["message"]), bomb
    assert not big["ok"] and big["error"] == "ValueError", big
    assert re.search(r"big\.png.*15000x15000.*cannot be decoded at reduced size.*FASTNN_MAX_DECODED_PIXELS",
                     big["message"]), big


def test_limits_are_overridable_and_checked(tmp_path, monkeypatch):
    path = _png_declaring(tmp_path / "page.png", 3000, 2000)
    monkeypatch.setenv("FASTNN_MAX_IMAGE_PIXELS", "1_000_000")
    with pytest.raises(ValueError, match=r"page\.png.*3000x2000.*FASTNN_MAX_IMAGE_PIXELS=1000000"):
        ocr.load_image(path)
    monkeypatch.setenv("FASTNN_MAX_IMAGE_PIXELS", "a lot")
    with pytest.raises(ValueError, match="FASTNN_MAX_IMAGE_PIXELS='a lot'.*whole number"):
        ocr.load_image(path)


def test_large_jpeg_is_decoded_at_reduced_size_and_the_rest_refused(tmp_path, monkeypatch):
    baseline = _page_jpeg(tmp_path / "page.jpg")
    progressive = _page_jpeg(tmp_path / "progressive.jpg", progressive=True)
    monkeypatch.setenv("FASTNN_MAX_DECODED_PIXELS", "1000000")  # the 4.3 MP photos are "too large" to decode
    img = ocr.load_image(baseline)  # decoded by libjpeg at 1/4 size: 600x450
    assert img.shape == (450, 600, 3)
    assert img[150:300, 200:400].mean() < 40 and img[:100].mean() > 200  # the same picture
    # a progressive JPEG needs its whole size in memory whatever the scale: refused, and said why
    with pytest.raises(ValueError, match=r"progressive\.jpg.*2400x1800.*progressive.*FASTNN_MAX_DECODED_PIXELS"):
        ocr.load_image(progressive)
    # so does a sequential JPEG whose first scan holds one of its three components (multi-scan)
    data = baseline.read_bytes()
    sos = data.index(b"\xff\xda")
    length = int.from_bytes(data[sos + 2:sos + 4], "big")
    one_component = b"\xff\xda\x00\x08\x01" + data[sos + 5:sos + 7] + data[sos + 2 + length - 3:sos + 2 + length]
    multiscan = tmp_path / "multiscan.jpg"
    multiscan.write_bytes(data[:sos] + one_component + data[sos + 2 + length:])
    with pytest.raises(ValueError, match=r"multiscan\.jpg.*multi-scan"):
        ocr.load_image(multiscan)


@pytest.mark.parametrize("mode", ["1", "L", "P", "I;16", "RGB", "LA"])
def test_large_images_of_every_mode_are_downscaled(tmp_path, monkeypatch, mode):
    # Pillow's reduce() refuses modes 1, P and I;16 ("image has wrong mode"): a large 1-bit scan failed
    from PIL import Image

    img = Image.new(mode, (500, 300))
    if mode == "P":
        img.putpalette([255, 255, 255, 0, 0, 0] * 128)
    path = tmp_path / f"big-{mode.replace(';', '')}.png"
    img.save(path)
    monkeypatch.setenv("FASTNN_MAX_LOADED_PIXELS", "20000")
    out = ocr.load_image(path)
    assert out.shape[0] * out.shape[1] <= 20000 and out.shape[:2] == (100, 167)
    assert out.dtype == (np.uint16 if mode == "I;16" else np.uint8)
    if mode == "P":  # colours averaged (white), not palette indices
        assert out.shape == (100, 167, 3) and (out == 255).all()


def test_pillow_guard_is_never_switched_off(tmp_path, monkeypatch):
    # load_image set PIL.Image.MAX_IMAGE_PIXELS = None while decoding: another thread opening a file at the
    # same time lost its protection. It must stay as the process set it, and load_image's own limits decide.
    from PIL import Image, ImageFile

    path = tmp_path / "page.png"
    Image.new("L", (200, 200), 255).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # far under the 40000-pixel image
    seen = []
    load = ImageFile.ImageFile.load

    def spy(self):
        seen.append(Image.MAX_IMAGE_PIXELS)
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    assert ocr.load_image(path).shape == (200, 200)
    assert seen and set(seen) == {10_000}


# --------------------------------------------------------------------------
# item 7: a trained model is never thrown away
# --------------------------------------------------------------------------
@pytest.fixture
def fake_training(monkeypatch, tmp_path):
    """train_ocr_model replaced by a tiny model, counting the calls; HOME and the temp dir inside tmp_path."""
    from fastnn.ocr import model as ocr_model
    from fastnn.models import MLP

    calls = []

    def train(data=None, *, progress=None, **kwargs):
        calls.append(data)
        return ocr_model.OCRModel([MLP([1024, 36], ["softmax"], seed=len(calls))]), {}

    monkeypatch.setattr(ocr_model, "train_ocr_model", train)
    monkeypatch.setattr(ocr_model, "SHIPPED_MODEL", tmp_path / "no-shipped-model.npz")  # the cache's turn
    monkeypatch.delenv("FASTNN_OCR_MODEL", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    return calls


def test_model_is_saved_elsewhere_when_the_cache_is_a_file(tmp_path, monkeypatch, fake_training):
    from fastnn.ocr.model import default_model_path, load_ocr_model

    cache = tmp_path / "cache-is-a-file"
    cache.write_text("")
    monkeypatch.setenv("FASTNN_CACHE", str(cache))
    fallback = tmp_path / "xdg" / "fastnn" / default_model_path().name
    with pytest.warns(RuntimeWarning, match=rf"cache-is-a-file is a file, not a directory.*{re.escape(str(fallback))}"):
        model = load_ocr_model()
    assert fallback.is_file() and len(fake_training) == 1
    again = load_ocr_model()  # found where it went: no second training
    assert len(fake_training) == 1 and np.array_equal(again.members[0].theta, model.members[0].theta)


def test_model_is_saved_elsewhere_on_a_permission_error(tmp_path, monkeypatch, fake_training):
    from fastnn.ocr import model as ocr_model

    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("FASTNN_CACHE", str(cache))
    save = ocr_model.OCRModel.save

    def read_only(self, path, **kwargs):  # a read-only cache folder (root may write anywhere, so it is simulated)
        if Path(path).parent == cache:
            raise PermissionError(13, "Permission denied", str(path))
        return save(self, path, **kwargs)

    monkeypatch.setattr(ocr_model.OCRModel, "save", read_only)
    with pytest.warns(RuntimeWarning, match=r"Permission denied.*saved to .*xdg"):
        ocr_model.load_ocr_model()
    assert (tmp_path / "xdg" / "fastnn" / ocr_model.default_model_path().name).is_file()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write to read-only folders")
def test_model_is_saved_elsewhere_when_the_cache_is_read_only(tmp_path, monkeypatch, fake_training):
    from fastnn.ocr.model import default_model_path, load_ocr_model

    cache = tmp_path / "read-only"
    cache.mkdir()
    cache.chmod(0o555)
    monkeypatch.setenv("FASTNN_CACHE", str(cache))
    try:
        with pytest.warns(RuntimeWarning, match="saved to"):
            load_ocr_model()
        load_ocr_model()
    finally:
        cache.chmod(0o755)
    assert len(fake_training) == 1 and (tmp_path / "xdg" / "fastnn" / default_model_path().name).is_file()


def test_model_is_kept_in_memory_when_nothing_is_writable(tmp_path, monkeypatch, fake_training):
    from fastnn.ocr.model import load_ocr_model

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("FASTNN_CACHE", str(blocker))
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    monkeypatch.setattr(tempfile, "tempdir", str(blocker))
    with pytest.warns(RuntimeWarning, match="kept in memory for this run only.*train it again"):
        model = load_ocr_model()
    assert model.members[0].sizes == [1024, 36] and len(fake_training) == 1


def test_private_temp_fallback_is_not_shared(tmp_path, monkeypatch, fake_training):
    # without FASTNN_CACHE the next place is <tmp>/fastnn-<uid>, made private; a folder others can write
    # into is not trusted (someone could have put a model there)
    from fastnn.ocr.model import load_ocr_model

    monkeypatch.delenv("FASTNN_CACHE", raising=False)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    with pytest.warns(RuntimeWarning, match="saved to .*fastnn-"):
        load_ocr_model()
    (private,) = (tmp_path / "tmp").iterdir()
    assert private.stat().st_mode & 0o077 == 0
    private.chmod(0o777)
    with pytest.warns(RuntimeWarning, match="kept in memory"):
        load_ocr_model()
    assert len(fake_training) == 2


# --------------------------------------------------------------------------
# item 10: messages that say what is wrong and what to do
# --------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # imageio's legacy plugins, looked at in passing
def test_text_file_named_jpg_is_called_text(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("buy milk\ncall mum\n")
    with pytest.raises(ValueError, match=r"notes\.jpg.*not an image file.*text") as info:
        ocr.load_image(path)
    assert "pip install" not in str(info.value) and "pyav" not in str(info.value)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.png.*empty"):
        ocr.load_image(empty)


def test_directory_is_called_a_directory(tmp_path):
    folder = tmp_path / "scans.png"
    folder.mkdir()
    with pytest.raises(ValueError, match=r"scans\.png.*is a directory") as info:
        ocr.load_image(folder)
    assert "no such file" not in str(info.value)
    with pytest.raises(ValueError, match=r"missing\.png.*no such file"):
        ocr.load_image(tmp_path / "missing.png")


@pytest.mark.parametrize("content", [b"not a model", b"PK\x03\x04 cut short"])
def test_corrupt_cached_model_says_delete_it(tmp_path, monkeypatch, content):
    from fastnn.ocr import model as ocr_model
    from fastnn.ocr.model import default_model_path, load_ocr_model

    monkeypatch.setenv("FASTNN_CACHE", str(tmp_path))
    monkeypatch.setattr(ocr_model, "SHIPPED_MODEL", tmp_path / "no-shipped-model.npz")  # the cache's turn
    monkeypatch.delenv("FASTNN_OCR_MODEL", raising=False)
    path = default_model_path()
    path.write_bytes(content)
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}.*delete that file.*train a new one"):
        load_ocr_model()


def test_nan_probabilities_are_refused_not_read_as_a_character():
    img = np.ones((200, 300))
    img[50:120, 60:68] = 0.0

    class Broken:
        def predict_proba(self, X):
            return np.full((len(X), 36), np.nan)

    with pytest.raises(ValueError, match=r"non-finite.*NaN.*1 of 1 characters.*model is broken"):
        ocr.read_text(img, Broken())

    class Infinite:
        def predict_proba(self, X):
            P = np.eye(36)[np.zeros(len(X), int)]
            P[:, 5] = np.inf
            return P

    with pytest.raises(ValueError, match="non-finite"):
        ocr.read_text(img, Infinite(), word_context=False)


def test_default_model_path_without_a_home_folder(monkeypatch):
    """A user with no home folder at all (no HOME, no passwd entry) got RuntimeError: 'Could not determine home
    directory', an internal error in the CLI; the model's cache is then the private temporary folder."""
    import tempfile
    from pathlib import Path

    from fastnn.ocr import model as ocr_model

    for var in ("FASTNN_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)

    def no_home():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    path = ocr_model.default_model_path()
    assert path.parent == Path(tempfile.gettempdir()) / f"fastnn-{os.getuid()}" and path.suffix == ".npz"
