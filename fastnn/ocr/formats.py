"""The output formats of a read page (``fastnn ocr --format``, ``fastnn sweep ocr``): text, JSON, TSV, hOCR, ALTO
and PAGE XML.

Each takes a page's :class:`~fastnn.ocr.OCRResult` (:func:`~fastnn.ocr.read_text`) and the size of the
image as loaded, and gives the text of one image:

A page is one image, or one page of a multi-page TIFF (``fastnn.ocr.load_pages``).

- ``text``: one line per text line, words separated by single spaces; a form feed (``\f``, as Tesseract
  writes) starts each page of a file after its first.
- ``json``: an object per page, ``{"image", "page", "width", "height", "text", "lines": [...]}`` (``page``:
  its number within its file, from 1), each line
  ``{"text", "left", "top", "width", "height", "confidence", "words": [...]}``, each word the same with
  ``"characters"``, each character ``{"text", "left", "top", "width", "height", "confidence"}``.  Boxes are
  in pixels of the image as loaded, from its top-left corner; a character's confidence is the calibrated
  probability (0-1) that it is right (:mod:`fastnn.ocr.confidence`), a word's or line's the product of its
  characters' (the probability that all are right).  On stdout a
  list of these objects; in ``--out-dir`` one object per file (a list of them for a file of several
  pages).  Printed compactly: an object or list holding no other is written on one line.
- ``tsv``: Tesseract's TSV, with a ``char_num`` column and character rows added: a header row, then one
  row per page, line, word and character, columns :data:`TSV_COLUMNS`; ``level`` is 1 for the page, 4 for
  a line, 5 for a word (Tesseract's numbers) and 6 for a character; ``page_num`` is the page's position
  among the pages of the call (from 1; with single-page images, the image's position), the other numbers
  count from 1 within their parent (0: not at that level); ``conf`` is a percentage, -1 on page and line
  rows, whose ``text`` is empty.
- ``hocr``: hOCR 1.2 (https://kba.github.io/hocr-spec/1.2/), an XHTML document: a ``div.ocr_page`` per page
  (``title``: ``image "NAME"; bbox 0 0 WIDTH HEIGHT; ppageno N``, N the page's position in the document from
  0), holding a ``span.ocr_line`` per line, holding a ``span.ocrx_word`` per word (``bbox``, ``x_wconf``: the
  word's confidence as a whole percentage), holding a ``span.ocrx_cinfo`` per character (``x_bboxes``: its
  box, ``x_confs``: its confidence in percent, as in the TSV).  A ``bbox`` is ``x0 y0 x1 y1``, the JSON box's
  ``left top left+width top+height``.  On stdout one document for every page of the call; in ``--out-dir``
  one per file.
- ``alto``: ALTO 4 XML (namespace ``http://www.loc.gov/standards/alto/ns-v4#``, valid against ALTO 4.3's schema):
  ``Description`` (``MeasurementUnit`` pixel; ``sourceImageInformation``: the image's ``fileName``, or with pages
  of several images one ``fileIdentifier`` per image; a ``Processing`` step naming fastnn and its version: ALTO 4
  deprecates ``OCRProcessing``), then ``Layout`` with a ``Page`` per page (``ID page_N``, ``PHYSICAL_IMG_NR`` N,
  the page's position in the document from 1, ``WIDTH``, ``HEIGHT``) holding a ``PrintSpace`` (the whole page)
  holding one ``TextBlock`` (none on an empty page) of ``TextLine`` s of ``String`` s, an ``SP`` between two words.
  A ``String`` has the JSON word's box (``HPOS`` left, ``VPOS`` top, ``WIDTH``, ``HEIGHT``), its text
  (``CONTENT``), ``WC`` its confidence as JSON prints it, and ``CC`` a digit per character as ALTO defines it,
  from 0 (sure) to 9 (unsure): ``round(9 * (1 - confidence))``; it holds a ``Glyph`` per character (box,
  ``CONTENT``, ``GC`` its confidence).  On stdout one document for every page of the call; in ``--out-dir`` one
  per file (``<image>.alto.xml``).
- ``page``: PAGE XML 2019-07-15 (``http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15``), one
  ``PcGts`` document per page, as the format holds one page: ``Metadata`` (``Creator`` fastnn and its version,
  ``Created`` and ``LastChange`` the time written, UTC) and ``Page`` (``imageFilename``, ``imageWidth``,
  ``imageHeight``) holding one ``TextRegion`` (none on an empty page) of ``TextLine`` s of ``Word`` s of
  ``Glyph`` s, each with ``Coords`` (its box's four corners, ``x,y`` clockwise from the top-left) and a
  ``TextEquiv`` (``conf``: the JSON confidence; ``Unicode``: the text).  On stdout the documents of the call's
  pages follow each other separated by a form feed (which XML never holds: split on it); in ``--out-dir``
  ``<image>.page.xml``, a multi-page file's later pages ``<image>-p2.page.xml``... (as ``--boxes`` names them).

- ``pdf``: a searchable PDF, each page its image under an invisible text layer that puts each word on its box
  (:class:`fastnn.ocr.pdf.SearchablePdf`, which writes it: binary, so not made by :func:`document`).  On
  stdout one PDF for every page of the call; in ``--out-dir`` one per file.

The confidence of a word is the same number in every format: JSON's ``confidence`` (the product of its
characters' confidences, rounded to 4 decimals), TSV's and hOCR's percentages of it (``x_wconf`` rounded to a
whole percentage), ALTO's ``WC``, PAGE's ``conf``.

``review_below`` (``fastnn ocr --review-below P``, 0 < P <= 1) flags each word whose confidence (as JSON prints
it) is below P, for a person to check: in the text the word is written ``[?WORD]`` (the characters read are
A-Z and 0-9, so ``grep -o '\\[?[A-Z0-9]*\\]'`` finds them); in JSON the word has ``"review": true`` and the page
``"review_below": P`` and ``"review_words"`` (how many it flags); in hOCR the word's ``title`` has ``x_review
1``; in ALTO the ``String`` has ``TAGREFS="REVIEW"``, an ``OtherTag`` (``ID REVIEW``, ``LABEL review``) in
``Tags``; in PAGE the ``Word`` has ``<Labels><Label value="review" type="fastnn"/></Labels>``.  TSV is
unchanged (its ``conf`` column holds the confidence to filter on).  Without it every format is as before.

:func:`document` gives a whole file of pages in a format (what ``--out-dir`` writes), :func:`page_content`
that of one page.
"""

