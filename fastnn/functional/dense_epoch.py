"""The compiled training epoch of a dense network (an MLP): :func:`epoch_plan` checks the layers and the
training options and lays out the workspace in an :class:`EpochPlan`, which
:func:`~fastnn.functional.train_epoch` trains with.  (A convolutional network's epoch is planned by
:func:`~fastnn.functional.conv_epoch_plan`.)"""

from __future__ import annotations

import numbers

import numpy as np

from .._config import ADAM_EPS
from .._kernels import _core
from ._checks import activation_code_of, check_training_options
from ._parts import dense_k_scratch, dense_steps, vector_step, with_threads
from ..activations import is_activation, unknown_activation
from .dense import ACTIVATIONS
from .optim import StepPlan
from .threads import get_num_threads

__all__ = ["parameter_offsets", "check_layers", "EpochPlan", "epoch_plan"]


def parameter_offsets(sizes) -> tuple[list[tuple[int, int]], int]:
    """Where each dense layer's weights and bias live in one flat parameter vector.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths from input to output.

    Returns
    -------
    offsets : list of (w_off, b_off)
        Layer l's (sizes[l], sizes[l+1]) weight matrix starts at ``w_off`` (row-major), its bias at ``b_off``.
    total : int
        The number of parameters.

    Examples
    --------
    >>> parameter_offsets([3, 2, 1])
    ([(0, 6), (8, 10)], 11)
    """
    offsets, off = [], 0
    for k, m in zip(sizes[:-1], sizes[1:]):
        offsets.append((off, off + k * m))
        off += k * m + m
    return offsets, off


def check_layers(sizes, activations) -> tuple[list[int], list[str]]:
    """A stack of dense layers' description, checked: (sizes as ints, activations as a list).

    ``sizes`` are at least two positive integer widths, input to output; ``activations`` one name per layer
    from :data:`ACTIVATIONS` or registered (``fastnn.register_activation``), softmax only last.  Raises ValueError
    naming the argument otherwise.
    """
    sizes = list(sizes)
    if len(sizes) < 2 or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1 for s in sizes):
        raise ValueError(f"sizes: expected at least two positive integer layer widths, got {sizes}")
    activations = list(activations)
    if len(activations) != len(sizes) - 1:
        raise ValueError(f"activations: expected {len(sizes) - 1} (one per layer), got {len(activations)}")
    for i, a in enumerate(activations):
        if not is_activation(a) or (a == "softmax" and i != len(activations) - 1):
            raise unknown_activation(f"activations[{i}]", a, ACTIVATIONS, "(softmax only last)")
    return [int(s) for s in sizes], activations


