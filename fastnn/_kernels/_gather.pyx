# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Row gather (Cython): copy rows picked by an index into a contiguous buffer, GIL released.

The arrays are passed as uint8 byte views of shape (n_rows, row_bytes), so one
kernel serves every dtype; the functional layer makes those views and checks
the indices.
"""

from libc.stdint cimport int64_t
from libc.string cimport memcpy


def gather_rows(const unsigned char[:, ::1] src,  # IN (N, row_bytes)
                const int64_t[::1] index,          # IN (n,), each in [0, N)
                unsigned char[:, ::1] out):        # OUT (n, row_bytes)
    """out[r] = src[index[r]] for every r."""
    cdef Py_ssize_t r, n = index.shape[0], width = src.shape[1]
    if width == 0 or n == 0:
        return
    with nogil:
        for r in range(n):
            memcpy(&out[r, 0], &src[index[r], 0], width)
