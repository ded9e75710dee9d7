"""Numba's part of ``fastnn.register_activation``: a user's scalar function of one float compiled to C
functions float(float) and double(double) (``numba.cfunc``) whose addresses the compiled core calls.

The only module of fastnn that imports Numba; ``fastnn.activations.register_activation`` imports
it when it is first called, so that ``import fastnn`` never loads Numba.
"""

from __future__ import annotations

try:
    import numba
    from numba import types
except ImportError as exc:  # pragma: no cover - exercised by a subprocess test
    raise ImportError("fastnn.register_activation compiles your activation with Numba, which is not installed: "
                      "pip install 'fastnn[jit]'") from exc

from ._config import JIT_OPTIONS

__all__ = ["compile_scalar", "numba_version", "SIGNATURES"]

SIGNATURES = {"float32": types.float32(types.float32), "float64": types.float64(types.float64)}


def _cfunc(fn, sig, options):
    return numba.cfunc(sig, **options)(fn)


def compile_scalar(fn, what: str) -> dict:
    """``fn`` (a Python function of one float) compiled for float32 and float64: {'float32': cfunc,
    'float64': cfunc}, each with ``.address``.  ``what`` names it in errors ("fn", "derivative").

    Raises
    ------
    TypeError
        Numba cannot compile ``fn`` (the message names the function and gives Numba's first lines).
    """
    out = {}
    name = getattr(fn, "__qualname__", repr(fn))
    for dtype, sig in SIGNATURES.items():
        options = dict(JIT_OPTIONS)
        try:
            try:
                out[dtype] = _cfunc(fn, sig, options)
            except RuntimeError as exc:
                if "cannot cache" not in str(exc) or not options.get("cache"):
                    raise
                options["cache"] = False  # defined where Numba keeps no cache (python -c, exec): compile anyway
                out[dtype] = _cfunc(fn, sig, options)
        except Exception as exc:
            lines = [line for line in str(exc).splitlines() if line.strip()]
            detail = " / ".join(lines[:4]) if lines else type(exc).__name__
            raise TypeError(f"register_activation: Numba cannot compile {what} {name!r} as a function of one "
                            f"{dtype} (write it with math and arithmetic on one float): {detail}") from None
    return out


def numba_version() -> str:
    return numba.__version__


