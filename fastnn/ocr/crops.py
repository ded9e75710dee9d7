"""Stage 3: character crops in the hw36 / NIST36 layout (32x32, dark ink on white, stored transposed)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


_CROP = 32  # classifier input side
_GLYPH = 20  # longer side of the glyph inside the crop (hw36: ~20 of 32)
_STROKE = 2.6  # target minimum stroke width inside the 32x32 crop, pixels
_SUPER = 4  # crops are drawn at this supersampling factor, then averaged


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
    the letters vary in size around 21 pixels and are centred by their box, with fainter strokes). A
    page's crops are all framed one way, so a classifier trained on the rows as they are can tell
    letters from digits partly by framing, which a page does not have. Re-cropping removes that cue: each
    row's ink (pixel < 0.5) is cropped, scaled, centred and re-stroked by the same code as a page crop.
    (The OCR recipe since version 4 goes further and cuts its rows from generated pages,
    :func:`fastnn.ocr.synth.page_crops`, which falls back to this for a row it cannot find.)

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
