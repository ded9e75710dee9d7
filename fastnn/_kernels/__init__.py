"""Private compiled kernels: the core (Cython), built when fastnn is installed, and how it is loaded.

Kernels never validate and never allocate: they take input arrays and ``*_out`` arrays and fill the
outputs.  ``fastnn.functional`` is the validated public layer above them.

**Which copy of the core.**  On x86-64 the core is built once per x86-64 level (``_fastnn_core_v2``,
``_v3``, ``_v4``; or one ``_fastnn_core_custom`` for FASTNN_MARCH).  ``_cpu``, compiled for the baseline,
tells the running CPU's level; this package loads the best copy that the CPU can run, after reading the
level each copy was compiled for from its file (so a copy built for more than the CPU has is never run:
a CPU that can run none gets a one-line ImportError, not an illegal instruction).  ``FASTNN_CORE=v2``
(or v3, v4, custom) asks for one copy.  The loaded copy is ``fastnn._kernels._core``; ``CORE_LEVEL``
names its level.

**Threads.**  The core's own thread team (``_team.h``) runs the parts of the large products, the
optimizer step, the images of a convolution and the epoch's roles.  Its size is FASTNN_NUM_THREADS, else
OMP_NUM_THREADS, else the CPUs the process may use (its CPU affinity, and the CPU quota of its cgroup,
as a container sets it: :func:`fastnn._kernels.cpus.usable_cpus`); ``fastnn.functional.set_num_threads``
changes it.  When threadpoolctl is installed the team is registered with it (user_api 'openmp',
internal_api 'fastnn'), so that ``threadpool_limits(1)``, which scikit-learn and joblib use against
oversubscription, limits fastnn too.

Importing this package also loads fastnn's private copy of OpenBLAS (the ``scipy-openblas32`` wheel) in
single-threaded mode and hands its ``cblas_?gemm`` addresses to the core: the team cuts the products
into parts, each one BLAS call on one thread.  NumPy's and SciPy's BLAS are untouched.
"""

import ctypes
import importlib
import importlib.util
import mmap
import os
import sys
import warnings
from pathlib import Path

from .._config import (MALLOC_MMAP_THRESHOLD, MALLOC_TRIM_THRESHOLD, PARTS, SPIN_OVERSUBSCRIBED_US, SPIN_US,
                       YIELD_US)
from .cpus import default_threads, usable_cpus

#: x86-64 levels, lowest first.
LEVELS = ("x86-64", "x86-64-v2", "x86-64-v3", "x86-64-v4")
#: The copies of the core, in the order they are preferred when the CPU can run them.
VARIANTS = ("_fastnn_core_custom", "_fastnn_core_v4", "_fastnn_core_v3", "_fastnn_core_v2", "_fastnn_core_generic")
_MARKER = b"fastnn-core-level:"


def _missing_core(detail) -> ImportError:
    root = Path(__file__).resolve().parents[2]
    if (root / "setup.py").exists() and (root / "pyproject.toml").exists():
        return ImportError(
            f"fastnn's compiled core is missing: this is fastnn's source tree ({root}), which shadows an "
            "installed fastnn when Python runs from it, and its extension has not been built here. Run fastnn "
            "from another directory, or install it in editable mode, which builds the extension in place: "
            "`pip install -e .`")
    return ImportError(f"fastnn's compiled core could not be loaded ({detail}); reinstall with `pip install .`")


try:
    from . import _cpu
except ImportError as exc:  # pragma: no cover - exercised by a subprocess test
    raise _missing_core(exc) from exc

#: The running CPU's x86-64 level ('x86-64-v4', ...), or 'generic' on another architecture.
CPU_LEVEL = _cpu.level()


def built_marker(path) -> tuple[str, tuple[str, ...]] | None:
    """(level, extensions) a copy of the core was compiled for, read from its file without loading it (None:
    no marker: not a copy fastnn can vouch for)."""
    try:
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            at = mm.find(_MARKER)
            if at < 0:
                return None
            end = mm.find(b";", at, at + 64)
            if end < 0:
                return None
            level = mm[at + len(_MARKER):end].decode("ascii")
            features = ()
            if mm[end + 1:end + 10] == b"features:":
                stop = mm.find(b";", end + 10, end + 1024)
                if stop < 0:
                    return None
                features = tuple(f for f in mm[end + 10:stop].decode("ascii").split(",") if f)
            return level, features
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def built_level(path) -> str | None:
    """The level a copy of the core was compiled for, read from its file without loading it (None: unknown)."""
    marker = built_marker(path)
    return marker[0] if marker else None


