"""Loading a photo safely, and turning it into a gray working copy.

:func:`load_image` keeps its memory bounded whatever a file declares: the three limits below are checked
from the file's header before anything is decoded (see ``fastnn.ocr``'s docstring for their environment
variables). :func:`check_image` makes the same checks from the header alone, decoding nothing.
:func:`as_image` accepts a path or an array for every stage; :func:`downscaled_gray` makes the
block-averaged gray copy that :func:`fastnn.ocr.segment.find_letters` works on.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import numpy as np


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
#: Most pages :func:`load_pages` reads from one file (a multi-page TIFF): a file with more is refused
#: before any page is decoded. Override with ``FASTNN_MAX_PAGES``.
MAX_PAGES = 500


def load_image(path, *, name=None):
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
    path : str, os.PathLike or bytes
        Image file (anything Pillow or imageio can read), or a file's contents (bytes).
    name : str, optional
        What the messages call ``path`` when it is bytes (default ``"bytes"``).

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
    return next(iter(_pages(path, name, all_pages=False)))[0]


def load_pages(source, *, name=None, resolution=False):
    """Read every page of an image file, one after the other: a multi-page TIFF's or a PDF's pages, else the
    one image.

    Each page goes through :func:`load_image`'s checks and limits (its declared size, decoded at reduced
    size or refused, downscaled to at most :data:`MAX_LOADED_PIXELS`), one page in memory at a time.  A
    TIFF declaring more than :data:`MAX_PAGES` pages (``FASTNN_MAX_PAGES``) is refused before any page
    is decoded.  Other formats give one page, as :func:`load_image` reads them (an animated GIF's first
    frame, an MPO's first picture).

    A PDF (a file starting with ``%PDF-``) needs pypdfium2 (``pip install 'fastnn[pdf]'``; without it, a
    ValueError naming the extra): each page is rendered in RGB (:func:`fastnn.ocr.pdf.pdf_pages`: a scanned
    page at its image's own resolution, any other at ``fastnn.ocr.pdf.PDF_DPI``, 300 dpi) within the same
    limits: a PDF of more than :data:`MAX_PAGES` pages, or with a page whose rendering would pass
    :data:`MAX_IMAGE_PIXELS`, is refused before anything is rendered; a page whose rendering would pass
    :data:`MAX_DECODED_PIXELS` or :data:`MAX_LOADED_PIXELS` is rendered at a lower resolution that fits.
    An encrypted or broken PDF is a ValueError.

    Parameters
    ----------
    source : str, os.PathLike or bytes
        An image file, or a file's contents (what ``fastnn ocr -`` reads from standard input).
    name : str, optional
        What the messages call ``source`` when it is bytes (default ``"bytes"``): ``cannot read image from
        NAME: ...``.
    resolution : bool
        Yield ``(image, dpi)`` pairs: ``dpi`` is the page's resolution in dots per inch, as read (a PDF page's
        rendering's; the resolution an image file declares, scaled as the image was, when it declares one of
        at least 100 dpi; else None: a phone's photo declares 72, which says nothing).

    Yields
    ------
    image : (H, W) or (H, W, C) ndarray
        Each page's pixels, as :func:`load_image` returns them ((H, W, 3) uint8 for a PDF's page).

    Raises
    ------
    ValueError
        As :func:`load_image`, for the file or any of its pages (the message names the page), and when it
        has more than :data:`MAX_PAGES` pages.
    """
    pages = _pages(source, name, all_pages=True)
    return pages if resolution else (image for image, _ in pages)


def _label(source, name):
    """How the messages name ``source``: ``'path'``, or ``from NAME`` for bytes."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"from {name or 'bytes'}"
    return repr(os.fspath(source))


def _uri(source):
    """A path as a str, bytes as bytes: what ``open`` (:func:`_open`) and imageio take."""
    return bytes(source) if isinstance(source, (bytes, bytearray, memoryview)) else os.fspath(source)


def _open(uri):
    """A binary file object of a path, or of bytes (``io.BytesIO``)."""
    import io

    return io.BytesIO(uri) if isinstance(uri, bytes) else open(uri, "rb")


def _pages(source, name, *, all_pages):
    """The (image, dpi) pages of :func:`load_pages` (only the first when not ``all_pages``: :func:`load_image`)."""
    uri, label = _uri(source), _label(source, name)
    limits = _Limits.from_environment()
    problem = _not_a_file(uri)
    if problem:
        raise ValueError(f"cannot read image {label}: {problem}")
    if _holds_pdf(uri):
        yield from _pdf_pages(uri, label, limits, all_pages)
        return
    where = {}  # the page being read, in a file of several: the messages name it
    pages = _pages_with_pillow(uri, limits, all_pages, where)
    while True:
        with _errors(label, limits, where=where):
            try:
                page = next(pages)
            except _NotPillow:
                break
            except StopIteration:
                return
        yield page, _resolution(where, page)
    with _errors(label, limits, pillow=False):
        image = _load_with_imageio(uri, limits)
    yield image, None


def _holds_pdf(uri):
    """Whether a path's (or bytes') first bytes are a PDF's."""
    from .pdf import is_pdf

    try:
        with _open(uri) as fh:
            return is_pdf(fh.read(1024))
    except OSError:
        return False  # the image readers say what is wrong with it


def _pdf_pages(uri, label, limits, all_pages):
    """A PDF's (image, dpi) pages, each failure a one-line ValueError naming the file and the page."""
    from .pdf import pdf_pages

    where = {}
    pages = pdf_pages(uri, image_limit=limits.image, render_limit=min(limits.decoded, limits.loaded),
                      page_limit=limits.pages, where=where)
    while True:
        try:
            page = next(pages)
        except StopIteration:
            return
        except MemoryError:
            raise ValueError(f"cannot read PDF {label}: {_at_page(where)}out of memory while rendering it") from None
        except Exception as exc:  # a ValueError of fastnn.ocr.pdf, or PDFium failing on a page
            raise ValueError(f"cannot read PDF {label}: {_at_page(where)}{_describe(exc)}") from None
        yield page
        if not all_pages:
            pages.close()
            return


def _at_page(where):
    return f"page {where['page']}: " if "page" in where else ""


def _resolution(where, image):
    """The resolution of a decoded page: the one its file declares (``where["dpi"]``, for ``where["size"]``
    pixels), scaled as the page was; None when under 100 dpi or none."""
    dpi, size = where.pop("dpi", None), where.pop("size", None)
    try:
        dpi = float(dpi[0] if isinstance(dpi, (tuple, list)) else dpi)
    except (TypeError, ValueError, IndexError):
        return None
    if not (dpi >= 100 and np.isfinite(dpi)) or not size or max(size) < 1:
        return None
    return dpi * max(image.shape[:2]) / max(size)


@contextlib.contextmanager
def _errors(label, limits, pillow=True, where=None):
    """Any failure to read an image as a ValueError naming it (``label``, and ``where["page"]`` if set)."""
    try:
        yield
    except Exception as exc:
        if isinstance(exc, _NotPillow) or not (pillow or isinstance(exc, (_Refused, MemoryError))):
            raise
        if where and "page" in where:  # set while the block ran
            label = f"{label}: page {where['page']}"
        if isinstance(exc, _Refused):
            raise ValueError(f"cannot read image {label}: {exc}") from None
        if isinstance(exc, MemoryError):
            more = (f"; set FASTNN_MAX_DECODED_PIXELS below {limits.decoded} to decode large images at reduced "
                    "size or refuse them") if pillow else ""
            raise ValueError(f"cannot read image {label}: out of memory while decoding it{more}") from None
        from PIL import Image  # truncated, corrupt, decompression errors

        if isinstance(exc, Image.DecompressionBombError):  # some plugins (GIF, TIFF) apply Pillow's guard
            raise ValueError(
                f"cannot read image {label}: Pillow's own limit, PIL.Image.MAX_IMAGE_PIXELS="
                f"{Image.MAX_IMAGE_PIXELS}, refuses it ({_describe(exc)})"
            ) from exc
        raise ValueError(f"cannot read image {label}: {_describe(exc)}") from exc


def check_image(path, *, name=None):
    """Check from its header alone that ``path`` is an image file :func:`load_image` can start on.

    Reads a few kilobytes, decodes nothing: the command line checks every image it is given this way
    before it loads (or trains) a model, so that a typo or a wrong file fails at once. A file that
    passes can still fail :func:`load_image` later (truncated or corrupt pixel data, or too large to
    decode at the size its format allows).

    Parameters
    ----------
    path : str, os.PathLike or bytes
        An image file, or a file's contents.
    name : str, optional
        What the messages call ``path`` when it is bytes (default ``"bytes"``).

    Returns
    -------
    (width, height) : tuple of int
        The size the file declares.

    Raises
    ------
    ValueError
        With :func:`load_image`'s message: the file is missing, a directory, empty, unreadable, not an
        image, or declares more than :data:`MAX_IMAGE_PIXELS` pixels (or, a TIFF, more than
        :data:`MAX_PAGES` pages).  A PDF is opened (pypdfium2) and its page count and every page's size
        checked (:func:`fastnn.ocr.pdf.check_pdf`): its first page's size rendered at 300 dpi is returned.
    """
    uri, label = _uri(path), _label(path, name)
    limits = _Limits.from_environment()
    problem = _not_a_file(uri)
    if problem:
        raise ValueError(f"cannot read image {label}: {problem}")
    if _holds_pdf(uri):
        from .pdf import check_pdf

        try:
            return check_pdf(uri, image_limit=limits.image, page_limit=limits.pages)
        except ValueError as exc:
            raise ValueError(f"cannot read PDF {label}: {exc}") from None
    size = None
    try:
        with _open(uri) as fp:
            img = _open_header(fp, uri if isinstance(uri, str) else "")
            if img is not None:
                size = img.size
                multi = img.format == "TIFF" and getattr(img, "is_animated", False)
                pages = _page_count_problem(img, limits) if multi else None
                img.close()
                if pages:
                    raise _Refused(pages)
    except _Refused as exc:
        raise ValueError(f"cannot read image {label}: {exc}") from None
    except OSError as exc:
        raise ValueError(f"cannot read image {label}: cannot open it ({_describe(exc)})") from None
    except Exception as exc:  # a header that a Pillow plugin accepts and then chokes on
        raise ValueError(f"cannot read image {label}: {_describe(exc)}") from None
    if size is None:
        try:
            import imageio.v3 as iio
        except ImportError:
            raise ValueError(f"cannot read image {label}: {_not_an_image(uri, 'Pillow')}") from None
        try:
            props = iio.improps(uri, index=0)
        except Exception as exc:
            raise ValueError(f"cannot read image {label}: "
                             f"{_not_an_image(uri, 'Pillow or imageio', _imageio_detail(exc))}") from None
        shape = tuple(props.shape[1:] if props.is_batch else props.shape)
        if len(shape) not in (2, 3) or 0 in shape:
            raise ValueError(f"cannot read image {label}: {_not_an_image_shape(shape)}")
        size = (shape[1], shape[0])
    problem = _declared_size_problem(*size, limits)
    if problem:
        raise ValueError(f"cannot read image {label}: {problem}")
    return int(size[0]), int(size[1])


def _declared_size_problem(w, h, limits):
    """Why a file declaring ``w`` x ``h`` pixels is refused before decoding, or None."""
    n = w * h
    if w < 1 or h < 1:
        return f"it declares an empty image of {w}x{h} pixels"
    if n > limits.image:
        return (
            f"it declares {w}x{h} pixels ({_megapixels(n)}), over the limit of {_megapixels(limits.image)} "
            f"(FASTNN_MAX_IMAGE_PIXELS={limits.image}); nothing was decoded. If the picture really is that "
            "large, save a smaller copy or raise FASTNN_MAX_IMAGE_PIXELS"
        )
    return None


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
    pages: int = MAX_PAGES

    @classmethod
    def from_environment(cls):
        return cls(
            _env_pixels("FASTNN_MAX_IMAGE_PIXELS", MAX_IMAGE_PIXELS),
            _env_pixels("FASTNN_MAX_DECODED_PIXELS", MAX_DECODED_PIXELS),
            _env_pixels("FASTNN_MAX_LOADED_PIXELS", MAX_LOADED_PIXELS),
            _env_pixels("FASTNN_MAX_PAGES", MAX_PAGES, "pages"),
        )


def _env_pixels(name, default, unit="pixels"):
    """A pixel (or page) count from the environment variable ``name``, else ``default``."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        value = float("nan")
    if not (np.isfinite(value) and value >= 1 and value == int(value)):
        raise ValueError(f"{name}={text!r}: expected a whole number of {unit}, at least 1 (the default is {default})")
    return int(value)


def _megapixels(n):
    mp = n / 1e6
    return f"{mp:,.0f} megapixels" if mp >= 10 else f"{mp:.2g} megapixels"


def _not_a_file(path):
    """Why ``path`` (or bytes) cannot be an image file, or None."""
    if isinstance(path, bytes):
        return "not an image file: it is empty" if not path else None
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
        with _open(path) as fh:
            head = fh.read(4096)
    except OSError as exc:
        return f"cannot open it ({_describe(exc)})"
    ext = "" if isinstance(path, bytes) else os.path.splitext(os.fsdecode(path))[1]
    named = f" despite its {ext!r} name" if ext else ""
    if not head:
        what = "the file is empty"
    elif b"\0" not in head and _is_text(head):
        what = f"it holds text, not image data{named}"
        detail = ""  # a reader's complaint about text says nothing more
    else:
        what = f"its contents are in no image format {readers} can read{named}"
    return f"not an image file: {what}" + (f" ({detail})" if detail else "")


def _not_an_image_shape(shape):
    """The message for a file imageio reads as an array that is no picture (a NumPy file, a volume...)."""
    return f"not an image file: imageio reads it as an array of shape {shape}, not as a 2-D picture"


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


def _pages_with_pillow(uri, limits, all_pages, where):
    """Pillow's pages of ``uri`` (a TIFF's every page when ``all_pages``), each decoded within the limits.

    In a file of several pages, ``where["page"]`` is set to the number (from 1) of the page being read.
    """
    with _open(uri) as fp:
        img = _open_header(fp, uri if isinstance(uri, str) else "")
        if img is None:
            raise _NotPillow()
        try:
            multi = all_pages and img.format == "TIFF" and getattr(img, "is_animated", False)
            if multi:
                problem = _page_count_problem(img, limits)
                if problem:
                    raise _Refused(problem)
            page = 0
            while True:
                if multi:
                    where["page"] = page + 1
                where["dpi"], where["size"] = img.info.get("dpi"), img.size
                yield _decode_with_pillow(img, fp, limits, keep_open=multi)
                page += 1
                if not multi:
                    return
                try:
                    img.seek(page)
                except EOFError:
                    return
        finally:
            img.close()


def _page_count_problem(img, limits):
    """Why a multi-page image is refused for its number of pages (more than ``limits.pages``), or None."""
    try:
        img.seek(limits.pages)  # walks the page headers only, and no further than the limit
    except EOFError:
        return None
    finally:
        img.seek(0)
    return (f"it has more than {limits.pages} pages, the limit (FASTNN_MAX_PAGES={limits.pages}); nothing was "
            "decoded. Split the file, or raise FASTNN_MAX_PAGES")


def _decode_with_pillow(img, fp, limits, keep_open=False):
    """Check the declared size against the limits, then decode (at reduced size where possible).

    ``keep_open``: leave ``img`` open (the next page of a multi-page file is read from it).
    """
    from PIL import ImageOps

    w, h = img.size
    n = w * h
    problem = _declared_size_problem(w, h, limits)
    if problem:
        raise _Refused(problem)
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
        if not keep_open:
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
        raise _Refused(_not_an_image_shape(shape))
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


def as_image(image):
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


def downscaled_gray(image, factor):
    """Block-mean downscale by an integer factor, then gray in [0, 1] (float32).

    Averaging before the colour conversion keeps the full-size float copy
    (the memory and time hog on a phone photo) from ever being made.
    """
    scale = _scale_of(image)
    h, w = image.shape[:2]
    hh, ww = max(h // factor, 1), max(w // factor, 1)
    if factor > 1 and h >= factor and w >= factor:
        # strided sums instead of a reshape-mean: numpy reduces tiny inner
        # axes slowly, and these f*f adds avoid that
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
