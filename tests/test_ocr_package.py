"""fastnn.ocr's layout (issues 11 and 13): one module per stage, imports only downward, no private imports, one
class list, and the public names re-exported from the package."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import fastnn
import fastnn.data
import fastnn.ocr

PACKAGE = Path(fastnn.ocr.__file__).parent
SUBMODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
#: The stages from the bottom up: a module may import only modules listed before it.
ORDER = ["pdf", "image", "segment", "layout", "crops", "synth", "model", "lexicon", "ngrams", "confidence", "read",
         "formats", "score", "build", "draw"]


def _imports(path):
    """(module, names) for every import in ``path``, a file of fastnn.ocr, relative imports resolved."""
    package = ["fastnn", "ocr"]  # every file here is in fastnn.ocr (its __init__ included)
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            out.append((module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            out.extend((alias.name, []) for alias in node.names)
    return out


def _stage_imports(name):
    """The OCR submodules that submodule ``name`` imports."""
    found = set()
    for module, names in _imports(PACKAGE / f"{name}.py"):
        if module == "fastnn.ocr":
            found.update(names)
        elif module.startswith("fastnn.ocr."):
            found.add(module.split(".")[2])
    return found


def test_every_stage_module_is_in_the_order():
    assert SUBMODULES == sorted(ORDER)


@pytest.mark.parametrize("name", ORDER)
def test_stage_imports_only_the_stages_below_it(name):
    below = set(ORDER[: ORDER.index(name)])
    imported = _stage_imports(name)
    assert imported <= below, f"fastnn.ocr.{name} imports {sorted(imported - below)}, which are not below it"
    for module, names in _imports(PACKAGE / f"{name}.py"):
        if module == "fastnn.ocr":  # `from . import x` must name a submodule, never the package's own names
            assert set(names) <= set(SUBMODULES), (name, names)


def test_no_ocr_module_imports_a_private_name():
    for path in sorted(PACKAGE.glob("*.py")):
        for module, names in _imports(path):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            assert not private, f"{path.name} imports {private} from {module}"


@pytest.mark.parametrize("name", ORDER)
def test_each_stage_imports_alone(name):
    """Each submodule first in a fresh process (the package's __init__ runs first either way, but a cycle through
    a half-initialised module shows up as an ImportError here)."""
    code = f"import fastnn.ocr.{name} as m; import fastnn.ocr; assert fastnn.ocr.{name} is m"
    root = Path(fastnn.__file__).parents[1]
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert r.returncode == 0, r.stderr


def test_one_class_list():
    assert fastnn.ocr.CLASSES is fastnn.data.CLASSES
    assert fastnn.ocr.read.CLASSES is fastnn.data.CLASSES and fastnn.ocr.score.CLASSES is fastnn.data.CLASSES
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text())
        assigned = [t.id for node in ast.walk(tree) if isinstance(node, ast.Assign)
                    for t in node.targets if isinstance(t, ast.Name)]
        assert "CLASSES" not in assigned, f"{path.name} defines its own CLASSES"


def test_public_names_are_re_exported():
    for name in fastnn.ocr.__all__:
        assert hasattr(fastnn.ocr, name), name
    assert fastnn.ocr.load_ocr_model is fastnn.ocr.model.load_ocr_model
    assert fastnn.ocr.read_text is fastnn.ocr.read.read_text
    assert fastnn.ocr.load_image is fastnn.ocr.image.load_image
