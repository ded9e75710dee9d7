"""The thread team's size: the CPUs a process may use, the environment variables, threadpoolctl, set_num_threads.

* ``cgroup_cpu_limit`` on fake cgroup trees (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``)
  built in ``tmp_path``: quotas, no quota, the smallest quota along the path, a container that sees only its
  own cgroup as the root, garbage and missing files (None, never an exception);
* ``usable_cpus`` and ``default_threads`` in this process, with the affinity, the quota and the environment
  replaced;
* the size that ``import fastnn`` gives the team, in child processes: under an affinity of one CPU, with
  FASTNN_NUM_THREADS / OMP_NUM_THREADS (precedence, lists, bad values, values above MAX_THREADS);
* threadpoolctl in child processes: the team is one 'fastnn' entry, ``threadpool_limits`` limits it and
  restores it, and a product gives the same numbers inside a limit; fastnn imports without threadpoolctl;
* ``set_num_threads``'s argument checking.

Children run ``sys.executable`` (the installed fastnn, as in tests/test_processes.py) from an empty
directory in ``tmp_path``, with no PYTHONPATH, no FASTNN_* and no OMP_NUM_THREADS inherited from the test's
environment, HOME and the caches inside ``tmp_path``, and a timeout.
"""

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

import fastnn
import fastnn.functional as F
from fastnn._kernels import cpus

TIMEOUT = 60  # seconds for one child process
#: The CPUs this (pytest) process may use; a child started without an affinity limit inherits the same.
HOST_CPUS = cpus.usable_cpus()
MAX_THREADS = F.MAX_THREADS


# --------------------------------------------------------------------------- child processes

def _child_env(tmp_path, **variables):
    """The test's environment without PYTHONPATH, PYTHONWARNINGS, FASTNN_* and OMP_NUM_THREADS, HOME and the
    caches inside tmp_path, plus ``variables``."""
    drop = {"PYTHONPATH", "PYTHONWARNINGS", "OMP_NUM_THREADS"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("FASTNN_")}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), FASTNN_CACHE=str(tmp_path / "fastnn-cache"),
               PYTHONFAULTHANDLER="1")
    env.update(variables)
    return env


def _describe(proc, problem=""):
    rc = proc.returncode
    how = f"exited with {rc}"
    if rc is not None and rc < 0:
        try:
            how = f"was killed by {signal.Signals(-rc).name}"
        except ValueError:
            how = f"was killed by signal {-rc}"
    return (f"child {how}{problem}\n$ {shlex.join(map(str, proc.args))}\n"
            f"--- stdout:\n{proc.stdout}\n--- stderr:\n{proc.stderr}")


def _run(script, tmp_path, *args, env=None, prefix=(), preexec_fn=None, check=True):
    """Run ``script`` with ``python -c`` in a child (from the empty directory tmp_path/cwd); with ``check``,
    fail the test unless it exits 0."""
    cwd = tmp_path / "cwd"
    cwd.mkdir(exist_ok=True)
    cmd = [*prefix, sys.executable, "-c", script, *map(str, args)]
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=_child_env(tmp_path) if env is None else env, capture_output=True,
                              text=True, timeout=TIMEOUT, preexec_fn=preexec_fn)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"hang: {shlex.join(cmd)[:300]} still ran after {TIMEOUT} s (killed)\n{exc.stderr}")
    if check:
        assert proc.returncode == 0, _describe(proc)
    return proc


def _result(proc):
    """The JSON object that a child printed on its last line of output."""
    lines = proc.stdout.strip().splitlines()
    assert lines, _describe(proc, ", but printed nothing")
    return json.loads(lines[-1])


#: Imports fastnn recording every warning, then prints the team's size, core_info() and the warnings.
TEAM_SCRIPT = """
import json, os, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import fastnn.functional as F
print(json.dumps({"threads": F.get_num_threads(), "info": F.core_info(), "affinity": sorted(os.sched_getaffinity(0)),
                  "warnings": [[w.category.__name__, str(w.message)] for w in caught]}))
"""


