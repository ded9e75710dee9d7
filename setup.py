"""Build the compiled core (Cython, with its own pthread team); all metadata lives in pyproject.toml.

On x86-64 the core is compiled once per x86-64 level (v2, v3, v4: ``fastnn._kernels._fastnn_core_v*``),
so that one build, a wheel included, runs on any x86-64-v2 CPU and uses AVX2/FMA or AVX-512 where the
running CPU has them; ``fastnn._kernels._cpu``, compiled for the baseline, tells fastnn at import which
copy to load.  FASTNN_MARCH builds one copy for the flags it names instead (``FASTNN_MARCH=native``).

The compiler flags live in fastnn/_config.py beside the other numerics settings; it is read here as a
plain file, so that building does not import the package.  The copies are compiled in parallel.
"""

import os
import runpy
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent
config = runpy.run_path(str(HERE / "fastnn" / "_config.py"))
KERNELS = "fastnn/_kernels"

extensions = [
    Extension(f"fastnn._kernels.{name}", [f"{KERNELS}/{name}.pyx"], include_dirs=[KERNELS],
              extra_compile_args=config["COMPILE_ARGS"] + flags, extra_link_args=config["LINK_ARGS"])
    for name, flags in config["core_variants"]().items()
]


class ParallelBuildExt(build_ext):
    """build_ext compiling the extensions side by side (the copies of the core are independent)."""

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:
            self.parallel = max(1, min(len(extensions), os.cpu_count() or 1))


setup(
    ext_modules=cythonize(extensions, compiler_directives={"language_level": "3"})
    + [Extension("fastnn._kernels._cpu", [f"{KERNELS}/_cpu.c"], extra_compile_args=config["CPU_PROBE_ARGS"])],
    cmdclass={"build_ext": ParallelBuildExt},
)
