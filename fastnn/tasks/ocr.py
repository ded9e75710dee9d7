"""Reading photographed pages from the command line: ``fastnn ocr``, ``fastnn ocr-eval`` and ``fastnn ocr-train``.

The reading itself is ``fastnn.ocr``; the classifier is ``fastnn.ocr.model``'s, trained on first use
and cached (or rebuilt on demand by ``ocr-train``).  Both are imported when a page is read, not when the
command line starts, so that the other tasks do not pay for scikit-image and SciPy's image modules.

Every argument is checked before anything slow runs (loading, let alone training, the model): each image
exists, is a file and has an image header (``fastnn.ocr.check_image``, which decodes nothing), the expected
text and the word list are read, and the output names are free.  In a batch, an image whose pixels then
fail to decode (truncated, corrupt) is reported in one line on stderr and the others are read; the command
then exits with status 2.  A warning raised while an image is checked or read (a reader's "Corrupt EXIF
data", an image too thin to hold characters) is issued again with the image's name (:func:`_about_image`),
so that in a batch it says which image it is about.

``-`` stands for standard input: one image's bytes, at most :data:`MAX_STDIN_BYTES`, read before anything
else and then checked and read like a file (``fastnn.ocr.load_pages`` takes bytes).  A multi-page TIFF is
read page by page (at most ``fastnn.ocr.MAX_PAGES`` pages, each within the pixel limits), and so is a PDF
(rendered by pypdfium2, the ``fastnn[pdf]`` extra: ``fastnn.ocr.pdf``).

Output formats (``--format``), one per image: ``text``, ``json``, ``tsv``, ``hocr``, ``alto`` and ``page``, made
by :mod:`fastnn.ocr.formats` (whose docstring describes them, how they separate and number pages, and how
``--review-below`` flags the words to check), and ``pdf``, a searchable PDF written by
:class:`fastnn.ocr.pdf.SearchablePdf` (binary: refused on a terminal).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from pathlib import Path

from .._io import atomic_write
from .registry import Option, register

__all__ = ["MAX_EXPECTED_BYTES", "MAX_STDIN_BYTES", "STDIN", "IMAGE_SUFFIXES", "FORMAT_NAMES", "read_expected",
           "read_stdin", "image_paths", "check_images", "review_threshold", "read_pages", "evaluate_page",
           "train_model"]

#: The largest expected-text file `ocr-eval` reads (a page's text is a few kilobytes).
MAX_EXPECTED_BYTES = 1 << 20
#: The most bytes ``fastnn ocr -`` reads from standard input (256 MB: a 12-megapixel photo is a few MB, an
#: uncompressed 50-megapixel TIFF 150 MB); more is refused.  A larger image can be given as a file.
MAX_STDIN_BYTES = 1 << 28
#: The image argument that stands for standard input.
STDIN = "-"
#: What messages call standard input.
_STDIN_NAME = "standard input"
#: The stem of standard input's ``--out-dir`` file (``stdin.txt``...), as Tesseract names it.
_STDIN_STEM = "stdin"
#: The files a folder given to ``fastnn ocr`` contributes, by suffix (any case); hidden files are skipped.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".pdf")
#: ``--format`` values: the names of ``fastnn.ocr.formats.FORMATS``, written here so that building the
#: command line imports no OCR code (a test holds the two to the same names).
FORMAT_NAMES = ("text", "json", "tsv", "hocr", "alto", "page", "pdf")
_MAX_LISTED = 5  # bad images named in one error line


def _open_input(path, what):
    """``open(path, "rb")`` of an input file, a failure said in words: what the file is for and what is wrong."""
    name = os.fspath(path)
    if os.path.isdir(name):
        raise ValueError(f"{what} {name}: is a directory, not a file")
    if not os.path.exists(name):
        raise FileNotFoundError(f"{what} {name}: no such file")
    try:
        return open(name, "rb")
    except OSError as exc:
        raise OSError(f"{what} {name}: cannot be read ({exc.strerror or exc})") from None


def read_expected(path) -> str:
    """The expected text of ``ocr-eval``: UTF-8, at most MAX_EXPECTED_BYTES (so /dev/zero is refused)."""
    with _open_input(path, "expected text") as fh:
        data = fh.read(MAX_EXPECTED_BYTES + 1)
    if len(data) > MAX_EXPECTED_BYTES:
        raise ValueError(f"expected text {path}: over {MAX_EXPECTED_BYTES // 1024} KB: not the expected text of a page")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"expected text {path}: not a UTF-8 text file") from None


def read_stdin(stream=None) -> bytes:
    """The image on standard input (``fastnn ocr -``): its bytes, at most :data:`MAX_STDIN_BYTES`.

    Reads at most one byte past the limit, so an endless stream is refused, in one line.  A terminal
    (nothing piped in) and an empty stream are refused too.
    """
    stream = stream if stream is not None else sys.stdin
    if stream is None:
        raise ValueError("cannot read image from standard input: it is closed")
    if stream.isatty():
        raise ValueError("cannot read image from standard input: it is a terminal; pipe an image into it "
                         "(fastnn ocr - < page.jpg)")
    data = getattr(stream, "buffer", stream).read(MAX_STDIN_BYTES + 1)
    if len(data) > MAX_STDIN_BYTES:
        raise ValueError(f"cannot read image from standard input: over {MAX_STDIN_BYTES:,} bytes, the limit "
                         "(fastnn.tasks.ocr.MAX_STDIN_BYTES); give an image this large as a file")
    return data


def _is_stdin(path) -> bool:
    return os.fspath(path) == STDIN


def _stem(path) -> str:
    """The stem of an image's ``--out-dir`` file (``stdin`` for standard input)."""
    return _STDIN_STEM if _is_stdin(path) else Path(path).stem


