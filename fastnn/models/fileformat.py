"""The model file format: ``.npz`` archives written atomically and read without unpickling anything.

Every fastnn model file (an MLP's, a CNN's, the OCR model's) is a zip of ``.npy`` members: a ``format``
name, the architecture as small arrays, and the parameters as one flat ``theta`` vector.  A file is checked
against :data:`MAX_MODEL_PARAMS` and the other limits below before anything large is allocated or
decompressed, and any failure to read one is a :class:`ModelFileError` naming the file (and the member,
when one is at fault).  The models' ``save``/``load`` (:mod:`fastnn.models.mlp`, :mod:`fastnn.models.cnn`,
``fastnn.ocr.OCRModel``) describe their members; the reading and writing is here, once.
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
import stat
import struct
import tokenize
import zipfile
import zlib
from io import BytesIO
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from .. import functional as F
from .._io import atomic_write

# Limits of MLP.load.  A model file is checked against them, and its parts against each other, before
# anything large is allocated or decompressed: a crafted file of a few KB must not cost gigabytes.

#: Most parameters a model file may hold (50 million: 400 MB as float64, 200 MB as float32; fastnn's own
#: models have well under a million).  Raise it with ``MLP.load(path, max_params=N)`` or, for every load
#: of a process (``fastnn ocr --model``, ``$FASTNN_OCR_MODEL``, ``fastnn confusion --model``), with the
#: environment variable named by ``MAX_PARAMS_ENV``.
MAX_MODEL_PARAMS = 50_000_000
#: Environment variable that overrides ``MAX_MODEL_PARAMS`` (a positive whole number).
MAX_PARAMS_ENV = "FASTNN_MAX_MODEL_PARAMS"
#: Most layers a model file may declare (its ``sizes`` then holds one more width than this).
MAX_MODEL_LAYERS = 1000
#: Largest stored size (``.npy`` header and data) of each small member of a model file: ``format``,
#: ``sizes``, ``activations`` and ``loss`` (a real one is a few hundred bytes).
MAX_MODEL_META_BYTES = 64 * 1024
#: Largest zip central directory a model file may have (a real one lists five members in under 1 KB).
MAX_ZIP_DIRECTORY_BYTES = 64 * 1024

#: The model files fastnn writes, by the start of their 'format' member: what each is and the loader that reads it.
MODEL_FILE_KINDS = {"fastnn.MLP/": ("an MLP model file", "fastnn.models.MLP.load"),
                    "fastnn.CNN/": ("a CNN model file", "fastnn.models.CNN.load"),
                    "fastnn.OCRModel/": ("an OCR model file", "fastnn.ocr.OCRModel.load")}
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first member, or an empty zip
_NPY_HEADER_READ = 16 * 1024  # bytes read to parse a .npy header (NumPy refuses headers over 10,000)
_READ_CHUNK = 1 << 20  # bytes decompressed per read of the parameters
_SAVE_HINT = "pass a model file written by MLP.save or CNN.save (an .npz)"
_O_OPEN = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
_REASON_CHARS = 200  # most characters of an exception's text quoted in a ModelFileError (NumPy's quote a header)
#: What NumPy's ``.npy`` header parser raises for a damaged header: ValueError for most, but its second parse
#: (meant for headers written by Python 2) runs the tokenizer (``tokenize.TokenError``, SyntaxError), a
#: dict key may be unhashable (TypeError), and deep nesting hits the limits of Python's parser and of
#: recursion (MemoryError, RecursionError).  The header parsed is at most ``_NPY_HEADER_READ`` bytes, so a
#: MemoryError there is the parser's limit, never a large allocation.
_NPY_HEADER_ERRORS = (ValueError, TypeError, SyntaxError, tokenize.TokenError, KeyError, IndexError, OverflowError,
                      MemoryError, RecursionError)
#: What reading or decompressing a damaged zip member raises (a bad CRC or local header, a truncated stream,
#: an unsupported flag, a seek past the end), or a failing disk.
_ZIP_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, struct.error, ValueError,
                    OverflowError, OSError)
#: What the zip directory's reader raises for a damaged one (``zipfile.ZipFile`` of the open file).
_ZIP_DIRECTORY_ERRORS = (zipfile.BadZipFile, EOFError, struct.error, ValueError, OverflowError, OSError, KeyError,
                         IndexError)


class ModelFileError(ValueError):
    """A file given to :meth:`MLP.load` (or ``CNN.load``) is not a model file fastnn can use; the message says why."""



def find_members(zf, names) -> dict:
    """{name: ZipInfo} of the members of an ``.npz`` present among ``names`` (as np.load: the exact name
    first, then the name with ``.npy``)."""
    infos = {}
    for name in names:
        for candidate in (name, name + ".npy"):
            try:
                infos[name] = zf.getinfo(candidate)
                break
            except KeyError:
                pass
    return infos


def check_format(path, zf, fmt, expected, reader) -> None:
    """Refuse a 'format' member ``fmt`` (an array from ``read_small_member``) other than ``expected``, the
    format ``reader`` (e.g. 'MLP.load') reads: when the file is another kind of fastnn model, the
    ModelFileError says which and the loader to use instead (:data:`MODEL_FILE_KINDS`)."""
    if fmt.dtype.kind == "U" and fmt.ndim == 0 and str(fmt) == expected:
        return
    shown = str(fmt) if fmt.dtype.kind == "U" and fmt.ndim == 0 else f"{fmt.dtype} array of shape {fmt.shape}"
    if not isinstance(zf, ArchiveView):  # (a member of an OCR model file is read by the kind its file names)
        for prefix, (what, loader) in MODEL_FILE_KINDS.items():
            if shown.startswith(prefix) and not expected.startswith(prefix):
                raise ModelFileError(f"{path}: {what} ({shown}), which {reader} does not read: load it with "
                                     f"{loader}")
    raise ModelFileError(f"{path}: unknown model format {shown!r} ({reader} reads {expected!r})")


def model_members(path, zf, members, fmt, reader, what, hint, optional=()) -> dict:
    """{name: ZipInfo} of a model file's members (:func:`find_members` of ``members`` and ``optional``): its
    'format' checked first against ``fmt`` (another kind of model file lacks this kind's members, and says
    so), then every one of ``members`` required, a ModelFileError ``not {what} (missing [...]); {hint}``
    otherwise."""
    infos = find_members(zf, tuple(members) + tuple(optional))
    if "format" in infos:
        check_format(path, zf, read_small_member(path, zf, infos["format"], "format"), fmt, reader)
    missing = [n for n in members if n not in infos]
    if missing:
        raise ModelFileError(f"{path}: not {what} (missing {missing}); {hint}")
    return infos


def model_dtype(path, dtype) -> np.dtype:
    """The dtype of the model whose ``theta`` a file stores as ``dtype``: itself in native byte order, float32
    for half precision (``save(storage='float16')``); a ModelFileError for anything but float16/32/64."""
    if dtype.kind != "f" or dtype.itemsize not in (2, 4, 8) or dtype.shape != ():
        raise ModelFileError(f"{path}: the parameters must be finite float16, float32 or float64 values, but "
                             f"'theta' holds {dtype}")
    return np.dtype(np.float32) if dtype.itemsize == 2 else dtype.newbyteorder("=")


def read_parameters(path, zf, stream, dtype, model):
    """Fill ``model.theta`` (allocated, of :func:`model_dtype`) from the open 'theta' ``stream`` holding
    ``dtype`` values, and ``model.meta`` from the archive ``zf``; refuse NaN or infinite parameters."""
    half = dtype.itemsize == 2
    stored = np.empty(model.theta.size, np.float16) if half else model.theta
    read_member_exactly(path, stream, memoryview(stored).cast("B"), member_label(zf, "theta"))
    if not dtype.isnative:
        stored.byteswap(inplace=True)
    if half:
        model.theta[...] = stored
    model.meta = read_meta(path, zf)
    if not F.all_finite(model.theta):
        raise ModelFileError(f"{path}: the parameters must be finite float32 or float64 values, but 'theta' "
                             "holds NaN or inf")
    return model


def model_file_path(path) -> Path:
    """The file a save to ``path`` writes: ``path`` with ``.npz`` appended unless it ends in ``.npz``
    ('m' -> 'm.npz', 'm.model' -> 'm.model.npz'); a load of a missing ``path`` reads this one."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(".npz")
    return path