def _team(tmp_path, prefix=(), preexec_fn=None, **variables):
    return _result(_run(TEAM_SCRIPT, tmp_path, env=_child_env(tmp_path, **variables), prefix=prefix,
                        preexec_fn=preexec_fn))


def _thread_warnings(result):
    """The RuntimeWarnings about a thread variable that the child's import raised."""
    return [msg for cat, msg in result["warnings"] if cat == "RuntimeWarning" and "_NUM_THREADS" in msg]


# --------------------------------------------------------------------------- cgroup_cpu_limit

def _limit(tmp_path, proc_cgroup, files):
    """cgroup_cpu_limit on a fake tree: ``files`` maps paths under the fake root (tmp_path/cgroup) to their
    content (str, or bytes for garbage); ``proc_cgroup`` is the fake /proc/self/cgroup (None: no such file)."""
    root = tmp_path / "cgroup"
    root.mkdir()
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    proc = tmp_path / "proc-self-cgroup"
    if proc_cgroup is not None:
        proc.write_text(proc_cgroup)
    return cpus.cgroup_cpu_limit(root=root, proc_cgroup=proc)


V2 = "0::/a/b\n"
V1 = "12:pids:/docker/abc\n4:cpu,cpuacct:/docker/abc\n3:memory:/docker/abc\n1:name=systemd:/docker/abc\n"
V1_DIR = "cpu,cpuacct/docker/abc"


def _v1(quota, period="100000", where=V1_DIR):
    return {f"{where}/cpu.cfs_quota_us": quota + "\n", f"{where}/cpu.cfs_period_us": period + "\n"}


CGROUP_CASES = {
    # cgroup v2: cpu.max of the process's cgroup and of its parents
    "v2-two-cpus": (V2, {"a/b/cpu.max": "200000 100000\n"}, 2.0),
    "v2-max-is-no-quota": (V2, {"a/b/cpu.max": "max 100000\n"}, None),
    "v2-one-and-a-half": (V2, {"a/b/cpu.max": "150000 100000\n"}, 1.5),
    "v2-parent-lower-wins": (V2, {"a/b/cpu.max": "400000 100000\n", "a/cpu.max": "100000 100000\n"}, 1.0),
    "v2-child-lower-wins": (V2, {"a/b/cpu.max": "50000 100000\n", "a/cpu.max": "300000 100000\n",
                                 "cpu.max": "max 100000\n"}, 0.5),
    "v2-max-parent-quota-child": (V2, {"a/b/cpu.max": "max 100000\n", "a/cpu.max": "300000 100000\n"}, 3.0),
    # a container sees its own cgroup as the root: /proc/self/cgroup names a path that is not there
    "v2-container-root-only": (V2, {"cpu.max": "300000 100000\n"}, 3.0),
    "v2-root-of-slash": ("0::/\n", {"cpu.max": "250000 100000\n"}, 2.5),
    "v2-no-files": (V2, {"a/b/cgroup.procs": "1\n"}, None),
    # cgroup v1: the 'cpu' controller's cfs quota and period, under cpu,cpuacct or cpu
    "v1-cpu-cpuacct": (V1, _v1("200000"), 2.0),
    "v1-under-cpu": (V1, _v1("50000", where="cpu/docker/abc"), 0.5),
    "v1-minus-one-is-no-quota": (V1, _v1("-1"), None),
    "v1-parent-lower-wins": (V1, {**_v1("300000"), **_v1("100000", where="cpu,cpuacct/docker")}, 1.0),
    "v1-container-root-only": (V1, _v1("150000", where="cpu"), 1.5),
    "v1-controllers-other-order": ("3:cpuacct,cpu:/docker/abc\n", _v1("400000", where="cpuacct,cpu/docker/abc"),
                                   4.0),
    "v1-other-period": (V1, _v1("100000", "50000"), 2.0),
    # a hybrid host: both kinds, the smaller quota wins
    "hybrid-smaller-wins": (V2 + V1, {"a/b/cpu.max": "200000 100000\n", **_v1("150000")}, 1.5),
    # garbage and missing files: None (or the valid quota elsewhere on the path), never an exception
    "v2-garbage-text": (V2, {"a/b/cpu.max": "abc def\n"}, None),
    "v2-one-field": (V2, {"a/b/cpu.max": "200000\n"}, None),
    "v2-three-fields": (V2, {"a/b/cpu.max": "200000 100000 7\n"}, None),
    "v2-empty": (V2, {"a/b/cpu.max": ""}, None),
    "v2-binary": (V2, {"a/b/cpu.max": b"\xff\xfe\x00\x9f 1\n"}, None),
    "v2-zero-quota": (V2, {"a/b/cpu.max": "0 100000\n"}, None),
    "v2-negative-quota": (V2, {"a/b/cpu.max": "-5 100000\n"}, None),
    "v2-zero-period": (V2, {"a/b/cpu.max": "200000 0\n"}, None),
    "v2-directory-not-file": (V2, {"a/b/cpu.max/x": "1"}, None),
    "v2-garbage-child-valid-parent": (V2, {"a/b/cpu.max": "abc\n", "a/cpu.max": "100000 100000\n"}, 1.0),
    "v1-garbage-quota": (V1, _v1("lots"), None),
    "v1-garbage-period": (V1, _v1("200000", "soon"), None),
    "v1-binary": (V1, {f"{V1_DIR}/cpu.cfs_quota_us": b"\xff\xff", f"{V1_DIR}/cpu.cfs_period_us": "100000"}, None),
    "v1-period-missing": (V1, {f"{V1_DIR}/cpu.cfs_quota_us": "200000\n"}, None),
    "v1-zero-period": (V1, _v1("200000", "0"), None),
    "proc-garbage": ("no colons here\n::::\n\x00\n", {}, None),
    "proc-missing-nothing-there": (None, {}, None),
    "proc-missing-root-quota": (None, {"cpu.max": "200000 100000\n"}, 2.0),
}


