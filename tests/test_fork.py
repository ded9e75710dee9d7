"""Processes a user starts after using fastnn's thread team: none hangs, and each computes its parent's numbers.

fastnn's compiled core used to run its parallel work on OpenMP (libgomp), whose thread pool does not survive
fork: a child forked after the parent had used a 2-thread team waited forever, at its first parallel call,
for pool threads that exist only in the parent.  The core's own team (fastnn/_kernels/_team.h) forgets the
parent's workers in a pthread_atfork child handler, and the child's first job starts new ones.

Each scenario runs in a fresh Python process, the *driver* (``python -c``, from a temporary directory, with
PYTHONPATH at the package and at the helper module ``forkwork.py`` written there), which

* uses the team first, as a user would: ``set_num_threads(2)``, a ``Trainer.fit`` whose layer-0 products
  are cut into parts (1024-64-36 float32, batch 256), ``predict_proba`` and ``dense_forward`` on 2048 rows;
  it checks that its team really started a worker and ran jobs with it (else there is nothing to test);
* computes its reference numbers with ``forkwork.work``: a ``train_epoch`` of a fixed plan from fixed
  initial parameters, ``dense_forward``, ``conv2d_forward``, a one-epoch ``Trainer.fit`` and its
  ``predict_proba``, all with 2 threads;
* starts children the scenario's way (multiprocessing pools of every start method, ``Process``,
  ``ProcessPoolExecutor``, joblib, a fork taken while another thread is in the middle of a fit, a child's
  own child), each of which runs ``forkwork.work``, whose first parallel call is that ``train_epoch``;
* asserts, for every child, that its numbers are bitwise the parent's (the parts are fixed by the shapes,
  so every process and every thread count computes the same bits), that it ran in another process, that it
  started with no team worker (a forked child must not believe in the parent's) and ended with one of its
  own, and that each of its calls ran as many jobs with helper threads as in the parent's reference run
  (where each ran at least one: no call fell back to one thread); then prints a summary line that the
  test checks again.

A hang becomes a failure that names the scenario and the call: a child records the call it is in (a
``stage-<pid>`` file) and arms faulthandler to print its stack and exit after HANG seconds; the driver waits
at most WAIT seconds for each result and then says which child hung where ("... hung at its first parallel
call (train_epoch) ..."); the test kills the driver's whole process group after DRIVER_TIMEOUT seconds.
``test_a_child_hung_like_libgomp_fails_its_scenario`` makes a forked child hang at its first parallel call,
as under libgomp, and checks that the scenario then fails that way.
"""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from _subproc import describe, python_command

import fastnn

PACKAGE_ROOT = Path(fastnn.__file__).resolve().parents[1]
HANG = 20  # seconds: a child still at work after this long counts as hung (its normal work takes well under 1 s)
DRIVER_TIMEOUT = 150  # seconds for a whole scenario (a hung one ends, with its message, after about 2 * WAIT)

