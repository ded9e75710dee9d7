"""Private compiled kernels: one Cython + OpenMP extension, ``_core``, built when fastnn is installed.

Kernels never validate and never allocate: they take input arrays and ``*_out`` arrays and fill the
outputs.  ``fastnn.functional`` is the validated public layer above them.

Importing this package loads fastnn's private copy of OpenBLAS (the ``scipy-openblas32`` wheel) in
single-threaded mode and hands its ``cblas_?gemm`` addresses to the core.  The products of small
networks (32x1024 @ 1024x64) are too small for OpenBLAS's own threads: fastnn cuts each large product
in two and runs the halves on its own OpenMP threads instead.  NumPy's and SciPy's BLAS are untouched.
"""

import ctypes
import importlib.util
import os
import warnings
from pathlib import Path

from .._config import BARRIER_SPIN_PAUSES, MALLOC_MMAP_THRESHOLD, MALLOC_TRIM_THRESHOLD, PARALLEL_GEMM_MIN_FLOPS

try:
    from . import _core
except ImportError as exc:  # pragma: no cover - exercised by a subprocess test
    _root = Path(__file__).resolve().parents[2]
    if (_root / "setup.py").exists() and (_root / "pyproject.toml").exists():
        raise ImportError(
            f"fastnn's compiled core is missing: this is fastnn's source tree ({_root}), which shadows "
            "an installed fastnn when Python runs from it, and its extension has not been built here. "
            "Run fastnn from another directory, or install it in editable mode, which builds the extension "
            "in place: `pip install -e .`"
        ) from exc
    raise ImportError(f"fastnn's compiled core could not be loaded ({exc}); reinstall with `pip install .`") from exc


def _load_openblas():
    spec = importlib.util.find_spec("scipy_openblas32")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("fastnn needs the 'scipy-openblas32' package (pip install scipy-openblas32)")
    libdir = Path(spec.submodule_search_locations[0]) / "lib"
    candidates = sorted(libdir.glob("libscipy_openblas*.so*")) + sorted(libdir.glob("libscipy_openblas*.dylib"))
    if not candidates:
        raise ImportError(f"fastnn: no OpenBLAS library found in {libdir}")
    # OpenBLAS reads its thread count once, when it is loaded: load it single-threaded, then restore the
    # environment so that nothing else in the process is affected.
    saved = os.environ.get("OPENBLAS_NUM_THREADS")
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        lib = ctypes.CDLL(str(candidates[0]), mode=getattr(os, "RTLD_LOCAL", 0))
    finally:
        if saved is None:
            del os.environ["OPENBLAS_NUM_THREADS"]
        else:
            os.environ["OPENBLAS_NUM_THREADS"] = saved
    if lib.scipy_openblas_get_num_threads() != 1:  # someone loaded it before us, threaded
        lib.scipy_openblas_set_num_threads(1)
        warnings.warn("fastnn: scipy_openblas32 was already loaded multi-threaded; matrix products may be slower",
                      RuntimeWarning, stacklevel=3)
    return lib


_openblas = _load_openblas()
_core.configure(ctypes.cast(_openblas.scipy_cblas_sgemm, ctypes.c_void_p).value,
                ctypes.cast(_openblas.scipy_cblas_dgemm, ctypes.c_void_p).value, float(PARALLEL_GEMM_MIN_FLOPS),
                BARRIER_SPIN_PAUSES)


def _keep_freed_memory():
    """Fixed glibc malloc thresholds (see _config.MALLOC_TRIM_THRESHOLD); True when they were set."""
    if os.environ.get("FASTNN_MALLOPT") == "0" or any(
            k in os.environ for k in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to do
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    return bool(mallopt(m_mmap_threshold, MALLOC_MMAP_THRESHOLD) and mallopt(m_trim_threshold, MALLOC_TRIM_THRESHOLD))


MALLOPT_SET = _keep_freed_memory()