@pytest.mark.parametrize("case", list(CGROUP_CASES))
def test_cgroup_cpu_limit_on_fake_trees(case, tmp_path):
    proc_cgroup, files, expected = CGROUP_CASES[case]
    got = _limit(tmp_path, proc_cgroup, files)
    if expected is None:
        assert got is None, f"{case}: expected no quota, got {got!r}"
    else:
        assert got == pytest.approx(expected), f"{case}: expected {expected} CPUs, got {got!r}"


def test_cgroup_cpu_limit_with_no_cgroup_filesystem(tmp_path):
    """A root that does not exist (no cgroup filesystem mounted) and a missing proc file: None."""
    assert cpus.cgroup_cpu_limit(root=tmp_path / "absent", proc_cgroup=tmp_path / "absent-proc") is None
    assert cpus.cgroup_cpu_limit(root=tmp_path / "absent", proc_cgroup=tmp_path) is None  # a directory


def test_cgroup_cpu_limit_of_this_machine():
    """The real files (whatever this host has): None or a positive number of CPUs, never an exception."""
    got = cpus.cgroup_cpu_limit()
    assert got is None or (isinstance(got, float) and got > 0)


# --------------------------------------------------------------------------- usable_cpus, default_threads

@pytest.mark.parametrize("affinity, limit, expected", [
    (4, None, 4),   # no quota: the affinity
    (4, 2.0, 2),    # a quota below the affinity lowers it
    (4, 1.5, 2),    # ... rounded up
    (4, 0.2, 1),    # ... at least 1
    (2, 8.0, 2),    # a quota above the affinity changes nothing
    (1, None, 1),
])
def test_usable_cpus_is_affinity_lowered_to_quota(affinity, limit, expected, monkeypatch):
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: set(range(affinity)), raising=False)
    monkeypatch.setattr(cpus, "cgroup_cpu_limit", lambda: limit)
    assert cpus.usable_cpus() == expected


def test_usable_cpus_of_this_process():
    n = cpus.usable_cpus()
    assert 1 <= n <= (os.cpu_count() or 1)
    if hasattr(os, "sched_getaffinity"):
        assert n <= len(os.sched_getaffinity(0))


