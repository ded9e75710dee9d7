"""Read photographed pages of handwritten block capitals and digits.

The pipeline has four stages, each a public function:

1. :func:`find_letters` -- photo to character boxes and a binary ink image,
2. :func:`group_lines` -- boxes to lines and words, in reading order,
3. :func:`crop_characters` -- binary image and boxes to classifier inputs in
   the hw36 / NIST36 layout (32x32, dark ink on white, stored transposed),
4. :func:`read_text` -- the whole pipeline with any classifier that has
   ``predict_proba(X) -> (n, 36)``.

:func:`cer` scores a transcription, :func:`load_image` reads a photo safely
and :func:`draw_boxes` saves a picture of the segmentation.

Boxes are ``[y1, x1, y2, x2]`` with the end coordinates exclusive, the same
convention as ``skimage.measure.regionprops(...).bbox``.

Limits
------
:func:`load_image` keeps its memory bounded whatever a file declares. Each
limit is a module constant, overridable by an environment variable holding a
whole number of pixels (read on every call):

* :data:`MAX_IMAGE_PIXELS` (``FASTNN_MAX_IMAGE_PIXELS``, default 500,000,000):
  the largest width x height a file may declare; a larger one is refused
  from its header, before anything is decoded.
* :data:`MAX_DECODED_PIXELS` (``FASTNN_MAX_DECODED_PIXELS``, default
  100,000,000): the most pixels decoded at once, about 4 bytes each; a larger
  baseline JPEG is decoded at 1/2, 1/4 or 1/8 of its size, any other larger
  image (PNG, TIFF, progressive JPEG...) is refused.
* :data:`MAX_LOADED_PIXELS` (``FASTNN_MAX_LOADED_PIXELS``, default
  50,000,000): the largest image returned; a larger one is downscaled by an
  integer factor.

Pillow's own guard, ``PIL.Image.MAX_IMAGE_PIXELS``, is never changed (it is
process-wide). :func:`find_letters` works on a copy whose longer side is
``work_size`` (1600) pixels; an image too thin for that copy to be at least 8
pixels on its shorter side holds no readable characters and gives none, with
a warning, instead of being processed at full size.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

__all__ = [
    "CLASSES",
    "MAX_IMAGE_PIXELS",
    "MAX_DECODED_PIXELS",
    "MAX_LOADED_PIXELS",
    "OCRResult",
    "load_image",
    "find_letters",
    "group_lines",
    "crop_characters",
    "recrop_rows",
    "read_text",
    "cer",
    "levenshtein",
    "draw_boxes",
]

#: Label order of the 36 classes (hw36 / NIST36 one-hot columns).
CLASSES = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

#: Largest image :func:`load_image` accepts, in pixels: the width times the height a file declares in
#: its header. A larger one is refused before a single pixel is decoded (a 1 KB PNG can declare
#: 100000x100000 pixels). Override with the environment variable ``FASTNN_MAX_IMAGE_PIXELS``.
MAX_IMAGE_PIXELS = 500_000_000
#: Most pixels :func:`load_image` decodes into memory at once (about 4 bytes each). A larger image is
#: decoded at reduced size where the format allows it (a baseline JPEG at 1/2, 1/4 or 1/8 of each
#: side) and refused otherwise. Override with ``FASTNN_MAX_DECODED_PIXELS``.
MAX_DECODED_PIXELS = 100_000_000
#: Largest image :func:`load_image` returns, in pixels: a larger one is downscaled by an integer
#: factor until it fits. Override with ``FASTNN_MAX_LOADED_PIXELS``.
MAX_LOADED_PIXELS = 50_000_000
_WORK_SIZE = 1600  # longer side of find_letters' working copy, in pixels
_MIN_WORK_SIDE = 8  # a working copy with a shorter side holds no characters
_CROP = 32  # classifier input side
_GLYPH = 20  # longer side of the glyph inside the crop (hw36: ~20 of 32)
_STROKE = 2.6  # target minimum stroke width inside the 32x32 crop, pixels
_SUPER = 4  # crops are drawn at this supersampling factor, then averaged


# --------------------------------------------------------------------------
# loading and colour handling
# --------------------------------------------------------------------------
def load_image(path):
    """Read an image file into an array, refusing anything that is not one.

    The size the file declares in its header is checked before anything is
    decoded, against limits that keep the memory bounded (see the module
    docstring for their environment variables):

    * a file declaring more than :data:`MAX_IMAGE_PIXELS` pixels is refused;
    * at most :data:`MAX_DECODED_PIXELS` pixels are decoded: a larger baseline
      JPEG is decoded directly at 1/2, 1/4 or 1/8 of its size, any other
      larger image (PNG, TIFF, progressive JPEG...) is refused;
    * the result has at most :data:`MAX_LOADED_PIXELS` pixels: a larger image
      is downscaled by an integer factor until it fits (block mean; every
      factor-th pixel for the formats only imageio reads).

    Pillow's own decompression-bomb guard (``PIL.Image.MAX_IMAGE_PIXELS``) is
    left as it is: the header is read without going through it, so other
    threads keep their protection. EXIF orientation is applied (phone photos
    are often stored sideways).

    Parameters
    ----------
    path : str or os.PathLike
        Image file (anything Pillow or imageio can read).

    Returns
    -------
    image : (H, W) or (H, W, C) ndarray
        The pixels, in the file's own dtype (uint8, uint16, float...).

    Raises
    ------
    ValueError
        If the file is missing, a directory, not an image, truncated, or
        larger than the limits allow. The message names the file and, for a
        refused size, the declared size, the limit and how to change it.

    Examples
    --------
    >>> img = load_image("page.jpg")  # doctest: +SKIP
    >>> img.shape, img.dtype  # doctest: +SKIP
    ((3024, 4032, 3), dtype('uint8'))
    """
    path = os.fspath(path)
    limits = _Limits.from_environment()
    problem = _not_a_file(path)
    if problem:
        raise ValueError(f"cannot read image {path!r}: {problem}")
    try:
        return _load_with_pillow(path, limits)
    except _NotPillow:
        pass
    except _Refused as exc:
        raise ValueError(f"cannot read image {path!r}: {exc}") from None
    except MemoryError:
        raise ValueError(
            f"cannot read image {path!r}: out of memory while decoding it; set FASTNN_MAX_DECODED_PIXELS "
            f"below {limits.decoded} to decode large images at reduced size or refuse them"
        ) from None
    except Exception as exc:  # truncated, corrupt, decompression errors
        from PIL import Image

        if isinstance(exc, Image.DecompressionBombError):  # some plugins (GIF, TIFF) apply Pillow's guard
            raise ValueError(
                f"cannot read image {path!r}: Pillow's own limit, PIL.Image.MAX_IMAGE_PIXELS="
                f"{Image.MAX_IMAGE_PIXELS}, refuses it ({_describe(exc)})"
            ) from exc
        raise ValueError(f"cannot read image {path!r}: {_describe(exc)}") from exc
    try:
        return _load_with_imageio(path, limits)
    except _Refused as exc:
        raise ValueError(f"cannot read image {path!r}: {exc}") from None
    except MemoryError:
        raise ValueError(f"cannot read image {path!r}: out of memory while decoding it") from None


class _NotPillow(Exception):
    pass


class _Refused(Exception):
    """load_image refuses the file; the message says why (without the file name)."""


@dataclass(frozen=True)
class _Limits:
    """The three pixel limits of :func:`load_image`, with their environment overrides applied."""

    image: int = MAX_IMAGE_PIXELS
    decoded: int = MAX_DECODED_PIXELS
    loaded: int = MAX_LOADED_PIXELS

    @classmethod
    def from_environment(cls):
        return cls(
            _env_pixels("FASTNN_MAX_IMAGE_PIXELS", MAX_IMAGE_PIXELS),
            _env_pixels("FASTNN_MAX_DECODED_PIXELS", MAX_DECODED_PIXELS),
            _env_pixels("FASTNN_MAX_LOADED_PIXELS", MAX_LOADED_PIXELS),
        )


def _env_pixels(name, default):
    """A pixel count from the environment variable ``name``, else ``default``."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        value = float("nan")
    if not (np.isfinite(value) and value >= 1 and value == int(value)):
        raise ValueError(f"{name}={text!r}: expected a whole number of pixels, at least 1 (the default is {default})")
    return int(value)


