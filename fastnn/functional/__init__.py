"""Validated, stateless entry points to the compiled kernels.

Every function here checks its arguments (shapes, dtypes, ``out`` buffers),
applies the one dtype policy of the library, allocates the outputs that the
caller did not supply, and calls a private kernel.  Nothing is modified when a
call fails: all checks run before any kernel writes.

Dtype policy: float32 and float64 pass through; other real numeric input
(bool, integers, float16) becomes float64; anything else is a ``TypeError``.
Mixed float32/float64 arguments are computed in float64.

The names below live in these modules (import them from ``fastnn.functional``):

- ``dense``: activations (``ACTIVATIONS``, ``activation``, ``activation_deriv``, ``softmax``), the fused
  dense layer (``dense_forward``, ``dense_backward``) and ``gather_rows``;
- ``fastnn.activations`` (re-exported here): the activations' names, built-in and registered
  (``register_activation``, which compiles your own scalar functions with Numba, imported only when it is
  called; ``registered_activations``, ``BUILTIN_ACTIVATIONS``);
- ``conv``: convolution and max-pooling on NHWC images (``conv2d_*``, ``max_pool2d_*``, ``PADDINGS``);
- ``losses``: the fused losses (``softmax_cross_entropy``, ``sigmoid_binary_cross_entropy``,
  ``squared_error``, ``cross_entropy``, ``LossResult``; with row weights and a reduction of
  ``LOSS_REDUCTIONS``) and the one table of losses (``LOSSES``, ``LOSS_TABLE`` of ``Loss``, ``check_loss``,
  ``batch_loss``);
- ``optim``: the optimizer updates (``sgd_update``, ``momentum_update``, ``adam_update``, ``adamw_update``,
  ``OPTIMIZERS``) and the plan of a run's optimizer steps (``step_plan``, ``StepPlan``);
- ``threads``: the thread team (``get_num_threads``, ``set_num_threads``, ``MAX_THREADS``, ``core_info``);
- ``dense_epoch``: the compiled epoch of a dense network, an MLP (``epoch_plan``, ``EpochPlan``,
  ``parameter_offsets``, ``check_layers``);
- ``conv_epoch``: the compiled epoch of a stack of conv, pool, flatten and dense layers
  (``conv_epoch_plan``, formerly ``network_plan``, still an alias; ``NetworkPlan``,
  ``network_parameter_offsets``);
- ``epoch``: ``train_epoch``, which trains either plan for one epoch (``EpochResult``, ``RETRY_FULL_TEAM``);
- ``_checks``: the argument checks they share, among them the public ``float_dtype``, ``all_finite``,
  ``check_hyperparameter``, ``check_reduction`` and ``check_row_weights``.
"""

from ._checks import all_finite, check_hyperparameter, check_reduction, check_row_weights, float_dtype
from ..activations import BUILTIN_ACTIVATIONS, register_activation, registered_activations
from .conv import (PADDINGS, avg_pool2d_backward, avg_pool2d_forward, conv2d_backward, conv2d_forward,
                   conv2d_output_shape, global_avg_pool2d_backward, global_avg_pool2d_forward, max_pool2d_backward,
                   max_pool2d_forward)
from .conv_epoch import NetworkPlan, conv_epoch_plan, network_parameter_offsets, network_plan
from .dropout import dropout
from .norm import (BatchNormResult, batch_norm_backward, batch_norm_forward, batch_norm_inference,
                   update_running_stats)
from .dense import ACTIVATIONS, activation, activation_deriv, dense_backward, dense_forward, gather_rows, softmax
from .dense_epoch import EpochPlan, check_layers, epoch_plan, parameter_offsets
from .epoch import RETRY_FULL_TEAM, EpochResult, train_epoch
from .losses import (LOSS_REDUCTIONS, LOSS_TABLE, LOSSES, Loss, LossResult, batch_loss, check_loss, cross_entropy,
                     sigmoid_binary_cross_entropy, softmax_cross_entropy, squared_error)
from .optim import OPTIMIZERS, StepPlan, adam_update, adamw_update, momentum_update, sgd_update, step_plan
from .threads import MAX_THREADS, core_info, get_num_threads, set_num_threads

__all__ = [
    "ACTIVATIONS",
    "float_dtype",
    "all_finite",
    "activation",
    "activation_deriv",
    "softmax",
    "dense_forward",
    "dense_backward",
    "LossResult",
    "softmax_cross_entropy",
    "sigmoid_binary_cross_entropy",
    "squared_error",
    "cross_entropy",
    "sgd_update",
    "momentum_update",
    "adam_update",
    "gather_rows",
    "get_num_threads",
    "set_num_threads",
    "MAX_THREADS",
    "core_info",
    "parameter_offsets",
    "EpochPlan",
    "epoch_plan",
    "EpochResult",
    "train_epoch",
    "LOSSES",
    "OPTIMIZERS",
    "check_hyperparameter",
    "check_layers",
    "PADDINGS",
    "conv2d_output_shape",
    "conv2d_forward",
    "conv2d_backward",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
    "global_avg_pool2d_forward",
    "global_avg_pool2d_backward",
    "dropout",
    "BatchNormResult",
    "batch_norm_forward",
    "batch_norm_backward",
    "batch_norm_inference",
    "update_running_stats",
    "NetworkPlan",
    "network_plan",
    "network_parameter_offsets",
    # added when the package was split by concern
    "RETRY_FULL_TEAM",
    "Loss",
    "LOSS_TABLE",
    "batch_loss",
    "check_loss",
    "StepPlan",
    "step_plan",
    "conv_epoch_plan",
    # issue 22: training controls
    "adamw_update",
    "LOSS_REDUCTIONS",
    "check_reduction",
    "check_row_weights",
    # registered activations (issue 22)
    "BUILTIN_ACTIVATIONS",
    "register_activation",
    "registered_activations",
]
