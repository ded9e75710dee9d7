"""Stand-in tasks for tests/test_sweep.py, importable by the Dask workers (which import this module by name).

Each call appends one line to ``log`` (so a test counts the runs executed, across worker processes) and
returns a headline figure that depends on every argument, the way a real task's validation accuracy would.
"""

import math
import os
import time
from pathlib import Path


def fake_train(lr=0.01, hidden=8, seed=0, *, log=None, fail_lr=None, wait=False, out=None, progress=None):
    """``valid_accuracy`` peaks at lr=0.01 and grows with ``hidden``; raises at ``lr == fail_lr``.

    ``wait=True``: return only once a run without ``wait`` has written its result into the sweep's runs/
    folder (the parent of ``out``), so that a sweep which writes results only at the end fails the test.
    """
    if log is not None:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, f"lr={lr} hidden={hidden} seed={seed} wait={wait}\n".encode())
        finally:
            os.close(fd)
    if fail_lr is not None and lr == fail_lr:
        raise ValueError(f"lr={lr}: the loss diverged")
    if wait:
        deadline = time.monotonic() + 30
        while not list(Path(out).parent.glob("*wait=False*.json")):
            if time.monotonic() > deadline:
                raise TimeoutError("no other run's result was written while this one ran")
            time.sleep(0.05)
    from fastnn.functional import get_num_threads

    accuracy = 0.9 - 0.1 * abs(math.log10(lr) + 2) + hidden / 1000 + seed / 10000
    return {"headline": {"valid_accuracy": accuracy, "test_accuracy": accuracy - 0.01, "threads": get_num_threads()}}