def _megapixels(n):
    mp = n / 1e6
    return f"{mp:,.0f} megapixels" if mp >= 10 else f"{mp:.2g} megapixels"


def _not_a_file(path):
    """Why ``path`` cannot be an image file, or None."""
    if os.path.isdir(path):
        return "it is a directory, not an image file"
    if not os.path.exists(path):
        return "no such file (a broken symbolic link)" if os.path.islink(path) else "no such file"
    if not os.path.isfile(path):
        return "not a regular file (a device, pipe or socket), so not an image file"
    if os.path.getsize(path) == 0:
        return "not an image file: the file is empty"
    return None


def _describe(exc):
    """An exception as a message that is never empty."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _not_an_image(path, readers, detail=""):
    """The message for a file no reader recognises: what it holds instead, when that is easy to tell."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        return f"cannot open it ({_describe(exc)})"
    ext = os.path.splitext(os.fsdecode(path))[1]
    named = f" despite its {ext!r} name" if ext else ""
    if not head:
        what = "the file is empty"
    elif b"\0" not in head and _is_text(head):
        what = f"it holds text, not image data{named}"
    else:
        what = f"its contents are in no image format {readers} can read{named}"
    return f"not an image file: {what}" + (f" ({detail})" if detail else "")


def _is_text(head):
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut off at the end
            return False
    return True


def _reduction_factor(n_pixels, limit):
    """Smallest integer factor f with n_pixels / f**2 <= limit."""
    factor = max(1, int(np.sqrt(n_pixels / limit)))
    while n_pixels / factor**2 > limit:
        factor += 1
    return factor


def _open_header(fp, path):
    """Identify an image file and read its header, the way ``PIL.Image.open`` does, minus its bomb check.

    ``Image.open`` refuses (or warns about) large images by comparing the declared size with the
    process-wide ``PIL.Image.MAX_IMAGE_PIXELS``; load_image checks the declared size itself, with its
    own limits, so it must see the header of any image without switching that guard off (another
    thread may be opening a file at the same time). A JPEG is opened as a plain JPEG (its first
    picture) even when it carries further MPO pictures. Returns None when no plugin knows the file.
    """
    import struct

    from PIL import Image, JpegImagePlugin

    try:
        registry_ok = isinstance(Image.ID, list) and isinstance(Image.OPEN, dict)
    except AttributeError:
        registry_ok = False
    if not registry_ok:  # a Pillow without the plugin registry: go through the guard
        try:
            return Image.open(fp)
        except Image.UnidentifiedImageError:
            return None
    prefix = fp.read(16)
    tried = set()
    for loader in (Image.preinit, Image.init):
        loader()
        for fmt in list(Image.ID):
            if fmt in tried:
                continue
            tried.add(fmt)
            factory, accept = Image.OPEN[fmt]
            if fmt == "JPEG":
                factory = JpegImagePlugin.JpegImageFile
            try:
                verdict = True if accept is None else accept(prefix)
                if not verdict or isinstance(verdict, str):  # a str: the format, but unsupported
                    continue
                fp.seek(0)
                return factory(fp, path)
            except (SyntaxError, IndexError, TypeError, struct.error):
                continue
    return None


def _jpeg_needs_whole_image(img, fp):
    """True when libjpeg must hold the whole image's coefficients (2 bytes per sample) to decode it.

    That is the case for a progressive JPEG and for a sequential one whose first scan does not hold
    every component: decoding it at reduced size saves no memory.
    """
    if img.info.get("progressive") or img.info.get("progression"):
        return True
    layers = getattr(img, "layers", None)
    if not layers:
        return False
    where = fp.tell()
    try:
        fp.seek(0)
        data = fp.read(1 << 20)  # the headers before the first scan
    finally:
        fp.seek(where)
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return False
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = (data[i + 2] << 8) | data[i + 3]
        if marker == 0xDA:  # start of scan: the number of components in it
            return i + 4 < len(data) and data[i + 4] < layers
        i += 2 + length
    return False


def _load_with_pillow(path, limits):
    with open(path, "rb") as fp:
        img = _open_header(fp, path)
        if img is None:
            raise _NotPillow()
        try:
            return _decode_with_pillow(img, fp, limits)
        finally:
            img.close()


