"""The compiled core's matrix products, by name: ``gemm(A, B, C, alpha, beta)`` (C = alpha A @ B + beta C,
A and B C- or F-ordered, large products cut in two parts for two threads) and ``split_kind_of``."""

from ._core import gemm, split_kind_of

__all__ = ["gemm", "split_kind_of"]
