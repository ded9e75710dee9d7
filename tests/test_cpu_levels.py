"""The copies of the compiled core, one per x86-64 level (``_fastnn_core_v2``, ``_v3``, ``_v4``).

* Under qemu-user as an older CPU (``-cpu SandyBridge`` is x86-64-v2, ``-cpu Haswell`` x86-64-v3; qemu has no
  AVX-512), fastnn loads the copy of that CPU's level and its kernels match the NumPy references there; a copy
  asked for with FASTNN_CORE that the CPU cannot run is refused by a one-line ImportError, never run into an
  illegal instruction (SIGILL: exit -4 from subprocess, 132 from a shell).
* On the host, every copy it can run gives the same numbers within the tests' tolerances.  v3 and v4 give the
  same bits (measured: all 148 results of tests/_cpu_levels_child.py, on an AVX-512 host).  v2 does not: it
  has no FMA, and GCC contracts ``a * b + c`` into one fused multiply-add (rounded once) in the v3 and v4
  copies (-ffp-contract=fast is GCC's default), in the core's own element-wise code: the float32 exp and tanh,
  the activation derivatives (``a * (1 - a)``, ``1 - a * a``) times delta, the optimizer updates
  (``theta - lr * g``, Adam's moments).  A v3 copy compiled with -ffp-contract=off gives v2's bits in every
  result.  What no such expression touches (the pre-activations: OpenBLAS, the same library for every copy,
  plus the bias; relu, a select) is bitwise the same in v2.

The children run tests/_cpu_levels_child.py (core_info as JSON, then the results and their check), or import
fastnn.functional, with the installed fastnn (sys.executable) from an empty temporary directory, as
tests/test_processes.py does.
"""

import functools
import importlib.util
import json
import re
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastnn import _kernels
from fastnn._kernels import LEVELS, built_level, runs_here

CHILD = Path(__file__).with_name("_cpu_levels_child.py")
QEMU = shutil.which("qemu-x86_64")
#: qemu's CPU models and the x86-64 level they have.  SandyBridge (AVX, no AVX2 or FMA) is the x86-64-v2 CPU,
#: not Nehalem, the first of the level: NumPy 2.4's wheels die of SIGILL at import under qemu's Nehalem and
#: Westmere models (which have no XSAVE/AVX), before fastnn runs.
QEMU_CPUS = {"SandyBridge": "x86-64-v2", "Haswell": "x86-64-v3"}
#: The per-level copies: FASTNN_CORE value -> level.
COPIES = {"v2": "x86-64-v2", "v3": "x86-64-v3", "v4": "x86-64-v4"}
#: Within the tests' tolerances (those of tests/test_train.py for a training run).
TOL = {"float32": dict(rtol=2e-4, atol=2e-5), "float64": dict(rtol=1e-10, atol=1e-12)}
#: A result is named '<what>:<dtype>'; these are made by OpenBLAS, copies, selects and additions only (no
#: product-and-sum the compiler could contract into an FMA), so they are bitwise the same in every copy.
NO_FMA_RESULTS = ("_pre_", "relu", "_step:")
TIMEOUT = 300


def copy_path(name):
    """The file of the copy ``name`` ('v2', ...), None when this build has none."""
    spec = importlib.util.find_spec(f"fastnn._kernels._fastnn_core_{name}")
    return spec.origin if spec is not None else None


BUILT = {name: level for name, level in COPIES.items() if copy_path(name)}
needs_levels = pytest.mark.skipif(
    _kernels.CPU_LEVEL not in LEVELS or set(BUILT) != set(COPIES),
    reason=f"not an x86-64 build with the copies v2, v3 and v4 (CPU {_kernels.CPU_LEVEL}; this build has "
           f"{sorted(BUILT) or 'none of them'}: a FASTNN_MARCH build has one custom copy)")
needs_qemu = pytest.mark.skipif(
    QEMU is None, reason="qemu-x86_64 is not on PATH (apt-get install qemu-user; CI's .ci/run installs it)")