class EpochPlan(StepPlan):
    """Everything the compiled epoch of a dense network (an MLP) needs besides the data, the parameters and
    the learning rate.

    Built by :func:`epoch_plan`; holds the optimizer's options (a :class:`~fastnn.functional.StepPlan`), the
    layer table (widths, parameter and workspace offsets, activation codes), one batch's workspace and the
    gradient buffer.  Its arrays are the kernel's scratch: reuse one plan for many epochs, and one plan per
    training run at a time.
    """

    def __init__(self, sizes, activations, loss, optimizer, batch_size, dtype, momentum, betas, eps, weight_decay):
        self.sizes = tuple(sizes)
        self.activations = tuple(activations)
        self.loss = loss
        self.loss_code = _core.LOSSES[loss]
        params, n_params = parameter_offsets(self.sizes)
        super().__init__(n_params, optimizer, batch_size, dtype, momentum, betas, eps, weight_decay)
        widths = self.sizes[1:]
        bs, d, c = batch_size, self.sizes[0], self.sizes[-1]
        #: The steps of a full batch that the thread team shares, each with its parts (see ``work_parts``).
        self.steps = dense_steps(self.sizes, bs)
        if optimizer != "sgd":
            self.steps.append(vector_step("optimizer", self.n_params))
        # Workspace blocks, each rounded up to 16 values (64 bytes) so that every block starts aligned; the
        # scratch holds the partial sums of the products cut along their inner dimension.
        blocks = {"xb0": bs * d, "xb1": bs * d, "tb0": bs * c, "tb1": bs * c, "da": bs * max(widths),
                  "db": bs * max(widths), "scratch": dense_k_scratch(self.sizes, bs)}
        def aligned(n):
            return -(-n // 16) * 16

        off, offsets = 0, {}
        for name in _core.WORK_OFFSETS:
            offsets[name] = off
            off += aligned(blocks[name])
        self.layers = np.zeros((len(widths), len(_core.LAYER_COLUMNS)), dtype=np.int64)
        for l, ((w_off, b_off), m) in enumerate(zip(params, widths)):
            self.layers[l] = (self.sizes[l], m, w_off, b_off, off, off + aligned(bs * m),
                              activation_code_of(self.activations[l]))
            off += 2 * aligned(bs * m)
        self.offsets = np.array([offsets[name] for name in _core.WORK_OFFSETS], dtype=np.int64)
        self.work = np.zeros(off, dtype=dtype)
        self.grad = np.zeros(self.state_sizes[0], dtype=dtype)
        #: Seconds, written by the kernel: [0] the best period per full batch seen with more than one thread
        #: (0: none yet); [1] how long the first thread waited for parts taken by the others in the last
        #: call, [2] that call's length (see ``train_epoch``).
        self.timing = np.zeros(3)
        self._threads_memory = (None, 0)  # see train_epoch

    @property
    def max_parts(self) -> int:
        """The most parts any step of a batch is cut into: more threads than this would only wait."""
        return max([s["parts"] for s in self.steps], default=1)

    def work_parts(self, threads: int | None = None) -> list[dict]:
        """How a full batch's work is shared by ``threads`` threads (default: the team's size).

        One dict per step of a batch, in the order they run: ``step`` (e.g. 'layer 0 forward', 'layer 0
        bias and activation', 'loss', 'layer 0 bias gradient', 'optimizer'), a product's ``shape`` (m, k, n)
        or the step's ``values`` (and ``rows``), ``cut`` ('rows', 'cols' or 'k' for a product cut along C's
        rows, its columns or the inner dimension; 'rows', 'cols' or 'values' for the other steps; 'none'
        when it runs whole, on the first thread), ``parts`` and the ``threads`` it keeps busy.  The parts
        depend on the shapes only: the same for every thread count.

        Examples
        --------
        >>> plan = epoch_plan([1024, 64, 36], ["sigmoid", "softmax"], "cross_entropy", batch_size=1024)
        >>> {s["step"]: s["parts"] for s in plan.work_parts(8)}["layer 0 forward"]
        16
        """
        return with_threads(self.steps, get_num_threads() if threads is None else threads)

    def __repr__(self):
        return (f"EpochPlan({'-'.join(map(str, self.sizes))}, {'/'.join(self.activations)}, loss={self.loss!r}, "
                f"optimizer={self.optimizer!r}, batch_size={self.batch_size}, {self.dtype}, "
                f"workspace {self.work.nbytes + self.grad.nbytes:,} bytes)")


def epoch_plan(sizes, activations, loss, *, optimizer="sgd", batch_size=32, dtype="float64", momentum=0.9,
               betas=(0.9, 0.999), eps=ADAM_EPS, weight_decay=0.0) -> EpochPlan:
    """Plan the compiled training epoch of a dense network (an MLP): check the description, lay out the workspace.

    A stack of conv, pool, flatten and dense layers is planned by :func:`~fastnn.functional.conv_epoch_plan`
    instead; both plans are trained by :func:`~fastnn.functional.train_epoch`.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths from input to output (the parameters are laid out by :func:`parameter_offsets`).
    activations : sequence of str
        One per layer (softmax only last).
    loss : {'cross_entropy', 'binary_cross_entropy', 'squared_error'}
    optimizer : {'sgd', 'momentum', 'nesterov', 'adam', 'adamw'}
    batch_size : int
    dtype : {'float32', 'float64'}
    momentum : float
        ``mu`` of momentum and Nesterov, in [0, 1).
    betas : (float, float)
        Adam's decay rates, each in [0, 1).
    eps : float
        Adam's epsilon, > 0.
    weight_decay : float
        >= 0.

    Returns
    -------
    EpochPlan

    Examples
    --------
    >>> plan = epoch_plan([1024, 64, 36], ["sigmoid", "softmax"], "cross_entropy", batch_size=32, dtype="float32")
    >>> plan.n_params, plan.work.dtype
    (67940, dtype('float32'))
    """
    sizes, activations = check_layers(sizes, activations)
    loss, optimizer, batch_size, dtype, momentum, betas, eps, weight_decay = check_training_options(
        loss, optimizer, batch_size, dtype, momentum, betas, eps, weight_decay)
    return EpochPlan(sizes, activations, loss, optimizer, batch_size, dtype, momentum, betas, eps, weight_decay)