#: The helper module of the scenarios' processes, written as forkwork.py into each test's directory.
FORKWORK = r'''
"""The scenarios' shared code: the parent's use of the team, the work every child runs, the checks."""
import faulthandler
import json
import os
import pickle
import select
import signal
import threading
import time
import traceback
from pathlib import Path

import numpy as np

from fastnn import functional as F
from fastnn._kernels import _core
from fastnn.models import MLP
from fastnn.train import Trainer

HANG = float(os.environ["FORK_TEST_HANG"])  # a child still at work after this long prints its stack and exits
WAIT = HANG + max(3.0, HANG / 2)  # the longest the driver waits for one child's result
STAGES = Path(os.environ["FORK_TEST_STAGES"])
SIZES, ACTS, N, BS = [1024, 64, 36], ["sigmoid", "softmax"], 2048, 256

_rng = np.random.default_rng(0)
X = _rng.random((N, SIZES[0]), dtype=np.float32)
Y = _rng.integers(0, SIZES[-1], N)
T = np.eye(SIZES[-1], dtype=np.float32)[Y]
IMAGES = _rng.random((32, 28, 28, 4), dtype=np.float32)
KERNELS = ((_rng.random((3, 3, 4, 16)) - 0.5) * 0.2).astype(np.float32)
BARRIER = None  # set by ``meet`` in a pool's workers
STAGE_NAMES = ("train_epoch", "dense_forward", "conv2d_forward", "Trainer.fit", "predict_proba")


def _hang_like_libgomp():
    """FORK_TEST_SIMULATE_GOMP: in a forked child, the first parallel call waits forever, as libgomp's did
    for the parent's pool threads (only to check that a scenario fails then)."""
    def train_epoch(*args, **kwargs):
        threading.Event().wait()
    F.train_epoch = train_epoch


if os.environ.get("FORK_TEST_SIMULATE_GOMP"):
    os.register_at_fork(after_in_child=_hang_like_libgomp)


def meet(barrier):
    """A pool's initializer: each task waits at ``barrier`` for the others, so that every worker runs one."""
    global BARRIER
    BARRIER = barrier


def _stage(name):
    (STAGES / f"stage-{os.getpid()}").write_text(name)


def _trainer(model):
    return Trainer(model, optimizer="momentum", lr=0.05, batch_size=BS, progress=False, threads=2)


def use_team():
    """The parent's work before it starts any child: 2 threads, a fit and large products."""
    F.set_num_threads(2)
    model = MLP(SIZES, ACTS, dtype="float32", seed=1)
    _trainer(model).fit(X, Y, 2)
    model.predict_proba(X)
    F.dense_forward(X, np.full((SIZES[0], SIZES[1]), 0.01, np.float32), np.zeros(SIZES[1], np.float32), "tanh")
    info = _core.team_info()
    assert F.core_info()["workers"] >= 1 and info["jobs"] >= 3, f"the parent did not use its team: {info}"


def work(barrier=None):
    """Every entry point with 2 threads, the first parallel call a train_epoch; return the numbers and the
    team's state (its workers before and after, and the jobs each call ran with helper threads)."""
    barrier = barrier or BARRIER
    if barrier is not None:
        barrier.wait(HANG)
    faulthandler.dump_traceback_later(HANG, exit=True)
    workers_before = _core.team_info()["workers"]
    F.set_num_threads(2)
    jobs, call, mark = {}, None, 0

    def stage(name):
        """Count the jobs with helper threads of the call just done; record the call that begins."""
        nonlocal call, mark
        now = _core.team_info()["jobs"]
        if call is not None:
            jobs[call] = now - mark
        call, mark = name, now
        _stage(name)

    stage("train_epoch")
    plan = F.epoch_plan(SIZES, ACTS, "cross_entropy", optimizer="momentum", batch_size=BS, dtype="float32")
    theta = MLP(SIZES, ACTS, dtype="float32", seed=0).theta.copy()
    state = plan.new_state()
    r = F.train_epoch(plan, X, T, np.arange(N), theta, state, lr=0.05, threads=2)
    stage("dense_forward")
    k, m = SIZES[0], SIZES[1]
    W, b = theta[:k * m].reshape(k, m), theta[k * m:k * m + m]
    pre, post = F.dense_forward(X, W, b, "sigmoid")
    stage("conv2d_forward")
    conv_pre, conv_post = F.conv2d_forward(IMAGES, KERNELS, b[:16], "relu", padding="same")
    stage("Trainer.fit")
    model = MLP(SIZES, ACTS, dtype="float32", seed=2)
    _trainer(model).fit(X, Y, 1)
    stage("predict_proba")
    proba = model.predict_proba(X)
    stage("done")
    faulthandler.cancel_dump_traceback_later()
    numbers = {"train_epoch": np.array([r.loss, r.correct, r.step, r.batches, r.threads]), "theta": theta,
               "momentum": state[0], "pre": pre, "post": post, "conv_pre": conv_pre, "conv_post": conv_post,
               "fit_theta": model.theta, "proba": proba}
    return {"pid": os.getpid(), "workers_before": workers_before, "workers": F.core_info()["workers"],
            "jobs": jobs, "numbers": numbers}


def _stuck():
    """{pid: the call it is in} of the processes that began their work and did not finish it."""
    stages = {p.name[len("stage-"):]: p.read_text() for p in STAGES.glob("stage-*")}
    return {pid: s for pid, s in stages.items() if s != "done"}


def collect(label, fetch):
    """``fetch()`` (a child's result, or a list of them); when it fails after HANG seconds or more, which
    is how a hung child shows (a timeout, a pool broken by the child that faulthandler ended, no data),
    raise an AssertionError that names the scenario and where each unfinished child was."""
    t0 = time.monotonic()
    try:
        return fetch()
    except BaseException as exc:
        waited = time.monotonic() - t0
        if waited < HANG:
            raise
        stuck = _stuck()
        where = ", ".join(f"pid {pid} in {s}" for pid, s in stuck.items()) or "none began its work"
        first = any(s == "train_epoch" for s in stuck.values())
        raise AssertionError(
            f"{label}: no result after {waited:.0f} s: "
            + ("a child process hung at its first parallel call (train_epoch)" if first else "a child hung")
            + f" [{where}]; a hung child prints its stack on stderr (faulthandler) before it exits") from exc


def guarded(fn, *args):
    try:
        return ("ok", fn(*args))
    except BaseException:
        return ("error", traceback.format_exc())


def unwrap(out):
    kind, value = out
    if kind != "ok":
        raise RuntimeError("the child failed:\n" + value)
    return value


def to_queue(queue):
    """A Process's target: ``work``'s result (or the child's traceback) through ``queue``."""
    queue.put(guarded(work))


def fork(fn, *args):
    """os.fork(): the child runs fn(*args), sends its result (or traceback) through a pipe, exits."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            out = pickle.dumps(guarded(fn, *args))
            with os.fdopen(w, "wb") as f:
                f.write(out)
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    return pid, r


def result(child, wait=WAIT):
    """The result of a ``fork``'s child; after ``wait`` seconds without it, kill the child: TimeoutError."""
    pid, r = child
    deadline, data = time.monotonic() + wait, b""
    with os.fdopen(r, "rb", buffering=0) as f:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([f], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise TimeoutError(f"no result from the forked child {pid} after {wait:.0f} s")
            chunk = f.read(1 << 20)
            if not chunk:
                break
            data += chunk
    _, status = os.waitpid(pid, 0)
    if not data:
        raise ChildProcessError(f"the forked child {pid} ended without a result (wait status {status})")
    return unwrap(pickle.loads(data))


def check(label, ref, results, count):
    """Every child's numbers are bitwise ``ref``'s and its team its own; print the summary line."""
    assert len(results) == count, f"{label}: {len(results)} results from {count} children"
    idle = [name for name, n in ref["jobs"].items() if n < 1]
    assert list(ref["jobs"]) == list(STAGE_NAMES) and not idle, (
        f"{label}: in the parent, {idle} ran no job with helper threads ({ref['jobs']}): the work is too small "
        f"to test the team")
    for i, res in enumerate(results):
        who = f"{label}: child {i} (pid {res['pid']})"
        assert res["pid"] != os.getpid(), f"{who} ran in the parent, not in a child process"
        assert res["workers_before"] == 0, (
            f"{who} started its work with {res['workers_before']} team workers, which can only be the "
            f"parent's: they do not exist in a child")
        assert res["workers"] >= 1, f"{who} started no team worker of its own (core_info()['workers'] = 0)"
        assert res["jobs"] == ref["jobs"], (
            f"{who} ran {res['jobs']} jobs with helper threads per call where the parent ran {ref['jobs']}: "
            f"some of its calls ran on one thread")
        for key, want in ref["numbers"].items():
            got = res["numbers"][key]
            same = got.dtype == want.dtype and got.shape == want.shape and got.tobytes() == want.tobytes()
            diff = np.max(np.abs(got.astype(float) - want.astype(float))) if got.shape == want.shape else "-"
            assert same, (f"{who}: {key} is not bitwise the parent's ({got.dtype}{got.shape} vs "
                          f"{want.dtype}{want.shape}, largest difference {diff})")
    pids = {res["pid"] for res in results}
    assert len(pids) == count, f"{label}: {count} results came from {len(pids)} processes"
    keep = ("pid", "workers_before", "workers", "jobs")
    print("SUMMARY " + json.dumps({"label": label, "parent": os.getpid(), "jobs": ref["jobs"],
                                   "children": [{k: res[k] for k in keep} for res in results]}), flush=True)


class StopFit(Exception):
    pass


def fit_until(stop, fitting, report):
    """A long Trainer.fit on 2 threads in this thread: ``fitting`` is set after its first epoch, and it
    stops at the end of the epoch under way once ``stop`` is set (it must still be running then)."""
    model = MLP(SIZES, ACTS, dtype="float32", seed=3)

    def callback(epoch, history):
        report["epochs"] = epoch + 1
        fitting.set()
        if stop.is_set():
            raise StopFit

    try:
        _trainer(model).fit(X, Y, 20000, callback=callback)
    except StopFit:
        report["stopped"] = True
    except BaseException:
        report["error"] = traceback.format_exc()
'''

