"""Build the compiled core (Cython + OpenMP); all metadata lives in pyproject.toml.

The compiler flags live in fastnn/_config.py beside the other numerics settings; it is read here as a
plain file, so that building does not import the package.
"""

import runpy
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

config = runpy.run_path(str(Path(__file__).parent / "fastnn" / "_config.py"))

extensions = [
    Extension("fastnn._kernels._core", ["fastnn/_kernels/_core.pyx"],
              extra_compile_args=config["COMPILE_ARGS"], extra_link_args=config["LINK_ARGS"]),
]

setup(ext_modules=cythonize(extensions, compiler_directives={"language_level": "3"}))