@pytest.mark.parametrize("environ, expected", [
    ({}, 5),
    ({"FASTNN_NUM_THREADS": "3", "OMP_NUM_THREADS": "2"}, 3),
    ({"OMP_NUM_THREADS": "2"}, 2),
    ({"OMP_NUM_THREADS": "3,1"}, 3),
    ({"OMP_NUM_THREADS": " 4 , 2 "}, 4),
    ({"FASTNN_NUM_THREADS": "", "OMP_NUM_THREADS": "2"}, 2),  # empty: unset, no warning
    ({"FASTNN_NUM_THREADS": "  "}, 5),
])
def test_default_threads_precedence(environ, expected, recwarn):
    assert cpus.default_threads(5, environ=environ) == expected
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


@pytest.mark.parametrize("bad", ["0", "abc", "-2", "2.5", ",3"])
def test_default_threads_bad_value_warns_and_falls_back(bad):
    with pytest.warns(RuntimeWarning, match=f"FASTNN_NUM_THREADS={bad!r}"):
        assert cpus.default_threads(5, environ={"FASTNN_NUM_THREADS": bad, "OMP_NUM_THREADS": "2"}) == 2
    with pytest.warns(RuntimeWarning, match=f"OMP_NUM_THREADS={bad!r}"):
        assert cpus.default_threads(5, environ={"OMP_NUM_THREADS": bad}) == 5


# --------------------------------------------------------------------------- affinity in a child

def _one_cpu():
    """(command prefix, preexec_fn) that start a child on one CPU of this process's affinity."""
    cpu = min(os.sched_getaffinity(0))
    taskset = shutil.which("taskset")
    if taskset:
        return [taskset, "-c", str(cpu)], None
    return [], lambda: os.sched_setaffinity(0, {cpu})


needs_two_cpus = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or HOST_CPUS < 2,
    reason=f"this host lets the tests use {HOST_CPUS} CPU: an affinity of one CPU would change nothing")


@needs_two_cpus
def test_affinity_of_one_cpu_gives_one_thread(tmp_path):
    prefix, preexec_fn = _one_cpu()
    pinned = _team(tmp_path, prefix, preexec_fn)
    assert len(pinned["affinity"]) == 1, pinned
    assert pinned["threads"] == 1, pinned
    assert pinned["info"]["cpus"] == 1 and pinned["info"]["threads"] == 1, pinned
    assert not _thread_warnings(pinned), pinned

    free = _team(tmp_path)
    assert len(free["affinity"]) >= 2, free
    assert free["threads"] == HOST_CPUS, free
    assert free["info"]["cpus"] == HOST_CPUS and free["info"]["threads"] == HOST_CPUS, free


@needs_two_cpus
def test_thread_variable_beats_affinity(tmp_path):
    """FASTNN_NUM_THREADS sets the team's size even on one CPU; 'cpus' still says one."""
    prefix, preexec_fn = _one_cpu()
    pinned = _team(tmp_path, prefix, preexec_fn, FASTNN_NUM_THREADS="2")
    assert pinned["threads"] == 2 and pinned["info"]["cpus"] == 1, pinned


# --------------------------------------------------------------------------- environment variables in a child

N, M = HOST_CPUS + 1, HOST_CPUS + 2  # two sizes that are neither the host's CPUs nor each other

ENV_CASES = {
    "none": ({}, HOST_CPUS, []),
    "fastnn-beats-omp": ({"FASTNN_NUM_THREADS": str(M), "OMP_NUM_THREADS": str(N)}, M, []),
    "omp-alone": ({"OMP_NUM_THREADS": str(N)}, N, []),
    "omp-list-first-entry": ({"OMP_NUM_THREADS": f"{N},1"}, N, []),
    "omp-3,1": ({"OMP_NUM_THREADS": "3,1"}, 3, []),
    "fastnn-empty-is-unset": ({"FASTNN_NUM_THREADS": "", "OMP_NUM_THREADS": str(N)}, N, []),
    **{f"fastnn-{bad}-falls-back-to-omp": ({"FASTNN_NUM_THREADS": bad, "OMP_NUM_THREADS": str(N)}, N,
                                           [f"FASTNN_NUM_THREADS={bad!r}"]) for bad in ("0", "abc", "-2")},
    **{f"omp-{bad}-falls-back-to-cpus": ({"OMP_NUM_THREADS": bad}, HOST_CPUS, [f"OMP_NUM_THREADS={bad!r}"])
       for bad in ("0", "abc", "-2")},
    "both-bad": ({"FASTNN_NUM_THREADS": "abc", "OMP_NUM_THREADS": "0"}, HOST_CPUS,
                 ["FASTNN_NUM_THREADS='abc'", "OMP_NUM_THREADS='0'"]),
}


