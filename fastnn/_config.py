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

#: Compiler flags of the compiled core.  ``-fno-math-errno`` lets sqrt compile to one instruction and
#: ``-fno-trapping-math`` lets branch-free selects vectorise; neither changes a result.  The core is
#: built for the machine that installs it (``-march=native``: AVX2 and FMA where the CPU has them);
#: set FASTNN_MARCH (for example to ``-march=x86-64-v2``) when building for other machines.
COMPILE_ARGS = ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math",
                *os.environ.get("FASTNN_MARCH", "-march=native").split()]
LINK_ARGS = ["-fopenmp"]

#: Default epsilon of the Adam optimizer.
ADAM_EPS = 1e-8

#: Relative tolerance used when checking that labels are one-hot rows.
ONEHOT_ATOL = 1e-6

#: Products of at least this many flops (2 m n k) are cut in two parts for two threads; smaller ones run
#: as one.  The cut depends on the shapes only, so one thread and two compute the same numbers.
PARALLEL_GEMM_MIN_FLOPS = 1 << 19

#: Pauses a barrier of the epoch's team spins before it yields the core (a pause is 10-50 ns, so this is
#: tens of microseconds: longer than a batch's serial middle, far shorter than a scheduler time slice).
BARRIER_SPIN_PAUSES = 2000

#: glibc malloc thresholds fastnn sets when it is imported (unless MALLOC_TRIM_THRESHOLD_,
#: MALLOC_MMAP_THRESHOLD_ or GLIBC_TUNABLES are set, or FASTNN_MALLOPT=0): arrays up to 32 MiB come from
#: the heap, and up to 64 MiB of freed heap is kept instead of handed back to the kernel.  A training
#: loop that allocates and frees the same large temporaries every batch (the drop-in API's gradients, the
#: user's ``lr * grad``) otherwise has them zero-filled by the kernel again in every batch, in processes
#: whose heap layout makes glibc trim (the README's "Speed" section has the measurement).
MALLOC_MMAP_THRESHOLD = 32 << 20
MALLOC_TRIM_THRESHOLD = 64 << 20
