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
    sources = sorted(KERNELS.glob("*.pyx")) + sorted(KERNELS.glob("*.pxi")) + sorted(KERNELS.glob("*.h"))
    assert sources, f"no kernel sources in {KERNELS}"
    for path in sources:
        text = path.read_text(encoding="utf-8")
        for flag in UNSAFE:
            assert flag not in text, f"{path.name} hard-codes {flag!r}; numerics settings belong in _config.py"


def test_the_compile_flags_are_the_configs_and_keep_ieee_semantics():
    flags = list(_config.COMPILE_ARGS) + list(_config.CPU_PROBE_ARGS)
    for variant in (_config.X86_VARIANTS, _config.core_variants({}, "x86_64"), _config.core_variants({}, "aarch64"),
                    _config.core_variants({"FASTNN_MARCH": "native"})):
        flags += [f for fl in variant.values() for f in fl]
    for flag in flags:
        assert not any(u in flag for u in UNSAFE), f"_config has the flag {flag!r}, which breaks inf/NaN or order"
    if not SETUP.exists():
        pytest.skip("setup.py is not beside the tests (an installed copy of the tests)")
    setup = SETUP.read_text(encoding="utf-8")
    assert 'extra_compile_args=config["COMPILE_ARGS"]' in setup
    assert not re.search(r"""["']-(O\d|f[a-z-]+|m[a-z0-9-]+)["']""", setup), "setup.py hard-codes a compiler flag"


def test_one_copy_of_the_core_per_x86_64_level_unless_fastnn_march_names_one():
    assert _config.core_variants({}, "x86_64") == {"_fastnn_core_v2": ["-march=x86-64-v2", "-mtune=generic"],
                                                   "_fastnn_core_v3": ["-march=x86-64-v3", "-mtune=generic"],
                                                   "_fastnn_core_v4": ["-march=x86-64-v4", "-mtune=generic"]}
    assert _config.core_variants({}, "aarch64") == {"_fastnn_core_generic": []}
    assert _config.core_variants({"FASTNN_MARCH": "native"}, "x86_64") == {"_fastnn_core_custom": ["-march=native"]}
    assert _config.core_variants({"FASTNN_MARCH": "-march=skylake -mtune=znver3"}) == {
        "_fastnn_core_custom": ["-march=skylake", "-mtune=znver3"]}
    for name in list(_config.core_variants({}, "x86_64")) + ["_fastnn_core_custom", "_fastnn_core_generic"]:
        assert (KERNELS / f"{name}.pyx").exists(), f"{name}.pyx, the module of that copy, is missing"