@pytest.fixture(scope="module", autouse=True)
def no_core_dumps():
    """qemu writes a core file when the program it runs dies of a signal: not from these children."""
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
    yield
    resource.setrlimit(resource.RLIMIT_CORE, (soft, hard))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The children's working directory (empty: the source tree never shadows the installed fastnn)."""
    return str(tmp_path_factory.mktemp("cpu_levels"))


def run(args, cwd, core=None, cpu=None):
    """Run the installed fastnn's Python with ``args`` (under qemu as ``cpu``; FASTNN_CORE=``core``)."""
    # no PYTHONPATH (which could put the source tree first), no inherited FASTNN_* setting, a fixed team
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("FASTNN_")}
    env.update(FASTNN_NUM_THREADS="2", PYTHONFAULTHANDLER="1")
    if core is not None:
        env["FASTNN_CORE"] = core
    if cpu in QEMU_CPUS:
        # OpenBLAS (NumPy's and fastnn's) reads qemu-user's CPU as a Haswell whatever the model, and would run
        # AVX2 kernels on a SandyBridge: tell it the model's own kernels, as on the real CPU.
        env["OPENBLAS_CORETYPE"] = cpu
    cmd = ([QEMU, "-cpu", cpu] if cpu else []) + [sys.executable, *map(str, args)]
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT)
    # qemu warns about the CPU model's features that it does not emulate: not the program's output
    proc.stderr = "\n".join(line for line in proc.stderr.splitlines() if not line.startswith("qemu-x86_64: warning"))
    return proc


def explain(proc, what):
    """An assertion message: how the child ended (naming SIGILL), and the end of its output."""
    rc = proc.returncode
    if rc in (-signal.SIGILL, 128 + signal.SIGILL):
        how = (f"killed by SIGILL (illegal instruction, exit {rc}): the code ran an instruction this CPU does not "
               f"have: most likely a copy of the core built for a higher level than the CPU's was loaded")
    elif rc < 0:
        how = f"killed by signal {signal.Signals(-rc).name} (exit {rc})"
    else:
        how = f"exit code {rc}"
    return f"{what}: {how}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"


def core_info_of(proc):
    """The child's first line of output: its core_info()."""
    first = proc.stdout.splitlines()[:1]
    assert first and first[0].startswith("{"), explain(proc, "the child did not print core_info()")
    return json.loads(first[0])


def import_error(proc):
    """The message of the ImportError that ended the child (asserting that one did, and in one line)."""
    assert proc.returncode == 1, explain(proc, "expected the import to fail with exit code 1 (an ImportError)")
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("ImportError")]
    assert len(errors) == 1 and lines[-1] == errors[0], explain(proc, "expected one line 'ImportError: ...' last")
    return errors[0].removeprefix("ImportError: ")


# ----------------------------------------------------------------------- built_level and runs_here


def test_built_level_reads_the_marker_among_any_bytes(tmp_path):
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, 20000, dtype=np.uint8).tobytes().replace(b";", b"")
    cases = {
        "marked": (noise[:9000] + b"fastnn-core-level:x86-64-v3;" + noise[9000:], "x86-64-v3"),
        "marked_first": (b"fastnn-core-level:x86-64-v2;" + noise, "x86-64-v2"),
        "unmarked": (noise, None),
        "unterminated": (noise + b"fastnn-core-level:x86-64-v3", None),
        "terminated_too_far": (b"fastnn-core-level:x86-64-v3" + noise[:100] + b";", None),  # its ';' over 64 bytes on
        "empty": (b"", None),
    }
    for name, (content, level) in cases.items():
        (tmp_path / name).write_bytes(content)
        assert built_level(tmp_path / name) == level, name
        assert built_level(str(tmp_path / name)) == level, name
    assert built_level(tmp_path / "missing") is None
    assert built_level(tmp_path) is None  # a directory


