"""PDF in and out: reading a PDF's pages as images (pypdfium2, optional), and writing a searchable PDF.

Reading (:func:`pdf_pages`, :func:`check_pdf`; :func:`fastnn.ocr.load_pages` calls them for a file that starts
with ``%PDF-``) needs pypdfium2, a binding to PDFium, Chrome's PDF renderer, installed by the ``fastnn[pdf]``
extra; it is imported only when a PDF is read.  Each page is rendered in colour (RGB) on white: a scanned page
(an image covering at least half of it) at its image's own resolution, pixel for pixel (the shared
photographed pages made into a PDF render to exactly the pixels Pillow decodes from their JPEG files, and read
at 0% CER), any other at :data:`PDF_DPI` dots per inch.  :func:`~fastnn.ocr.load_image`'s limits apply: a
document of more than ``MAX_PAGES`` pages is refused from its page count, a page whose rendering at
:data:`PDF_DPI` would pass ``MAX_IMAGE_PIXELS`` from its size in points, both before anything is rendered; a
page whose rendering would pass ``MAX_DECODED_PIXELS`` or ``MAX_LOADED_PIXELS`` is rendered at a lower
resolution that fits (the 1/2, 1/3... a downscaled image would have).

Writing (:class:`SearchablePdf`, ``fastnn ocr --format pdf``) needs nothing beyond Pillow (to compress each
page's image as a JPEG): a PDF 1.4 file written object by object, each page the image as read, drawn to fill
it, under an invisible text layer (text render mode 3, Tesseract's way) that puts each word read on its box.
The text's font is Helvetica, not embedded (a viewer never draws it), declared with the same width (500/1000
of an em) for every character, so that a word stretched horizontally (``Tz``) to its box's width puts each of
its characters on an equal share of it; its ascent is the whole em and its descent nothing, so that a word
set at the bottom of its box with a font size of the box's height fills exactly the box.  Selecting,
copying and searching then work in any viewer, and ``pdftotext -bbox`` gives each word's box back.
"""

from __future__ import annotations

import io
import zlib

import numpy as np

__all__ = ["PDF_DPI", "PDF_SCAN_DPI", "IMAGE_DPI", "PDF_EXTRA", "JPEG_QUALITY", "is_pdf", "check_pdf", "pdf_pages",
           "SearchablePdf"]

#: The resolution :func:`pdf_pages` renders a PDF's pages at, in dots per inch, when they are not scans: an A4
#: or Letter page is then 2480x3508 or 2550x3300 pixels, which the segmenter (a working copy of at most 1600
#: pixels on the longer side, block-averaged from the page) reads as it reads the shared photographed pages.
PDF_DPI = 300
#: The resolutions, in dots per inch, at which a scanned page (an image covering at least half of it) is
#: rendered at its image's own resolution, pixel for pixel: the page then reads as the image it was made
#: from (the shared pages, made into a PDF, read at 0% CER that way; resampled to other resolutions, some
#: read with a character wrong).  A scan outside this range is rendered at :data:`PDF_DPI`.
PDF_SCAN_DPI = (100, 600)
#: The resolution a searchable PDF gives an image that declares none (or under 100 dpi: a phone's 72): its
#: pixels are this many to the inch.
IMAGE_DPI = 300
#: What installs pypdfium2 (PDF input): named by the error when it is missing.
PDF_EXTRA = "fastnn[pdf]"
#: Quality of the JPEG a searchable PDF stores each page's image as (Pillow's scale, 1-95).
JPEG_QUALITY = 85
_MAGIC = b"%PDF-"


def is_pdf(head) -> bool:
    """True when ``head`` (a file's first bytes) starts a PDF: ``%PDF-`` within its first 1024 bytes, as
    readers accept it."""
    return _MAGIC in bytes(head[:1024])


def _pdfium():
    """The pypdfium2 module; a ValueError naming the extra when it is not installed."""
    try:
        import pypdfium2
    except ImportError:
        raise ValueError(f"reading a PDF needs pypdfium2: pip install '{PDF_EXTRA}'") from None
    return pypdfium2


def _open(uri):
    """A ``pypdfium2.PdfDocument`` of a path or bytes; a ValueError saying why not (broken, encrypted)."""
    pdfium = _pdfium()
    try:
        return pdfium.PdfDocument(uri)
    except pdfium.PdfiumError as exc:
        text = str(exc)
        if "password" in text.lower():
            raise ValueError("the PDF is encrypted (it needs a password); decrypt it first, e.g. "
                             "qpdf --decrypt --password=... in.pdf out.pdf") from None
        raise ValueError(f"not a PDF pypdfium2 can open ({' '.join(text.split())})") from None