#: Every driver starts so: the parent uses its team, then computes the reference numbers.
PRELUDE = """\
import multiprocessing as mp
import forkwork as fw
fw.use_team()
ref = fw.work()
"""

POOL = """\
ctx = mp.get_context({method!r})
with ctx.Pool(2, initializer=fw.meet, initargs=(ctx.Barrier(2),)) as pool:
    tasks = [pool.apply_async(fw.work) for _ in range(2)]
    results = [fw.collect({label!r}, lambda t=t: t.get(fw.WAIT)) for t in tasks]
fw.check({label!r}, ref, results, 2)
"""

PROCESS = """\
ctx = mp.get_context("fork")
queue = ctx.Queue()
procs = [ctx.Process(target=fw.to_queue, args=(queue,)) for _ in range(2)]
for p in procs:
    p.start()
try:
    results = [fw.unwrap(fw.collect({label!r}, lambda: queue.get(timeout=fw.WAIT))) for _ in procs]
finally:
    for p in procs:
        p.join(fw.WAIT)
        if p.exitcode is None:
            p.kill()
assert [p.exitcode for p in procs] == [0, 0], [p.exitcode for p in procs]
fw.check({label!r}, ref, results, 2)
"""

EXECUTOR = """\
from concurrent.futures import ProcessPoolExecutor
ctx = {context}
ex = ProcessPoolExecutor(2, mp_context=ctx, initializer=fw.meet, initargs=((ctx or mp).Barrier(2),))
try:
    futures = [ex.submit(fw.work) for _ in range(2)]
    results = [fw.collect({label!r}, lambda f=f: f.result(fw.WAIT)) for f in futures]
finally:
    ex.shutdown(wait=False, cancel_futures=True)
fw.check({label!r}, ref, results, 2)
"""

