"""Numerics and build settings shared by every compiled kernel.

All compiler flags and epsilons live here, so that no kernel hard-codes them (``setup.py`` reads this
file as plain Python when it builds the extension).  The flags keep IEEE semantics for inf and NaN
(no ``-ffast-math``, no ``-ffinite-math-only``): the softmax-cross-entropy and sigmoid kernels rely on
``exp(-1000) == 0`` and ``1 / inf == 0``, and a non-finite loss is how a diverging run is detected.
Nothing is reassociated either, so float64 sums run in the order written and ``exp``/``log`` are
libm's, giving NumPy's values: the drop-in API reproduces NumPy's numbers in float64.  Float32 sigmoid,
softmax and tanh use fastnn's own vectorisable ``exp32`` and ``tanh32`` (``_kernels/_math.pxi``, within
2-3 ulp).
"""

import os
import platform

#: Compiler flags of the compiled core.  ``-fno-math-errno`` lets sqrt compile to one instruction and
#: ``-fno-trapping-math`` lets branch-free selects vectorise; neither changes a result.
COMPILE_ARGS = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-pthread"]
LINK_ARGS = ["-pthread"]

#: The copies of the core that ``pip install .`` builds on x86-64, module name -> flags: one per x86-64
#: level, so that one build runs on any x86-64-v2 CPU and uses AVX2/FMA or AVX-512 where the running
#: CPU has them (fastnn._kernels loads the best one at import).  Set FASTNN_MARCH to build one copy for
#: the flags you give instead (``native``, a level such as ``x86-64-v3``, or raw flags such as
#: ``-march=skylake-avx512``); a CPU without what that copy needs gets a one-line ImportError, not a crash.
X86_VARIANTS = {
    "_fastnn_core_v2": ["-march=x86-64-v2", "-mtune=generic"],
    "_fastnn_core_v3": ["-march=x86-64-v3", "-mtune=generic"],
    "_fastnn_core_v4": ["-march=x86-64-v4", "-mtune=generic"],
}


#: Flags of ``fastnn._kernels._cpu``, which asks the running CPU what it has before any copy of the core is
#: loaded: the compiler's baseline for the architecture (no -march), so that it runs on every CPU.
CPU_PROBE_ARGS = ["-O2"]


def core_variants(environ=os.environ, machine=None) -> dict:
    """The copies of the core to build here: module name -> extra compiler flags."""
    march = environ.get("FASTNN_MARCH", "").strip()
    if march:
        flags = march.split() if march.startswith("-") else [f"-march={march}"]
        return {"_fastnn_core_custom": flags}
    machine = (machine or platform.machine()).lower()
    if machine in ("x86_64", "amd64"):
        return dict(X86_VARIANTS)
    return {"_fastnn_core_generic": []}


#: How the core cuts work into parts for its thread team (``fastnn._kernels._core.configure``).  The parts
#: depend on the shapes only, never on the thread count, so every thread count gives the same numbers.
#: A product of fewer than split_min_flops flops (half a million: tens of microseconds) runs whole; a larger
#: one is cut into two parts, or about flops / part_flops when that is more (at most max_parts; max_k_parts
#: along the inner dimension, whose parts each need a scratch block), each at least min_rows rows / min_cols
#: columns / min_k of the inner dimension so that every BLAS call stays efficient; a step over values (an
#: optimizer update; in the epoch, bias and activation, the loss, a derivative, a bias gradient) into parts
#: of vector_part values; a chunk of images outside the epoch into at most max_image_parts parts, a batch of
#: the compiled CNN epoch into at most max_batch_parts parts (each part keeps a block of weight gradients).
#: A product (or part of one) whose B operand is not transposed and holds at most direct_bytes (about a core's
#: L2 cache, which B is read from once per block of C's rows) runs the core's own register-blocked loop
#: (``_small.h``), not BLAS: BLAS packs its operands into panels in every call, which at an epoch's sizes
#: costs about as much as the product.  Measured on the 2-core Zen 5 (AVX-512) of the README's speed table
#: against the build before: the MLP epoch 1.4-1.7x, the CNN epoch 1.3-1.4x faster; 0 turns it off.
PARTS = dict(split_min_flops=1 << 19, part_flops=1 << 21, max_parts=64, max_k_parts=4, min_rows=64, min_cols=64,
             min_k=128, vector_part=8192, max_image_parts=16, max_batch_parts=16,
             direct_bytes=1 << 20)

#: Microseconds a waiting thread of the team spins (the pause instruction), then yields its CPU
#: (sched_yield), before it sleeps: together longer than the gap between two pieces of work of an epoch or
#: between two calls of a Python loop, far shorter than a scheduler time slice.  The spin is short because
#: in a virtual machine a long run of pauses makes the hypervisor take the CPU away: with 300 us of pauses,
#: one process in two ran the batch-32 CNN epoch 1.5x slower for its whole life on this project's machine.
#: When a job has more threads than the CPUs the process may use, a waiting thread spins only briefly and
#: then sleeps, so that it does not take the CPU from the one it waits for.
SPIN_US = 30.0
YIELD_US = 300.0
SPIN_OVERSUBSCRIBED_US = 2.0

#: Default epsilon of the Adam optimizer.
ADAM_EPS = 1e-8

#: Relative tolerance used when checking that labels are one-hot rows.
ONEHOT_ATOL = 1e-6

#: glibc malloc thresholds fastnn sets when it is imported (unless MALLOC_TRIM_THRESHOLD_,
#: MALLOC_MMAP_THRESHOLD_ or GLIBC_TUNABLES are set, or FASTNN_MALLOPT=0): arrays up to 32 MiB come from
#: the heap, and up to 64 MiB of freed heap is kept instead of handed back to the kernel.  A training
#: loop that allocates and frees the same large temporaries every batch (the drop-in API's gradients, the
#: user's ``lr * grad``) otherwise has them zero-filled by the kernel again in every batch, in processes
#: whose heap layout makes glibc trim (the README's "Speed" section has the measurement).
MALLOC_MMAP_THRESHOLD = 32 << 20
MALLOC_TRIM_THRESHOLD = 64 << 20

#: How ``fastnn.register_activation`` compiles a user's scalar functions with Numba (the options of
#: ``numba.cfunc``, float32 and float64 signatures): no fastmath flags (IEEE inf and NaN, nothing
#: reassociated, as the core's own flags above), NumPy's error model (a division by zero gives inf or NaN as
#: in the compiled core, instead of an exception that the core, a C caller, could not receive), and Numba's
#: on-disk cache (``cache=True``: single-threaded cfuncs cache safely; a function defined where Numba cannot
#: cache, e.g. in ``python -c``, is compiled without it).
JIT_OPTIONS = dict(fastmath=False, error_model="numpy", cache=True)