def _decode_with_pillow(img, fp, limits):
    """Check the declared size against the limits, then decode (at reduced size where possible)."""
    from PIL import ImageOps

    w, h = img.size
    n = w * h
    if w < 1 or h < 1:
        raise _Refused(f"it declares an empty image of {w}x{h} pixels")
    if n > limits.image:
        raise _Refused(
            f"it declares {w}x{h} pixels ({_megapixels(n)}), over the limit of {_megapixels(limits.image)} "
            f"(FASTNN_MAX_IMAGE_PIXELS={limits.image}); nothing was decoded. If the picture really is that "
            "large, save a smaller copy or raise FASTNN_MAX_IMAGE_PIXELS"
        )
    out_factor = _reduction_factor(n, limits.loaded)
    decode_factor = _reduction_factor(n, limits.decoded)
    if max(out_factor, decode_factor) > 1:
        # decode at reduced size where the format can (JPEG: 1/2, 1/4 or 1/8 of each side); a scale
        # that must get under the decoding limit is rounded up to one libjpeg offers
        need = 1 << int(np.ceil(np.log2(decode_factor))) if decode_factor > 1 else 1
        step = max(out_factor, need)
        img.draft(img.mode, (max(w // step, 1), max(h // step, 1)))
    dw, dh = img.size
    whole = img.format in ("JPEG", "MPO") and _jpeg_needs_whole_image(img, fp)
    cost = n if whole else dw * dh
    if cost > limits.decoded:
        if whole:
            why = "as a progressive or multi-scan JPEG it needs its full size in memory to decode"
        elif (dw, dh) != (w, h):
            why = f"even at the smallest size its format allows, {dw}x{dh}, it is too large to decode"
        else:
            why = f"{img.format or 'its format'} cannot be decoded at reduced size"
        raise _Refused(
            f"it is {w}x{h} pixels ({_megapixels(n)}) and {why}: over the decoding limit of "
            f"{_megapixels(limits.decoded)} (FASTNN_MAX_DECODED_PIXELS={limits.decoded}, about 4 bytes a pixel); "
            "save a smaller copy (or a baseline JPEG), or raise FASTNN_MAX_DECODED_PIXELS"
        )
    img.load()
    factor = _reduction_factor(dw * dh, limits.loaded)
    sixteen = img.mode.startswith("I;16")
    if factor > 1:
        small = _reduced(img, factor)
        img.close()  # frees the full-size pixels
        img = small
    img = ImageOps.exif_transpose(img)
    if img.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV"):
        img = img.convert("RGBA" if "A" in img.mode or "transparency" in img.info else "RGB")
    elif img.mode == "1":
        img = img.convert("L")
    image = np.asarray(img)
    if sixteen and image.dtype != np.uint16:
        image = image.astype(np.uint16)
    if image.ndim not in (2, 3) or image.size == 0:
        raise _Refused(f"unsupported image shape {image.shape}")
    return image


def _reduced(img, factor):
    """``img.reduce(factor)`` (block mean) for every mode, colours averaged, never palette indices."""
    if img.mode == "1":
        img = img.convert("L")
    elif img.mode in ("P", "PA"):
        img = img.convert("RGBA" if "A" in img.mode or "transparency" in img.info else "RGB")
    elif img.mode.startswith("I;16"):
        img = img.convert("I")
    return img.reduce(factor)


def _load_with_imageio(path, limits):
    """Formats Pillow does not know, through imageio: the size from the header first where the plugin can."""
    try:
        import imageio.v3 as iio
    except ImportError:
        raise _Refused(_not_an_image(path, "Pillow")) from None
    try:
        props = iio.improps(path, index=0)
    except Exception as exc:
        raise _Refused(_not_an_image(path, "Pillow or imageio", _imageio_detail(exc))) from None
    shape = tuple(props.shape[1:] if props.is_batch else props.shape)
    if len(shape) not in (2, 3) or 0 in shape:
        raise _Refused(f"unsupported image shape {shape}")
    h, w = shape[:2]
    n = h * w
    if n > limits.image:
        raise _Refused(
            f"it declares {w}x{h} pixels ({_megapixels(n)}), over the limit of {_megapixels(limits.image)} "
            f"(FASTNN_MAX_IMAGE_PIXELS={limits.image}); nothing was decoded"
        )
    nbytes = int(np.prod(shape)) * np.dtype(props.dtype).itemsize
    if n > limits.decoded or nbytes > 4 * limits.decoded:
        raise _Refused(
            f"it is {w}x{h} pixels of {np.dtype(props.dtype).name} ({nbytes / 1e6:,.0f} MB), which imageio can "
            f"only decode at full size: over the decoding limit of {_megapixels(limits.decoded)} at 4 bytes a "
            f"pixel (FASTNN_MAX_DECODED_PIXELS={limits.decoded}); save a smaller copy or raise the limit"
        )
    try:
        image = np.asarray(iio.imread(path, index=0))
    except MemoryError:
        raise
    except Exception as exc:
        raise _Refused(f"imageio could not decode it ({_imageio_detail(exc)})") from None
    if image.ndim not in (2, 3) or image.size == 0:
        raise _Refused(f"unsupported image shape {image.shape}")
    factor = _reduction_factor(image.shape[0] * image.shape[1], limits.loaded)
    return image[::factor, ::factor].copy() if factor > 1 else image


def _imageio_detail(exc):
    """imageio's message, without its advice to install plugins for other kinds of files (video...)."""
    text = str(exc)
    if "Could not find a backend" in text:
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip() and "pip install" not in line]
    return lines[0] if lines else type(exc).__name__


def _as_image(image):
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (2, 3, 4)):
        raise ValueError(
            f"expected a (H, W) grayscale, (H, W, 3) RGB or (H, W, 4) RGBA image, got shape {image.shape}"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"empty image of shape {image.shape}")
    return image


def _scale_of(image):
    """Value that means 'white' for this image's dtype."""
    if image.dtype == bool:
        return 1.0
    if np.issubdtype(image.dtype, np.integer):
        if image.dtype.itemsize == 1:
            return float(np.iinfo(image.dtype).max)
        hi = float(image.max()) if image.size else 1.0
        # 16-bit files often hold 12-bit data; use the dtype's range only
        # when the data need it.
        return float(np.iinfo(image.dtype).max) if hi > 4095 else max(hi, 1.0)
    hi = float(np.nanmax(image)) if image.size else 1.0
    return 1.0 if hi <= 1.0 else hi


def _downscaled_gray(image, factor):
    """Block-mean downscale by an integer factor, then gray in [0, 1] (float32).

    Averaging before the colour conversion keeps the full-size float copy
    (the memory and time hog on a 12 MP photo) from ever being made.
    """
    scale = _scale_of(image)
    h, w = image.shape[:2]
    hh, ww = max(h // factor, 1), max(w // factor, 1)
    if factor > 1 and h >= factor and w >= factor:
        # strided sums instead of a reshape-mean: numpy reduces tiny inner
        # axes slowly, these f*f adds are ~10x faster on a 12 MP photo
        small = np.zeros((hh, ww) + image.shape[2:], np.float32)
        for dy in range(factor):
            for dx in range(factor):
                small += image[dy : hh * factor : factor, dx : ww * factor : factor]
        small /= np.float32(scale * factor * factor)
    else:
        small = image.astype(np.float32)
        small /= np.float32(scale)
    if small.dtype.kind == "f" and not np.issubdtype(image.dtype, np.integer):
        np.nan_to_num(small, copy=False, nan=1.0)
    if small.ndim == 3:
        c = small.shape[2]
        if c in (2, 4):  # composite the alpha channel onto white paper
            alpha = small[:, :, -1:]
            small = small[:, :, :-1] * alpha + (1.0 - alpha)
        if small.shape[2] == 3:
            small = small @ np.array([0.2125, 0.7154, 0.0721], np.float32)
        else:
            small = small[:, :, 0]
    return np.clip(small, 0.0, 1.0, out=small)


# --------------------------------------------------------------------------
# stage 1: find the characters
# --------------------------------------------------------------------------
def _ink_darkness(gray):
    """Relative darkness 1 - gray / background; ink > 0, paper ~ 0.

    The background (paper under its lighting, shadows included) is the
    local maximum over a window much wider than a pen stroke, taken on a
    coarse copy and smoothed.
    """
    h, w = gray.shape
    f = max(1, int(round(max(h, w) / 200)))
    fy, fx = min(f, h), min(f, w)  # a thin copy: blocks no taller (wider) than the image
    hh, ww = h // fy, w // fx
    coarse = gray[: hh * fy, : ww * fx].reshape(hh, fy, ww, fx).mean(axis=(1, 3)) if f > 1 else gray
    win = 7  # ~ 1/30 of the page: wider than any stroke, narrower than shadows
    bg = ndi.maximum_filter(coarse, size=win, mode="nearest")
    bg = ndi.uniform_filter(bg, size=win, mode="nearest")
    bg = ndi.zoom(bg, (h / bg.shape[0], w / bg.shape[1]), order=1, mode="nearest", grid_mode=True)
    bg = bg[:h, :w]
    if bg.shape != gray.shape:
        bg = np.pad(bg, ((0, h - bg.shape[0]), (0, w - bg.shape[1])), mode="edge")
    np.maximum(bg, 1e-3, out=bg)
    dark = 1.0 - gray / bg
    return np.clip(dark, 0.0, 1.0, out=dark)


def _thresholds(dark):
    """High and low hysteresis thresholds from the darkness histogram."""
    from skimage.filters import threshold_otsu

    med = float(np.median(dark))
    sigma = 1.4826 * float(np.median(np.abs(dark - med))) + 1e-4
    floor = max(med + 8.0 * sigma, 0.08)  # clearly above paper noise
    sample = dark[dark > floor]
    if sample.size < 50:
        return None
    high = max(float(threshold_otsu(sample)) * 0.8, floor * 1.5)
    # Faint parts of real strokes are kept when connected to strong ones.
    low = max(0.45 * high, floor)
    return high, low


def _components(binary):
    lab, n = ndi.label(binary, structure=np.ones((3, 3), bool))
    if n == 0:
        return lab, np.zeros((0, 4), np.int64), np.zeros(0, np.int64)
    objs = ndi.find_objects(lab)
    boxes = np.array([[s[0].start, s[1].start, s[0].stop, s[1].stop] for s in objs], np.int64)
    areas = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    return lab, boxes, areas


def _weighted_median(values, weights):
    order = np.argsort(values)
    cw = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cw, 0.5 * cw[-1])])