from __future__ import annotations

import json
from typing import NamedTuple
from xml.sax.saxutils import escape

from .confidence import product_confidence

__all__ = ["FORMATS", "TSV_COLUMNS", "TSV_LEVELS", "HOCR_CAPABILITIES", "ALTO_NAMESPACE", "PAGE_NAMESPACE", "Page",
           "page_json", "page_text", "page_tsv", "page_hocr", "page_content", "document", "output_files",
           "hocr_document", "alto_document", "page_xml_document", "compact_json"]

#: ``--format`` values, and the suffix of the file each writes in ``--out-dir``.
FORMATS = {"text": ".txt", "json": ".json", "tsv": ".tsv", "hocr": ".hocr", "alto": ".alto.xml", "page": ".page.xml",
           "pdf": ".pdf"}
#: The XML namespaces of ``--format alto`` (ALTO 4) and ``--format page`` (PAGE 2019-07-15).
ALTO_NAMESPACE = "http://www.loc.gov/standards/alto/ns-v4#"
PAGE_NAMESPACE = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"
#: The hOCR elements (and properties) ``--format hocr`` writes: its ``ocr-capabilities``.
HOCR_CAPABILITIES = ("ocr_page", "ocr_line", "ocrx_word", "ocrx_cinfo", "ocrp_wconf")
#: The columns of ``--format tsv`` (Tesseract's, without block_num and par_num, with char_num).
TSV_COLUMNS = ("level", "page_num", "line_num", "word_num", "char_num", "left", "top", "width", "height", "conf",
               "text")
#: ``level`` of each kind of TSV row: Tesseract's numbers, and 6 for a character (Tesseract has no such row).
TSV_LEVELS = {"page": 1, "line": 4, "word": 5, "character": 6}


def _box(boxes):
    """left, top, width, height of the union of ``[y1, x1, y2, x2]`` boxes."""
    y1, x1 = int(boxes[:, 0].min()), int(boxes[:, 1].min())
    y2, x2 = int(boxes[:, 2].max()), int(boxes[:, 3].max())
    return {"left": x1, "top": y1, "width": x2 - x1, "height": y2 - y1}


class Page(NamedTuple):
    """One read page: its result, its image's name, its position in the call (``number``, from 1), the size
    it was read at, and its position within its file (``page``, from 1)."""

    result: object
    image: str
    number: int
    width: int
    height: int
    page: int = 1


