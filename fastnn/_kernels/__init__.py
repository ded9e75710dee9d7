"""Private compiled kernels.

Kernels never validate and never allocate: they take input arrays and ``*_out``
arrays and fill the outputs.  ``fastnn.functional`` is the validated public
layer above them.  Numba kernels live in the ``.py`` modules of this package,
the Cython row-gather in ``_gather.pyx``.
"""