@needs_levels
def test_each_built_copy_names_its_own_level():
    for name, level in BUILT.items():
        assert built_level(copy_path(name)) == level, copy_path(name)
    assert _kernels.CORE_LEVEL == _kernels._core.LEVEL == built_level(_kernels._core.__file__)


def test_runs_here_for_every_pair_of_levels():
    for i, level in enumerate(LEVELS):
        for j, cpu in enumerate(LEVELS):
            assert runs_here(level, cpu) is (i <= j), (level, cpu)
        assert not runs_here(level, "generic") and not runs_here("generic", level)
    assert runs_here("generic", "generic")
    for unknown in ("x86-64-v5", "", "v3", "native"):
        assert not runs_here(unknown, "x86-64-v4") and not runs_here("x86-64", unknown)
    assert runs_here(_kernels.CORE_LEVEL)  # the default CPU is the running one
    assert runs_here("x86-64", _kernels.CPU_LEVEL) == (_kernels.CPU_LEVEL != "generic")


# ------------------------------------------------------------------------------- under qemu


@functools.cache
def qemu_child(cpu, cwd):
    return run([CHILD], cwd, cpu=cpu)


@needs_levels
@needs_qemu
@pytest.mark.parametrize("cpu", list(QEMU_CPUS))
def test_under_qemu_the_copy_of_the_cpus_level_loads(cpu, workdir):
    info = core_info_of(qemu_child(cpu, workdir))
    level = QEMU_CPUS[cpu]
    assert (info["cpu"], info["core"], info["module"]) == (level, level, f"_fastnn_core_v{level[-1]}"), info


@needs_levels
@needs_qemu
@pytest.mark.parametrize("cpu", list(QEMU_CPUS))
def test_under_qemu_the_kernel_core_matches_the_references(cpu, workdir):
    proc = qemu_child(cpu, workdir)
    assert proc.returncode == 0, explain(proc, f"the kernel core under qemu -cpu {cpu} ({QEMU_CPUS[cpu]})")
    checked = re.search(r"checked (\d+) results against the references: 0 mismatches", proc.stdout)
    assert checked and int(checked[1]) > 100, proc.stdout


@needs_levels
@needs_qemu
@pytest.mark.parametrize("cpu, core", [("SandyBridge", "v3"), ("SandyBridge", "v4"), ("Haswell", "v4")])
def test_under_qemu_a_copy_above_the_cpu_is_refused_in_one_line(cpu, core, workdir):
    message = import_error(run(["-c", "import fastnn.functional"], workdir, core=core, cpu=cpu))
    assert f"built for {COPIES[core]}," in message and f"CPU ({QEMU_CPUS[cpu]})" in message, message


@needs_levels
@needs_qemu
def test_under_qemu_a_cpu_below_every_copy_is_refused_in_one_line(workdir):
    """qemu64 is the x86-64 baseline.  Only fastnn._kernels is imported: NumPy 2 is itself built for
    x86-64-v2 and dies of SIGILL on such a CPU, before fastnn.functional reaches the core."""
    message = import_error(run(["-c", "import fastnn._kernels"], workdir, cpu="qemu64"))
    assert "built for x86-64-v2 and x86-64-v3 and x86-64-v4, which this CPU (x86-64) cannot run" in message, message


# ---------------------------------------------------------------------------------- on the host


@needs_levels
def test_an_unknown_copy_is_refused_clearly(workdir):
    message = import_error(run(["-c", "import fastnn.functional"], workdir, core="v9"))
    assert message.startswith("FASTNN_CORE=v9: no such copy of fastnn's core; this build has "), message
    assert all(name in message for name in COPIES), message


#: How the host children spell FASTNN_CORE for each copy (both spellings are accepted).
SPELLING = {"v2": "v2", "v3": "x86-64-v3", "v4": "v4"}


