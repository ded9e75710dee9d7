"""The fused epoch's team of two threads must leave together whatever the scheduler does.

A descheduled second thread lets the first run ahead into the next batch: in a network of small products
only, nothing stops thread 0 between a batch's last barrier and the next batch's loss.  When that loss is
not finite, thread 1 must still run that batch (to its last barrier) before leaving; it used to leave at
once and thread 0 then waited at the barrier forever (a hang seen about once in 20 runs of the divergence
test on a busy machine).  ``_core._test_lag`` makes thread 1 sleep after every batch, which makes that
schedule certain; the child runs under a timeout, so a hang fails the test instead of stalling the suite.
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
_core._test_lag(20000)  # thread 1 sleeps 20 ms after each batch: thread 0 reaches batch 1's loss first
for _ in range(3):
    res = F.train_epoch(plan, X, X.copy(), np.arange(64), theta.copy(), plan.new_state(), lr=1e-3, threads=2)
    assert not np.isfinite(res.loss) and res.step == 1, res
print("left together")
"""


def test_threads_leave_together_when_a_later_batch_diverges(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="2", PYTHONPATH=str(Path(fastnn.__file__).resolve().parents[1]))
    try:
        out = subprocess.run([sys.executable, "-c", CHILD], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError("the epoch's threads deadlocked: thread 0 waited at a barrier thread 1 had left") from None
    assert out.returncode == 0, out.stderr
    assert "left together" in out.stdout
