"""Every bad model file is a clean error, a load during a save sees one whole file, and a read-only file is
not saved over (issue 20 items 2, 3 and 5).

* Fuzz: members of an MLP, a CNN and an OCR-model file are mutated (their ``.npy`` headers, their text, their
  data) and the files zipped again with valid CRCs, and whole files get raw byte flips; each load must give a
  model with finite parameters or a ``ModelFileError`` naming the file.  Seeded, so a failure repeats.
* Two processes save models of different sizes to one path in a loop while this one loads it: every load is
  one of the two models.
* ``save`` refuses to replace a file whose mode gives no write permission unless ``overwrite=True``.
"""

import ast
import io
import os
import stat
import struct
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from _zipfiles import rezip

import fastnn
from fastnn.cli import main
from fastnn.cnn import CNN
from fastnn.cnn_recipe import cnn_layers
from fastnn.layers import Conv2D, Dense, Flatten, MaxPool2D
from fastnn.models import MLP, ModelFileError
from fastnn.ocr import OCRModel
from fastnn.train import Trainer

SOURCE_ROOT = Path(fastnn.__file__).resolve().parents[1]  # the fastnn this test imported, for the children
MEMBER_MUTATIONS = 300  # per kind of file
RAW_FLIPS = 400  # per kind of file
TIMEOUT = 120  # seconds for a child process: a hang fails instead of blocking


def _mlp():
    return MLP([16, 8, 3], ["relu", "softmax"], dtype="float32", seed=1)


def _cnn():
    return CNN((8, 8, 1), [Conv2D(1, 2, 3, padding="same"), MaxPool2D(2), Flatten(), Dense(32, 3, "softmax")],
               dtype="float32", seed=2)


def _ocr():
    return OCRModel([MLP([1024, 16, 36], ["relu", "softmax"], dtype="float32", seed=3),  # 'm0/theta' over 16 KB
                     CNN((32, 32, 1), cnn_layers((2,), 5, 4), dtype="float32", seed=4)])


def _saved(kind, folder):
    """A small model file of ``kind`` ('mlp', 'cnn', 'ocr'), with a meta member, and its loader."""
    meta = {"note": "ünïcode", "scores": [0.5, 1]}
    if kind == "mlp":
        return _mlp().save(folder / "good-mlp.npz", meta=meta), MLP.load
    if kind == "cnn":
        return _cnn().save(folder / "good-cnn.npz", meta=meta), CNN.load
    return _ocr().save(folder / "good-ocr.npz", storage="float16", meta=meta), OCRModel.load  # as the shipped one


# ------------------------------------------------------------------------------------ member mutations

def _npy_parts(data):
    """(version, header text, body) of the bytes of a .npy member."""
    if data[6] == 1:
        n = struct.unpack("<H", data[8:10])[0]
        return (1, 0), data[10:10 + n].decode("latin1"), data[10 + n:]
    n = struct.unpack("<I", data[8:12])[0]
    return (data[6], 0), data[12:12 + n].decode("latin1"), data[12 + n:]


def _npy_bytes(header, body):
    """A .npy member of ``header`` (any text) and ``body`` (its length field right, the text unchecked)."""
    h = header.encode("latin1", errors="replace")
    if len(h) < 65536:
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + body
    return b"\x93NUMPY\x02\x00" + struct.pack("<I", len(h)) + h + body


def _text_npy(units):
    """A 0-d '<U' member holding the 32-bit code units ``units`` as they are (valid characters or not)."""
    units = np.asarray(units, dtype="<u4")
    header = "{'descr': '<U%d', 'fortran_order': False, 'shape': (), }" % len(units)
    return _npy_bytes(header.ljust(117) + "\n", units.tobytes())


def _json_npy(text):
    buf = io.BytesIO()
    np.save(buf, np.array(text))
    return buf.getvalue()


