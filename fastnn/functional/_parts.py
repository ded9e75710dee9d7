"""How an epoch plan's work is cut into parts for the thread team, as the compiled core cuts it.

The core cuts each large product, the optimizer step and a batch's images into parts by their shapes
alone (``fastnn._config.PARTS``); the plans list those steps here, so that a user can see how many
threads each one keeps busy, and so that they size the scratch the cuts need.
"""

from __future__ import annotations

from .._kernels import _core


def product_step(name: str, m: int, k: int, n: int) -> dict:
    """An (m, k) @ (k, n) product as a plan step: its cut ('none', 'rows', 'cols' or 'k') and parts."""
    cut, parts = _core.split_of_product(int(m), int(k), int(n))
    return {"step": name, "shape": (int(m), int(k), int(n)), "cut": cut, "parts": int(parts)}


def dense_steps(sizes, n: int, first_input_gradient: bool = False) -> list[dict]:
    """The steps of one batch of n rows through dense layers of widths ``sizes``: each layer's forward
    (X @ W), bias and activation, its bias gradient (column sums), its weight gradient (X.T @ dpre) and,
    but for the first layer (unless ``first_input_gradient``: a CNN's dense layers pass a gradient back to
    the stack), its input gradient (dpre @ W.T) and the activation's derivative applied to it; the loss."""
    steps = []
    for l, (k, m) in enumerate(zip(sizes[:-1], sizes[1:])):
        steps.append(product_step(f"layer {l} forward", n, k, m))
        steps.append(elementwise_step(f"layer {l} bias and activation", n, m, "rows", _core.rows_parts_of(n, m)))
    steps.append(elementwise_step("loss", n, sizes[-1], "rows", _core.loss_parts_of(n, sizes[-1])))
    for l, (k, m) in reversed(list(enumerate(zip(sizes[:-1], sizes[1:])))):
        if l > 0 or first_input_gradient:
            steps.append(product_step(f"layer {l} input gradient", n, m, k))
        if l > 0:
            steps.append(elementwise_step(f"layer {l - 1} activation gradient", n, k, "values",
                                          _core.vector_parts_of(n * k)))
        steps.append(elementwise_step(f"layer {l} bias gradient", n, m, "cols", _core.column_parts_of(n, m)))
        steps.append(product_step(f"layer {l} weight gradient", k, n, m))
    return steps


def elementwise_step(name: str, n: int, m: int, cut: str, parts: int) -> dict:
    """A step over n rows of m values (bias and activation, the loss, a derivative, column sums)."""
    return {"step": name, "values": int(n) * int(m), "rows": int(n), "cut": cut if parts > 1 else "none",
            "parts": int(parts)}


def vector_step(name: str, values: int) -> dict:
    """An element-wise step over ``values`` values (the optimizer's update) as a plan step."""
    parts = int(_core.vector_parts_of(int(values)))
    return {"step": name, "values": int(values), "cut": "values" if parts > 1 else "none", "parts": parts}


def k_scratch(steps) -> int:
    """Values of scratch the inner-dimension cuts of ``steps`` need: parts 1, 2, ... each write a block of
    C's size."""
    return max([(s["parts"] - 1) * s["shape"][0] * s["shape"][2] for s in steps if s["cut"] == "k" and "shape" in s],
               default=0)


def dense_k_scratch(sizes, batch_size: int, first_input_gradient: bool = False) -> int:
    """The scratch of :func:`dense_steps` for any batch of 1 to ``batch_size`` rows (the last batch of an
    epoch is shorter).  A product is cut along its inner dimension k only while its batch dimension is at
    most k / 4, and its scratch grows with the batch there: the largest is at the full batch or at k / 4."""
    sizes = list(sizes)
    inner = [k for k in sizes[:-1]] + [m for m in sizes[1:]]
    batches = {batch_size} | {min(batch_size, max(1, k // 4)) for k in inner}
    return max(k_scratch(dense_steps(sizes, n, first_input_gradient)) for n in batches)


def with_threads(steps, threads: int) -> list[dict]:
    """The steps, each with the threads it keeps busy: min(threads, parts)."""
    return [{**s, "threads": min(int(threads), s["parts"])} for s in steps]