def _confidence(value) -> float:
    """A confidence as every format prints it: rounded to 4 decimals."""
    return round(float(value), 4)


def _word_confidence(result, word) -> float:
    """A word's (or line's: ``word`` all its characters) confidence as every format prints it: the product of
    its characters' confidences, rounded."""
    return _confidence(product_confidence([result.confidences[i] for i in word]))


def _flagged(confidence, review_below) -> bool:
    """Whether ``--review-below`` flags a word of this (rounded) confidence."""
    return review_below is not None and confidence < review_below


def page_json(result, image, width, height, page=1, review_below=None) -> dict:
    """The ``--format json`` object of one page: its ``ocr.OCRResult`` as nested lines, words, characters.

    See the module docstring for the layout; ``width`` and ``height`` are those of the image as loaded,
    ``page`` the page's number within its file; ``review_below``: flag the words less confident than it.
    """
    lines, flagged = [], 0
    for line in result.lines:
        words = []
        for word in line:
            chars = [{"text": result.chars[i], **_box(result.boxes[[i]]),
                      "confidence": _confidence(result.confidences[i])} for i in word]
            words.append({"text": "".join(c["text"] for c in chars), **_box(result.boxes[word]),
                          "confidence": _word_confidence(result, word), "characters": chars})
            if _flagged(words[-1]["confidence"], review_below):
                words[-1]["review"] = True
                flagged += 1
        members = [i for word in line for i in word]
        lines.append({"text": " ".join(w["text"] for w in words), **_box(result.boxes[members]),
                      "confidence": _word_confidence(result, members), "words": words})
    review = {} if review_below is None else {"review_below": review_below, "review_words": flagged}
    return {"image": str(image), "page": int(page), "width": int(width), "height": int(height), "text": result.text,
            **review, "lines": lines}


def page_text(result, review_below=None) -> str:
    """The text of one page, each word ``--review-below`` flags written ``[?WORD]`` (without it: ``result.text``)."""
    if review_below is None:
        return result.text

    def shown(word):
        text = "".join(result.chars[i] for i in word)
        return f"[?{text}]" if _flagged(_word_confidence(result, word), review_below) else text

    return "\n".join(" ".join(shown(word) for word in line) for line in result.lines)


def page_tsv(result, page_num, width, height) -> list:
    """The ``--format tsv`` rows (without the header) of one page, as tab-separated strings."""

    def row(level, line, word, char, box, conf, text):
        values = (TSV_LEVELS[level], page_num, line, word, char, box["left"], box["top"], box["width"],
                  box["height"], conf, text)
        return "\t".join(map(str, values))

    rows = [row("page", 0, 0, 0, {"left": 0, "top": 0, "width": int(width), "height": int(height)}, -1, "")]
    for li, line in enumerate(result.lines, 1):
        rows.append(row("line", li, 0, 0, _box(result.boxes[[i for word in line for i in word]]), -1, ""))
        for wi, word in enumerate(line, 1):
            conf = _word_confidence(result, word)
            rows.append(row("word", li, wi, 0, _box(result.boxes[word]), f"{100 * conf:.2f}",
                            "".join(result.chars[i] for i in word)))
            for ci, i in enumerate(word, 1):
                rows.append(row("character", li, wi, ci, _box(result.boxes[[i]]),
                                f"{100 * float(result.confidences[i]):.2f}", result.chars[i]))
    return rows


def _bbox(box) -> str:
    """A ``left, top, width, height`` box as hOCR's ``bbox x0 y0 x1 y1``."""
    return f"{box['left']} {box['top']} {box['left'] + box['width']} {box['top'] + box['height']}"


def _title(*properties) -> str:
    """An hOCR ``title`` attribute's value, escaped for a double-quoted XML attribute."""
    return escape("; ".join(properties), {'"': "&quot;"})


def _cinfo(result, i) -> str:
    """The ``title`` of character ``i``'s ``ocrx_cinfo``: its box and its confidence in percent."""
    return _title(f"x_bboxes {_bbox(_box(result.boxes[[i]]))}", f"x_confs {100 * float(result.confidences[i]):.2f}")


