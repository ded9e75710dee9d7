"""Stage 3b: photographed-looking pages made from hw36-layout rows, and the crops the pipeline cuts from them.

The recipe's classifier (:mod:`fastnn.ocr.model`) trains on characters framed exactly as a photographed
page's are. :func:`recrop_rows` re-frames a 32x32 row with the page code's own cropping, but a page crop
is made from a large, blurred, noisy, JPEG-compressed character, thresholded by :func:`find_letters` at
the page's scale; a re-cropped 32x32 row is not (its binarised strokes are blockier, its faint strokes
lost). :func:`page_crops` closes that gap the direct way: it lays the rows out as characters on
photographed-looking pages (:func:`glyph_page`, :func:`photograph`) and reads them back with
:func:`find_letters` and :func:`crop_characters`, so each training row goes through the same stages as a
character of a user's photo.

``bench/unseen_pages.py`` makes its measurement pages with the same :func:`photograph`.
"""

from __future__ import annotations

import os

import numpy as np
from scipy import ndimage as ndi

from .crops import crop_characters, recrop_rows
from .segment import find_letters

__all__ = ["photograph", "tight_glyph", "glyph_page", "page_crops"]

_GLYPH_PX = 24.0  # hw36 and MNIST glyphs are ~20-24 pixels tall in their 32x32 frame


def tight_glyph(ink, level=0.25):
    """``ink`` (2-D, 1 = ink) cut to the box of its pixels above ``level``; unchanged when it has none."""
    rows = np.flatnonzero(ink.max(1) > level)
    cols = np.flatnonzero(ink.max(0) > level)
    if rows.size == 0:
        return ink
    return ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def photograph(alpha, rng, *, first_rule, pitch, max_angle=5.0):
    """Ink coverage ``alpha`` ((H, W) in [0, 1]) as a photo of a page: (H, W, 3) uint8 RGB.

    Paper of a slightly random tone, blue or black ink, ruled (light blue lines from ``first_rule`` every
    ``pitch`` pixels) or plain with even odds, a lighting gradient in a random direction and, 2 times in
    5, a soft shadow over one side, a rotation within ``max_angle`` degrees, a Gaussian blur of 0.5-1.8
    pixels and sensor noise. Every draw comes from ``rng`` in a fixed order, so a seed gives one photo.
    """
    from skimage.transform import rotate

    height, width = alpha.shape
    paper = np.array([0.93, 0.91, 0.86], np.float32) * float(rng.uniform(0.9, 1.0))
    ink = np.array([0.12, 0.2, 0.6] if rng.random() < 0.5 else [0.1, 0.1, 0.12], np.float32)
    rgb = np.broadcast_to(paper, (height, width, 3)).copy()
    if rng.random() < 0.5:  # ruled paper: light blue lines under each text line
        rule = np.array([0.6, 0.75, 0.9], np.float32)
        y = first_rule
        while y < height - 4:
            r = int(y)
            rgb[r:r + 3] = rule
            y += pitch
    a = (alpha * float(rng.uniform(0.8, 1.0)))[..., None]
    rgb = rgb * (1 - a) + ink * a
    # lighting: a linear gradient in a random direction, and sometimes a soft shadow over one side
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    theta = float(rng.uniform(0, 2 * np.pi))
    ramp = (np.cos(theta) * xx / width + np.sin(theta) * yy / height)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    light = float(rng.uniform(0.55, 0.8)) + (1 - 0.55) * ramp
    if rng.random() < 0.4:
        edge = float(rng.uniform(0.2, 0.8)) * width
        light = light * (1 - 0.3 / (1 + np.exp((xx - edge) / (0.05 * width))))
    rgb = rgb * np.clip(light, 0, 1)[..., None]
    angle = float(rng.uniform(-max_angle, max_angle))
    if angle:
        rgb = rotate(rgb, angle, resize=False, mode="edge", order=1)
    sigma = float(rng.uniform(0.5, 1.8))
    rgb = ndi.gaussian_filter(rgb, (sigma, sigma, 0))
    rgb = rgb + rng.normal(0, 0.015, rgb.shape)
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)