BROKEN_HEADERS = [
    "{'descr': %(descr)r, 'fortran_order': False, 'shape': (3,",  # the issue's: tokenize.TokenError
    "{'descr': %(descr)r, 'fortran_order': False, 'shape': %(shape)r}\n  )",
    "{'descr': %(descr)r, 'fortran_order': False, 'shape': %(shape)r\n 1\n  2\n 3\n",
    "{'descr': %(descr)r, 'fortran_order': False, 'shape': (3L,)\n  \n )",
    "{'descr': %(descr)r, 'fortran_order': False, 'shape': (3L,)}",  # Python 2's longs: NumPy's second parse
    "{'descr': %(descr)r, 'fortran_order': False, 'shape': %(shape)r, {}: 1}",
    "{'descr': %(descr)r, 'fortran_order': False}",
    "{'descr': %(descr)r, 'fortran_order': 'no', 'shape': %(shape)r}",
    "{'descr': %(descr)r, 'fortran_order': True, 'shape': %(shape)r}",
    "{'descr': %(descr)r, 'fortran_order': False, 'shape': %(shape)r, 'x': 1}",
    "{'descr': '\\U00110000', 'fortran_order': False, 'shape': %(shape)r}",
    "\"\"\"%(descr)s",
    "'%(descr)s",
    "{[]: 1}",
    "None",
    "-" * 9000 + "1",  # Python's parser: MemoryError ("too complex")
    "(" * 3000,
    "[" * 200 + "]" * 200,
    "{'a':" * 2000 + "1" + "}" * 2000,
    "\xff\xfe{'descr'",
]
SHAPES = [(2**62,), (2**31, 2**31, 2**31), (-1,), (-3, -2), (0,), (3, -1), ("3",), (3.0,), (True,), (), (1,) * 40,
          (10**30,), (2**63,), (-(2**63),)]
DESCRS = ["<f2", ">f8", "<i8", "<U3", "<U0", "V0", "S0", "|b1", "<c16", "O", [("a", "<f4")], ("<f4", (2,)),
          "<U99999999999", "<M8[D]", "", "x", 123, None, [], [("a", "<f4"), ("a", "<f4")], ("<f4", -1),
          [("a", [("b", "<f4")] * 2)], "|O", ">U2", "<f16", "u1"]
JSON_TEXTS = ["[" * 5000, '{"a":' * 3000, "1e999", "9" * 5000, '"\\ud800"', "NaN", "[1, 2]", "null", "{}",
              '[{"type": []}]', '[{"type": "Dense", "n_in": 1e400, "n_out": 2}]', '[{"type": "Flatten"}]' * 2,
              '[{"type": "Conv2D", "in_channels": 99999999999999999999, "out_channels": 2, "kernel_size": 3}]',
              '[{"type": "Dense", "n_in": -5, "n_out": 2, "activation": "softmax"}]', '{"note": "\\u0000"}']
BAD_CODE_UNITS = [0x110000, 0xFFFFFFFF, 0x80000000, 0xD800, 0xDFFF, 0]


def _mutate_header(header, rng):
    """The header text with one damage: a crafted header, shape or descr, a cut, or a stray character."""
    try:
        d = ast.literal_eval(header)
        descr, shape = d["descr"], d["shape"]
    except (ValueError, SyntaxError, TypeError, KeyError):
        descr, shape = "<f4", (3,)
    how = rng.integers(5)
    if how == 0:
        text = BROKEN_HEADERS[rng.integers(len(BROKEN_HEADERS))] % {"descr": descr, "shape": shape}
        return f"broken header {text[:60]!r}", text
    if how == 1:
        new = SHAPES[rng.integers(len(SHAPES))]
        return f"shape {new!r}", repr({"descr": descr, "fortran_order": False, "shape": new})
    if how == 2:
        new = DESCRS[rng.integers(len(DESCRS))]
        return f"descr {new!r}", repr({"descr": new, "fortran_order": False, "shape": shape})
    if how == 3:
        cut = int(rng.integers(len(header)))
        return f"header cut at {cut}", header[:cut]
    at = int(rng.integers(len(header) + 1))
    char = "()[]{}'\"\\,:L\n\t#\x00"[rng.integers(15)]
    return f"{char!r} inserted at {at}", header[:at] + char + header[at:]


