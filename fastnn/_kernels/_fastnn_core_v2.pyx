# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
# cython: nonecheck=False, embedsignature=True
"""fastnn's compiled core, built for x86-64-v2 CPUs (SSE4.2, POPCNT: every x86-64 CPU since about 2009).

One of the copies of the same code (``_core.pxi``), each compiled for one CPU level; fastnn._kernels
loads the best one the running CPU has and calls it ``fastnn._kernels._core``.
"""

include "_core.pxi"
