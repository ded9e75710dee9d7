"""A picture of the segmentation: the character boxes over the ink image, one colour per line."""

from __future__ import annotations

import os

import numpy as np

from .._io import atomic_savefig


def draw_boxes(binary, boxes, lines, path):
    """Save a PNG of the boxes over the binary image, one colour per line.

    The PNG is at most 2000 pixels on its longer side: a larger image is drawn at 1/k of its size (every
    k-th pixel, k = ceil(longer side / 2000)), the boxes scaled with it; ``boxes`` are in the image's pixels.

    Parameters
    ----------
    binary : (H, W) array_like
        Ink image (or any grayscale image).
    boxes : (n, 4) array_like of int
        ``[y1, x1, y2, x2]`` per character.
    lines : list of list of list of int
        As returned by :func:`group_lines`; boxes in no line are drawn gray.
    path : str or os.PathLike
        Output PNG file, written atomically (``fastnn._io.atomic_savefig``: a temporary file in the same
        folder, then renamed), so a killed run never leaves half a picture.

    Returns
    -------
    path : str
        The file written.
    """
    import matplotlib

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    binary = np.asarray(binary)
    boxes = np.asarray(boxes).reshape(-1, 4)
    h, w = binary.shape[:2]
    step = max(1, int(np.ceil(max(h, w) / 2000)))  # keep the PNG reasonable
    fig = Figure(figsize=(w / step / 100, h / step / 100), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.imshow(binary[::step, ::step], cmap="gray_r", interpolation="nearest", extent=(0, w, h, 0))
    ax.set_axis_off()
    cmap = matplotlib.colormaps["tab10"]
    colour = {}
    for li, line in enumerate(lines):
        for word in line:
            for i in word:
                colour[int(i)] = cmap(li % 10)
    for i, (y1, x1, y2, x2) in enumerate(boxes):
        ax.add_patch(
            Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=1.5, edgecolor=colour.get(i, (0.5, 0.5, 0.5, 1)))
        )
    path = os.fspath(path)
    atomic_savefig(fig, path, dpi=100)
    return path