@pytest.mark.parametrize("case", list(ENV_CASES))
def test_thread_variables_at_import(case, tmp_path):
    variables, expected, warned = ENV_CASES[case]
    result = _team(tmp_path, **variables)
    assert result["threads"] == expected, result
    assert result["info"]["threads"] == expected and result["info"]["cpus"] == HOST_CPUS, result
    messages = _thread_warnings(result)
    assert len(messages) == len(warned), result
    for name_and_value, message in zip(warned, messages):
        assert name_and_value in message and "ignored" in message, result


def test_bad_thread_variable_warning_is_shown_by_default(tmp_path):
    """With Python's default warning filters the user sees the RuntimeWarning on stderr, and the import works."""
    proc = _run("import fastnn.functional as F; print(F.get_num_threads())", tmp_path,
                env=_child_env(tmp_path, FASTNN_NUM_THREADS="abc", OMP_NUM_THREADS=str(N)))
    assert proc.stdout.strip() == str(N), _describe(proc)
    assert "RuntimeWarning" in proc.stderr and "FASTNN_NUM_THREADS='abc'" in proc.stderr, _describe(proc)


LARGE_SCRIPT = """
import json, warnings
import numpy as np
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import fastnn.functional as F
rng = np.random.default_rng(0)
X = rng.standard_normal((256, 1024)); W = rng.standard_normal((1024, 256)); b = rng.standard_normal(256)
pre, post = F.dense_forward(X, W, b, "relu")
err = float(np.abs(pre - (X @ W + b)).max())
print(json.dumps({"threads": F.get_num_threads(), "info": F.core_info(), "err": err,
                  "relu": bool(np.array_equal(post, np.maximum(pre, 0))),
                  "warnings": [[w.category.__name__, str(w.message)] for w in caught]}))
"""


@pytest.mark.parametrize("variable", ["FASTNN_NUM_THREADS", "OMP_NUM_THREADS"])
@pytest.mark.parametrize("value", ["1000", str(MAX_THREADS), "99999999999999999999"])
def test_thread_variable_above_max_is_clamped(variable, value, tmp_path):
    """A size above MAX_THREADS (256) does not break the import: the team is MAX_THREADS, and a large product
    (cut into parts for the team) still gives NumPy's numbers."""
    result = _result(_run(LARGE_SCRIPT, tmp_path, env=_child_env(tmp_path, **{variable: value})))
    assert result["threads"] == MAX_THREADS and result["info"]["threads"] == MAX_THREADS, result
    assert result["info"]["cpus"] == HOST_CPUS, result
    assert result["err"] < 1e-9 and result["relu"], result


# --------------------------------------------------------------------------- threadpoolctl

