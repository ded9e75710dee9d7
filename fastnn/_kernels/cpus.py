"""How many CPUs this process may use, and the thread team's default size.

``os.cpu_count()`` counts the machine's CPUs, which overstates what a process may use when its CPU
affinity is narrower (``taskset``, ``numactl``, a batch scheduler) or when its cgroup has a CPU quota (a
container with ``--cpus 2``, Kubernetes' CPU limits, systemd's CPUQuota): then threads beyond the quota
only wait for each other.  :func:`usable_cpus` takes the smallest of the three.
"""

from __future__ import annotations

import math
import os
import posixpath
import warnings
from pathlib import Path

#: Environment variables that set the team size, strongest first.
THREAD_VARIABLES = ("FASTNN_NUM_THREADS", "OMP_NUM_THREADS")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _cgroup_paths(proc_cgroup: Path) -> tuple[str | None, str | None]:
    """(the cgroup v2 path, the v1 'cpu' controller's path) of this process, from /proc/self/cgroup."""
    v2 = v1 = None
    text = _read(proc_cgroup) or ""
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            v2 = parts[2]
        elif "cpu" in parts[1].split(","):
            v1 = parts[2]
    return v2, v1


def _ancestors(root: Path, rel: str | None) -> list[Path]:
    """root/rel, its parents up to root, and root itself (a container sees its own cgroup as the root)."""
    out = []
    rel = posixpath.normpath("/" + rel).lstrip("/") if rel else ""  # no '..' out of the root
    if rel and rel != ".":
        p = root / rel
        while True:
            out.append(p)
            if p == root or root not in p.parents:
                break
            p = p.parent
    if root not in out:
        out.append(root)
    return out


def cgroup_cpu_limit(root: str | os.PathLike = "/sys/fs/cgroup",
                     proc_cgroup: str | os.PathLike = "/proc/self/cgroup") -> float | None:
    """The CPU quota of this process's cgroup in CPUs (quota / period, the smallest along its path), or None.

    cgroup v2 reads ``cpu.max`` ("200000 100000": 2 CPUs; "max 100000": none); v1 reads
    ``cpu.cfs_quota_us`` and ``cpu.cfs_period_us`` (-1: none) of the 'cpu' controller.
    """
    root = Path(root)
    v2, v1 = _cgroup_paths(Path(proc_cgroup))
    limits = []
    for d in _ancestors(root, v2):
        fields = (_read(d / "cpu.max") or "").split()
        if len(fields) == 2 and fields[0] != "max":
            try:
                quota, period = float(fields[0]), float(fields[1])
            except ValueError:
                continue
            if quota > 0 and period > 0 and math.isfinite(quota / period):
                limits.append(quota / period)
    for mount in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        base = root / mount
        if not base.is_dir():
            continue
        for d in _ancestors(base, v1):
            try:
                quota = float(_read(d / "cpu.cfs_quota_us") or "-1")
                period = float(_read(d / "cpu.cfs_period_us") or "0")
            except ValueError:
                continue
            if quota > 0 and period > 0 and math.isfinite(quota / period):
                limits.append(quota / period)
    return min(limits) if limits else None


def usable_cpus() -> int:
    """CPUs this process may use: its affinity, lowered to its cgroup's CPU quota (rounded up), at least 1."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        n = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    if limit is not None:
        n = min(n, max(1, math.ceil(limit)))
    return max(1, n)


def _parse_threads(name: str, value: str) -> int | None:
    """A positive thread count from an environment variable (OMP_NUM_THREADS may be a list: its first entry)."""
    first = value.split(",")[0].strip()
    try:
        n = int(first)
    except ValueError:
        n = 0
    if n < 1:
        warnings.warn(f"fastnn: {name}={value!r} is not a positive integer; ignored", RuntimeWarning, stacklevel=3)
        return None
    return n


def default_threads(cpus: int | None = None, environ=os.environ) -> int:
    """The team's size at import: FASTNN_NUM_THREADS, else OMP_NUM_THREADS, else the usable CPUs."""
    for name in THREAD_VARIABLES:
        value = environ.get(name)
        if value is not None and value.strip():
            n = _parse_threads(name, value)
            if n is not None:
                return n
    return usable_cpus() if cpus is None else cpus
