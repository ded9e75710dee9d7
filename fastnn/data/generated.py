"""The generated data set: the 36 characters rendered from matplotlib's fonts, distorted.

The only part of fastnn that uses matplotlib's fonts (imported on first use).
See ``generate_nist36`` for what a sample is; it is not handwriting.
"""

import zlib
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

import numpy as np

from .labels import CLASSES, N_CLASSES, onehot
from .nist36 import IMAGE_SIDE, N_PIXELS

__all__ = ["GENERATED_SIZES", "generate_nist36", "generated_splits"]

GENERATED_SIZES = MappingProxyType({"train": 300, "valid": 100, "test": 50})
"""Default samples per class of ``generated_splits``: the hw36 split sizes."""

# Fonts shipped in matplotlib's mpl-data/fonts/ttf; any that are missing are skipped.
_FONT_FILES = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
)
_CANVAS = 96  # side of the cached glyph canvas, pixels
_GLYPH_PX = 64  # target size of the larger glyph side on the canvas, pixels

# Distortion ranges, in output pixels / radians. Moderate on purpose: the set must stay learnable.
_SIZE_RANGE = (17.0, 24.0)  # larger side of the glyph box, spanning the sizes of hw36's glyphs
_LOG_ASPECT = 0.15  # x scale multiplied by exp(U(-a, a))
_ROTATION = np.deg2rad(12.0)  # U(-r, r)
_SHEAR = 0.3  # x += U(-s, s) * y
_SHIFT = 2.0  # centre moved by U(-t, t) per axis
_STROKE_RANGE = (-0.3, 0.6)  # erosion (<0) / dilation (>0) radius
_SOFT_RANGE = (0.7, 1.8)  # width of the edge ramp: blur
_INK_RANGE = (0.8, 1.0)  # darkness of full ink
_NOISE_RANGE = (0.0, 0.04)  # sd of Gaussian pixel noise


def _font_dir():
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def _render_glyph(font, char):
    """Antialiased coverage in [0, 1] of one character, cropped to its ink."""
    font.clear()
    font.set_text(char, 0.0)
    font.draw_glyphs_to_bitmap(antialiased=True)
    img = np.asarray(font.get_image(), dtype=np.float64) / 255.0
    ink = img >= 0.5
    if not ink.any():
        raise RuntimeError(f"font {font.fname} has no glyph for {char!r}")
    r = np.flatnonzero(ink.any(axis=1))
    c = np.flatnonzero(ink.any(axis=0))
    return img[r[0] : r[-1] + 1, c[0] : c[-1] + 1]


@lru_cache(maxsize=1)
def _glyph_bank():
    """Signed distance fields of every class in every font, rendered once.

    Returns ``(sdf, n_fonts)``; ``sdf`` is (36 * n_fonts, _CANVAS, _CANVAS)
    float32, index ``class * n_fonts + font``, in canvas pixels (negative
    inside the ink), each glyph centred with its larger side ``_GLYPH_PX``.
    """
    from matplotlib import ft2font
    from scipy import ndimage

    font_dir = _font_dir()
    paths = [font_dir / name for name in _FONT_FILES if (font_dir / name).is_file()]
    if not paths:
        raise RuntimeError(f"no usable fonts found in {font_dir}; tried {_FONT_FILES}")
    sdf = np.empty((N_CLASSES, len(paths), _CANVAS, _CANVAS), dtype=np.float32)
    for f, path in enumerate(paths):
        font = ft2font.FT2Font(str(path))
        font.set_size(1.6 * _GLYPH_PX, 72)  # 1 pt == 1 px at 72 dpi; render big, shrink
        for k, char in enumerate(CLASSES):
            g = _render_glyph(font, char)
            # each glyph's larger side becomes _GLYPH_PX: hw36 characters fill their box
            g = ndimage.zoom(g, _GLYPH_PX / max(g.shape), order=1)
            ink = np.zeros((_CANVAS, _CANVAS), dtype=bool)
            h, w = g.shape
            top, left = (_CANVAS - h) // 2, (_CANVAS - w) // 2
            ink[top : top + h, left : left + w] = g >= 0.5
            outside = ndimage.distance_transform_edt(~ink) - 0.5
            inside = ndimage.distance_transform_edt(ink) - 0.5
            sdf[k, f] = np.where(ink, -inside, outside)
    sdf = sdf.reshape(N_CLASSES * len(paths), _CANVAS, _CANVAS)
    sdf.flags.writeable = False  # shared by every call through the cache
    return sdf, len(paths)


