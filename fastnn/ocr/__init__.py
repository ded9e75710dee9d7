"""Read photographed pages of handwritten block capitals and digits.

The pipeline has four stages, each a public function:

1. :func:`find_letters` -- photo to character boxes and a binary ink image,
2. :func:`group_lines` -- boxes to lines and words, in reading order,
3. :func:`crop_characters` -- binary image and boxes to classifier inputs in
   the hw36 / NIST36 layout (32x32, dark ink on white, stored transposed),
4. :func:`read_text` -- the whole pipeline with any classifier that has
   ``predict_proba(X) -> (n, 36)``.

:func:`cer` scores a transcription, :func:`load_image` reads a photo safely
(:func:`check_image` checks a file's header without decoding it) and
:func:`draw_boxes` saves a picture of the segmentation.

One module per stage, each importing only the ones before it:
:mod:`~fastnn.ocr.pdf` (a PDF's pages rendered by pypdfium2, the optional ``fastnn[pdf]`` extra, and the
searchable PDF ``fastnn ocr --format pdf`` writes), :mod:`~fastnn.ocr.image` (loading, size limits, the gray
working copy),
:mod:`~fastnn.ocr.segment` (:func:`find_letters`), :mod:`~fastnn.ocr.layout`
(:func:`group_lines`), :mod:`~fastnn.ocr.crops` (:func:`crop_characters`,
:func:`recrop_rows`), :mod:`~fastnn.ocr.synth` (photographed-looking pages
made from hw36 rows, and the crops the pipeline cuts from them: the
recipe's training data), :mod:`~fastnn.ocr.model` (the classifier
:class:`OCRModel`, its training recipe and its cache, :func:`load_ocr_model`),
:mod:`~fastnn.ocr.confidence` (the calibrated confidences
:func:`read_text` reports), :mod:`~fastnn.ocr.read`
(:func:`read_text`), :mod:`~fastnn.ocr.formats` (the text, JSON and TSV of a read
page), :mod:`~fastnn.ocr.lexicon` (:class:`Lexicon`, the optional
word list :func:`read_text` corrects words with), :mod:`~fastnn.ocr.score` (:func:`cer`) and
:mod:`~fastnn.ocr.draw` (:func:`draw_boxes`). :data:`CLASSES` is
``fastnn.data.CLASSES``, the label order of the data the classifier is
trained on.

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
* :data:`MAX_PAGES` (``FASTNN_MAX_PAGES``, default 500): the most pages
  :func:`load_pages` reads from a multi-page TIFF or a PDF; a file with more
  is refused (by :func:`check_image` too) before any page is decoded. Each
  page goes through the three pixel limits (a PDF's page: its rendering).

Pillow's own guard, ``PIL.Image.MAX_IMAGE_PIXELS``, is never changed (it is
process-wide). :func:`find_letters` works on a copy whose longer side is
``work_size`` (1600) pixels; an image too thin for that copy to be at least 8
pixels on its shorter side holds no readable characters and gives none, with
a warning, instead of being processed at full size.
"""

from ..data import CLASSES
from .crops import crop_characters, recrop_rows
from .draw import draw_boxes
from .image import (MAX_DECODED_PIXELS, MAX_IMAGE_PIXELS, MAX_LOADED_PIXELS, MAX_PAGES, check_image, load_image,
                    load_pages)
from .layout import group_lines
from .lexicon import Lexicon
from .model import (SHIPPED_MODEL, OCRModel, default_model_path, load_ocr_model, shipped_model, train_ocr_model,
                    training_set)
from .read import OCRResult, read_text
from .score import cer, levenshtein
from .segment import find_letters

__all__ = [
    "CLASSES",
    "MAX_IMAGE_PIXELS",
    "MAX_DECODED_PIXELS",
    "MAX_LOADED_PIXELS",
    "MAX_PAGES",
    "OCRResult",
    "load_image",
    "load_pages",
    "check_image",
    "find_letters",
    "group_lines",
    "crop_characters",
    "recrop_rows",
    "read_text",
    "Lexicon",
    "cer",
    "levenshtein",
    "draw_boxes",
    "OCRModel",
    "load_ocr_model",
    "train_ocr_model",
    "training_set",
    "default_model_path",
    "SHIPPED_MODEL",
    "shipped_model",
]
