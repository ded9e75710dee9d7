"""The build: every numerics setting of the compiled core comes from fastnn/_config.py."""

import re
from pathlib import Path

import pytest

import fastnn._kernels
from fastnn import _config

KERNELS = Path(fastnn._kernels.__file__).parent  # the installed sources (package data) beside the extension
SETUP = Path(__file__).resolve().parents[1] / "setup.py"
#: Flags and directives that change floating-point results, or break inf/NaN behaviour.
UNSAFE = ["fast-math", "fastmath", "Ofast", "finite-math", "unsafe-math", "associative-math", "reciprocal-math",
          "no-signed-zeros", "pragma GCC optimize", "__attribute__((optimize", "#pragma clang fp"]


def test_no_kernel_hard_codes_fast_math_flags():
    sources = sorted(KERNELS.glob("*.pyx")) + sorted(KERNELS.glob("*.pxi"))
    assert sources, f"no kernel sources in {KERNELS}"
    for path in sources:
        text = path.read_text(encoding="utf-8")
        for flag in UNSAFE:
            assert flag not in text, f"{path.name} hard-codes {flag!r}; numerics settings belong in _config.py"


def test_the_compile_flags_are_the_configs_and_keep_ieee_semantics():
    for flag in _config.COMPILE_ARGS:
        assert not any(u in flag for u in UNSAFE), f"_config.COMPILE_ARGS has {flag!r}, which breaks inf/NaN or order"
    if not SETUP.exists():
        pytest.skip("setup.py is not beside the tests (an installed copy of the tests)")
    setup = SETUP.read_text(encoding="utf-8")
    assert 'extra_compile_args=config["COMPILE_ARGS"]' in setup
    assert not re.search(r"""["']-(O\d|f[a-z-]+|m[a-z0-9-]+)["']""", setup), "setup.py hard-codes a compiler flag"