def _load_lexicon(path):
    """``--lexicon FILE`` as an ``ocr.Lexicon``, or None; a missing or unreadable file said in words."""
    if path is None:
        return None
    from ..ocr.lexicon import Lexicon

    _open_input(path, "--lexicon").close()
    try:
        return Lexicon.from_file(path)
    except OSError as exc:
        raise OSError(f"--lexicon {path}: cannot be read ({exc.strerror or exc})") from None


def image_paths(arguments, suffixes=IMAGE_SUFFIXES) -> list:
    """The images of ``fastnn ocr IMAGE_OR_FOLDER...``, in order: a folder gives its image files.

    A folder contributes the files directly in it whose suffix is one of ``suffixes`` (any case),
    sorted by name, hidden ones (``.name``) skipped; a folder holding none is a ValueError.  Any other
    argument is taken as it is (checked by :func:`check_images`); ``-`` (standard input, ``Path("-")``) at
    most once.
    """
    paths = []
    if sum(_is_stdin(arg) for arg in arguments) > 1:
        raise ValueError("- (standard input) is given more than once; it holds one image")
    for arg in arguments:
        path = Path(arg)
        if path.is_dir():
            found = sorted((p for p in path.iterdir() if p.suffix.lower() in suffixes
                            and not p.name.startswith(".") and p.is_file()), key=lambda p: p.name)
            if not found:
                raise ValueError(f"folder {arg} holds no image files (files named *{', *'.join(suffixes)}, "
                                 "any case)")
            paths.extend(found)
        else:
            paths.append(path)
    return paths


@contextlib.contextmanager
def _about_image(path):
    """Issue the warnings raised in the ``with`` block again, each once, as ``image 'PATH': MESSAGE``.

    The readers' warnings ("Corrupt EXIF data", "Truncated File Read") do not say which file they are
    about.  The filters decide as before: an ignored warning stays out, and one that ``-W error`` makes an
    error is raised where it happens.  Not thread-safe (``warnings.catch_warnings``): the tasks read their
    images one after the other.
    """
    caught = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            yield
    finally:
        seen = set()
        for w in caught:
            key = (w.category, str(w.message))
            if key not in seen:
                seen.add(key)
                warnings.warn_explicit(f"image {os.fspath(path)!r}: {w.message}", w.category, w.filename, w.lineno)


def check_images(paths, stdin=None) -> list:
    """``fastnn.ocr.check_image`` of every path (headers only); one ValueError naming every bad one.

    ``stdin``: the bytes ``-`` stands for (:func:`read_stdin`); without them ``-`` is a file's name.
    Returns the (width, height) each declares.  Warnings name the image (:func:`_about_image`).
    """
    from ..ocr.image import check_image

    sizes, problems = [], []
    for path in paths:
        try:
            with _about_image(path):
                if stdin is not None and _is_stdin(path):
                    sizes.append(check_image(stdin, name=_STDIN_NAME))
                else:
                    sizes.append(check_image(path))
        except ValueError as exc:
            problems.append(str(exc))
    if len(problems) == 1:
        raise ValueError(problems[0])
    if problems:
        more = f"; and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
        raise ValueError(f"{len(problems)} of {len(paths)} images cannot be read, so none was: "
                         + "; ".join(problems[:_MAX_LISTED]) + more)
    return sizes