def _typical_size(boxes, areas):
    """Character size (longer box side), robust to specks and big blobs."""
    if len(boxes) == 0:
        return 0.0
    size = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]).astype(float)
    t = _weighted_median(size, areas.astype(float))
    for _ in range(2):
        keep = (size > 0.3 * t) & (size < 3.0 * t)
        if not keep.any():
            break
        t = _weighted_median(size[keep], areas[keep].astype(float))
    return t


def _merge_pieces(boxes, areas, typical):
    """Join components that are pieces of one character.

    Two pieces are joined when they overlap strongly in x (half the narrower
    width), are vertically close (gap under a third of the typical size)
    and the union is not taller than a character should be.
    """
    boxes = boxes.copy()
    areas = areas.astype(float).copy()
    alive = np.ones(len(boxes), bool)
    changed = True
    while changed:
        changed = False
        idx = np.flatnonzero(alive)
        order = idx[np.argsort(-areas[idx])]
        for i in order:
            if not alive[i]:
                continue
            b = boxes[i]
            others = np.flatnonzero(alive)
            others = others[others != i]
            if others.size == 0:
                break
            o = boxes[others]
            ov_x = np.minimum(b[3], o[:, 3]) - np.maximum(b[1], o[:, 1])
            narrow = np.minimum(b[3] - b[1], o[:, 3] - o[:, 1])
            gap_y = np.maximum(b[0], o[:, 0]) - np.minimum(b[2], o[:, 2])
            top = np.minimum(b[0], o[:, 0])
            bot = np.maximum(b[2], o[:, 2])
            union_h = bot - top
            union_w = np.maximum(b[3], o[:, 3]) - np.minimum(b[1], o[:, 1])
            ok = (
                (ov_x >= 0.5 * narrow)
                & (gap_y <= 0.35 * typical)
                & (union_h <= 1.5 * typical)
                & (union_w <= 1.5 * typical)
            )
            for j in others[ok]:
                bj = boxes[j]
                # a union that is much taller than either part stacks two
                # characters of neighbouring lines: keep those apart
                hi, hj = b[2] - b[0], bj[2] - bj[0]
                uh = max(b[2], bj[2]) - min(b[0], bj[0])
                if uh > 1.15 * (hi + hj) and min(hi, hj) > 0.5 * typical:
                    continue
                b = np.array([min(b[0], bj[0]), min(b[1], bj[1]), max(b[2], bj[2]), max(b[3], bj[3])])
                areas[i] += areas[j]
                alive[j] = False
                changed = True
            boxes[i] = b
    return boxes[alive], areas[alive]


def _remove_long_lines(binary, typical):
    """Drop straight ruled/grid lines: runs much longer than a character."""
    length = int(max(3, round(2.5 * typical)))
    horiz = ndi.binary_opening(binary, structure=np.ones((1, length), bool))
    vert = ndi.binary_opening(binary, structure=np.ones((length, 1), bool))
    lines = horiz | vert
    if not lines.any():
        return binary
    lines = ndi.binary_dilation(lines, structure=np.ones((3, 3), bool))
    return binary & ~lines


def find_letters(image, *, work_size=_WORK_SIZE):
    """Find every handwritten character in a photographed page.

    The photo is block-averaged down to a working copy whose longer side is
    about ``work_size`` pixels and turned to gray. The paper's brightness
    (lighting gradients, shadows) is estimated with a wide maximum filter
    and divided out, which leaves relative ink darkness. A light Gaussian
    removes paper texture and JPEG noise; hysteresis
    thresholding (the high level from Otsu on the non-paper pixels, the low
    level a fraction of it) keeps faint stroke ends attached to the strong
    ones, and a small closing rejoins strokes broken by the pen. Connected
    components are then cleaned up with sizes *relative to the typical
    character size* of the page (area-weighted median of component sizes):

    * straight runs longer than 2.5 characters (grid and ruled lines,
      underlines) are removed,
    * pieces of one character that overlap in x and sit close above each
      other are merged,
    * punctuation-sized specks (under 0.4 of the typical size) and blobs
      over 3 times the typical size are dropped.

    Parameters
    ----------
    image : (H, W), (H, W, 3) or (H, W, 4) array_like, or str
        Grayscale, RGB or RGBA photo, dtype uint8, uint16, bool or float
        (floats in [0, 1], or in [0, 255] etc. if their maximum says so),
        or a path for :func:`load_image`. Dark ink on light paper; blue or
        black ink both work.
    work_size : int, optional
        Longer side of the working copy, in pixels. Characters should be at
        least ~12 pixels tall in it. An image so thin that the working copy
        would be under 8 pixels on its shorter side (a 20x40000 strip at the
        default) gives no boxes and a ``RuntimeWarning``; a larger
        ``work_size`` reads such a strip at a finer scale.

    Returns
    -------
    boxes : (n, 4) ndarray of int64
        ``[y1, x1, y2, x2]`` per character in the original image's
        coordinates (ends exclusive), sorted by ``y1`` then ``x1``. Use
        :func:`group_lines` for reading order.
    binary : (H, W) ndarray of float32
        Ink image at the original size: 1.0 on characters kept, 0.0
        elsewhere (specks and lines removed).

    Examples
    --------
    >>> img = np.ones((200, 300))
    >>> img[50:120, 60:68] = 0.0  # one vertical stroke: an "I"
    >>> boxes, binary = find_letters(img)
    >>> boxes.shape, binary.shape
    ((1, 4), (200, 300))
    """
    if isinstance(work_size, bool) or not isinstance(work_size, (int, float, np.integer, np.floating)) or not (
        np.isfinite(work_size) and work_size >= 1
    ):
        raise ValueError(f"work_size: expected a positive number of pixels, got {work_size!r}")
    image = _as_image(image)
    h, w = image.shape[:2]
    factor = max(1, int(np.ceil(max(h, w) / float(work_size))))
    if min(h, w) // factor < _MIN_WORK_SIDE:
        # The working copy would be under 8 pixels on its shorter side: no character fits. Say so
        # instead of working at full size (a 100000x1 strip would need gigabytes for nothing).
        warnings.warn(
            f"find_letters: the {w}x{h} image is too thin to hold characters: its working copy "
            f"(longer side work_size={work_size:g} pixels) would be under {_MIN_WORK_SIDE} pixels on "
            "its shorter side, so no letters are looked for; crop the text region, or pass a larger "
            "work_size",
            RuntimeWarning,
            stacklevel=2,
        )
        return np.zeros((0, 4), np.int64), np.zeros((h, w), np.float32)
    gray = _downscaled_gray(image, factor)
    small = _find_letters_gray(gray)
    boxes_s, binary_s = small
    # back to the original coordinates
    boxes = boxes_s * factor
    boxes[:, 2] = np.minimum(boxes[:, 2], h)
    boxes[:, 3] = np.minimum(boxes[:, 3], w)
    binary = np.zeros((h, w), np.float32)
    hh, ww = binary_s.shape
    up = binary_s.astype(np.float32)
    if factor > 1:
        up = np.repeat(np.repeat(up, factor, axis=0), factor, axis=1)
    binary[: hh * factor, : ww * factor] = up[:h, :w]
    return boxes, binary