def _pixels(width_pt, height_pt, dpi):
    """The size in pixels of a ``width_pt`` x ``height_pt`` page rendered at ``dpi``."""
    return max(1, round(width_pt * dpi / 72)), max(1, round(height_pt * dpi / 72))


def _page_problem(width_pt, height_pt, dpi, image_limit):
    """Why a page is refused for its size, or None."""
    w, h = _pixels(width_pt, height_pt, dpi)
    if w * h <= image_limit:
        return None
    return (f"it is {width_pt / 72:.4g}x{height_pt / 72:.4g} inches ({width_pt:.0f}x{height_pt:.0f} "
            f"points), {w}x{h} pixels ({w * h / 1e6:,.0f} megapixels) at {dpi} dpi: over the limit of "
            f"{image_limit / 1e6:,.0f} megapixels (FASTNN_MAX_IMAGE_PIXELS={image_limit}); nothing was rendered")


def _count_problem(n, page_limit):
    if n <= page_limit:
        return None
    return (f"it has {n} pages, more than the limit of {page_limit} (FASTNN_MAX_PAGES={page_limit}); nothing was "
            "rendered. Split the file, or raise FASTNN_MAX_PAGES")


def check_pdf(uri, *, image_limit, page_limit, dpi=PDF_DPI):
    """Check a PDF without rendering it: it opens, has pages, not more than ``page_limit``, none whose
    rendering at ``dpi`` would have more than ``image_limit`` pixels (its size from the page tree alone).

    Returns the size in pixels, (width, height), of its first page rendered at ``dpi``; a ValueError (one line,
    naming the page) when it is refused.
    """
    doc = _open(uri)
    try:
        n = len(doc)
        if n == 0:
            raise ValueError("the PDF has no pages")
        problem = _count_problem(n, page_limit)
        if problem:
            raise ValueError(problem)
        sizes = [doc.get_page_size(i) for i in range(n)]
    finally:
        doc.close()
    for number, (w, h) in enumerate(sizes, 1):
        problem = _page_problem(w, h, dpi, image_limit)
        if problem:
            raise ValueError(f"page {number}: {problem}")
    return _pixels(*sizes[0], dpi)


def _scan_dpi(page, width_pt, height_pt):
    """The resolution of the image that covers most of ``page`` (a scanned page), or None.

    Rendering a scan at its own resolution gives its pixels back unresampled, so the page reads as the image
    it was made from.  None when no image covers half the page, or its resolution is outside
    :data:`PDF_SCAN_DPI`.
    """
    import pypdfium2.raw as pdfium_c

    page_area = width_pt * height_pt
    best = None
    for obj in page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,), max_depth=2):
        try:
            left, bottom, right, top = obj.get_bounds()
            px_w, px_h = obj.get_px_size()
        except Exception:  # an image PDFium cannot measure: render at the default resolution
            continue
        area = (right - left) * (top - bottom)
        if area >= 0.5 * page_area and px_w * px_h > 0 and (best is None or area > best[0]):
            best = (area, 72 * (px_w * px_h / area) ** 0.5)
    if best is None or not PDF_SCAN_DPI[0] <= best[1] <= PDF_SCAN_DPI[1]:
        return None
    return best[1]


def pdf_pages(uri, *, image_limit, render_limit, page_limit, where=None):
    """Render each page of a PDF, one at a time: (image, dpi) pairs, image a (H, W, 3) uint8 RGB array.

    A scanned page (an image covering at least half of it) is rendered at that image's resolution (within
    :data:`PDF_SCAN_DPI`), any other at :data:`PDF_DPI`; a page whose rendering would have more than
    ``image_limit`` pixels is refused (a ValueError naming it and its size), one over ``render_limit`` is
    rendered at 1/2, 1/3... of that resolution.  The page count and every page's size at :data:`PDF_DPI`
    are checked (:func:`check_pdf`) before the first page is rendered.  ``where["page"]`` is set to the
    number (from 1) of the page being rendered, for the messages.
    """
    check_pdf(uri, image_limit=image_limit, page_limit=page_limit)
    where = {} if where is None else where
    doc = _open(uri)
    try:
        for index in range(len(doc)):
            where["page"] = index + 1
            page = doc[index]
            try:
                width_pt, height_pt = page.get_size()
                dpi = _scan_dpi(page, width_pt, height_pt) or PDF_DPI
                problem = _page_problem(width_pt, height_pt, dpi, image_limit)
                if problem:
                    raise ValueError(problem)
                w, h = _pixels(width_pt, height_pt, dpi)
                factor = 1
                while w * h / factor**2 > render_limit:
                    factor += 1
                w, h = _pixels(width_pt, height_pt, dpi / factor)
                # PDFium makes the bitmap ceil(size * scale) pixels: a hair under the exact scale keeps a scan's
                # pixels one for one, with no extra row or column
                scale = min((w - 0.01) / width_pt, (h - 0.01) / height_pt)
                bitmap = page.render(scale=scale, rev_byteorder=True, fill_color=(255, 255, 255, 255))
                try:
                    image = np.array(bitmap.to_numpy(), copy=True)
                finally:
                    bitmap.close()
            finally:
                page.close()
            yield image, dpi / factor
    finally:
        doc.close()