@functools.cache
def host_child(core, cwd, direct=None):
    out = Path(cwd) / f"results_{core}{'' if direct is None else f'_direct{direct}'}.npz"
    proc = run([CHILD, out] + ([] if direct is None else [direct]), cwd, core=SPELLING[core])
    return proc, (dict(np.load(out)) if proc.returncode == 0 else None)


def copy_results(core, cwd, direct=None):
    """The host child's core_info and results with the copy ``core`` (skip when the host cannot run it);
    ``direct`` 1 / 0: every small product by the core's own loop / by BLAS, whatever the copy's choice."""
    if not runs_here(COPIES[core]):
        pytest.skip(f"this host ({_kernels.CPU_LEVEL}) cannot run the {COPIES[core]} copy")
    proc, found = host_child(core, cwd, direct)
    assert proc.returncode == 0, explain(proc, f"the kernel core of the {core} copy on this host")
    return core_info_of(proc), found


@needs_levels
@pytest.mark.parametrize("core", list(COPIES))
def test_on_the_host_each_copy_loads_or_is_refused_and_matches_the_references(core, workdir):
    if not runs_here(COPIES[core]):  # what this host can check of a copy above it: the refusal
        message = import_error(run(["-c", "import fastnn.functional"], workdir, core=SPELLING[core]))
        assert f"built for {COPIES[core]}," in message and f"CPU ({_kernels.CPU_LEVEL})" in message, message
        return
    info, _ = copy_results(core, workdir)
    assert (info["core"], info["module"], info["cpu"]) == (COPIES[core], f"_fastnn_core_{core}", _kernels.CPU_LEVEL)


def _dtype(name):
    return name.rsplit(":", 1)[1]


@needs_levels
def test_every_copy_gives_the_same_numbers_within_tolerance(workdir):
    runnable = [core for core, level in COPIES.items() if runs_here(level)]
    if len(runnable) < 2:
        pytest.skip(f"this host ({_kernels.CPU_LEVEL}) runs only the {runnable} copy")
    best = copy_results(runnable[-1], workdir)[1]
    for core in runnable[:-1]:
        other = copy_results(core, workdir)[1]
        assert other.keys() == best.keys()
        for name in best:
            np.testing.assert_allclose(other[name], best[name], **TOL[_dtype(name)],
                                       err_msg=f"{name}: {core} against {runnable[-1]}")


@needs_levels
@pytest.mark.parametrize("direct", [1, 0])
def test_v3_and_v4_give_the_same_bits_with_the_same_products(direct, workdir):
    """Running the same products (every small one by the core's own loop, whose every element is the same
    in-order sum of fused multiply-adds at any vector width, or every one by BLAS), the AVX2 and AVX-512
    copies give the same bits.  By default they do not run the same products: the AVX-512 copy runs the
    small ones itself (``_core.direct_products()``), the AVX2 copy only a prediction's one or two rows."""
    v3, v4 = copy_results("v3", workdir, direct)[1], copy_results("v4", workdir, direct)[1]
    differ = [name for name in v3 if not np.array_equal(v3[name], v4[name])]
    assert not differ, f"v3 and v4 differ in {len(differ)} of {len(v3)} results: {differ}"


@needs_levels
def test_v2_and_v3_give_the_same_bits_where_no_fma_can_be(workdir):
    """Only the contraction of a product and a sum into an FMA (in v3, not v2) separates them: what none can
    touch is bitwise the same, the rest is within tolerance (test above).  Measured on an AVX-512 host: 55 of
    148 results differ (float32 sigmoid, tanh and softmax, the derivatives but relu's, Adam, every training
    run); a v3 copy compiled with -ffp-contract=off gives v2's bits in all 148."""
    v2, v3 = copy_results("v2", workdir)[1], copy_results("v3", workdir)[1]
    same = [name for name in v3 if any(part in name for part in NO_FMA_RESULTS)]
    assert len(same) > 30
    differ = [name for name in same if not np.array_equal(v2[name], v3[name])]
    assert not differ, f"v2 and v3 differ in results that no FMA makes: {differ}"