JOBLIB = """\
from joblib import Parallel, delayed
with mp.Manager() as manager:
    barrier = manager.Barrier(2)
    results = fw.collect({label!r}, lambda: Parallel(n_jobs=2, backend={backend!r}, timeout=fw.WAIT)(
        delayed(fw.work)(barrier) for _ in range(2)))
if {backend!r} == "loky":
    from joblib.externals.loky import get_reusable_executor
    get_reusable_executor().shutdown(wait=True)
fw.check({label!r}, ref, results, 2)
"""

MID_FIT = """\
import threading, time
stop, fitting, report = threading.Event(), threading.Event(), {{}}
fit = threading.Thread(target=fw.fit_until, args=(stop, fitting, report))
fit.start()
try:
    assert fitting.wait(fw.WAIT), "the fit in the other thread did not finish its first epoch"
    time.sleep(0.05)
    child = fw.fork(fw.work)  # os.fork() while the other thread trains
    ctx = mp.get_context("fork")
    with ctx.Pool(2, initializer=fw.meet, initargs=(ctx.Barrier(2),)) as pool:  # two more forks
        tasks = [pool.apply_async(fw.work) for _ in range(2)]
        epochs_at_forks = report["epochs"]
        results = [fw.collect({label!r}, lambda: fw.result(child))]
        results += [fw.collect({label!r}, lambda t=t: t.get(fw.WAIT)) for t in tasks]
finally:
    stop.set()
    fit.join(fw.WAIT)
assert not fit.is_alive(), "the fit did not stop"
assert "error" not in report, report.get("error")
assert report.get("stopped"), f"the fit ended by itself before the forks were done: {{report}}"
assert report["epochs"] > epochs_at_forks >= 1, f"the forks were not taken during the fit: {{report}}"
print(f"the fit ran {{report['epochs']}} epochs; the forks came after {{epochs_at_forks}}")
fw.check({label!r}, ref, results, 3)
"""

