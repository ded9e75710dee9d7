"""Random distortions of character rows in the hw36 layout, for training classifiers that read pages."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["augment"]

#: How often (in rows) ``augment`` reports its progress.
REPORT_ROWS = 512


def augment(X, rng, strength: float = 1.0, *, on_progress=None) -> np.ndarray:
    """Randomly distorted copies of hw36-layout rows (rotation, shear, scale, aspect, shift, stroke width).

    Parameters
    ----------
    X : (n, 1024) ndarray
        Rows in the hw36 layout (dark ink on white, stored transposed).
    rng : numpy.random.Generator
    strength : float
        Scales every distortion (0: none).
    on_progress : callable(fraction), optional
        Told the fraction of rows done now and then (display only).

    Returns
    -------
    (n, 1024) ndarray of float32 in the same layout.
    """
    X = np.asarray(X)
    n = X.shape[0]
    ink = 1.0 - X.reshape(n, 32, 32).transpose(0, 2, 1)  # upright, ink = 1
    out = np.empty(ink.shape, np.float32)
    ang = np.deg2rad(rng.normal(0, 8 * strength, n))
    scale = np.exp(rng.normal(0, 0.1 * strength, n))
    aspect = np.exp(rng.normal(0, 0.1 * strength, n))
    shear = rng.normal(0, 0.15 * strength, n)
    shift = rng.normal(0, 1.2 * strength, (n, 2))
    thick = rng.random(n)
    centre = np.array([15.5, 15.5])
    for i in range(n):
        if on_progress is not None and i and i % REPORT_ROWS == 0:
            on_progress(i / n)
        c, s = np.cos(ang[i]), np.sin(ang[i])
        A = (np.array([[c, -s], [s, c]]) @ np.array([[1.0, shear[i]], [0.0, 1.0]])
             @ np.diag([scale[i] * aspect[i], scale[i] / aspect[i]]))
        M = np.linalg.inv(A)
        im = ndi.affine_transform(ink[i], M, centre - M @ (centre + shift[i]), order=1, mode="constant")
        if thick[i] < 0.25 * strength:
            im = ndi.grey_dilation(im, size=(2, 2))
        elif thick[i] > 1 - 0.15 * strength and im.sum() > 60:
            im = ndi.grey_erosion(im, size=(2, 2))
        out[i] = im
    return (1.0 - out).transpose(0, 2, 1).reshape(n, -1)