def _numbered(template, image_path) -> str:
    """``--boxes OUT.png`` for one of several images: OUT-<image>.png."""
    t = Path(template)
    return str(t.with_name(f"{t.stem}-{Path(image_path).stem}{t.suffix or '.png'}"))


def _distinct(paths, outputs, what):
    """A ValueError when two images would write the same output file."""
    seen = {}
    for path, out in zip(paths, outputs):
        if out in seen:
            raise ValueError(f"{what}: {seen[out]} and {path} would both write {out}; read them in separate calls "
                             "or rename one")
        seen[out] = path


def _output_folder(out_dir) -> Path:
    """``--out-dir``, created if missing; a ValueError or OSError, before any reading, when it cannot be."""
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--out-dir {out_dir}: is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"--out-dir {out_dir}: cannot be created ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OSError(f"--out-dir {out_dir}: not writable")
    return folder


def review_threshold(value) -> float:
    """``--review-below P``: a number with 0 < P <= 1, else a ValueError saying so (argparse shows its message)."""
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        threshold = None
    if threshold is None or not 0 < threshold <= 1:  # nan fails both
        raise ValueError(f"--review-below: expected a confidence P with 0 < P <= 1 (0.9: flag the words read with "
                         f"less than 90% confidence), got {value!r}")
    return threshold


