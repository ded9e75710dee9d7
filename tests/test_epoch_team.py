"""The fused epoch's threads must all leave whatever the scheduler does.

A descheduled second thread lets the first run ahead into the next batch: in a network of small products
only, nothing stops role 0 between a batch's last step and the next batch's loss.  When that loss is not
finite, the other role must still leave after that batch, not wait for steps that will never come (with
the barriers of an earlier design, a hang seen about once in 20 runs of the divergence test on a busy
machine).  ``_core._test_lag`` makes the other role sleep after every batch, which makes that schedule
certain; the child runs under a timeout, so a hang fails the test instead of stalling the suite.
"""

import os
import subprocess
import sys
from pathlib import Path

import fastnn

CHILD = r"""
import numpy as np
from fastnn import functional as F
from fastnn._kernels import _core

rng = np.random.default_rng(0)
X = rng.random((64, 12))
X[8:16] = 1e300  # batch 1's loss overflows to inf
plan = F.epoch_plan([12, 8, 12], ["linear", "linear"], "squared_error", batch_size=8, dtype="float64")
theta = np.random.default_rng(1).normal(0, 0.1, plan.n_params)
_core._test_lag(20000)  # role 1 sleeps 20 ms after each batch: role 0 reaches batch 1's loss first
for _ in range(3):  # the kernel itself, with two roles (train_epoch starts no more threads than a product has parts)
    s1, s2 = plan.new_state()
    loss, correct, step, reduced, batches, roles = _core.mlp_epoch(plan, X, X.copy(), np.arange(64), theta.copy(),
                                                                   s1, s2, 1e-3, 0, 2)
    assert not np.isfinite(loss) and step == 1 and batches == 2, (loss, step, batches)
print("left together")
"""


def test_threads_leave_together_when_a_later_batch_diverges(tmp_path):
    env = dict(os.environ, FASTNN_NUM_THREADS="2", PYTHONPATH=str(Path(fastnn.__file__).resolve().parents[1]))
    try:
        out = subprocess.run([sys.executable, "-c", CHILD], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError("the epoch's threads deadlocked: one waited for a step the other never took") from None
    assert out.returncode == 0, out.stderr
    assert "left together" in out.stdout