def _find_letters_gray(gray):
    """find_letters on a gray working copy; boxes in its coordinates."""
    from skimage.filters import apply_hysteresis_threshold

    empty = np.zeros((0, 4), np.int64), np.zeros(gray.shape, bool)
    if min(gray.shape) < 8:
        return empty
    dark = _ink_darkness(gray)
    dark = ndi.gaussian_filter(dark, 1.0, truncate=3.0)
    th = _thresholds(dark)
    if th is None:
        return empty
    high, low = th
    binary = apply_hysteresis_threshold(dark, low, high)
    binary = ndi.binary_closing(binary, structure=np.ones((3, 3), bool))
    lab, boxes, areas = _components(binary)
    if len(boxes) == 0:
        return empty
    typical = _typical_size(boxes, areas)
    size = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    if (size > 2.5 * typical).any():
        binary = _remove_long_lines(binary, typical)
        lab, boxes, areas = _components(binary)
        if len(boxes) == 0:
            return empty
        typical = _typical_size(boxes, areas)
    # tiny noise first, so it cannot glue pieces together
    size = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    noise = size < 0.12 * typical
    keep_lab = ~noise
    boxes_m, areas_m = _merge_pieces(boxes[keep_lab], areas[keep_lab], typical)
    size_m = np.maximum(boxes_m[:, 2] - boxes_m[:, 0], boxes_m[:, 3] - boxes_m[:, 1])
    good = (size_m >= 0.4 * typical) & (size_m <= 3.0 * typical)
    # characters have enough ink for their size (not a faint smudge)
    boxes_m = boxes_m[good]
    # the binary image keeps only ink inside kept boxes
    mask = np.zeros(gray.shape, bool)
    for y1, x1, y2, x2 in boxes_m:
        mask[y1:y2, x1:x2] = True
    labels_kept = np.unique(lab[mask & binary])
    labels_kept = labels_kept[labels_kept > 0]
    keep = np.zeros(lab.max() + 1, bool)
    keep[labels_kept] = True
    keep[np.flatnonzero(noise) + 1] = False
    binary = keep[lab]
    order = np.lexsort((boxes_m[:, 1], boxes_m[:, 0]))
    return boxes_m[order].astype(np.int64), binary