GRANDCHILD = """\
def child():
    own = fw.work()  # the child uses its own team before it forks
    return [own, fw.collect("the grandchild", lambda: fw.result(fw.fork(fw.work)))]

results = fw.collect({label!r}, lambda: fw.result(fw.fork(child), wait=2 * fw.WAIT))
fw.check({label!r}, ref, results, 2)
"""


# --------------------------------------------------------------------------- running processes

def _fresh_env(tmp_path, hang=HANG, **extra):
    """The parent's environment without inherited FASTNN_/OMP_/JOBLIB_/LOKY_ settings, with PYTHONPATH at
    the package and at forkwork.py (tmp_path), HOME inside tmp_path, and faulthandler on."""
    env = {k: v for k, v in os.environ.items()
           if k != "PYTHONPATH" and not k.startswith(("FASTNN_", "OMP_", "JOBLIB_", "LOKY_", "FORK_TEST_"))}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), JOBLIB_TEMP_FOLDER=str(tmp_path),
               PYTHONPATH=os.pathsep.join([str(tmp_path), str(PACKAGE_ROOT)]), PYTHONFAULTHANDLER="1",
               FORK_TEST_HANG=str(hang), FORK_TEST_STAGES=str(tmp_path), **extra)
    return env


def _python(script, *args):
    return python_command(script, *args)


def _describe(proc, label, problem=""):
    return describe(proc, f"scenario '{label}': the driver process", problem)


def _run(cmd, tmp_path, label, env=None, timeout=DRIVER_TIMEOUT):
    """Run the driver in its own process group from tmp_path (output to files, so that no leftover child can
    hold a pipe open); after ``timeout`` seconds kill the group and fail the test as a hang.  Whatever the
    driver left running in its group is killed at the end too.  Returns (CompletedProcess, seconds)."""
    out, err = tmp_path / "driver.out", tmp_path / "driver.err"
    t0 = time.monotonic()
    with open(out, "w") as fo, open(err, "w") as fe:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env or _fresh_env(tmp_path), stdout=fo, stderr=fe,
                                start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the group of the driver started here, and only it
            except ProcessLookupError:
                pass
            proc.wait()
    seconds = time.monotonic() - t0
    done = subprocess.CompletedProcess(cmd, proc.returncode, out.read_text(), err.read_text())
    if seconds >= timeout:
        pytest.fail(_describe(done, label, f": hang, still running after {timeout} s (killed with its children): "
                                           f"a forked child hung at its first parallel call?"))
    return done, seconds


def _assert_ok(proc, label):
    """The driver exited 0; else its last AssertionError (which child hung where, which numbers differ) heads
    the message."""
    if proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if line.startswith("AssertionError")]
        pytest.fail(_describe(proc, label, f": {errors[-1]}" if errors else ""))


