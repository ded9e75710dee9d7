"""The registry of activations (fastnn.activations) without Numba: its copies of the core's constants, and the
error for a name that is neither built in nor registered."""

import pytest

from fastnn import activations
from fastnn._kernels import _core
from fastnn.models import MLP


def test_the_registry_knows_the_cores_names_and_table():
    """fastnn.activations does not import the core (the core imports the package): its constants are copies."""
    assert activations.BUILTIN_ACTIVATIONS == tuple(_core.ACTIVATIONS)
    assert activations.MAX_USER_ACTIVATIONS == _core.MAX_USER_ACTIVATIONS
    assert _core.USER_ACTIVATION_BASE > max(_core.ACTIVATIONS.values())


def test_an_unknown_name_says_how_to_register_one():
    with pytest.raises(ValueError, match=r"'mine'; an activation of your own must first be registered"):
        MLP([3, 4, 2], ["mine", "softmax"])
    assert not activations.is_activation("mine") and activations.is_activation("relu")
    assert not activations.is_activation("softmax", elementwise=True)