def page_hocr(result, image, width, height, ppageno=0, review_below=None) -> list:
    """The ``--format hocr`` lines of one page: its ``div.ocr_page`` (see the module docstring).

    ``ppageno`` is the page's position in the document, from 0 (it also numbers the elements' ids);
    ``review_below``: the words less confident than it get ``x_review 1``.
    """
    n = ppageno + 1
    page_box = {"left": 0, "top": 0, "width": int(width), "height": int(height)}
    name = '"' + str(image).replace("\\", "\\\\").replace('"', '\\"') + '"'
    out = [f'  <div class="ocr_page" id="page_{n}" '
           f'title="{_title(f"image {name}", f"bbox {_bbox(page_box)}", f"ppageno {ppageno}")}">']
    for li, line in enumerate(result.lines, 1):
        members = [i for word in line for i in word]
        out.append(f'   <span class="ocr_line" id="line_{n}_{li}" '
                   f'title="{_title(f"bbox {_bbox(_box(result.boxes[members]))}")}">')
        for wi, word in enumerate(line, 1):
            conf = _word_confidence(result, word)
            chars = "".join(f'<span class="ocrx_cinfo" title="{_cinfo(result, i)}">{escape(result.chars[i])}</span>'
                            for i in word)
            review = ("x_review 1",) if _flagged(conf, review_below) else ()
            title = _title(f"bbox {_bbox(_box(result.boxes[word]))}", f"x_wconf {round(100 * conf)}", *review)
            out.append(f'    <span class="ocrx_word" id="word_{n}_{li}_{wi}" title="{title}">{chars}</span>')
        out.append("   </span>")
    out.append("  </div>")
    return out


def hocr_document(pages, review_below=None) -> str:
    """An hOCR 1.2 document (XHTML) of ``pages`` (:class:`Page`), numbered from 0 in the order given."""
    from .. import __version__

    head = ['<?xml version="1.0" encoding="UTF-8"?>',
            '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" '
            '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">',
            '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">',
            " <head>",
            "  <title></title>",
            '  <meta http-equiv="Content-Type" content="text/html; charset=utf-8"/>',
            f'  <meta name="ocr-system" content="fastnn {__version__}"/>',
            f'  <meta name="ocr-capabilities" content="{" ".join(HOCR_CAPABILITIES)}"/>',
            f'  <meta name="ocr-number-of-pages" content="{len(pages)}"/>',
            " </head>",
            " <body>"]
    body = [line for k, p in enumerate(pages)
            for line in page_hocr(p.result, p.image, p.width, p.height, k, review_below)]
    return "\n".join([*head, *body, " </body>", "</html>"]) + "\n"


_ATTRIBUTE_ENTITIES = {'"': "&quot;", "\n": "&#10;", "\t": "&#9;", "\r": "&#13;"}  # kept as they are in a value


def _attributes(**values) -> str:
    """XML attributes ``NAME="value"`` (escaped), in the order given, None values left out."""
    return "".join(f' {name}="{escape(str(value), _ATTRIBUTE_ENTITIES)}"' for name, value in values.items()
                   if value is not None)


def _alto_box(obj) -> dict:
    """ALTO's ``HPOS VPOS WIDTH HEIGHT`` of a JSON object's box."""
    return {"HPOS": obj["left"], "VPOS": obj["top"], "WIDTH": obj["width"], "HEIGHT": obj["height"]}


def _alto_page(obj, n) -> list:
    """The ``Page`` of ALTO of one page's JSON object ``obj``, the ``n``-th of its document (from 1)."""
    out = [f'  <Page{_attributes(ID=f"page_{n}", PHYSICAL_IMG_NR=n, WIDTH=obj["width"], HEIGHT=obj["height"])}>',
           f'   <PrintSpace{_attributes(HPOS=0, VPOS=0, WIDTH=obj["width"], HEIGHT=obj["height"])}>']
    if obj["lines"]:
        boxes = [(ln["left"], ln["top"], ln["left"] + ln["width"], ln["top"] + ln["height"]) for ln in obj["lines"]]
        x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
        x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
        out.append(f'    <TextBlock{_attributes(ID=f"block_{n}", HPOS=x0, VPOS=y0, WIDTH=x1 - x0, HEIGHT=y1 - y0)}>')
        for li, line in enumerate(obj["lines"], 1):
            out.append(f'     <TextLine{_attributes(ID=f"line_{n}_{li}", **_alto_box(line))}>')
            for wi, word in enumerate(line["words"], 1):
                if wi > 1:
                    before = line["words"][wi - 2]
                    gap_left = before["left"] + before["width"]
                    space = _attributes(WIDTH=max(0, word["left"] - gap_left), HPOS=gap_left, VPOS=before["top"])
                    out.append(f"      <SP{space}/>")
                cc = " ".join(str(round(9 * (1 - c["confidence"]))) for c in word["characters"])
                attrs = _attributes(ID=f"string_{n}_{li}_{wi}", TAGREFS="REVIEW" if word.get("review") else None,
                                    **_alto_box(word), CONTENT=word["text"], WC=word["confidence"], CC=cc)
                glyphs = "".join(f'<Glyph{_attributes(CONTENT=c["text"], GC=c["confidence"], **_alto_box(c))}/>'
                                 for c in word["characters"])
                out.append(f"      <String{attrs}>{glyphs}</String>")
            out.append("     </TextLine>")
        out.append("    </TextBlock>")
    return [*out, "   </PrintSpace>", "  </Page>"]