# --------------------------------------------------------------------------
# stage 2: lines and words
# --------------------------------------------------------------------------
def group_lines(boxes):
    """Order character boxes into lines and words, in reading order.

    Lines are built by linking each box to its nearest right neighbour that
    overlaps it vertically by at least half the smaller height (mutual best
    matches only, so a tall character cannot join two lines); chains that
    continue each other (collinear, not overlapping in x) are then joined,
    which follows slightly slanted lines and lines with gaps. Lines are
    sorted top to bottom, boxes left to right.

    Words: a gap between neighbours is measured in units of the line's
    median character height. The gaps of the whole page are split into
    letter gaps and word gaps where they form two well separated groups;
    a page whose gaps are all alike is read as spaced-out single characters
    if they are wide (over 0.7 heights), else as words without breaks (see
    ``_word_gap_threshold``). Nothing is in pixels, so any image scale
    works.

    Parameters
    ----------
    boxes : (n, 4) array_like of int
        ``[y1, x1, y2, x2]`` per character.

    Returns
    -------
    lines : list of list of list of int
        ``lines[i][j]`` is the list of box indices (into ``boxes``) of word
        ``j`` of line ``i``, left to right.

    Examples
    --------
    >>> boxes = [[0, 0, 10, 8], [0, 10, 10, 18], [0, 40, 10, 48], [30, 0, 40, 8]]
    >>> group_lines(boxes)
    [[[0, 1], [2]], [[3]]]
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    n = len(boxes)
    if n == 0:
        return []
    chains = _chain_lines(boxes)
    chains = _join_chains(boxes, chains)
    # reading order: top to bottom by the chain's mean centre
    cy = (boxes[:, 0] + boxes[:, 2]) / 2
    chains.sort(key=lambda c: float(np.mean(cy[c])))
    return _split_words(boxes, chains)


def _chain_lines(boxes):
    n = len(boxes)
    y1, x1, y2, x2 = boxes.T
    h = np.maximum(y2 - y1, 1.0)
    w = np.maximum(x2 - x1, 1.0)
    cx = (x1 + x2) / 2
    cy = (y1 + y2) / 2
    ov = np.minimum(y2[:, None], y2[None, :]) - np.maximum(y1[:, None], y1[None, :])
    minh = np.minimum(h[:, None], h[None, :])
    maxh = np.maximum(h[:, None], h[None, :])
    right = cx[None, :] > cx[:, None] + 0.25 * np.minimum(w[:, None], w[None, :])
    gap = x1[None, :] - x2[:, None]
    # cost: horizontal gap in units of height, plus vertical misalignment
    cost = np.maximum(gap, 0) / maxh + 2.0 * np.abs(cy[None, :] - cy[:, None]) / maxh
    ok = right & (ov >= 0.5 * minh) & (gap < 6.0 * maxh)
    cost = np.where(ok, cost, np.inf)
    succ = np.argmin(cost, axis=1)
    succ_ok = np.isfinite(cost[np.arange(n), succ])
    pred = np.argmin(cost, axis=0)
    nxt = -np.ones(n, np.int64)
    has_pred = np.zeros(n, bool)
    for i in range(n):
        j = succ[i]
        if succ_ok[i] and pred[j] == i:
            nxt[i] = j
            has_pred[j] = True
    chains = []
    for i in range(n):
        if has_pred[i]:
            continue
        c = [i]
        while nxt[c[-1]] >= 0:
            c.append(int(nxt[c[-1]]))
        chains.append(c)
    return chains


def _line_fit(boxes, chain):
    cy = (boxes[chain, 0] + boxes[chain, 2]) / 2
    cx = (boxes[chain, 1] + boxes[chain, 3]) / 2
    if len(chain) >= 3 and np.ptp(cx) > 0:
        slope, icept = np.polyfit(cx, cy, 1)
        slope = float(np.clip(slope, -0.3, 0.3))
        icept = float(np.median(cy - slope * cx))
    else:
        slope, icept = 0.0, float(np.mean(cy))
    return slope, icept


def _join_chains(boxes, chains):
    """Join chains that lie on one text line (collinear, disjoint in x)."""
    h = boxes[:, 2] - boxes[:, 0]
    changed = True
    while changed and len(chains) > 1:
        changed = False
        chains.sort(key=lambda c: -len(c))
        for a in range(len(chains)):
            ca = chains[a]
            slope, icept = _line_fit(boxes, ca)
            ha = float(np.median(h[ca]))
            xa1, xa2 = boxes[ca, 1].min(), boxes[ca, 3].max()
            best, best_d = None, np.inf
            for b in range(len(chains)):
                if b == a:
                    continue
                cb = chains[b]
                xb1, xb2 = boxes[cb, 1].min(), boxes[cb, 3].max()
                overlap = min(xa2, xb2) - max(xa1, xb1)
                if overlap > 0.2 * ha:
                    continue
                cy = (boxes[cb, 0] + boxes[cb, 2]) / 2
                cx = (boxes[cb, 1] + boxes[cb, 3]) / 2
                d = float(np.median(np.abs(cy - (slope * cx + icept))))
                hb = float(np.median(h[cb]))
                if d < 0.35 * max(ha, hb) and d < best_d:
                    best, best_d = b, d
            if best is not None:
                merged = ca + chains[best]
                merged.sort(key=lambda i: boxes[i, 1] + boxes[i, 3])
                chains = [c for k, c in enumerate(chains) if k not in (a, best)] + [merged]
                changed = True
                break
    return [sorted(c, key=lambda i: boxes[i, 1] + boxes[i, 3]) for c in chains]


def _split_words(boxes, chains):
    h = boxes[:, 2] - boxes[:, 0]
    rel_gaps = []
    for c in chains:
        hl = max(float(np.median(h[c])), 1.0)
        g = (boxes[c[1:], 1] - boxes[c[:-1], 3]) / hl
        rel_gaps.append(g)
    all_g = np.concatenate(rel_gaps) if rel_gaps else np.zeros(0)
    thresh = _word_gap_threshold(all_g)
    lines = []
    for c, g in zip(chains, rel_gaps):
        words = [[int(c[0])]]
        for k in range(1, len(c)):
            if g[k - 1] > thresh:
                words.append([])
            words[-1].append(int(c[k]))
        lines.append(words)
    return lines


def _word_gap_threshold(gaps):
    """Relative gap (units of line height) above which a gap splits words.

    Gaps of a page usually form two groups, letter gaps and word gaps. They
    are split by Otsu's criterion; the groups count as distinct when they
    are well separated (between-group distance over 4 within-group standard
    deviations) and their means differ by more than a factor 2.2, and the
    threshold is then put in the widest (log-scale) empty interval between
    the group means. A page with one kind of gap only is read as spaced-out
    single characters when its median gap is over 0.7 character heights,
    else as letters with no word breaks unless a gap exceeds one height
    and twice the median.
    """
    gaps = np.sort(gaps[np.isfinite(gaps)])
    if gaps.size == 0:
        return 1.0
    if gaps.size >= 3:
        best_t, best_score = None, 0.0
        for t in (gaps[:-1] + gaps[1:]) / 2:
            a, b = gaps[gaps <= t], gaps[gaps > t]
            if len(a) == 0 or len(b) == 0:
                continue
            score = len(a) * len(b) * (b.mean() - a.mean()) ** 2
            if score > best_score:
                best_score, best_t = score, t
        if best_t is not None:
            a, b = gaps[gaps <= best_t], gaps[gaps > best_t]
            spread = np.sqrt((a.var() * len(a) + b.var() * len(b)) / len(gaps)) + 1e-3
            ma, mb = a.mean(), b.mean()
            if (mb - ma) / spread > 4.0 and mb > 2.2 * max(ma, 0.05):
                inside = gaps[(gaps >= ma) & (gaps <= mb)]
                lg = np.log(np.clip(inside, 0.02, None))
                k = int(np.argmax(np.diff(lg)))
                return float(np.exp(0.5 * (lg[k] + lg[k + 1])))
    med = float(np.median(gaps))
    if med > 0.7:
        return 0.3
    return max(1.0, 2.0 * med)


# --------------------------------------------------------------------------
# stage 3: crops in the hw36 layout
# --------------------------------------------------------------------------
def crop_characters(binary, boxes):
    """Cut each character out and lay it out like the hw36 training data.

    Each crop keeps only the ink that belongs to the box (components mostly
    outside it, i.e. neighbours reaching in, are dropped), is scaled so its
    longer side is 20 of 32 pixels and centred, like hw36/MNIST. Strokes are
    thickened to at least ~2.6 pixels at the 32x32 scale (thin pen or large
    characters would otherwise become hair lines) and the result is
    anti-aliased by drawing at 4x and averaging.

    Parameters
    ----------
    binary : (H, W) array_like
        Ink image, ink > 0.5 (as returned by :func:`find_letters`).
    boxes : (n, 4) array_like of int
        ``[y1, x1, y2, x2]`` per character, in ``binary``'s coordinates.

    Returns
    -------
    X : (n, 1024) ndarray of float64
        One row per box, values in [0, 1], ink dark (0) on white (1), each
        32x32 crop flattened transposed (``crop.T.reshape(-1)``), exactly
        like the rows of ``hw36_*.mat``: ``X[i].reshape(32, 32).T`` is
        upright.

    Examples
    --------
    >>> binary = np.zeros((60, 60)); binary[10:50, 28:33] = 1
    >>> X = crop_characters(binary, [[10, 28, 50, 33]])
    >>> X.shape, bool(X.min() < 0.1), bool(X.max() == 1.0)
    ((1, 1024), True, True)
    """
    binary = np.asarray(binary)
    boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    X = np.ones((len(boxes), _CROP * _CROP), np.float64)
    H, W = binary.shape[:2]
    for i, (y1, x1, y2, x2) in enumerate(boxes):
        y1, x1 = max(int(y1), 0), max(int(x1), 0)
        y2, x2 = min(int(y2), H), min(int(x2), W)
        if y2 <= y1 or x2 <= x1:
            continue
        glyph = _own_ink(binary, y1, x1, y2, x2)
        if not glyph.any():
            continue
        X[i] = _glyph_row(glyph)
    return X


def recrop_rows(X):
    """Lay hw36-layout rows out exactly as :func:`crop_characters` lays out a page's characters.

    The hw36 letters and digits come from different sources and are framed differently (the digits,
    cut from MNIST, are exactly 20 pixels on their longer side and centred by their centre of mass;
    the letters are 21 +- 1.8 pixels and centred by their box, with fainter strokes). A page's crops
    are all framed one way, so a classifier trained on the rows as they are can tell letters from
    digits partly by framing, which a page does not have. Training on re-cropped rows removes that
    cue: each row's ink (pixel < 0.5) is cropped, scaled, centred and re-stroked by the same code as a
    page crop.

    Parameters
    ----------
    X : (n, 1024) array_like
        Rows in the hw36 layout (dark ink on white, values in [0, 1], stored transposed).

    Returns
    -------
    (n, 1024) ndarray of float64 in the same layout. A row without ink comes back blank (all 1.0).

    Examples
    --------
    >>> row = np.ones((32, 32)); row[6:26, 14:17] = 0.0  # a bar, upright
    >>> out = recrop_rows(row.T.reshape(1, -1))
    >>> out.shape, bool(out.min() < 0.1)
    ((1, 1024), True)
    """
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != _CROP * _CROP:
        raise ValueError(f"recrop_rows: expected rows of {_CROP * _CROP} pixels, got shape {X.shape}")
    ink = X.reshape(-1, _CROP, _CROP).transpose(0, 2, 1) < 0.5
    out = np.ones((len(X), _CROP * _CROP), np.float64)
    for i, glyph in enumerate(ink):
        if glyph.any():
            out[i] = _glyph_row(glyph)
    return out


def _own_ink(binary, y1, x1, y2, x2):
    """Ink of the box, without components that mostly lie outside it."""
    H, W = binary.shape[:2]
    m = max(2, (y2 - y1) // 4)
    Y1, X1, Y2, X2 = max(y1 - m, 0), max(x1 - m, 0), min(y2 + m, H), min(x2 + m, W)
    big = np.asarray(binary[Y1:Y2, X1:X2]) > 0.5
    lab, n = ndi.label(big, structure=np.ones((3, 3), bool))
    inner = np.zeros_like(big)
    inner[y1 - Y1 : y2 - Y1, x1 - X1 : x2 - X1] = True
    if n > 1:
        total = np.bincount(lab.ravel(), minlength=n + 1)
        inside = np.bincount(lab[inner], minlength=n + 1)
        keep = inside >= 0.5 * np.maximum(total, 1)
        keep[0] = False
        big = keep[lab]
    return big & inner


def _glyph_row(glyph):
    """Binary glyph (any size, with ink) -> one (1024,) row in the hw36 layout: dark ink on white, transposed."""
    return (1.0 - _render_glyph(glyph)).T.reshape(-1)


def _render_glyph(glyph):
    """Binary glyph (any size) -> (32, 32) float ink image in [0, 1]."""
    rows = np.flatnonzero(glyph.any(axis=1))
    cols = np.flatnonzero(glyph.any(axis=0))
    glyph = glyph[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    gh, gw = glyph.shape
    S = _SUPER
    big_side = _GLYPH * S
    scale = big_side / max(gh, gw)
    th, tw = max(1, int(round(gh * scale))), max(1, int(round(gw * scale)))
    # nearest-neighbour resample to the supersampled size
    ri = np.minimum((np.arange(th) + 0.5) / scale, gh - 1).astype(np.int64)
    ci = np.minimum((np.arange(tw) + 0.5) / scale, gw - 1).astype(np.int64)
    g = glyph[ri[:, None], ci[None, :]]
    canvas = np.zeros((_CROP * S, _CROP * S), bool)
    oy = (_CROP * S - th) // 2
    ox = (_CROP * S - tw) // 2
    canvas[oy : oy + th, ox : ox + tw] = g
    # thicken: every pixel within the target half-width of the skeleton
    from skimage.morphology import skeletonize

    skel = skeletonize(canvas)
    if skel.any():
        dist = ndi.distance_transform_edt(~skel)
        canvas |= dist <= 0.5 * _STROKE * S
    out = canvas.reshape(_CROP, S, _CROP, S).mean(axis=(1, 3))
    return ndi.gaussian_filter(out, 0.4)


# --------------------------------------------------------------------------
# stage 4: the whole pipeline
# --------------------------------------------------------------------------
@dataclass(repr=False)
class OCRResult:
    """Text read from a page, with everything needed to inspect it.

    Attributes
    ----------
    text : str
        One line per text line, words separated by single spaces.
    boxes : (n, 4) ndarray of int64
        ``[y1, x1, y2, x2]`` per character, in reading order.
    chars : list of str
        The character read in each box.
    confidences : (n,) ndarray of float64
        The classifier's probability of each chosen character.
    lines : list of list of list of int
        ``lines[i][j]`` is the indices (into ``boxes``/``chars``) of word
        ``j`` of line ``i``.
    probabilities : (n, 36) ndarray of float64
        The classifier's full output, columns in :data:`CLASSES` order.
    binary : 2-D ndarray of bool or None
        The ink mask :func:`find_letters` made (for :func:`draw_boxes`), kept only when
        ``read_text(..., keep_binary=True)``.
    """

    text: str
    boxes: np.ndarray
    chars: list
    confidences: np.ndarray
    lines: list
    probabilities: np.ndarray = field(default=None)
    binary: np.ndarray = field(default=None, repr=False)

    def __repr__(self):
        n_words = sum(len(line) for line in self.lines)
        return (
            f"OCRResult({len(self.chars)} chars, {n_words} words, {len(self.lines)} lines, "
            f"mean confidence {float(np.mean(self.confidences)) if len(self.chars) else float('nan'):.2f}, "
            f"text={self.text[:40]!r}{'...' if len(self.text) > 40 else ''})"
        )


def _default_model():
    """The same classifier the command line uses: $FASTNN_OCR_MODEL, else the cached recipe model, else
    trained from $FASTNN_DATA and cached (see ``fastnn.ocr_model.load_ocr_model``)."""
    from .model import load_ocr_model  # noqa: PLC0415 (heavy, only when no model is given)

    return load_ocr_model()


#: Passes of the single-character decision (each pass sees its neighbours' latest readings).
_LINE_PRIOR_PASSES = 3


def _decode(P, lines):
    """Labels from the probabilities, read in context.

    A word of two or more characters is read as all letters or all digits, whichever the
    probabilities favour as a whole. A single-character word weighs its own evidence against the
    other single-character words of its line (a row of spaced-out characters such as "1 2 3 4 5"):
    with k letters among their n readings, (k + 1) / (n + 2) is its prior on being a letter, so an
    ambiguous O/0, S/5, G/6 or I/1 follows a row of its own kind, while a lone number before a line
    of words ("4 REWARD YOURSELF") keeps its own reading.
    """
    logp = np.log(np.clip(P, 1e-12, None))
    labels = P.argmax(axis=1)
    singles = []
    for line in lines:
        for word in line:
            if len(word) >= 2:
                letters = logp[word, :26].max(axis=1).sum()
                digits = logp[word, 26:].max(axis=1).sum()
                labels[word] = P[word, :26].argmax(axis=1) if letters >= digits else 26 + P[word, 26:].argmax(axis=1)
        singles.append([word[0] for word in line if len(word) == 1])
    for _ in range(_LINE_PRIOR_PASSES):
        for members in singles:
            for i in members:
                others = [m for m in members if m != i]
                prior = (np.sum(labels[others] < 26) + 1.0) / (len(others) + 2.0)
                letter_score = logp[i, :26].max() + np.log(prior)
                digit_score = logp[i, 26:].max() + np.log(1 - prior)
                labels[i] = P[i, :26].argmax() if letter_score >= digit_score else 26 + P[i, 26:].argmax()
    return labels


def read_text(image, model=None, *, word_context=True, keep_binary=False):
    """Read a photographed page of handwritten block capitals and digits.

    Runs :func:`find_letters`, :func:`group_lines`, :func:`crop_characters`
    and the classifier, then assembles the text.

    Parameters
    ----------
    image : array_like or str
        The photo (see :func:`find_letters`) or a path to it.
    model : object with ``predict_proba``, optional
        Any classifier with ``predict_proba(X) -> P``, ``X`` a
        (n, 1024) float64 array in the hw36 layout and ``P`` (n, 36)
        probabilities in :data:`CLASSES` order (A-Z then 0-9), e.g. a
        ``fastnn.models.MLP``. Default: ``fastnn.ocr_model.load_ocr_model()``,
        the model the command line uses (``$FASTNN_OCR_MODEL``, else the
        cached recipe model, else trained from ``$FASTNN_DATA`` and cached).
    word_context : bool, optional
        If True (default), a word of two or more characters is read as all
        letters or all digits, whichever the probabilities favour as a
        whole (so "TO" is not read "T0", nor "20" as "2O"), and a
        single-character word leans towards the kind (letter or digit) of
        the other single characters of its line when its own evidence is
        ambiguous (see ``_decode``).
    keep_binary : bool, optional
        Keep :func:`find_letters`' ink mask in the result's ``.binary`` (for
        :func:`draw_boxes`), so that it is not computed twice.

    Returns
    -------
    result : OCRResult
        ``.text``, ``.boxes``, ``.chars``, ``.confidences``, ``.lines`` and
        ``.probabilities``. A blank page gives empty text.

    Raises
    ------
    ValueError
        If the image is not one (see :func:`load_image`), or the model's
        output has the wrong shape or holds NaN or infinite values (a broken
        model is refused, never decoded into characters).

    Examples
    --------
    >>> class Dummy:
    ...     def predict_proba(self, X):
    ...         return np.eye(36)[np.zeros(len(X), int)]
    >>> img = np.ones((200, 300)); img[50:120, 60:68] = 0.0
    >>> read_text(img, Dummy()).text
    'A'
    """
    if model is None:
        model = _default_model()
    image = _as_image(image)
    boxes, binary = find_letters(image)
    lines = group_lines(boxes)
    order = [i for line in lines for word in line for i in word]
    boxes = boxes[order]
    remap = {old: new for new, old in enumerate(order)}
    lines = [[[remap[i] for i in word] for word in line] for line in lines]
    kept = binary if keep_binary else None
    if len(boxes) == 0:
        return OCRResult("", boxes, [], np.zeros(0), [], np.zeros((0, 36)), kept)
    X = crop_characters(binary, boxes)
    del binary
    P = np.asarray(model.predict_proba(X), dtype=np.float64)
    if P.shape != (len(boxes), 36):
        raise ValueError(f"model.predict_proba returned shape {P.shape}, expected {(len(boxes), 36)}")
    bad = np.flatnonzero(~np.isfinite(P).all(axis=1))
    if bad.size:
        # a NaN row would otherwise be decoded as a character ('0': every comparison with NaN fails)
        raise ValueError(
            f"model.predict_proba returned non-finite values (NaN or infinity) for {bad.size} of {len(P)} "
            f"characters (the first in box {[int(v) for v in boxes[bad[0]]]}): the model is broken (its "
            "training diverged or its weights are corrupt), so nothing was read; retrain it or use another model"
        )
    labels = _decode(P, lines) if word_context else P.argmax(axis=1)
    chars = [CLASSES[k] for k in labels]
    conf = P[np.arange(len(labels)), labels]
    text = "\n".join(" ".join("".join(chars[i] for i in word) for word in line) for line in lines)
    return OCRResult(text, boxes, chars, conf, lines, P, kept)


# --------------------------------------------------------------------------
# scoring
# --------------------------------------------------------------------------
def levenshtein(a, b):
    """Edit distance (insertions, deletions, substitutions all cost 1).

    Parameters
    ----------
    a, b : str or sequence

    Returns
    -------
    distance : int

    Examples
    --------
    >>> levenshtein("kitten", "sitting")
    3
    """
    if len(a) < len(b):
        a, b = b, a
    if len(b) == 0:
        return len(a)
    bb = np.frombuffer(b.encode("utf-32-le"), np.uint32) if isinstance(b, str) else np.asarray(b)
    prev = np.arange(len(b) + 1)
    for i, ca in enumerate(a, 1):
        # substitution/deletion in vector form; insertions need a scan
        sub = prev[:-1] + (bb != ord(ca) if isinstance(b, str) else bb != ca)
        cur = np.empty_like(prev)
        cur[0] = i
        cur[1:] = np.minimum(prev[1:] + 1, sub)
        # insertion: cur[j] = min(cur[j], cur[j-1] + 1) -> running min of cur[j]-j
        j = np.arange(len(cur))
        cur = np.minimum.accumulate(cur - j) + j
        prev = cur
    return int(prev[-1])


def _normalise(text, ignore_spaces):
    text = text.upper().replace("\r", "\n")
    kept = "".join(c if (c in CLASSES or c.isspace()) else "" for c in text)
    lines = [" ".join(line.split()) for line in kept.split("\n")]
    joined = " ".join(line for line in lines if line)
    return joined.replace(" ", "") if ignore_spaces else joined


def cer(predicted, expected, ignore_spaces=False):
    """Character error rate: edit distance / length of the expected text.

    Both texts are normalised first: upper-cased, every character outside
    A-Z, 0-9 and white space dropped (so "1." scores as "1"), each line
    stripped and its runs of spaces collapsed to one, and the lines joined
    with one space (a line break counts as one space: a missed line break
    costs one error, like a missed space). With ``ignore_spaces`` all
    spaces are removed before comparing.

    Parameters
    ----------
    predicted, expected : str
        Texts, lines separated by newlines.
    ignore_spaces : bool, optional
        Compare without any spaces (word segmentation not scored).

    Returns
    -------
    rate : float
        ``levenshtein(p, e) / len(e)`` on the normalised texts. If the
        expected text is empty: 0.0 when the prediction is empty too, else
        the number of predicted characters (every one is an error).

    Examples
    --------
    >>> cer("HELL0 W0RLD", "hello world")
    0.18181818181818182
    >>> cer("HE LLO", "HELLO", ignore_spaces=True)
    0.0
    """
    p = _normalise(predicted, ignore_spaces)
    e = _normalise(expected, ignore_spaces)
    if not e:
        return 0.0 if not p else float(len(p))
    return levenshtein(p, e) / len(e)


# --------------------------------------------------------------------------
# picture of the segmentation
# --------------------------------------------------------------------------
def draw_boxes(binary, boxes, lines, path):
    """Save a PNG of the boxes over the binary image, one colour per line.

    Parameters
    ----------
    binary : (H, W) array_like
        Ink image (or any grayscale image).
    boxes : (n, 4) array_like of int
        ``[y1, x1, y2, x2]`` per character.
    lines : list of list of list of int
        As returned by :func:`group_lines`; boxes in no line are drawn gray.
    path : str or os.PathLike
        Output PNG file.

    Returns
    -------
    path : str
        The file written.
    """
    import matplotlib

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    binary = np.asarray(binary)
    boxes = np.asarray(boxes).reshape(-1, 4)
    h, w = binary.shape[:2]
    step = max(1, int(np.ceil(max(h, w) / 2000)))  # keep the PNG reasonable
    fig = Figure(figsize=(w / step / 100, h / step / 100), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.imshow(binary[::step, ::step], cmap="gray_r", interpolation="nearest", extent=(0, w, h, 0))
    ax.set_axis_off()
    cmap = matplotlib.colormaps["tab10"]
    colour = {}
    for li, line in enumerate(lines):
        for word in line:
            for i in word:
                colour[int(i)] = cmap(li % 10)
    for i, (y1, x1, y2, x2) in enumerate(boxes):
        ax.add_patch(
            Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=1.5, edgecolor=colour.get(i, (0.5, 0.5, 0.5, 1)))
        )
    path = os.fspath(path)
    fig.savefig(path, dpi=100)
    return path