THREADPOOLCTL_SCRIPT = """
import json, sys
import numpy as np
import threadpoolctl

out = {"before": [e for e in threadpoolctl.threadpool_info() if e.get("internal_api") == "fastnn"]}
import fastnn
import fastnn.functional as F
from fastnn._kernels import _core

out["core_file"] = _core.__file__
out["core_info"] = F.core_info()
out["version"] = fastnn.__version__
F.set_num_threads(3)  # not the default on any host, not 1
out["entries"] = [e for e in threadpoolctl.threadpool_info() if e.get("internal_api") == "fastnn"]
out["get"] = F.get_num_threads()
with threadpoolctl.threadpool_limits(limits=1):
    out["in_limit"] = F.get_num_threads()
out["after_limit"] = F.get_num_threads()
with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
    out["in_openmp"] = F.get_num_threads()
out["after_openmp"] = F.get_num_threads()
with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
    out["in_blas"] = F.get_num_threads()
with threadpoolctl.threadpool_limits(limits={"openmp": 2}):
    out["in_dict"] = F.get_num_threads()
out["after_dict"] = F.get_num_threads()

# a product large enough to be cut into parts, on two threads, then inside threadpool_limits(1)
F.set_num_threads(2)
out["split"] = list(_core.split_of_product(256, 1024, 256))
rng = np.random.default_rng(0)
arrays, jobs = {}, {}
for dtype in ("float32", "float64"):
    X = rng.standard_normal((256, 1024)).astype(dtype)
    W = (rng.standard_normal((1024, 256)) / 32).astype(dtype)
    b = rng.standard_normal(256).astype(dtype)
    j0 = _core.team_info()["jobs"]
    pre, post = F.dense_forward(X, W, b, "tanh")
    j1 = _core.team_info()["jobs"]
    with threadpoolctl.threadpool_limits(limits=1):
        inside = F.get_num_threads()
        pre1, post1 = F.dense_forward(X, W, b, "tanh")
        j2 = _core.team_info()["jobs"]
    jobs[dtype] = {"outside": j1 - j0, "inside": j2 - j1, "threads_inside": inside,
                   "threads_after": F.get_num_threads()}
    arrays.update({f"{dtype}_X": X, f"{dtype}_W": W, f"{dtype}_b": b, f"{dtype}_pre": pre, f"{dtype}_post": post,
                   f"{dtype}_pre1": pre1, f"{dtype}_post1": post1})
np.savez(sys.argv[1], **arrays)
out["jobs"] = jobs
print(json.dumps(out))
"""


def test_threadpoolctl_sees_and_limits_the_team(tmp_path):
    pytest.importorskip("threadpoolctl", reason="threadpoolctl is not installed (pip install threadpoolctl)")
    npz = tmp_path / "arrays.npz"
    r = _result(_run(THREADPOOLCTL_SCRIPT, tmp_path, npz))

    assert r["before"] == [], r  # nothing registered before fastnn is imported
    assert len(r["entries"]) == 1, r["entries"]  # exactly one team, the loaded copy of the core
    entry = r["entries"][0]
    assert entry["user_api"] == "openmp" and entry["num_threads"] == r["get"] == 3, entry
    assert os.path.samefile(entry["filepath"], r["core_file"]), entry
    assert os.path.basename(entry["filepath"]).startswith("_fastnn_core_"), entry
    assert entry["version"] == r["version"] and entry["core_level"] == r["core_info"]["core"], entry
    assert r["core_info"]["threadpoolctl"] is True, r

    assert (r["in_limit"], r["after_limit"]) == (1, 3), r  # limited, then restored
    assert (r["in_openmp"], r["after_openmp"]) == (1, 3), r
    assert r["in_blas"] == 3, r  # a limit on the BLAS libraries leaves the team alone
    assert (r["in_dict"], r["after_dict"]) == (2, 3), r

    assert r["split"][1] > 1, f"the product is not cut into parts ({r['split']}): the test would prove nothing"
    with np.load(npz) as f:
        a = {k: f[k] for k in f.files}
    for dtype, jobs in r["jobs"].items():
        assert jobs["outside"] >= 1, f"{dtype}: two threads did not take the parts together: {jobs}"
        assert jobs["inside"] == 0 and jobs["threads_inside"] == 1, f"{dtype}: the limit did not hold: {jobs}"
        assert jobs["threads_after"] == 2, jobs
        # the same numbers, bitwise, inside and outside the limit (the parts depend on the shapes only)
        assert np.array_equal(a[f"{dtype}_pre"], a[f"{dtype}_pre1"]), dtype
        assert np.array_equal(a[f"{dtype}_post"], a[f"{dtype}_post1"]), dtype
        ref = a[f"{dtype}_X"].astype(np.float64) @ a[f"{dtype}_W"] + a[f"{dtype}_b"]
        tol = 1e-4 if dtype == "float32" else 1e-10
        np.testing.assert_allclose(a[f"{dtype}_pre"], ref, rtol=tol, atol=tol, err_msg=dtype)
        np.testing.assert_allclose(a[f"{dtype}_post"], np.tanh(ref), rtol=tol, atol=tol, err_msg=dtype)