def write_model_file(path, members, *, overwrite=False) -> Path:
    """``np.savez`` of ``members`` (name -> array) to ``path`` atomically (see :meth:`MLP.save`, and its
    ``overwrite`` for a read-only file); ``.npz`` is appended to a path without it, and missing folders are
    made. Returns the path written."""
    path = model_file_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb", overwrite=overwrite) as fh:
        np.savez(fh, **members)
    return path


class ArchiveView:
    """The members of an open model archive whose names start with ``prefix``, by their names without it:
    what ``from_archive`` reads when one file holds several models (``fastnn.ocr.model.OCRModel``)."""

    def __init__(self, zf, prefix):
        self.zf, self.prefix = zf, prefix

    def getinfo(self, name):
        return self.zf.getinfo(self.prefix + name)

    def open(self, info):
        return self.zf.open(info)


def member_label(zf, name) -> str:
    """How messages name the member ``name`` of ``zf``: with the prefix of an :class:`ArchiveView` ('m0/theta')."""
    return zf.prefix + name if isinstance(zf, ArchiveView) else name


def stored_parameters(theta, storage):
    """``theta`` as a model file stores it: as it is (``storage=None``) or in half precision ('float16',
    checked to be within float16's range)."""
    if storage not in (None, "float16"):
        raise ValueError(f"storage: expected None or 'float16', got {storage!r}")
    if storage == "float16":
        if not np.all(np.abs(theta) <= np.finfo(np.float16).max):
            raise ValueError("storage='float16': some parameters are beyond float16's range (65504)")
        return theta.astype(np.float16)
    return theta


