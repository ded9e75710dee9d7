"""Numerics settings shared by every compiled kernel.

All fast-math flags and epsilons live here, so that no kernel hard-codes them.
``nnan`` and ``ninf`` are deliberately absent: the softmax-cross-entropy and
sigmoid kernels rely on IEEE behaviour of ``inf`` (``exp(-1000) == 0``,
``1 / inf == 0``) and a non-finite loss is how a diverging run is detected.
``afn`` (approximate functions) is absent too, so float64 ``exp``/``log`` give
the same values as NumPy and the drop-in API reproduces NumPy's numbers in
float64.  Float32 sigmoid, softmax and tanh use fastnn's own vectorisable
``exp32`` and ``tanh32`` (``_kernels/activations.py``, within 2-3 ulp).
"""

#: LLVM fast-math flags for every ``@njit`` kernel.
FASTMATH = {"nsz", "arcp", "contract", "reassoc"}

#: Fast-math flags for the float32 ``exp`` polynomial: like FASTMATH but without ``reassoc``, which would
#: fold its two-part ln 2 (Cody-Waite) reduction back into one constant and lose accuracy.
FASTMATH_EXACT_ORDER = {"nsz", "arcp", "contract"}

#: Numba's error model for every kernel: "numpy" lets a float division by zero give inf or nan as IEEE
#: says, where the default "python" model tests every division and raises ZeroDivisionError, a branch
#: that stops loops such as the sigmoid's 1 / (1 + exp(-x)) from being vectorised (7.8 -> 0.4 ns per
#: float32 element). Inputs that could divide by zero (Adam's betas of 1, say) are refused before any
#: kernel runs.
ERROR_MODEL = "numpy"

#: Numba caches compiled kernels on disk next to the source files.
CACHE = True

#: Default epsilon of the Adam optimizer.
ADAM_EPS = 1e-8

#: Relative tolerance used when checking that labels are one-hot rows.
ONEHOT_ATOL = 1e-6

#: Products of at least this many flops (2 m n k) are split over two threads; smaller ones run on one.
PARALLEL_GEMM_MIN_FLOPS = 1 << 19