def alto_document(pages, review_below=None) -> str:
    """An ALTO 4 document of ``pages`` (:class:`Page`), numbered from 1 in the order given (module docstring)."""
    from .. import __version__

    objects = [page_json(p.result, p.image, p.width, p.height, p.page, review_below) for p in pages]
    images = list(dict.fromkeys(str(p.image) for p in pages))
    if len(images) == 1:
        source = [f"   <fileName>{escape(images[0])}</fileName>"]
    else:
        source = [f"   <fileIdentifier>{escape(image)}</fileIdentifier>" for image in images]
    settings = ([] if review_below is None else
                [f"   <processingStepSettings>review-below {review_below}</processingStepSettings>"])
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           f'<alto xmlns="{ALTO_NAMESPACE}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
           f'xsi:schemaLocation="{ALTO_NAMESPACE} http://www.loc.gov/standards/alto/v4/alto-4-3.xsd" '
           'SCHEMAVERSION="4.3">',
           " <Description>", "  <MeasurementUnit>pixel</MeasurementUnit>",
           "  <sourceImageInformation>", *source, "  </sourceImageInformation>",
           '  <Processing ID="fastnn">', "   <processingCategory>contentGeneration</processingCategory>",
           "   <processingStepDescription>fastnn ocr: handwritten block capitals and digits"
           "</processingStepDescription>",
           *settings,
           "   <processingSoftware>", "    <softwareName>fastnn</softwareName>",
           f"    <softwareVersion>{escape(__version__)}</softwareVersion>", "   </processingSoftware>",
           "  </Processing>", " </Description>"]
    if review_below is not None:
        description = f"word confidence below {review_below} (fastnn ocr --review-below)"
        tag = _attributes(ID="REVIEW", TYPE="review", LABEL="review", DESCRIPTION=description)
        out += [" <Tags>", f"  <OtherTag{tag}/>", " </Tags>"]
    out.append(" <Layout>")
    for n, obj in enumerate(objects, 1):
        out += _alto_page(obj, n)
    return "\n".join([*out, " </Layout>", "</alto>"]) + "\n"


def _page_coords(obj) -> str:
    """PAGE's ``Coords`` of a JSON object's box: its four corners, clockwise from the top-left."""
    x0, y0 = obj["left"], obj["top"]
    x1, y1 = x0 + obj["width"], y0 + obj["height"]
    return f'<Coords points="{x0},{y0} {x1},{y0} {x1},{y1} {x0},{y1}"/>'


def _text_equiv(text, conf=None) -> str:
    return f"<TextEquiv{_attributes(conf=conf)}><Unicode>{escape(text)}</Unicode></TextEquiv>"