def _split_seed(seed, split):
    if isinstance(seed, (bool, np.bool_)) or int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if not isinstance(split, str) or not split:
        raise ValueError(f"split must be a non-empty string, got {split!r}")
    return [int(seed), zlib.crc32(split.encode())]


def _render_batch(sdf_flat, glyph, params, noise_rng, out):
    """Sample distorted glyphs into ``out`` (n, 1024) in NIST36 (transposed) pixel order."""
    # IN sdf_flat (G*C*C,), glyph (n,), params: 10 arrays (n,), noise_rng; OUT out (n, 1024)
    side = IMAGE_SIDE
    k = np.arange(N_PIXELS)
    row = (k % side).astype(np.float32)  # transposed flatten: pixel k is (k % 32, k // 32)
    col = (k // side).astype(np.float32)
    scale, aspect, theta, shear, dr, dc, stroke, soft, ink, noise = params
    # forward map source -> output about the centres:
    # A = R(theta) @ [[1, 0], [shear, 1]] @ diag(scale, scale * aspect), in (row, col)
    sy, sx = scale, scale * aspect
    cos, sin = np.cos(theta), np.sin(theta)
    a00 = cos * sy - sin * shear * sy
    a01 = -sin * sx
    a10 = sin * sy + cos * shear * sy
    a11 = cos * sx
    det = a00 * a11 - a01 * a10
    i00, i01, i10, i11 = a11 / det, -a01 / det, -a10 / det, a00 / det
    qr = row[None, :] - ((side - 1) / 2 + dr)[:, None]
    qc = col[None, :] - ((side - 1) / 2 + dc)[:, None]
    centre = np.float32((_CANVAS - 1) / 2)
    sr = i00[:, None] * qr + i01[:, None] * qc + centre
    sc = i10[:, None] * qr + i11[:, None] * qc + centre
    np.clip(sr, 0, _CANVAS - 1.001, out=sr)  # beyond the canvas: background distance
    np.clip(sc, 0, _CANVAS - 1.001, out=sc)
    r0 = sr.astype(np.intp)
    c0 = sc.astype(np.intp)
    fr = sr - r0
    fc = sc - c0
    base = glyph[:, None] * (_CANVAS * _CANVAS) + r0 * _CANVAS + c0
    v00 = sdf_flat[base]
    v01 = sdf_flat[base + 1]
    v10 = sdf_flat[base + _CANVAS]
    v11 = sdf_flat[base + _CANVAS + 1]
    top = v00 + fc * (v01 - v00)
    bottom = v10 + fc * (v11 - v10)
    dist = top + fr * (bottom - top)  # canvas pixels, negative inside the ink
    dist *= np.sqrt(np.abs(det))[:, None]  # -> output pixels
    # moving the zero level is dilation (stroke > 0) or erosion by a disk; the ramp width blurs
    coverage = np.clip(0.5 - (dist - stroke[:, None]) / soft[:, None], 0.0, 1.0)
    out[:] = 1.0 - ink[:, None] * coverage
    out += noise[:, None] * noise_rng.standard_normal(out.shape)
    np.clip(out, 0.0, 1.0, out=out)


def generate_nist36(n_per_class, seed=0, split="train"):
    """Generate a synthetic 36-class character set in the NIST36 layout.

    **Synthetic, not handwriting.** Each sample is a glyph of one of the fonts
    matplotlib ships (DejaVu Sans, Sans Mono and Serif, STIX General; regular
    and bold), rendered once per font into a cache of signed distance fields
    and then distorted per sample: a random affine map (rotation +-12 deg,
    shear +-0.3, glyph size 17-24 px, aspect +-15 %, shift +-2 px), a random
    stroke width (erosion up to 0.3 px or dilation up to 0.6 px by a disk,
    done by moving the distance field's zero level), random edge blur, ink
    darkness 0.8-1 and Gaussian noise (sd up to 0.04). Useful when no real data
    is at hand and for small test fixtures; a model trained on it is not a
    handwriting model.

    Parameters
    ----------
    n_per_class : int
        Samples per class; the result has ``36 * n_per_class`` rows.
    seed : int
        Non-negative seed. Together with ``split`` it seeds
        ``np.random.default_rng``; equal arguments give identical bytes (with
        the same matplotlib/FreeType, which render the cached glyphs).
    split : str
        Name mixed into the seed, so ``"train"``, ``"valid"`` and ``"test"``
        drawn with one seed are different samples.

    Returns
    -------
    X : (36 * n_per_class, 1024) ndarray of float64
        Images in [0, 1], dark ink on white, stored transposed
        (``X[i].reshape(32, 32).T`` is upright).
    Y : (36 * n_per_class, 36) ndarray of float64
        One-hot labels. Rows are sorted by class like the real files:
        rows ``k * n_per_class`` to ``(k + 1) * n_per_class`` are class ``k``.

    Examples
    --------
    >>> from fastnn.data import labels_to_chars
    >>> X, Y = generate_nist36(2, seed=0)
    >>> X.shape, Y.shape, "".join(labels_to_chars(Y[::2]))
    ((72, 1024), (72, 36), 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789')
    """
    if isinstance(n_per_class, (bool, np.bool_)) or int(n_per_class) != n_per_class:
        raise ValueError(f"generate_nist36: n_per_class must be an int, got {n_per_class!r}")
    n_per_class = int(n_per_class)
    if n_per_class < 0:
        raise ValueError(f"generate_nist36: n_per_class must be >= 0, got {n_per_class}")
    rng = np.random.default_rng(_split_seed(seed, split))
    sdf, n_fonts = _glyph_bank()
    sdf_flat = sdf.reshape(-1)
    n = N_CLASSES * n_per_class
    labels = np.repeat(np.arange(N_CLASSES), n_per_class)
    glyph = labels * n_fonts + rng.integers(0, n_fonts, size=n)
    size = rng.uniform(*_SIZE_RANGE, size=n)
    params = (
        (size / _GLYPH_PX).astype(np.float32),
        np.exp(rng.uniform(-_LOG_ASPECT, _LOG_ASPECT, size=n)).astype(np.float32),
        rng.uniform(-_ROTATION, _ROTATION, size=n).astype(np.float32),
        rng.uniform(-_SHEAR, _SHEAR, size=n).astype(np.float32),
        rng.uniform(-_SHIFT, _SHIFT, size=n).astype(np.float32),
        rng.uniform(-_SHIFT, _SHIFT, size=n).astype(np.float32),
        rng.uniform(*_STROKE_RANGE, size=n).astype(np.float32),
        rng.uniform(*_SOFT_RANGE, size=n).astype(np.float32),
        rng.uniform(*_INK_RANGE, size=n),
        rng.uniform(*_NOISE_RANGE, size=n),
    )
    X = np.empty((n, N_PIXELS), dtype=np.float64)
    noise_rng = np.random.default_rng(rng.integers(2**63))
    chunk = 1024  # samples per batch: each float32 temporary is chunk * N_PIXELS * 4 bytes (4 MiB)
    for start in range(0, n, chunk):
        sl = slice(start, min(start + chunk, n))
        _render_batch(sdf_flat, glyph[sl], [p[sl] for p in params], noise_rng, X[sl])
    return X, onehot(labels, N_CLASSES)


def generated_splits(seed=0, sizes=GENERATED_SIZES):
    """Generate train/valid/test splits of the synthetic set.

    Parameters
    ----------
    seed : int
        Non-negative seed; each split is ``generate_nist36(n, seed, split=name)``,
        so the splits differ from each other and the result is deterministic.
    sizes : mapping of str to int
        Samples per class of each split. The default, ``GENERATED_SIZES``, is
        300/100/50 for train/valid/test, the sizes of the hw36 set.

    Returns
    -------
    splits : dict of str to (X, Y)
        ``X`` (36 * n, 1024) float64 and ``Y`` (36 * n, 36) float64 one-hot, as
        from ``generate_nist36``.

    Examples
    --------
    >>> splits = generated_splits(sizes={"train": 3, "valid": 1})
    >>> {k: v[0].shape for k, v in splits.items()}
    {'train': (108, 1024), 'valid': (36, 1024)}
    """
    return {name: generate_nist36(n, seed=seed, split=name) for name, n in sizes.items()}