def glyph_page(rows, rng, *, width=2400):
    """The hw36-layout ``rows`` as the characters of one photographed-looking page, JPEG-compressed.

    One character height for the page (60-150 pixels), each character within 0.85-1.1 of it, a little
    vertical jitter, gaps of 0.3-0.6 of the height (wide enough that no two characters touch), lines
    1.7-2.2 heights apart; then :func:`photograph` (no rotation: the recipe's distortions rotate) and a
    JPEG round trip at quality 55-90.

    Returns
    -------
    image : (H, width, 3) ndarray of uint8
    rects : (n, 4) ndarray of int64
        Where each row's character was drawn, ``[y1, x1, y2, x2]``.
    """
    import io

    from PIL import Image
    from skimage.transform import rescale

    h = float(rng.uniform(60, 150))
    margin = int(1.2 * h)
    pitch = h * float(rng.uniform(1.7, 2.2))
    glyphs = []
    for row in np.asarray(rows):
        g = tight_glyph(1.0 - row.reshape(32, 32).T.astype(np.float32))
        scale = h * float(rng.uniform(0.85, 1.1)) / _GLYPH_PX
        glyphs.append(np.clip(rescale(g, scale, order=1, anti_aliasing=True), 0, 1).astype(np.float32))
    rects, x, y_base = [], float(margin), margin + h
    for g in glyphs:
        gh, gw = g.shape
        if x + gw > width - margin:
            x, y_base = float(margin), y_base + pitch
        top = max(int(y_base - gh + rng.normal(0, 0.04 * h)), 0)
        rects.append((top, int(x), top + gh, int(x) + gw))
        x += gw + h * float(rng.uniform(0.3, 0.6))
    height = int(y_base + margin)
    alpha = np.zeros((height, width), np.float32)
    for g, (t, left, b, r) in zip(glyphs, rects):
        np.maximum(alpha[t:b, left:r], g, out=alpha[t:b, left:r])
    image = photograph(alpha, rng, first_rule=margin + h + 0.12 * h, pitch=pitch, max_angle=0.0)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=int(rng.integers(55, 91)))
    buf.seek(0)
    with Image.open(buf) as decoded:
        image = np.asarray(decoded.convert("RGB"))
    return image, np.array(rects, np.int64).reshape(-1, 4)


def page_crops(rows, *, seed=0, per_page=80, workers=None, on_progress=None):
    """Each hw36-layout row as :func:`crop_characters` cuts it from a photographed page.

    The rows are laid out ``per_page`` to a page by :func:`glyph_page` (in the order given), the pages
    read back by :func:`find_letters`, and each box is matched to the character whose drawn rectangle
    holds its centre. A character found as exactly one box gets that box's crop; one that was missed,
    split or merged (about 1 in 400) gets :func:`recrop_rows`' framing instead, so every row comes back.

    Parameters
    ----------
    rows : (n, 1024) array_like
        hw36-layout rows (dark ink on white, stored transposed).
    seed : int
        Page ``k`` draws its settings from ``np.random.default_rng([seed, k])``: the crops depend on the
        seed and ``per_page`` only, not on ``workers``.
    per_page : int
        Characters per page.
    workers : int, optional
        Pages made at once, in threads (scikit-image and SciPy release the GIL in their filters); default:
        the number of CPUs, at most 4.
    on_progress : callable, optional
        Called with the fraction of rows done after each page.

    Returns
    -------
    crops : (n, 1024) ndarray of float32
        In the hw36 layout, like ``crop_characters``' rows.
    found : (n,) ndarray of bool
        Whether row ``i``'s crop came from its page (False: re-cropped).
    """
    from concurrent.futures import ThreadPoolExecutor

    rows = np.asarray(rows)
    if rows.ndim != 2 or rows.shape[1] != 1024:
        raise ValueError(f"page_crops: expected rows of 1024 pixels, got shape {rows.shape}")
    if isinstance(per_page, bool) or not isinstance(per_page, (int, np.integer)) or per_page < 1:
        raise ValueError(f"per_page: expected a whole number of characters, at least 1, got {per_page!r}")
    n = len(rows)
    crops = np.empty((n, 1024), np.float32)
    found = np.zeros(n, bool)
    starts = range(0, n, per_page)
    workers = workers or min(os.cpu_count() or 1, 4)

    def one(k):
        part = rows[starts[k]:starts[k] + per_page]
        return _read_back(part, np.random.default_rng([seed, k]))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for k, (part_crops, part_found) in enumerate(pool.map(one, range(len(starts)))):
            start = starts[k]
            crops[start:start + len(part_crops)] = part_crops
            found[start:start + len(part_crops)] = part_found
            if on_progress is not None:
                on_progress(min(start + per_page, n) / n)
    return crops, found


def _read_back(part, rng):
    """(crops, found) of the rows ``part``, drawn on one page by :func:`glyph_page` and read back."""
    image, rects = glyph_page(part, rng)
    boxes, binary = find_letters(image)
    cy = (boxes[:, 0] + boxes[:, 2]) / 2
    cx = (boxes[:, 1] + boxes[:, 3]) / 2
    owner = np.full(len(boxes), -1)  # the character each box lies in; -2: more than one
    for k, (t, left, b, r) in enumerate(rects):
        inside = (cy >= t) & (cy < b) & (cx >= left) & (cx < r)
        owner[inside] = np.where(owner[inside] == -1, k, -2)
    box_of = np.full(len(part), -1)  # the box of each character; -2: more than one
    for j, k in enumerate(owner):
        if k >= 0:
            box_of[k] = j if box_of[k] == -1 else -2
    crops = np.empty((len(part), 1024), np.float32)
    found = box_of >= 0
    if found.any():
        crops[found] = crop_characters(binary, boxes[box_of[found]])
    if not found.all():
        crops[~found] = recrop_rows(part[~found])
    return crops, found