def runs_here(level: str, cpu_level: str = CPU_LEVEL) -> bool:
    """Whether a copy built for ``level`` runs on a CPU of ``cpu_level``."""
    if level in LEVELS and cpu_level in LEVELS:
        return LEVELS.index(level) <= LEVELS.index(cpu_level)
    return level == "generic" and cpu_level == "generic"


def _choose_core() -> tuple[str, str]:
    """(module name, level) of the copy of the core to load; ImportError naming the problem when none fits."""
    built = []
    for name in VARIANTS:
        spec = importlib.util.find_spec(f"{__name__}.{name}")
        if spec is not None and spec.origin:
            built.append((name, spec.origin))
    if not built:
        raise _missing_core("no copy of the core was built")
    forced = os.environ.get("FASTNN_CORE", "").strip()
    if forced:
        wanted = [(n, p) for n, p in built if n.endswith("_" + forced) or n.endswith("_" + forced.rsplit("-", 1)[-1])]
        if not wanted:
            raise ImportError(f"FASTNN_CORE={forced}: no such copy of fastnn's core; this build has "
                              f"{', '.join(n.rsplit('_', 1)[-1] for n, _ in built)}")
        built = wanted
    refused = []
    for name, path in built:
        marker = built_marker(path)
        if marker is None:
            refused.append(f"{name} (no level marker: a damaged or foreign file)")
            continue
        level, features = marker
        missing = [f for f in features if not _cpu.supports(f)]
        if runs_here(level) and not missing:
            return name, level
        refused.append(level + (f" with {', '.join(missing)}" if missing and runs_here(level) else ""))
    fix = ("unset FASTNN_CORE" if forced else
           "reinstall fastnn on this machine (pip install --force-reinstall --no-cache-dir .) without FASTNN_MARCH")
    raise ImportError(f"fastnn's compiled core was built for {' and '.join(sorted(set(refused)))}, which this CPU "
                      f"({CPU_LEVEL}) cannot run: {fix}")


CORE_MODULE, CORE_LEVEL = _choose_core()
try:
    _core = importlib.import_module(f".{CORE_MODULE}", __name__)
except ImportError as exc:  # pragma: no cover - a damaged install
    raise _missing_core(exc) from exc
sys.modules[f"{__name__}._core"] = _core


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
_core.configure(*(ctypes.cast(getattr(_openblas, name), ctypes.c_void_p).value
                  for name in ("scipy_cblas_sgemm", "scipy_cblas_dgemm", "scipy_openblas_get_num_threads",
                               "scipy_openblas_set_num_threads")),
                PARTS, SPIN_US, YIELD_US, SPIN_OVERSUBSCRIBED_US)

#: The CPUs this process may use (affinity and cgroup quota), read at import.
CPUS = usable_cpus()
_core.set_cpus(CPUS)


def _initial_threads() -> int:
    n = default_threads(CPUS)
    if n > _core.MAX_THREADS:
        warnings.warn(f"fastnn: {n} threads asked for (FASTNN_NUM_THREADS / OMP_NUM_THREADS); the team has at most "
                      f"{_core.MAX_THREADS}", RuntimeWarning, stacklevel=3)
        n = _core.MAX_THREADS
    return n


_core.set_num_threads(_initial_threads())


def _register_threadpoolctl():
    """Let threadpoolctl see and limit the team (only when it is installed; fastnn does not need it).  A
    threadpoolctl too old for custom controllers (before 3.2), or one that fails to import, is left alone."""
    try:
        if importlib.util.find_spec("threadpoolctl") is None:
            return False
        import threadpoolctl

        base, register = threadpoolctl.LibController, threadpoolctl.register
    except Exception:  # noqa: BLE001 - a broken or old threadpoolctl must not stop fastnn from loading
        return False

    class FastnnController(base):
        """fastnn's thread team, as threadpoolctl sees it."""

        user_api = "openmp"
        internal_api = "fastnn"
        filename_prefixes = ("_fastnn_core_",)
        check_symbols = ("fastnn_get_num_threads", "fastnn_set_num_threads")

        def get_num_threads(self):
            return self.dynlib.fastnn_get_num_threads()

        def set_num_threads(self, num_threads):
            self.dynlib.fastnn_set_num_threads(int(num_threads))

        def get_version(self):
            from .. import __version__

            return __version__

        def set_additional_attributes(self):
            self.core_level = CORE_LEVEL

    register(FastnnController)
    return True


THREADPOOLCTL = _register_threadpoolctl()


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
