"""fastnn's thread team: its size (:func:`get_num_threads`, :func:`set_num_threads`, :data:`MAX_THREADS`)
and which copy of the compiled core runs it (:func:`core_info`)."""

from __future__ import annotations

import numbers

from .._kernels import _core

__all__ = ["MAX_THREADS", "get_num_threads", "set_num_threads", "core_info"]

#: The largest thread team (threads, the caller included).
MAX_THREADS = _core.MAX_THREADS


def get_num_threads() -> int:
    """The size of fastnn's thread team in use: the threads a kernel's parts may run on, the caller included.

    At import it is ``FASTNN_NUM_THREADS``, else ``OMP_NUM_THREADS``, else the CPUs this process may use
    (its CPU affinity and its cgroup's CPU quota, as a container sets them).  ``set_num_threads``,
    ``Trainer(threads=)`` and threadpoolctl's ``threadpool_limits`` change it.
    """
    return _core.get_num_threads()


def set_num_threads(n: int) -> int:
    """Set the size of fastnn's thread team for this process; return the previous setting.

    Work is cut into parts by the shapes alone, never by the thread count, so every setting gives the same
    numbers: more threads only take the parts side by side.  A step with fewer parts than threads keeps
    only as many busy (a plan's ``work_parts`` lists them).
    """
    return _core.set_num_threads(check_threads(n))


def check_threads(n) -> int:
    """``n`` as an int, refused (ValueError naming ``threads``) unless it is an integer from 1 to MAX_THREADS."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or not 1 <= n <= _core.MAX_THREADS:
        raise ValueError(f"threads: expected an integer from 1 to {_core.MAX_THREADS}, got {n!r}")
    return int(n)


def core_info() -> dict:
    """Which copy of the compiled core runs, and on what: a dict.

    ``core`` is the x86-64 level it was compiled for ('x86-64-v2', 'x86-64-v3', 'x86-64-v4'; or the level
    of a FASTNN_MARCH build), ``module`` its module, ``cpu`` the running CPU's level, ``threads`` the
    team's size, ``cpus`` the CPUs the process may use, ``workers`` the team's threads started so far, and
    ``threadpoolctl`` whether the team is registered with threadpoolctl.

    Examples
    --------
    >>> sorted(core_info())
    ['core', 'cpu', 'cpus', 'module', 'threadpoolctl', 'threads', 'workers']
    """
    from .. import _kernels

    info = _core.team_info()
    return {"core": _kernels.CORE_LEVEL, "module": _kernels.CORE_MODULE, "cpu": _kernels.CPU_LEVEL,
            "threads": info["size"], "cpus": info["cpus"], "workers": info["workers"],
            "threadpoolctl": _kernels.THREADPOOLCTL}