NO_THREADPOOLCTL_SCRIPT = """
import json, sys
{block}
import numpy as np
import fastnn.functional as F
old = F.set_num_threads(2)
X = np.ones((64, 512)); W = np.ones((512, 64)); b = np.zeros(64)
pre, _ = F.dense_forward(X, W, b, "linear")
print(json.dumps({{"threadpoolctl": F.core_info()["threadpoolctl"], "threads": F.get_num_threads(),
                  "ok": bool((pre == 512).all()), "imported": type(sys.modules.get("threadpoolctl")).__name__}}))
"""
#: `import threadpoolctl` raises ImportError, as when it is not installed.
BLOCK_BY_NONE = 'sys.modules["threadpoolctl"] = None'
#: A meta path finder that refuses threadpoolctl with ImportError.
BLOCK_BY_FINDER = """
class _Refuse:
    def find_spec(self, name, path=None, target=None):
        if name == "threadpoolctl" or name.startswith("threadpoolctl."):
            raise ImportError(f"No module named {name!r} (blocked by the test)")
        return None
sys.meta_path.insert(0, _Refuse())
"""


def _check_without_threadpoolctl(proc):
    r = _result(proc)
    assert r["threadpoolctl"] is False, r
    assert r["threads"] == 2 and r["ok"], r
    assert r["imported"] == "NoneType", r  # fastnn did not import it behind the block's back


def test_import_without_threadpoolctl(tmp_path):
    _check_without_threadpoolctl(_run(NO_THREADPOOLCTL_SCRIPT.format(block=BLOCK_BY_NONE), tmp_path))


def test_import_with_threadpoolctl_refused_by_a_finder(tmp_path):
    _check_without_threadpoolctl(_run(NO_THREADPOOLCTL_SCRIPT.format(block=BLOCK_BY_FINDER), tmp_path))


def test_import_with_threadpoolctl_too_old(tmp_path):
    """A threadpoolctl older than 3.2.0, which added custom controllers (LibController, register): fastnn should
    import without registering, as it does without threadpoolctl."""
    old = tmp_path / "old-threadpoolctl"
    old.mkdir()
    (old / "threadpoolctl.py").write_text('__version__ = "3.1.0"\n\ndef threadpool_info():\n    return []\n')
    script = NO_THREADPOOLCTL_SCRIPT.format(block="").replace('type(sys.modules.get("threadpoolctl")).__name__',
                                                             '"NoneType"')
    _check_without_threadpoolctl(_run(script, tmp_path, env=_child_env(tmp_path, PYTHONPATH=str(old))))


# --------------------------------------------------------------------------- set_num_threads

@pytest.mark.parametrize("bad", [0, -1, MAX_THREADS + 1, 1000, 2.5, True, False, "2", None, np.float64(2.0)])
def test_set_num_threads_rejects(bad):
    before = F.get_num_threads()
    with pytest.raises(ValueError) as info:
        F.set_num_threads(bad)
    message = str(info.value)
    assert message.startswith("threads:") and f"1 to {MAX_THREADS}" in message and repr(bad) in message, message
    assert F.get_num_threads() == before


def test_set_num_threads_valid_range():
    before = F.get_num_threads()
    try:
        assert F.set_num_threads(1) == before  # returns the previous setting
        assert F.get_num_threads() == 1
        assert F.set_num_threads(MAX_THREADS) == 1
        assert F.get_num_threads() == MAX_THREADS == F.core_info()["threads"]
        assert F.set_num_threads(np.int64(2)) == MAX_THREADS  # any integral type
        assert F.get_num_threads() == 2
    finally:
        F.set_num_threads(before)
    assert F.get_num_threads() == before
    assert fastnn.functional.MAX_THREADS == 256