def _scenario(tmp_path, label, body, children):
    """Run PRELUDE + body in a driver; check its exit and its summary line (``children`` children, each another
    process than the driver, each with a team worker of its own, each as many helper jobs as the parent)."""
    (tmp_path / "forkwork.py").write_text(FORKWORK)
    proc, _ = _run(_python(PRELUDE + body), tmp_path, label)
    _assert_ok(proc, label)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("SUMMARY ")]
    assert len(lines) == 1, _describe(proc, label, ", but printed no summary line")
    summary = json.loads(lines[0][len("SUMMARY "):])
    kids = summary["children"]
    assert summary["label"] == label and len(kids) == children, summary
    pids = {k["pid"] for k in kids} | {summary["parent"]}
    assert len(pids) == children + 1, f"the children did not each run in a process of their own: {summary}"
    assert all(k["workers"] >= 1 and k["workers_before"] == 0 for k in kids), summary
    assert min(summary["jobs"].values()) >= 1 and all(k["jobs"] == summary["jobs"] for k in kids), summary
    return proc


# --------------------------------------------------------------------------- the scenarios

@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_pool_of_each_start_method(tmp_path, method):
    """multiprocessing.get_context(method).Pool(2): both workers run every entry point on a team of their own."""
    label = f"get_context({method!r}).Pool(2)"
    _scenario(tmp_path, label, POOL.format(method=method, label=label), 2)


def test_fork_process_returns_through_a_queue(tmp_path):
    """Two multiprocessing 'fork' Process children, their results through a Queue."""
    label = "get_context('fork').Process"
    _scenario(tmp_path, label, PROCESS.format(label=label), 2)


@pytest.mark.parametrize("context", ["fork", "default"])
def test_process_pool_executor(tmp_path, context):
    """concurrent.futures.ProcessPoolExecutor with a 'fork' context and with the default one."""
    label = f"ProcessPoolExecutor(mp_context={context})"
    ctx = "mp.get_context('fork')" if context == "fork" else "None"
    _scenario(tmp_path, label, EXECUTOR.format(context=ctx, label=label), 2)


@pytest.mark.parametrize("backend", ["multiprocessing", "loky"])
def test_joblib_parallel(tmp_path, backend):
    """joblib.Parallel(n_jobs=2) with the multiprocessing backend (a fork Pool) and with loky."""
    pytest.importorskip("joblib", reason="joblib is not installed: its backends cannot be tested")
    label = f"joblib.Parallel(n_jobs=2, backend={backend!r})"
    _scenario(tmp_path, label, JOBLIB.format(backend=backend, label=label), 2)


def test_fork_while_another_thread_is_fitting(tmp_path):
    """os.fork() and a fork Pool(2) while another thread of the parent is in the middle of a Trainer.fit."""
    label = "fork during another thread's fit"
    proc = _scenario(tmp_path, label, MID_FIT.format(label=label), 3)
    assert "the forks came after" in proc.stdout


def test_grandchild_forked_from_a_forked_child(tmp_path):
    """A forked child that used its own team forks a grandchild: both compute the parent's numbers."""
    label = "grandchild (os.fork in an os.fork child)"
    _scenario(tmp_path, label, GRANDCHILD.format(label=label), 2)


def test_a_child_hung_like_libgomp_fails_its_scenario(tmp_path):
    """The harness itself: when a forked child's first parallel call never returns (as libgomp's did, waiting
    for the parent's pool threads), the fork Pool scenario fails soon, saying which call hung and where."""
    label = "get_context('fork').Pool(2)"
    (tmp_path / "forkwork.py").write_text(FORKWORK)
    env = _fresh_env(tmp_path, hang=2, FORK_TEST_SIMULATE_GOMP="1")
    proc, seconds = _run(_python(PRELUDE + POOL.format(method="fork", label=label)), tmp_path, label, env=env,
                         timeout=60)
    assert proc.returncode != 0, _describe(proc, label, ", but a simulated hang did not fail the scenario")
    assert "SUMMARY" not in proc.stdout
    assert f"{label}: no result after" in proc.stderr, _describe(proc, label)
    assert "a child process hung at its first parallel call (train_epoch)" in proc.stderr, _describe(proc, label)
    assert "Timeout (0:00:02)!" in proc.stderr, _describe(proc, label, ", but no child printed its stack")
    assert seconds < 30, f"the hang took {seconds:.0f} s to fail the scenario"
