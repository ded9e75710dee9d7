"""Stage 1: find the characters of a photographed page (ink darkness, hysteresis threshold, components)."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage as ndi

from .image import as_image, downscaled_gray


_WORK_SIZE = 1600  # longer side of find_letters' working copy, in pixels
_MIN_WORK_SIDE = 8  # a working copy with a shorter side holds no characters


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
    image = as_image(image)
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
    gray = downscaled_gray(image, factor)
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