def _review_argument(text) -> float:
    """argparse type of ``--review-below``: :func:`review_threshold`, its message without the option's name."""
    try:
        return review_threshold(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--review-below: ")) from None


def _show_progress(progress) -> bool:
    """--progress / --no-progress; neither: only when stderr is a terminal."""
    return bool(progress if progress is not None else sys.stderr.isatty())


class _SearchablePdfs:
    """``--format pdf``'s output (``fastnn.ocr.pdf.SearchablePdf``), written as the pages are read, each page's
    image encoded at once, so that no more than one page's pixels are held: one PDF for the whole call on
    standard output (an image that fails is taken back out), or one per image in ``folder``.  Each PDF is
    built in a temporary file (in memory while small), copied atomically to its ``--out-dir`` file."""

    def __init__(self, folder):
        self.folder, self.spool, self.writer, self.mark = folder, None, None, None

    def _new(self):
        import tempfile

        from ..ocr.pdf import SearchablePdf

        if self.spool is not None:
            self.spool.close()
        self.spool = tempfile.SpooledTemporaryFile(max_size=1 << 24)
        self.writer = SearchablePdf(self.spool)

    def start(self):
        """An image begins."""
        if self.writer is None or self.folder is not None:
            self._new()
        self.mark = self.writer.mark()

    def add_page(self, image, page, dpi):
        """A page read: its image and its ``--format json`` object (the words and their boxes)."""
        from ..ocr.pdf import IMAGE_DPI

        words = [(w["text"], w["left"], w["top"], w["width"], w["height"]) for line in page["lines"]
                 for w in line["words"]]
        self.writer.add_page(image, words, dpi=dpi or IMAGE_DPI)

    def drop(self):
        """The image failed: its pages go."""
        self.writer.rollback(self.mark)

    def document(self):
        """The finished PDF: a binary file, at its start."""
        self.writer.close()
        self.spool.seek(0)
        return self.spool

    def save(self, path):
        """Write the image's PDF to ``path`` (atomically)."""
        import shutil

        with atomic_write(path, "wb") as fh:
            shutil.copyfileobj(self.document(), fh)
        self.spool.close()
        self.writer = self.spool = None


def read_pages(images, *, model=None, data=None, boxes=None, out_dir=None, fmt=None, as_json=False, lexicon=None,
               progress=None, review_below=None, language_model=True) -> dict:
    """Read each photographed page in ``images``; the ``fastnn ocr`` task.

    Parameters
    ----------
    images : sequence of paths
        Image files and folders (see :func:`image_paths`); ``-``: the image on standard input.
    model : path, optional
        A trained OCR classifier ``.npz``; default ``$FASTNN_OCR_MODEL``, else the cached model.
    data : path, optional
        The real data folder to train the model from when none is cached.
    boxes : path, optional
        Draw the character boxes over each binary image, coloured by line (several images:
        ``OUT-<image>.png``; a TIFF's second page on: ``...-p2.png``...), from the segmentation the text was
        read from.
    out_dir : path, optional
        Write one file per image there, ``<image stem>.txt`` / ``.json`` / ``.tsv`` / ``.hocr`` / ``.alto.xml``
        / ``.pdf`` (``stdin.txt``... for standard input), instead of printing; ``page``: one ``.page.xml`` per
        page.
    fmt : {'text', 'json', 'tsv', 'hocr', 'alto', 'page', 'pdf'}, optional
        The output format (see :mod:`fastnn.ocr.formats`); default text.  ``pdf`` on standard output: ``lines``
        holds one binary file, the PDF.
    as_json : bool
        ``--json``: the same as ``fmt='json'``.
    lexicon : path, optional
        A word list, one word per line (``fastnn.ocr.Lexicon.from_file``).
    language_model : bool
        ``--no-language-model``: False reads letters without the English letter-bigram prior (see
        ``ocr.read_text``).
    progress : bool, optional
        A bar across the images on stderr (and the model's training, if it must be trained); None: on a
        terminal only.
    review_below : float, optional
        Flag each word whose confidence is below it (0 < P <= 1) in the output (TSV excepted): see
        :mod:`fastnn.ocr.formats`.

    Returns
    -------
    dict
        ``results`` (a list of (path, ``ocr.OCRResult``), one per page read, in order), ``failed`` (a list of (path,
        message)), ``lines`` (what the command prints), ``notes`` (stderr), ``exit_status`` (2 when an image
        failed) and an empty ``headline``.
    """
    if as_json and fmt not in (None, "json"):
        raise ValueError(f"--json is --format json, but --format {fmt} was given too: give one of them")
    fmt = "json" if as_json else (fmt or "text")
    if review_below is not None:
        review_below = review_threshold(review_below)
    from ..ocr.formats import (FORMATS, TSV_COLUMNS, Page, compact_json, document, hocr_document, output_files,
                               page_json, page_text, page_tsv)

    if fmt not in FORMATS:
        raise ValueError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "pdf" and out_dir is None and sys.stdout is not None and sys.stdout.isatty():
        raise ValueError("--format pdf writes a binary PDF, not for a terminal: redirect standard output to a file "
                         "(fastnn ocr page.jpg --format pdf > page.pdf) or give --out-dir DIR")
    paths = image_paths(images)
    stdin = read_stdin() if any(_is_stdin(p) for p in paths) else None
    check_images(paths, stdin)
    folder = None
    if out_dir is not None:
        outputs = [Path(out_dir) / (_stem(p) + FORMATS[fmt]) for p in paths]
        _distinct(paths, outputs, "--out-dir")
        folder = _output_folder(out_dir)
    if boxes:
        pictures = [str(boxes)] if len(paths) == 1 else [_numbered(boxes, p) for p in paths]
        _distinct(paths, pictures, "--boxes")
        for picture in pictures:
            parent = Path(picture).parent
            if not parent.is_dir():
                raise ValueError(f"--boxes {picture}: its folder {parent} does not exist")
    words = _load_lexicon(lexicon)

    from .. import ocr
    from ..ocr.model import load_ocr_model
    from ..progress import ProgressBar

    classifier = load_ocr_model(model, data=data, progress=progress)
    bar = ProgressBar(len(paths), "image") if _show_progress(progress) else None
    results, failed, read = [], [], []  # read: every page (formats.Page) of the images read
    searchable = _SearchablePdfs(folder) if fmt == "pdf" else None
    for number, path in enumerate(paths, 1):
        source = stdin if stdin is not None and _is_stdin(path) else path
        pages, problem = [], None
        if searchable is not None:
            searchable.start()
        with _about_image(path):
            loaded = ocr.load_pages(source, name=_STDIN_NAME, resolution=True)
            while True:
                try:
                    image, dpi = next(loaded, (None, None))
                except ValueError as exc:  # the header was fine, the pixels are not: report it, read the others
                    problem = str(exc)
                    break
                if image is None:
                    break
                height, width = image.shape[:2]
                res = ocr.read_text(image, classifier, keep_binary=bool(boxes), lexicon=words,
                                    language_model=language_model)
                if searchable is not None:
                    searchable.add_page(image, page_json(res, path, width, height), dpi)
                del image
                page = len(pages) + 1
                if boxes:
                    picture = Path(pictures[number - 1])
                    if page > 1:
                        picture = picture.with_name(f"{picture.stem}-p{page}{picture.suffix}")
                    ocr.draw_boxes(res.binary, res.boxes, res.lines, str(picture))
                    res.binary = None
                pages.append(Page(res, os.fspath(path), len(read) + page, width, height, page))
        if problem is not None:
            if searchable is not None:
                searchable.drop()
            failed.append((path, problem))
            if bar is not None:
                bar.update(number, f"{path.name}: cannot be read")
            continue
        read.extend(pages)
        results.extend((path, p.result) for p in pages)
        if folder is not None and searchable is not None:
            searchable.save(folder / (_stem(path) + FORMATS[fmt]))
        elif folder is not None:
            for name, text in output_files(_stem(path), pages, fmt, review_below):
                with atomic_write(folder / name, "w") as fh:
                    fh.write(text)
        if bar is not None:
            bar.update(number, path.name)
    if folder is not None:
        lines = []
    elif fmt == "pdf":
        lines = [searchable.document()]  # a binary file: the command line copies it to standard output
    elif fmt == "json":
        lines = [compact_json([page_json(p.result, p.image, p.width, p.height, p.page, review_below) for p in read])]
    elif fmt == "tsv":
        lines = ["\t".join(TSV_COLUMNS), *(row for p in read for row in page_tsv(p.result, p.number, p.width,
                                                                                 p.height))]
    elif fmt == "hocr":
        lines = [hocr_document(read, review_below).rstrip("\n")]
    elif fmt in ("alto", "page"):
        lines = [document(read, fmt, review_below).rstrip("\n")] if read or fmt == "alto" else []
    else:
        lines = []
        for p in read:
            if len(paths) > 1 and p.page == 1:
                lines.append(f"{'' if not lines else chr(10)}== {p.image}")
            lines.append(("\f" if p.page > 1 else "") + page_text(p.result, review_below))
    notes = [f"fastnn ocr: error: {' '.join(message.split())}" for _, message in failed]
    if failed and len(paths) > 1:
        notes.append(f"fastnn ocr: {len(failed)} of {len(paths)} images could not be read")
    if review_below is not None and fmt == "tsv":
        notes.append("fastnn ocr: --review-below marks nothing in TSV: filter its word rows (level 5) on conf")
    elif review_below is not None and fmt == "pdf":
        notes.append("fastnn ocr: --review-below marks nothing in a searchable PDF: use it with another format")
    if folder is not None:
        notes.append(f"output: {folder.resolve()} ({len(paths) - len(failed)} {FORMATS[fmt]} files)")
    return {"headline": {}, "results": results, "failed": failed, "lines": lines, "notes": notes,
            "exit_status": 2 if failed else 0}


def evaluate_page(image, expected, *, model=None, data=None, lexicon=None, progress=None, language_model=True) -> dict:
    """Read one page and score it against the expected text file; the ``fastnn ocr-eval`` task.

    ``image`` ``-``: the image on standard input (:func:`read_stdin`).  A multi-page TIFF's or a PDF's first
    page is read.

    The expected text, the image's header and the word list are checked before the model is loaded.

    Returns
    -------
    dict
        ``headline`` (``cer`` and ``cer_nospace``), ``text`` (the recognised text), ``lines``.
    """
    from ..ocr.image import check_image

    source = read_stdin() if _is_stdin(image) else image
    expected_text = read_expected(expected)  # both files before the model: a wrong one fails at once
    with _about_image(image):
        check_image(source, name=_STDIN_NAME)
    words = _load_lexicon(lexicon)
    from .. import ocr
    from ..ocr.model import load_ocr_model

    classifier = load_ocr_model(model, data=data, progress=progress)
    with _about_image(image):
        res = ocr.read_text(ocr.load_image(source, name=_STDIN_NAME), classifier, lexicon=words,
                            language_model=language_model)
    headline = {"cer": ocr.cer(res.text, expected_text), "cer_nospace": ocr.cer(res.text, expected_text, True)}
    return {"headline": headline, "text": res.text, "lines": [res.text]}


def _model_file(path) -> Path:
    """``--out PATH`` as a Path: a ``.npz`` file whose folder exists or can be made, checked before training."""
    out = Path(path)
    if out.suffix != ".npz":
        raise ValueError(f"--out {path}: a model file is a .npz; give {out.name}.npz, for example")
    if out.is_dir():
        raise ValueError(f"--out {path}: is a folder; give the model file's name (a .npz)")
    probe = out.parent
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(f"--out {path}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OSError(f"--out {path}: {probe} is not writable (give --out PATH, or set FASTNN_CACHE)")
    return out


def train_model(data=None, out=None, *, seed=0, progress=None) -> dict:
    """Train the OCR classifier by ``fastnn.ocr.model``'s recipe and save it; the ``fastnn ocr-train`` task.

    Parameters
    ----------
    data : path, optional
        The real data folder (hw36 and MNIST); default ``$FASTNN_DATA``.
    out : path, optional
        The ``.npz`` file to save the model to; default ``fastnn.ocr.default_model_path()``, the cache
        ``fastnn ocr`` loads.
    seed : int
        The recipe's seed (its data sample, initialisation, distortions and batch order).
    progress : bool, optional
        Show every step on stderr (loading, the pages the characters are cut from, each network's epochs);
        None: on a terminal only.

    Returns
    -------
    dict
        ``model`` (the ``OCRModel``), ``history`` (``{network: History}``) and ``headline``: ``model`` (the
        file written, in half precision with the recipe, data and scores in its ``meta``:
        ``fastnn.ocr.build.build_ocr_model``), the accuracy on each held-out hw36 split cut from generated
        pages (``test_accuracy``, the form a page's characters take; ``test_accuracy_mlp`` and
        ``test_accuracy_cnn`` for each network alone), re-cropped and as stored, each photographed page's
        CER (``<page>_cer``) when the data folder has them, each network's last-epoch training accuracy
        (``mlp_train_accuracy``, ``cnn_train_accuracy``) and ``train_seconds``.
    """
    from ..ocr import model as ocr_model
    from ..ocr.build import build_ocr_model

    out = _model_file(out if out is not None else ocr_model.default_model_path())
    trained, histories, meta = build_ocr_model(data, seed=seed, progress=progress)
    saved = trained.save(out, storage="float16", meta=meta)
    headline = {"model": str(saved)}
    scores = meta["scores"]
    for split in ocr_model.HELD_OUT:
        for how in ("", *(f"_{name}" for name in ocr_model.MEMBERS), "_recropped", "_as_stored"):
            headline[f"{split}_accuracy{how}"] = scores[f"hw36_{split}_accuracy{how}"]
    for page, page_scores in scores["pages"].items():
        headline[f"{page}_cer"] = page_scores["cer"]
    for name, hist in histories.items():
        headline[f"{name}_train_accuracy"] = float(hist.train_acc[-1])
    headline["train_seconds"] = float(sum(sum(hist.seconds) for hist in histories.values()))
    return {"headline": headline, "model": trained, "history": histories}


_MODEL = Option("--model", help="a trained OCR classifier .npz: one `fastnn ocr-train` wrote, or a single MLP or CNN "
                                "file mapping a 32x32 crop to the 36 classes (default: $FASTNN_OCR_MODEL, else the "
                                "model `fastnn ocr-train` wrote to $FASTNN_CACHE or ~/.cache/fastnn, else the one "
                                "fastnn ships)")
_LEXICON = Option("--lexicon", metavar="FILE",
                  help="a word list, one word per line (Tesseract's user words): a word read as no entry is "
                       "replaced by the most probable entry of its length when that is nearly as probable")
_NO_LANGUAGE_MODEL = Option("--no-language-model", dest="language_model", action="store_false",
                            help="read letters without the soft English letter-bigram prior (for codes and names)")
_DATA_HELP = {"data": "real data folder to train the model from if none is cached"}


def _printed(result) -> list:
    return result["lines"]


def _notes(result) -> list:
    return result.get("notes", [])


register("ocr", read_pages, help="read photographed pages of handwritten capitals and digits; print the text",
         description="Find the characters, group them into lines and words, classify them and print (or write, "
                     "--out-dir) the text of each IMAGE; a folder stands for its image files. Every image's header "
                     "is checked before the model is loaded; an image that then fails to decode is reported on "
                     "stderr, the others are read, and the exit status is 2. TSV columns: level (1 page, 4 line, "
                     "5 word, 6 character), page_num (the image's position in the call), line_num, word_num, "
                     "char_num (from 1 within their parent; 0: not at that level), left, top, width, height "
                     "(pixels), conf (percent; -1 on page and line rows), text. The pages of a multi-page TIFF or "
                     "a PDF are separated by a form feed in the text output and numbered in JSON (page), TSV "
                     "(page_num), hOCR (ppageno) and ALTO (PHYSICAL_IMG_NR); a PDF's pages are rendered (a scan "
                     "at its own resolution, other pages at 300 dpi) by pypdfium2: pip install 'fastnn[pdf]'.",
         options=[Option("images", nargs="+", metavar="IMAGE_OR_FOLDER",
                         help="photo files (JPEG, PNG, TIFF, BMP, WebP...; a multi-page TIFF or a PDF page by "
                              "page) or "
                              f"folders of them ({', '.join(IMAGE_SUFFIXES)}, sorted by name); - reads one image "
                              "or PDF from standard input"), _MODEL,
                  Option("--format", param="fmt", choices=FORMAT_NAMES,
                         help="text (default); json: lines, words and characters with their boxes and "
                              "confidences; tsv: Tesseract's columns, one row per page, line, word and character; "
                              "hocr: hOCR 1.2 (XHTML), pages, lines, words and characters with their boxes and "
                              "confidences; alto: ALTO 4 XML, the same; page: PAGE XML 2019, one document per page "
                              "(on stdout separated by form feeds); pdf: a searchable PDF, each page's image under "
                              "invisible text placed on the words (binary: redirect standard output, or --out-dir)"),
                  Option("--review-below", metavar="P", type=_review_argument,
                         help="flag the words read with a confidence below P (0 < P <= 1) for a person to check: "
                              "[?WORD] in the text, \"review\": true in JSON, x_review in hOCR, TAGREFS=\"REVIEW\" "
                              "in ALTO, a review Label in PAGE (not in TSV: filter on its conf; not in pdf)"),
                  Option("--json", param="as_json", action="store_true", help="the same as --format json"),
                  Option("--out-dir", metavar="DIR", output=True,
                         help="write one file per image into DIR (<image>.txt, .json, .tsv, .hocr, .alto.xml or "
                              ".pdf; stdin.txt... for -; page: <image>.page.xml, <image>-p2.page.xml... per page) "
                              "instead of printing"),
                  Option("--boxes", metavar="OUT.png", output=True,
                         help="draw the boxes over the binary image, coloured by line, at most 2000 pixels "
                              "across (a larger page at 1/2, 1/3...: the JSON/TSV boxes are in full-size pixels; "
                              "several images: OUT-<image>.png; a TIFF's or a PDF's pages after the first: "
                              "...-p2.png...)"),
                  _LEXICON, _NO_LANGUAGE_MODEL],
         common_help=_DATA_HELP, lines=_printed, notes=_notes)
register("ocr-eval", evaluate_page,
         help="read one page and print its character error rate against the expected text",
         description="Print the recognised text, then `cer: ...` (Levenshtein distance / length of the expected "
                     "text, case folded, only A-Z, 0-9 and spaces kept) and `cer_nospace: ...`. Both files are "
                     "checked before the model is loaded.",
         options=[Option("image", metavar="IMAGE", help="the page's image; - reads it from standard input"),
                  Option("expected", metavar="EXPECTED.txt"), _MODEL, _LEXICON, _NO_LANGUAGE_MODEL],
         common_help=_DATA_HELP, lines=_printed)
register("ocr-train", train_model,
         help="train the OCR classifier by the documented recipe and save it (by default where `fastnn ocr` "
              "looks for it)",
         description="Rebuild the OCR classifier with fastnn.ocr.model's recipe (its docstring and the README "
                     "describe it: an MLP and a CNN trained on characters cut from generated pages; about 11 "
                     "minutes on 2 cores), showing every step (the data's loading, the pages, each "
                     "network's epochs), save it, and print its path and its accuracy on the held-out hw36 test "
                     "split (cut from generated pages, the form a page's characters take, with each network "
                     "alone; re-cropped; as stored).",
         common_help={"data": "folder with the real data (hw36/, mnist/); default: $FASTNN_DATA",
                      "out": ("PATH", "the model file to write, a .npz (default: the cache `fastnn ocr` loads, in "
                                      "$FASTNN_CACHE or ~/.cache/fastnn, named after the recipe)"),
                      "seed": "the recipe's seed (default %(default)s)",
                      "progress": ("show every step on stderr (default: on a terminal only)", "show nothing")})