def _mutate_member(name, data, rng):
    """(what was done, the member's new bytes, or None to drop it)."""
    version, header, body = _npy_parts(data)
    start = len(data) - len(body)
    text = "U" in header and len(body) >= 4
    how = rng.choice(["header flip", "header", "truncate", "data flip", "text", "json", "drop"],
                     p=[0.2, 0.25, 0.1, 0.1, 0.2, 0.1, 0.05] if text else [0.3, 0.35, 0.1, 0.15, 0, 0.05, 0.05])
    if how == "header flip":
        out = bytearray(data)
        places = rng.integers(0, start, rng.integers(1, 4))
        for i in places:
            out[i] = rng.integers(256)
        return f"header bytes {sorted(places.tolist())} set", bytes(out)
    if how == "header":
        what, text = _mutate_header(header, rng)
        return what, _npy_bytes(text, body)
    if how == "truncate":
        cut = int(rng.integers(len(data)))
        return f"cut to {cut} bytes", data[:cut]
    if how == "data flip" and start < len(data):
        out = bytearray(data)
        i = int(rng.integers(start, len(data)))
        out[i] ^= int(rng.integers(1, 256))
        return f"data byte {i} flipped", bytes(out)
    if how == "text":  # a code unit that is no character, in place
        units = np.frombuffer(body[:len(body) // 4 * 4], "<u4").copy()
        i = int(rng.integers(len(units)))
        units[i] = BAD_CODE_UNITS[rng.integers(len(BAD_CODE_UNITS))] if rng.random() < 0.8 else rng.integers(2**32)
        return f"code unit {i} set to {units[i]:#x}", _text_npy(units)
    if how == "json":
        text = JSON_TEXTS[rng.integers(len(JSON_TEXTS))]
        if name.endswith(("layers.npy", "meta.npy")) and rng.random() < 0.5:  # the real JSON, edited
            original = str(np.load(io.BytesIO(data)))
            at = int(rng.integers(len(original)))
            text = original[:at] + "[{]}\"9-e,:"[rng.integers(10)] + original[at + int(rng.integers(2)):]
        return f"JSON text {text[:40]!r}", _json_npy(text)
    if how == "drop":
        return "dropped", None
    return "cut to 0 bytes", b""


def _mutated_copy(src, dst, target, rng, compression):
    """Copy the model file ``src`` to ``dst`` with the member ``target`` mutated; return what was done."""
    done = []

    def change(name, data):
        if name != target:
            return data
        what, new = _mutate_member(name, data, rng)
        done.append(what)
        return new

    rezip(src, dst, change, compression)
    return done[0]


def _structure_spots(path):
    """Byte ranges of a zip file that are not member data: local headers plus .npy headers, the directory."""
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        spots = [(i.header_offset, i.header_offset + 30 + len(i.filename) + 140) for i in infos]
        spots.append((zf.start_dir, path.stat().st_size))
    return spots


def _load_outcome(load, path, what, escapes):
    """Load ``path``: a model with finite parameters or a ModelFileError naming the file; else note it."""
    try:
        model = load(path)
    except ModelFileError as exc:
        if path.name not in str(exc):
            escapes.append(f"{what}: ModelFileError without the file's name: {exc}")
        return "refused"
    except Exception as exc:  # anything else is what this test is for
        escapes.append(f"{what}: {type(exc).__name__}: {' '.join(str(exc).split())[:160]}")
        return "escaped"
    nets = model.members if isinstance(model, OCRModel) else [model]
    if not all(np.all(np.isfinite(net.theta)) for net in nets):
        escapes.append(f"{what}: loaded with parameters that are not finite")
    return "loaded"


def _report(escapes, total):
    shown = "\n".join(escapes[:15])
    return f"{len(escapes)} of {total} bad files escaped the clean error:\n{shown}"


@pytest.mark.filterwarnings("ignore::UserWarning")  # NumPy's note on Python 2 headers, zipfile's duplicate names
@pytest.mark.parametrize("kind", ["mlp", "cnn", "ocr"])
def test_member_mutations_load_or_raise_a_model_file_error(kind, tmp_path, rng):
    good, load = _saved(kind, tmp_path)
    with zipfile.ZipFile(good) as zf:
        names = zf.namelist()
    escapes, outcomes = [], []
    for n in range(MEMBER_MUTATIONS):
        target = names[rng.integers(len(names))]
        compression = zipfile.ZIP_DEFLATED if rng.random() < 0.3 else zipfile.ZIP_STORED
        bad = tmp_path / f"bad-{kind}.npz"
        what = _mutated_copy(good, bad, target, rng, compression)
        outcomes.append(_load_outcome(load, bad, f"#{n} {target}: {what}", escapes))
    assert not escapes, _report(escapes, MEMBER_MUTATIONS)
    assert outcomes.count("refused") > MEMBER_MUTATIONS // 2  # the mutations do damage


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("kind", ["mlp", "cnn", "ocr"])
def test_raw_byte_flips_load_or_raise_a_model_file_error(kind, tmp_path, rng):
    good, load = _saved(kind, tmp_path)
    original = good.read_bytes()
    spots = _structure_spots(good)
    escapes = []
    for n in range(RAW_FLIPS):
        out = bytearray(original)
        places = []
        for _ in range(rng.integers(1, 4)):
            if rng.random() < 0.5:
                i = int(rng.integers(len(out)))
            else:
                lo, hi = spots[rng.integers(len(spots))]
                i = int(rng.integers(lo, min(hi, len(out))))
            out[i] ^= int(rng.integers(1, 256))
            places.append(i)
        bad = tmp_path / f"flipped-{kind}.npz"
        bad.write_bytes(bytes(out))
        _load_outcome(load, bad, f"#{n} bytes {places} flipped", escapes)
    assert not escapes, _report(escapes, RAW_FLIPS)


# ------------------------------------------------------------------------------- the two examples

def _with_member(good, dst, member, data):
    return rezip(good, dst, lambda name, old: data if name == member else old, zipfile.ZIP_STORED)


@pytest.mark.filterwarnings("ignore::UserWarning")  # NumPy's note on Python 2 headers
@pytest.mark.parametrize("header, raised", [
    ("{'descr': '<i8', 'fortran_order': False, 'shape': (3,", "TokenError"),  # the issue's
    ("\"\"\"<i8", "TokenError"),
    ("-" * 9000 + "1", "MemoryError"),  # Python's parser gives up on the nesting
    ("{[]: 1}", "TypeError"),
])
def test_a_header_numpy_cannot_parse_is_a_model_file_error(header, raised, tmp_path):
    good = _mlp().save(tmp_path / "good.npz")
    body = np.array([16, 8, 3], np.int64).tobytes()
    bad = _with_member(good, tmp_path / "bad.npz", "sizes.npy", _npy_bytes(header, body))
    with pytest.raises(ModelFileError, match=rf"bad\.npz: 'sizes' is not a readable NumPy array \({raised}"):
        MLP.load(bad)


@pytest.mark.parametrize("kind, member", [("mlp", "meta.npy"), ("mlp", "activations.npy"), ("cnn", "layers.npy"),
                                          ("ocr", "format.npy"), ("ocr", "m1/layers.npy")])
def test_a_code_point_above_U10FFFF_is_a_model_file_error(kind, member, tmp_path):
    good, load = _saved(kind, tmp_path)
    bad = _with_member(good, tmp_path / "bad.npz", member, _text_npy([ord('"'), 0x110000, ord('"')]))
    label = member.removesuffix(".npy")
    with pytest.raises(ModelFileError, match=rf"bad\.npz: '{label}' holds U\+110000, which is not a character"):
        load(bad)


def test_a_deeply_nested_meta_is_a_model_file_error(tmp_path):
    good = _mlp().save(tmp_path / "good.npz", meta={"a": 1})
    bad = _with_member(good, tmp_path / "bad.npz", "meta.npy", _json_npy("[" * 5000))
    with pytest.raises(ModelFileError, match=r"bad\.npz: 'meta' is not valid JSON"):
        MLP.load(bad)


@pytest.mark.parametrize("task", ["ocr", "confusion"])
@pytest.mark.parametrize("damage", ["tokenizer", "code point"])
def test_the_command_line_refuses_a_bad_model_in_one_line_with_exit_2(task, damage, tmp_path, capsys, monkeypatch):
    from PIL import Image

    monkeypatch.delenv("FASTNN_DEBUG", raising=False)
    net = MLP([1024, 4, 36], ["relu", "softmax"], dtype="float32")
    # `fastnn ocr` reads an OCR-model file, `fastnn confusion` an MLP file
    good = (OCRModel([net]) if task == "ocr" else net).save(tmp_path / "good.npz", meta={"by": "test"})
    prefix = "m0/" if task == "ocr" else ""
    if damage == "tokenizer":
        body = np.array([1024, 4, 36], np.int64).tobytes()
        data = _npy_bytes("{'descr': '<i8', 'fortran_order': False, 'shape': (3,", body)
        bad = _with_member(good, tmp_path / "bad.npz", prefix + "sizes.npy", data)
    else:
        bad = _with_member(good, tmp_path / "bad.npz", "meta.npy", _text_npy([ord('"'), 0x110000, ord('"')]))
    image = tmp_path / "page.png"  # a real image: `fastnn ocr` checks the images before it loads the model
    Image.fromarray(np.full((40, 60), 255, np.uint8)).save(image)
    args = ["ocr", "--model", str(bad), str(image)] if task == "ocr" else \
        ["confusion", "--model", str(bad), "--out", str(tmp_path / "out")]
    capsys.readouterr()
    code = main(args)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "internal error" not in err, (code, err)
    member = f"'{prefix}sizes' is not a readable NumPy array" if damage == "tokenizer" else "'meta' holds U+110000"
    assert f"bad.npz: {member}" in lines[0], err


# --------------------------------------------------------------------------------- loads during saves

WRITER = """
import sys, time
from pathlib import Path
from fastnn.models import MLP
path, stop, ready, width, seed = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
model = MLP([width, width, 2], ["relu", "softmax"], seed=seed)
deadline = time.monotonic() + 90
saves = 0
while not stop.exists() and time.monotonic() < deadline:
    model.save(path)
    saves += 1
    if saves == 1:
        ready.touch()
print(saves)
"""
WIDTHS = {4: 1, 96: 2}  # the two writers' models: width -> seed (files of about 1 KB and 76 KB)


def _child_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTNN_")}
    env["PYTHONPATH"] = os.pathsep.join([str(SOURCE_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renames over a file another process reads")
def test_loads_while_two_processes_save_see_one_whole_file(tmp_path):
    path = tmp_path / "model.npz"
    models = {w: MLP([w, w, 2], ["relu", "softmax"], seed=s) for w, s in WIDTHS.items()}
    models[4].save(path)
    stop = tmp_path / "stop"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(stop), str(tmp_path / f"ready{w}"),
                                 str(w), str(s)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=_child_env(), cwd=tmp_path)  # not a checkout: -c imports from the cwd first
               for w, s in WIDTHS.items()]
    errors, seen = [], {w: 0 for w in WIDTHS}
    try:
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"ready{w}").exists() for w in WIDTHS):
            ended = [p.communicate(timeout=TIMEOUT)[1] for p in writers if p.poll() is not None]
            assert not ended, f"a writer ended before its first save: {ended[0][-2000:]}"
            assert time.monotonic() < deadline, "a writer did not save within 60 s"
            time.sleep(0.01)
        loads, stop_at = 0, time.monotonic() + 8
        while loads < 3000 and time.monotonic() < stop_at:
            loads += 1
            try:
                model = MLP.load(path)
            except Exception as exc:
                errors.append(f"load {loads}: {type(exc).__name__}: {exc}")
                continue
            width = model.sizes[0]
            if width not in models or not np.array_equal(model.theta, models[width].theta):
                errors.append(f"load {loads}: a model that neither writer saved: {model!r}")
            else:
                seen[width] += 1
    finally:
        stop.touch()
        results = [p.communicate(timeout=TIMEOUT) for p in writers]
    for p, (out, err) in zip(writers, results):
        assert p.returncode == 0, err
        assert int(out) > 5, "a writer saved too few times for the test to mean anything"
    assert not errors, f"{len(errors)} of {loads} loads failed:\n" + "\n".join(errors[:10])
    assert all(seen.values()), seen


def test_a_rename_between_a_look_at_the_path_and_the_read_never_mixes_two_files(tmp_path, monkeypatch):
    """The reader takes the size and the bytes from one open file: a save renamed over the path right after
    the reader looked at it by name (``os.stat`` or ``os.open`` of it) still loads whole, as the old model or
    the new one."""
    path = tmp_path / "model.npz"
    small, big = MLP([4, 4, 2], ["relu", "softmax"], seed=1), MLP([96, 96, 2], ["relu", "softmax"], seed=2)
    pending = []

    def then_rename(look):
        def looked(p, *args, **kwargs):
            result = look(p, *args, **kwargs)
            if pending and os.fspath(p) == os.fspath(path):
                os.replace(pending.pop(), path)
            return result
        return looked

    for first, second in ((small, big), (big, small)):
        first.save(path)
        pending[:] = [second.save(tmp_path / "next.npz")]
        with monkeypatch.context() as patch:
            patch.setattr(os, "stat", then_rename(os.stat))
            patch.setattr(os, "open", then_rename(os.open))
            loaded = MLP.load(path)
        assert not pending  # the rename happened during the load
        assert loaded.sizes in (first.sizes, second.sizes)
        expected = first if loaded.sizes == first.sizes else second
        np.testing.assert_array_equal(loaded.theta, expected.theta)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    outcome = []
    reader = threading.Thread(target=lambda: outcome.append(_load_error(fifo)), daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():  # let the blocked reader go before failing
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    assert outcome and "pipe.npz: not a regular file, not a model file" in outcome[0], outcome


def _load_error(path):
    try:
        MLP.load(path)
    except ModelFileError as exc:
        return str(exc)
    return "loaded"


# ------------------------------------------------------------------------------------ read-only files

def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("kind", ["mlp", "cnn", "ocr"])
def test_saving_over_a_read_only_file_is_refused_unless_overwrite(kind, tmp_path):
    model = {"mlp": _mlp, "cnn": _cnn, "ocr": _ocr}[kind]()
    path = model.save(tmp_path / "kept.npz", meta={"v": 1})
    os.chmod(path, 0o444)
    before = path.read_bytes()
    with pytest.raises(PermissionError, match=r"kept\.npz: .*read-only.*overwrite=True") as info:
        model.save(path, meta={"v": 2})
    assert str(path) in str(info.value)
    assert path.read_bytes() == before and _mode(path) == 0o444
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.npz"]  # no temporary left
    assert model.save(path, meta={"v": 2}, overwrite=True) == path
    assert type(model).load(path).meta == {"v": 2} and _mode(path) == 0o444  # replaced, still read-only
    os.chmod(path, 0o644)  # a writable file is replaced as before, keeping its mode
    model.save(path, meta={"v": 3})
    assert type(model).load(path).meta == {"v": 3} and _mode(path) == 0o644


def test_a_read_only_file_is_refused_by_the_name_save_gives_it(tmp_path):
    path = _mlp().save(tmp_path / "model")  # saved as model.npz
    os.chmod(path, 0o400)
    with pytest.raises(PermissionError, match=r"model\.npz: .*read-only"):
        _mlp().save(tmp_path / "model")


def test_a_symlink_to_a_read_only_file_is_refused_and_replaced_by_a_file_with_overwrite(tmp_path):
    target = _mlp().save(tmp_path / "target.npz")
    os.chmod(target, 0o444)
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    with pytest.raises(PermissionError, match=r"link\.npz: .*read-only"):
        _cnn().save(link)
    _cnn().save(link, overwrite=True)
    assert not link.is_symlink() and CNN.load(link).n_outputs == 3
    assert MLP.load(target).sizes == [16, 8, 3]  # the file the link pointed to is left as it was


def test_a_checkpoint_replaces_its_own_file_but_not_one_the_user_made_read_only(tmp_path, rng, monkeypatch):
    X = rng.normal(size=(60, 16)).astype(np.float32)
    T = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 60)]
    ckpt = tmp_path / "best.npz"
    saves = []
    original_save = MLP.save
    monkeypatch.setattr(MLP, "save", lambda self, *a, **k: saves.append(original_save(self, *a, **k)) or saves[-1])
    old_umask = os.umask(0o277)  # the trainer's own files come out read-only (0o400): still its own to replace
    try:
        hist = Trainer(_mlp(), optimizer="adam", lr=0.05, batch_size=10, progress=False,
                       checkpoint=ckpt).fit(X, T, epochs=6, valid=(X, T))
    finally:
        os.umask(old_umask)
    assert len(saves) >= 2 and _mode(ckpt) == 0o400  # its own file replaced, as read-only as the umask made it
    assert MLP.load(ckpt).theta.size == _mlp().theta.size and hist.best_epoch is not None
    os.chmod(ckpt, 0o444)  # now the user protects it: a new training run must not replace it
    before = ckpt.read_bytes()
    with pytest.raises(PermissionError, match=r"best\.npz: .*read-only"):
        Trainer(_mlp(), optimizer="adam", lr=0.05, batch_size=10, progress=False,
                checkpoint=ckpt).fit(X, T, epochs=2, valid=(X, T))
    assert ckpt.read_bytes() == before
