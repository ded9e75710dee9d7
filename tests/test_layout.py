"""One home for each thing: no fastnn or bench module reaches into another module's private names.

A private module (``fastnn._io``, ``fastnn._config``, ``fastnn._kernels._core``) may be imported, by
design; a private *name* inside another module (``F._check_adam``, ``tasks._report``) may not.
"""

import ast
import importlib
import types
from pathlib import Path

import pytest

import fastnn

ROOT = Path(fastnn.__file__).resolve().parent
SOURCES = sorted(ROOT.rglob("*.py"))
BENCH = Path(__file__).resolve().parents[1] / "bench"
if BENCH.is_dir():
    SOURCES += sorted(BENCH.glob("*.py"))


def _module_name(path: Path) -> str | None:
    try:
        rel = path.relative_to(ROOT.parent)
    except ValueError:
        return None  # bench/
    parts = list(rel.with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(node: ast.ImportFrom, here: str | None, is_package: bool) -> str | None:
    if not node.level:
        return node.module
    if here is None:
        return None
    base = here.split(".") if is_package else here.split(".")[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _is_module(name: str) -> bool:
    try:
        return isinstance(importlib.import_module(name), types.ModuleType)
    except ImportError:
        return False


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _violations(path: Path) -> list:
    here = _module_name(path)
    tree = ast.parse(path.read_text(), str(path))
    aliases, found = {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _resolve(node, here, path.name == "__init__.py")
            if not source or not source.startswith("fastnn"):
                continue
            for a in node.names:
                full = f"{source}.{a.name}"
                if _is_module(full):
                    aliases[a.asname or a.name] = full
                elif _private(a.name):
                    found.append(f"{path.name}:{node.lineno}: from {source} import {a.name}")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("fastnn"):
                    aliases[a.asname or a.name.split(".")[0]] = a.asname and a.name or a.name.split(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            if _private(node.attr) and not _is_module(f"{aliases[node.value.id]}.{node.attr}"):
                found.append(f"{path.name}:{node.lineno}: {node.value.id}.{node.attr}")
    return found


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(p.parents[1])) for p in SOURCES])
def test_no_private_name_of_another_module_is_used(path):
    assert _violations(path) == []
