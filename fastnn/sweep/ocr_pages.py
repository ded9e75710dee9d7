"""OCR of a folder of pages on a sweep's cluster: :func:`run_ocr`, one task per page.

The client reads each image file and sends its bytes (and the model and word list, once), so the workers need
no shared file system; it writes what ``fastnn ocr --out-dir`` writes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..tasks.ocr import IMAGE_SUFFIXES, check_images, image_paths
from .cluster import Cluster, check_cluster_packages, use_threads

__all__ = ["run_ocr", "SWEEP_FORMATS"]

#: The ``--format`` values of ``fastnn sweep ocr``: ``fastnn ocr``'s text formats (not ``pdf``: a searchable
#: PDF needs each page's image, which the workers do not send back).
SWEEP_FORMATS = ("text", "json", "tsv", "hocr", "alto", "page")


def _read_page(content: bytes, name: str, number: int, fmt: str, classifier, lexicon, threads: int) -> str:
    """On a worker: the ``--out-dir`` file of one page, from the image file's bytes."""
    import tempfile

    from .. import ocr
    from ..ocr.formats import page_content

    use_threads(threads)
    with tempfile.TemporaryDirectory(prefix="fastnn-page-") as folder:
        path = Path(folder) / ("page" + Path(name).suffix)
        path.write_bytes(content)
        try:
            image = ocr.load_image(path)
        except ValueError as exc:  # name the page, not the temporary copy
            raise ValueError(str(exc).replace(str(path), name)) from None
    height, width = image.shape[:2]
    result = ocr.read_text(image, classifier, lexicon=lexicon)
    return page_content(result, name, number, width, height, fmt)


def run_ocr(images, *, out_dir, fmt="text", model=None, lexicon=None, scheduler=None, workers=None,
            threads: int = 1, progress=None, connect_timeout: float = 10.0, stream=None) -> dict:
    """Read the pages ``images`` (files and folders) on a Dask cluster, one task per page, into ``out_dir``.

    Writes what ``fastnn ocr --out-dir DIR --format FMT`` writes, ``<image stem>.txt`` / ``.json`` / ``.tsv``,
    each file atomically as its page is read.  A page whose output file exists is skipped (resume; delete
    the file to read it again).  The model and the word list are loaded once, here, and sent to the
    workers with the pages' bytes, so that the workers need none of the files.  A page that fails is
    reported and the others are read; ``exit_status`` is then 2.

    Returns
    -------
    dict
        ``read`` (paths), ``skipped`` (paths), ``failed`` (path, message) pairs, ``notes``, ``exit_status``
        and ``headline`` (pages, read, skipped, failed).
    """
    from ..ocr.formats import FORMATS

    stream = stream if stream is not None else sys.stderr
    if fmt not in FORMATS or fmt not in SWEEP_FORMATS:
        more = "; make searchable PDFs with fastnn ocr --format pdf --out-dir DIR" if fmt == "pdf" else ""
        raise ValueError(f"--format: fastnn sweep ocr writes one of {', '.join(SWEEP_FORMATS)}, got {fmt!r}{more}")
    if out_dir is None:
        raise ValueError("fastnn sweep ocr: give --out-dir DIR (the pages' text files go there)")
    # one task per file, reading its first page: PDFs (every page) are fastnn ocr's, and a folder's are left out
    paths = image_paths(images, suffixes=tuple(s for s in IMAGE_SUFFIXES if s != ".pdf"))
    pdfs = [str(p) for p in paths if p.suffix.lower() == ".pdf"]
    if pdfs:
        raise ValueError(f"fastnn sweep ocr reads one page per image file; read {pdfs[0]} (a PDF) with fastnn ocr")
    check_images(paths)
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--out-dir {out_dir}: is a file, not a folder")
    outputs = [folder / (p.stem + FORMATS[fmt]) for p in paths]
    seen = {}
    for path, output in zip(paths, outputs):
        if output in seen:
            raise ValueError(f"--out-dir: {seen[output]} and {path} would both write {output}; rename one")
        seen[output] = path
    todo = [(n, p, o) for n, (p, o) in enumerate(zip(paths, outputs), 1) if not o.exists()]
    if todo:
        check_cluster_packages(scheduler)
    folder.mkdir(parents=True, exist_ok=True)
    skipped = [p for p, o in zip(paths, outputs) if o.exists()]
    words = None
    if lexicon is not None:
        from ..ocr import Lexicon

        words = Lexicon.from_file(lexicon)
    read, failed = [], []
    if todo:
        from .._io import atomic_write
        from ..ocr.model import load_ocr_model
        from ..progress import ProgressBar

        classifier = load_ocr_model(model, progress=progress)
        cluster = Cluster(scheduler, workers, len(todo), int(threads), connect_timeout)
        bar = ProgressBar(len(todo), "page", stream=stream) if progress is not False else None
        try:
            shared = cluster.client.scatter([classifier, words], broadcast=True)
            futures = {}
            for number, path, output in todo:
                future = cluster.client.submit(_read_page, path.read_bytes(), str(path), number, fmt, *shared,
                                               int(threads), pure=False)
                futures[future] = (path, output)
            for count, future in enumerate(cluster.as_completed(list(futures)), 1):
                path, output = futures.pop(future)
                try:
                    content = future.result()
                except Exception as exc:  # the page's own error, or its worker's death
                    text = " ".join(str(exc).split()) or type(exc).__name__
                    message = text if str(path) in text else f"{path}: {text}"
                    failed.append((path, message))
                    stream.write(f"fastnn sweep ocr: error: {message}\n")
                else:
                    with atomic_write(output, "w") as fh:
                        fh.write(content)
                    read.append(path)
                if bar is not None:
                    bar.update(count, path.name)
        finally:
            for future in futures:
                future.cancel()
            cluster.close()
    notes = [f"output: {folder.resolve()} ({len(read)} {FORMATS[fmt]} files written, {len(skipped)} already there)"]
    if failed:
        notes.append(f"fastnn sweep ocr: {len(failed)} of {len(paths)} pages could not be read")
    return {"headline": {"pages": len(paths), "read": len(read), "skipped": len(skipped), "failed": len(failed)},
            "read": read, "skipped": skipped, "failed": failed, "notes": notes, "exit_status": 2 if failed else 0}