# ------------------------------------------------------------------------------------------------------ writing

_FONT_WIDTH = 500  # every character's advance, in 1/1000 of the font size
_ASCENT, _DESCENT = 718, -207  # Helvetica's, in 1/1000 of the font size: a word's box spans them


def _pdf_string(text) -> bytes:
    """``text`` as a PDF literal string in WinAnsi (Latin-1 here; anything else as ``?``)."""
    raw = text.encode("latin-1", "replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def _num(x) -> str:
    """A number as PDF writes it: at most 3 decimals, no exponent, no trailing zeros."""
    text = f"{x:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _as_uint8(image):
    """A page's pixels as 8-bit gray or RGB (a Pillow image), alpha composited onto white."""
    from PIL import Image

    image = np.asarray(image)
    if image.dtype != np.uint8:
        if image.dtype == bool:
            image = image.astype(np.uint8) * 255
        elif np.issubdtype(image.dtype, np.integer):
            top = float(image.max()) if image.size else 1.0
            scale = float(np.iinfo(image.dtype).max) if top > 4095 else max(top, 1.0)  # as the reader takes it
            image = (image.astype(np.float64) * (255.0 / scale)).round().clip(0, 255).astype(np.uint8)
        else:
            top = float(np.nanmax(image)) if image.size else 1.0
            image = np.nan_to_num(image.astype(np.float64) / (1.0 if top <= 1.0 else top), nan=1.0)
            image = (image * 255).round().clip(0, 255).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] in (2, 4):  # gray or colour with alpha: onto white paper
        alpha = image[:, :, -1:].astype(np.float32) / 255
        image = (image[:, :, :-1] * alpha + 255 * (1 - alpha)).round().astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    return Image.fromarray(np.ascontiguousarray(image))