def meta_member(meta) -> dict:
    """The ``meta`` member of a model file ({} for None): ``meta`` as one JSON text, checked to fit."""
    if meta is None:
        return {}
    text = json.dumps(meta, sort_keys=True, allow_nan=False)
    if len(text.encode()) > MAX_MODEL_META_BYTES // 4 - 128:  # stored as UTF-32 by NumPy
        raise ValueError(f"meta: {len(text):,} characters once encoded as JSON, too many for a model file")
    return {"meta": np.array(text)}


def read_meta(path, zf) -> dict:
    """The optional ``meta`` member (a JSON object, see :meth:`MLP.save`), or an empty dict."""
    for candidate in ("meta", "meta.npy"):
        try:
            info = zf.getinfo(candidate)
        except KeyError:
            continue
        text = read_small_member(path, zf, info, "meta")
        label = member_label(zf, "meta")
        if text.dtype.kind != "U" or text.ndim != 0:
            raise ModelFileError(f"{path}: '{label}' must be one JSON text, got a {text.dtype} array of shape "
                                 f"{text.shape}")
        try:
            meta = json.loads(str(text))
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
            raise ModelFileError(f"{path}: '{label}' is not valid JSON ({_reason(exc)})") from None
        if not isinstance(meta, dict):
            raise ModelFileError(f"{path}: '{label}' must be a JSON object, got {type(meta).__name__}")
        return meta
    return {}


