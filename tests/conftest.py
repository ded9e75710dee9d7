"""Fixtures several test files share."""

import numpy as np
import pytest

from fastnn.models import MLP

SEED = 1234  # the rng fixture's


@pytest.fixture
def rng():
    """A NumPy Generator seeded with SEED, new for each test: every test draws the same numbers on every run."""
    return np.random.default_rng(SEED)


@pytest.fixture(scope="session")
def model_path(tmp_path_factory):
    """An untrained 1024-16-36 MLP file: a classifier `fastnn ocr --model` takes, for tests of the command
    line's plumbing, not of reading."""
    return str(MLP([1024, 16, 36], ["relu", "softmax"], seed=3).save(tmp_path_factory.mktemp("model") / "m.npz"))