def page_xml_document(page, review_below=None, created=None) -> str:
    """A PAGE XML 2019-07-15 document (``PcGts``) of one page (:class:`Page`); see the module docstring.

    ``created``: the time written into ``Created`` and ``LastChange`` (an aware ``datetime``; default now, UTC).
    """
    import datetime

    from .. import __version__

    when = (created or datetime.datetime.now(datetime.timezone.utc)).astimezone(datetime.timezone.utc)
    stamp = when.replace(microsecond=0, tzinfo=None).isoformat() + "Z"
    obj = page_json(page.result, page.image, page.width, page.height, page.page, review_below)
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           f'<PcGts xmlns="{PAGE_NAMESPACE}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
           f'xsi:schemaLocation="{PAGE_NAMESPACE} {PAGE_NAMESPACE}/pagecontent.xsd">',
           " <Metadata>", f"  <Creator>fastnn {escape(__version__)}</Creator>", f"  <Created>{stamp}</Created>",
           f"  <LastChange>{stamp}</LastChange>", " </Metadata>",
           f' <Page{_attributes(imageFilename=obj["image"], imageWidth=obj["width"], imageHeight=obj["height"])}>']
    if obj["lines"]:
        region = {"left": min(ln["left"] for ln in obj["lines"]), "top": min(ln["top"] for ln in obj["lines"])}
        region["width"] = max(ln["left"] + ln["width"] for ln in obj["lines"]) - region["left"]
        region["height"] = max(ln["top"] + ln["height"] for ln in obj["lines"]) - region["top"]
        out += ['  <TextRegion id="r1">', f"   {_page_coords(region)}"]
        for li, line in enumerate(obj["lines"], 1):
            out += [f'   <TextLine id="r1l{li}">', f"    {_page_coords(line)}"]
            for wi, word in enumerate(line["words"], 1):
                wid = f"r1l{li}w{wi}"
                glyphs = "".join(f'<Glyph id="{wid}g{ci}">{_page_coords(c)}{_text_equiv(c["text"], c["confidence"])}'
                                 "</Glyph>" for ci, c in enumerate(word["characters"], 1))
                labels = '<Labels><Label value="review" type="fastnn"/></Labels>' if word.get("review") else ""
                out.append(f'    <Word id="{wid}">{_page_coords(word)}{glyphs}'
                           f'{_text_equiv(word["text"], word["confidence"])}{labels}</Word>')
            out += [f'    {_text_equiv(line["text"], line["confidence"])}', "   </TextLine>"]
        out += [f"   {_text_equiv(obj['text'])}", "  </TextRegion>"]
    return "\n".join([*out, " </Page>", "</PcGts>"]) + "\n"


def document(pages, fmt, review_below=None) -> str:
    """The ``--out-dir`` file of a file's pages (:class:`Page`, in order) in format ``fmt``: its whole text.

    See the module docstring: text pages separated by form feeds, one JSON object (a list of them for several
    pages), a TSV header and every page's rows, one hOCR or ALTO document, PAGE documents separated by form
    feeds (:func:`output_files` writes them one per file).  ``review_below``: flag the words less confident
    than it (``--review-below``).
    """
    if fmt == "json":
        objects = [page_json(p.result, p.image, p.width, p.height, p.page, review_below) for p in pages]
        return compact_json(objects[0] if len(objects) == 1 else objects) + "\n"
    if fmt == "tsv":
        rows = [row for p in pages for row in page_tsv(p.result, p.number, p.width, p.height)]
        return "\n".join(("\t".join(TSV_COLUMNS), *rows)) + "\n"
    if fmt == "hocr":
        return hocr_document(pages, review_below)
    if fmt == "alto":
        return alto_document(pages, review_below)
    if fmt == "page":
        return "\f".join(page_xml_document(p, review_below) for p in pages)
    return "\f".join(page_text(p.result, review_below) + "\n" if p.result.text else "" for p in pages)


def output_files(stem, pages, fmt, review_below=None) -> list:
    """The ``--out-dir`` files of one input file's pages: ``(name, text)`` pairs.

    One file ``<stem><suffix>`` (:data:`FORMATS`) holding :func:`document`; for ``page``, one per page:
    ``<stem>.page.xml``, then ``<stem>-p2.page.xml``...
    """
    if fmt != "page":
        return [(stem + FORMATS[fmt], document(pages, fmt, review_below))]
    return [(f"{stem}{'' if k == 1 else f'-p{k}'}{FORMATS[fmt]}", page_xml_document(p, review_below))
            for k, p in enumerate(pages, 1)]


def page_content(result, image, page_num, width, height, fmt) -> str:
    """The ``--out-dir`` file of one page in format ``fmt`` (see the module docstring): its whole text."""
    return document([Page(result, image, page_num, width, height)], fmt)


def _is_leaf(value) -> bool:
    members = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return not any(isinstance(v, (dict, list)) for v in members)


def compact_json(value, indent: int = 0) -> str:
    """``value`` as JSON, every object or list that holds no other on one line (one line per character)."""
    if _is_leaf(value):
        return json.dumps(value)
    pad = ",\n" + " " * (indent + 1)
    if isinstance(value, list):
        return "[" + pad.join(compact_json(v, indent + 1) for v in value) + "]"
    flat = ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in value.items() if _is_leaf(v))
    nested = [f"{json.dumps(k)}: {compact_json(v, indent + 1)}" for k, v in value.items() if not _is_leaf(v)]
    return "{" + pad.join(([flat] if flat else []) + nested) + "}"