def read_model_file(path, read, hint):
    """``read(path, zipfile)`` on the model file at ``path``, after the checks every model file gets.

    The path must be a regular file (FileNotFoundError as it is, a ModelFileError for a folder or a FIFO,
    which is not waited on).  A missing ``path`` without the ``.npz`` that a save appends is read as the
    file that save wrote (:func:`model_file_path`: 'm' as 'm.npz'), and messages name that file.  It is
    opened once, and its size, the check of its container before anything is decompressed
    (``check_model_container``) and ``read`` all use that open file: a save renamed over ``path`` meanwhile
    is never mixed with it, and the load gets the old model or the new one, whole.
    Every failure to read a member is a ModelFileError naming the file and the member (``open_npy_member``,
    ``read_small_member``); a damaged zip directory, or any other failure of ``read`` that is not one
    already, becomes one saying the file is damaged.  ``hint`` tells the user what file to pass instead.
    """
    path = Path(path)
    try:
        fd = _open_model_file(path, hint)
    except FileNotFoundError as exc:
        saved = model_file_path(path)
        if saved == path:
            raise  # as it is
        try:
            fd = _open_model_file(saved, hint)
        except FileNotFoundError:
            raise FileNotFoundError(exc.errno, f"{exc.strerror} (nor {saved.name}, the file a save to it writes)",
                                    str(path)) from None
        path = saved
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            what = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise ModelFileError(f"{path}: {what}, not a model file; {hint}")
        fh = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with fh:
        try:
            check_model_container(path, fh, st.st_size)
            try:
                zf = zipfile.ZipFile(fh)
            except _ZIP_DIRECTORY_ERRORS as exc:
                raise ModelFileError(f"{path}: damaged or truncated model file (its zip directory: {_reason(exc)}); "
                                     "save or copy the model again") from None
            with zf:
                return read(path, zf)
        except ModelFileError:
            raise
        except (ValueError, TypeError, KeyError, IndexError, OverflowError, EOFError, OSError, RuntimeError,
                zipfile.BadZipFile, zlib.error, struct.error) as exc:
            raise ModelFileError(f"{path}: damaged or truncated model file ({_reason(exc)}); "
                                 "save or copy the model again") from None


def _open_model_file(path, hint) -> int:
    """A read-only descriptor of ``path``: FileNotFoundError as it is, a ModelFileError for a folder."""
    try:
        return os.open(path, _O_OPEN)
    except (IsADirectoryError, PermissionError):
        if os.path.isdir(path):  # (Windows does not open a folder)
            raise ModelFileError(f"{path}: a folder, not a model file; {hint}") from None
        raise