class SearchablePdf:
    """A searchable PDF written page by page to a binary file: each page an image under its invisible text.

    Parameters
    ----------
    fh : binary file object
        Where the PDF goes; written in order (:meth:`rollback` needs it seekable and truncatable).
    creator : str, optional
        The document's ``/Creator`` (``/Producer`` is fastnn and its version).

    Examples
    --------
    >>> out = io.BytesIO()
    >>> pdf = SearchablePdf(out)
    >>> pdf.add_page(np.full((200, 300), 255, np.uint8), [("HELLO", 20, 50, 120, 30)], dpi=150)
    >>> pdf.close()
    >>> out.getvalue()[:8]
    b'%PDF-1.4'
    """

    def __init__(self, fh, *, creator="fastnn ocr"):
        from .. import __version__

        self._fh, self._pos, self._offsets, self._kids = fh, 0, {}, []
        self._closed = False
        self._write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        # 1: catalog, 2: page tree (both written last, when the pages are known), 3: font, 4: information,
        # 5: the font's descriptor; then each page's image, content and page objects
        widths = " ".join([str(_FONT_WIDTH)] * 224)
        self._object(3, (f"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding "
                         f"/FirstChar 32 /LastChar 255 /Widths [{widths}] /FontDescriptor 5 0 R >>").encode())
        self._object(5, (f"<< /Type /FontDescriptor /FontName /Helvetica /Flags 32 /FontBBox [0 {_DESCENT} "
                         f"{_FONT_WIDTH} {_ASCENT}] /ItalicAngle 0 /Ascent {_ASCENT} /Descent {_DESCENT} "
                         f"/CapHeight 718 /StemV 80 /MissingWidth {_FONT_WIDTH} >>").encode())
        self._object(4, f"<< /Producer {_pdf_string(f'fastnn {__version__}').decode('latin-1')} "
                        f"/Creator {_pdf_string(creator).decode('latin-1')} >>".encode())
        self._next = 6

    def __repr__(self):
        return f"SearchablePdf(pages={len(self._kids)}, bytes={self._pos}{', closed' if self._closed else ''})"

    @property
    def pages(self) -> int:
        """The number of pages added so far."""
        return len(self._kids)

    def _write(self, data):
        self._fh.write(data)
        self._pos += len(data)

    def _object(self, number, body, stream=None):
        self._offsets[number] = self._pos
        if stream is None:
            self._write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
        else:
            self._write(b"%d 0 obj\n%s\nstream\n%s\nendstream\nendobj\n" % (number, body, stream))

    def _new(self) -> int:
        self._next += 1
        return self._next - 1

    def add_page(self, image, words, *, dpi, width=None, height=None):
        """Add a page: ``image`` (or nothing: a text-only page) under ``words``.

        Parameters
        ----------
        image : (H, W) or (H, W, C) ndarray, or None
            The page's pixels (uint8, uint16, float, bool; gray, RGB, with or without alpha), stored as a JPEG
            of :data:`JPEG_QUALITY`.  None: a page with only the invisible text (ocrmypdf grafts such a page
            onto the original one); then give ``width`` and ``height``.
        words : iterable of (text, left, top, width, height)
            Each word and its box, in pixels of the image from its top-left corner (a ``--format json``
            word's ``text``, ``left``, ``top``, ``width``, ``height``), in reading order.
        dpi : float
            The image's resolution: the page is its pixels at this many to the inch.
        width, height : int, optional
            The image's size in pixels when ``image`` is None.
        """
        if self._closed:
            raise ValueError("SearchablePdf: add_page after close")
        if not (dpi > 0 and np.isfinite(dpi)):
            raise ValueError(f"dpi: expected a positive resolution, got {dpi!r}")
        if image is not None:
            picture = _as_uint8(image)
            width, height = picture.size
        elif width is None or height is None:
            raise ValueError("add_page: give the page's width and height in pixels when it has no image")
        scale = 72.0 / dpi  # points per pixel
        page_w, page_h = width * scale, height * scale
        content = []
        resources = "/Font << /F1 3 0 R >>"
        if image is not None:
            jpeg = io.BytesIO()
            picture.save(jpeg, "JPEG", quality=JPEG_QUALITY, optimize=True)
            image_number = self._new()
            space = "/DeviceGray" if picture.mode == "L" else "/DeviceRGB"
            self._object(image_number, (f"<< /Type /XObject /Subtype /Image /Width {width} /Height {height} "
                                        f"/ColorSpace {space} /BitsPerComponent 8 /Filter /DCTDecode "
                                        f"/Length {jpeg.tell()} >>").encode(), jpeg.getvalue())
            resources += f" /XObject << /Im0 {image_number} 0 R >>"
            content.append(f"q {_num(page_w)} 0 0 {_num(page_h)} 0 0 cm /Im0 Do Q")
        text = []
        for word, left, top, w, h in words:
            if not word or w <= 0 or h <= 0:
                continue
            size = h * scale * 1000 / (_ASCENT - _DESCENT)
            stretch = 100.0 * (w * scale) / (len(word) * _FONT_WIDTH / 1000 * size)
            baseline = page_h - (top + h) * scale - _DESCENT / 1000 * size
            text.append(f"/F1 {_num(size)} Tf {_num(stretch)} Tz 1 0 0 1 {_num(left * scale)} {_num(baseline)} Tm "
                        + _pdf_string(word).decode("latin-1") + " Tj")
        if text:
            content.append("BT 3 Tr")
            content.extend(text)
            content.append("ET")
        stream = zlib.compress("\n".join(content).encode("latin-1"))
        content_number = self._new()
        self._object(content_number, b"<< /Length %d /Filter /FlateDecode >>" % len(stream), stream)
        page_number = self._new()
        self._object(page_number, (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {_num(page_w)} {_num(page_h)}] "
                                   f"/Resources << {resources} >> /Contents {content_number} 0 R >>").encode())
        self._kids.append(page_number)

    def mark(self):
        """Where the file stands now: :meth:`rollback` takes the pages added since back out."""
        return (self._pos, self._next, len(self._kids))

    def rollback(self, mark):
        """Remove the pages added since :meth:`mark` (the file must be seekable)."""
        pos, number, kids = mark
        self._fh.seek(pos)
        self._fh.truncate()
        self._pos, self._next = pos, number
        del self._kids[kids:]
        self._offsets = {k: v for k, v in self._offsets.items() if k < number}

    def close(self):
        """Write the page tree, the catalog and the cross-reference table: the PDF is complete.

        A PDF with no page added gets one empty Letter page (a PDF must have one).  Does not close the file.
        """
        if self._closed:
            return
        if not self._kids:
            self.add_page(None, [], dpi=72, width=612, height=792)
        kids = " ".join(f"{k} 0 R" for k in self._kids)
        self._object(2, f"<< /Type /Pages /Kids [{kids}] /Count {len(self._kids)} >>".encode())
        self._object(1, b"<< /Type /Catalog /Pages 2 0 R >>")
        size = self._next
        xref = self._pos
        rows = [b"xref\n0 %d\n0000000000 65535 f \n" % size]
        for number in range(1, size):
            offset = self._offsets.get(number)
            rows.append(b"%010d 00000 n \n" % offset if offset is not None else b"0000000000 65535 f \n")
        self._write(b"".join(rows))
        self._write(b"trailer\n<< /Size %d /Root 1 0 R /Info 4 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref))
        self._closed = True