def _reason(exc) -> str:
    """An exception as a clause of a ModelFileError: one line, its type unless a ValueError, at most
    ``_REASON_CHARS`` of its text."""
    text = " ".join(str(exc).split())
    if len(text) > _REASON_CHARS:
        text = text[:_REASON_CHARS - 3] + "..."
    if text and isinstance(exc, ValueError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@contextlib.contextmanager
def _member_errors(path, name):
    """Turn a failure to read or decompress the member ``name`` into a ModelFileError naming it and the file."""
    try:
        yield
    except ModelFileError:
        raise
    except _ZIP_READ_ERRORS as exc:
        raise ModelFileError(f"{path}: '{name}' is damaged ({_reason(exc)}); save or copy the model again") from None


def max_params_limit(max_params) -> int:
    """The parameter limit of MLP.load: the argument, else $FASTNN_MAX_MODEL_PARAMS, else MAX_MODEL_PARAMS."""
    if max_params is None:
        value = os.environ.get(MAX_PARAMS_ENV, "").strip()
        if not value:
            return MAX_MODEL_PARAMS
        try:
            limit = int(value)
        except ValueError:
            limit = 0
        if limit < 1:
            raise ValueError(f"${MAX_PARAMS_ENV}: expected a positive whole number of parameters, got {value!r}")
        return limit
    if isinstance(max_params, bool) or not isinstance(max_params, numbers.Integral) or max_params < 1:
        raise ValueError(f"max_params: expected a positive whole number of parameters, got {max_params!r}")
    return int(max_params)


def check_model_container(path, fh, file_size) -> None:
    """Refuse, with a message saying what the file is, anything but a zip whose directory is small."""
    head = fh.read(len(_NPY_MAGIC))
    if head.startswith(_NPY_MAGIC):
        raise ModelFileError(f"{path}: this is a .npy file (a single NumPy array), not a model; {_SAVE_HINT}")
    if not head.startswith(_ZIP_MAGIC):
        sample = head + fh.read(506)
        if not head:
            what = "the file is empty"
        elif head.startswith(b"\x80"):
            what = "it looks like Python pickle data, which fastnn never loads"
        elif _looks_like_text(sample):
            what = "it is a text file, not a zip archive"
        else:
            what = "it is not a zip archive"
        raise ModelFileError(f"{path}: not a fastnn model file ({what}); {_SAVE_HINT}")
    # The zip directory is read into memory whole by zipfile: find its size where zipfile will, first.
    tail_len = min(file_size, 22 + (1 << 16))  # as zipfile looks for it
    fh.seek(file_size - tail_len)
    tail = fh.read(tail_len)
    end = len(tail) - 22 if tail[-22:-18] == b"PK\x05\x06" and tail[-2:] == b"\0\0" else tail.rfind(b"PK\x05\x06")
    if end < 0 or len(tail) - end < 22:
        raise ModelFileError(f"{path}: damaged or truncated model file (no zip directory at its end); save or copy "
                             "the model again")
    directory = struct.unpack("<L", tail[end + 12:end + 16])[0]
    where = file_size - tail_len + end  # the zip64 records, if any, are just before the end record
    if where >= 20:
        fh.seek(where - 20)
        locator = fh.read(20)
        if locator[:4] == b"PK\x06\x07":
            spots = [where - 20 - 56, struct.unpack("<Q", locator[8:16])[0]]
            for spot in spots:
                if 0 <= spot <= file_size - 56:
                    fh.seek(spot)
                    record = fh.read(56)
                    if record[:4] == b"PK\x06\x06":
                        directory = max(directory, struct.unpack("<Q", record[40:48])[0])
    if directory > MAX_ZIP_DIRECTORY_BYTES:
        raise ModelFileError(f"{path}: not a fastnn model file (its zip directory is {directory:,} bytes, more than "
                             f"MAX_ZIP_DIRECTORY_BYTES = {MAX_ZIP_DIRECTORY_BYTES:,}); {_SAVE_HINT}")
    fh.seek(0)


def _looks_like_text(sample: bytes) -> bool:
    if b"\0" in sample:
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(sample) - 3  # a character cut at the end of the sample
    return True


def open_npy_member(path, zf, info, name):
    """Parse the .npy header of zip member ``info`` (named ``name`` in ``zf``) and check the member's stored
    size against it.

    Returns (shape, dtype, stream): ``stream`` is positioned at the first data byte, and the member holds
    exactly ``prod(shape) * dtype.itemsize`` data bytes (checked against ``ZipInfo.file_size`` before any
    data is decompressed).  Object (pickled) arrays are refused here, and any failure to read or parse the
    header is a ModelFileError naming the member.
    """
    name = member_label(zf, name)
    if info.flag_bits & 0x1:
        raise ModelFileError(f"{path}: '{name}' is encrypted; {_SAVE_HINT}")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ModelFileError(f"{path}: '{name}' uses zip compression method {info.compress_type}; fastnn reads "
                             "stored or deflated members only")
    with _member_errors(path, name):
        stream = zf.open(info)
    try:
        with _member_errors(path, name):
            head = BytesIO(stream.read(min(info.file_size, _NPY_HEADER_READ)))
        try:
            version = npy_format.read_magic(head)
            if version == (1, 0):
                shape, _fortran, dtype = npy_format.read_array_header_1_0(head)
            elif version == (2, 0):
                shape, _fortran, dtype = npy_format.read_array_header_2_0(head)
            else:
                raise ValueError(f".npy format version {version} is not supported")
        except _NPY_HEADER_ERRORS as exc:
            raise ModelFileError(f"{path}: '{name}' is not a readable NumPy array ({_reason(exc)}); "
                                 f"{_SAVE_HINT}") from None
        if dtype.hasobject:
            raise ModelFileError(f"{path}: '{name}' holds Python objects (pickled data), which fastnn never loads; "
                                 f"{_SAVE_HINT}")
        if min(shape, default=0) < 0 or dtype.itemsize == 0:
            what = "a negative length" if min(shape, default=0) < 0 else "elements of no size"
            raise ModelFileError(f"{path}: '{name}' declares a {dtype} array of shape {shape}, with {what}; the "
                                 "file is damaged or was not written by fastnn")
        data_bytes = math.prod(shape) * dtype.itemsize
        offset = head.tell()
        if info.file_size != offset + data_bytes:
            raise ModelFileError(f"{path}: '{name}' declares a {dtype} array of shape {shape} ({data_bytes:,} "
                                 f"bytes), but the member holds {max(info.file_size - offset, 0):,} bytes of data; "
                                 "the file is damaged or was not written by fastnn")
        return shape, dtype, _Rest(head.read(), stream)
    except BaseException:
        stream.close()
        raise


class _Rest:
    """The data of a .npy member: what was read with its header, then the rest of the zip stream."""

    def __init__(self, first, stream):
        self._first, self._stream = first, stream

    def read(self, n):
        if self._first:
            out, self._first = self._first[:n], self._first[n:]
            return out
        return self._stream.read(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._stream.close()


def read_member_exactly(path, stream, buf, name) -> None:
    """Fill ``buf`` (a byte memoryview) from ``stream`` in bounded chunks; the zip checks its CRC at the end.
    Any failure is a ModelFileError naming the member ``name``."""
    with _member_errors(path, name):
        pos = 0
        while pos < len(buf):
            chunk = stream.read(min(_READ_CHUNK, len(buf) - pos))
            if not chunk:
                raise ModelFileError(f"{path}: '{name}' ends after {pos:,} of {len(buf):,} bytes; the file is "
                                     "truncated")
            buf[pos:pos + len(chunk)] = chunk
            pos += len(chunk)
        if stream.read(1):
            raise ModelFileError(f"{path}: '{name}' holds more data than its header declares; the file is damaged")


def read_small_member(path, zf, info, name) -> np.ndarray:
    """Read one of the small members (format, sizes, activations, loss, meta...), at most
    MAX_MODEL_META_BYTES; text holding a code unit that is no Unicode character is refused."""
    label = member_label(zf, name)
    if info.file_size > MAX_MODEL_META_BYTES:
        raise ModelFileError(f"{path}: '{label}' is {info.file_size:,} bytes, more than MAX_MODEL_META_BYTES = "
                             f"{MAX_MODEL_META_BYTES:,} (a real one is a few hundred); {_SAVE_HINT}")
    shape, dtype, stream = open_npy_member(path, zf, info, name)
    with stream:
        if dtype.names is not None or dtype.subdtype is not None:
            raise ModelFileError(f"{path}: '{label}' has the structured dtype {dtype}; {_SAVE_HINT}")
        data = bytearray(math.prod(shape) * dtype.itemsize)
        read_member_exactly(path, stream, memoryview(data), label)
    if dtype.kind == "U":
        _check_characters(path, data, dtype, label)
    return np.frombuffer(bytes(data), dtype=dtype).reshape(shape)


def _check_characters(path, data, dtype, name) -> None:
    """Refuse the text of a 'U' member (UTF-32 code units) that holds a code unit above U+10FFFF or a surrogate:
    NumPy would make a broken Python string of it, on which ``json.loads`` raises SystemError."""
    units = np.frombuffer(data, dtype=np.dtype(np.uint32).newbyteorder(dtype.byteorder))
    bad = (units > 0x10FFFF) | ((units >= 0xD800) & (units <= 0xDFFF))
    if bad.any():
        raise ModelFileError(f"{path}: '{name}' holds U+{int(units[bad][0]):04X}, which is not a character; the "
                             "file is damaged or was not written by fastnn")
