"""One home for each thing, imports that run one way, and no module reaching into another module's private names.

A private module (``fastnn._io``, ``fastnn._config``, ``fastnn._kernels._core``) may be imported, by
design; a private *name* inside another module (``F._check_adam``, ``tasks._report``) may not.
"""

from __future__ import annotations

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


def _module_name(path: Path, root=ROOT.parent) -> str | None:
    try:
        rel = path.relative_to(root)
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


# ------------------------------------------------------------------------------------------ imports run one way
# Every ``import`` statement of every module counts, those inside functions included (they break nothing at
# import time, but they tie the modules together just the same).  A package's ``__init__`` importing its
# own modules is its face, and counts like any other import.

def _modules(package=ROOT) -> dict:
    """{module name: path} of every .py file of the package."""
    return {_module_name(p, package.parent): p for p in sorted(package.rglob("*.py"))}


def _imports(name: str, path: Path, modules) -> set:
    """The fastnn modules that ``name`` imports anywhere in its file (the most precise module each names)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            stem = _resolve(node, name, path.name == "__init__.py") or ""
            # ``from pkg import sub`` imports the module pkg.sub; ``from pkg import name`` imports pkg
            targets = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in modules else stem for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # ``import fastnn.a.b.name``: the module part
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def _cycles(graph) -> list:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _graph(package=ROOT):
    modules = _modules(package)
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_the_graph_reads_function_level_and_relative_imports():
    """The reader itself: the trainer imports the model interface at the top, the CLI the tasks' registry
    inside a function, and a module of a subpackage its sibling (``from .base import ...``)."""
    graph = _graph()
    assert "fastnn.models.base" in graph["fastnn.train"]
    assert "fastnn.models.base" in graph["fastnn.models.mlp"]
    assert "fastnn.functional" in graph["fastnn.models.base"]
    assert any(m.startswith("fastnn.tasks") for m in graph["fastnn.cli"])
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_between_fastnn_modules():
    graph = _graph()
    cycles = _cycles(graph)
    lines = []
    for component in cycles:
        members = set(component)
        lines.append("circle: " + ", ".join(component))
        lines += [f"  {m} -> {', '.join(sorted(graph[m] & members))}" for m in component]
    assert not cycles, "imports that run in a circle (every import counts, inside functions too):\n" + "\n".join(lines)


def _room(module: str) -> str:
    """The room of a module: its subpackage of fastnn (``fastnn.tasks``, ``fastnn.models``...) or itself."""
    parts = module.split(".")
    return ".".join(parts[:2])


def test_no_import_cycle_between_fastnn_subpackages():
    """The same one way between the rooms of the house, a subpackage counted as one room: a module of
    ``fastnn.tasks`` may use ``fastnn.models``, and then no module of ``fastnn.models`` may use
    ``fastnn.tasks``, whichever modules the two imports name."""
    graph = _graph()
    rooms, why = {}, {}
    for module, targets in graph.items():
        for target in targets:
            a, b = _room(module), _room(target)
            if a != b:
                rooms.setdefault(a, set()).add(b)
                why.setdefault((a, b), []).append(f"{module} -> {target}")
            rooms.setdefault(b, set())
    cycles = _cycles(rooms)
    lines = []
    for component in cycles:
        members = set(component)
        lines.append("circle: " + ", ".join(component))
        lines += [f"  {w}" for a in component for b in sorted(rooms[a] & members) for w in why[(a, b)]]
    assert not cycles, "subpackages whose imports run in a circle:\n" + "\n".join(lines)


def test_exporters_and_trainer_import_no_model_class():
    """The ONNX exporter and the trainer use the model interface: they never import a concrete model (the
    PyTorch module builds fastnn models in ``from_torch``, so it may import them; models never import it)."""
    graph = _graph()
    concrete = {"fastnn.models", "fastnn.models.mlp", "fastnn.models.cnn", "fastnn.cnn"}
    assert not graph["fastnn.onnx"] & (concrete | {"fastnn.models.layers", "fastnn.layers"})
    assert not graph["fastnn.train"] & concrete
    for model in ("fastnn.models.mlp", "fastnn.models.cnn", "fastnn.models.base", "fastnn.models.fileformat"):
        assert not graph[model] & {"fastnn.onnx", "fastnn.torch", "fastnn.train"}, model


@pytest.mark.parametrize("old, new", [
    ("fastnn.cnn.CNN", "fastnn.models.CNN"),
    ("fastnn.models.MLP", "fastnn.models.mlp.MLP"),
    ("fastnn.layers.Conv2D", "fastnn.models.layers.Conv2D"),
    ("fastnn.layers.rows_to_images", "fastnn.models.layers.rows_to_images"),
    ("fastnn.nn.forward", "fastnn.coursework.nn.forward"),
    ("fastnn.cnn_recipe.train_cnn", "fastnn.recipes.train_cnn"),
    ("fastnn.tasks.RECIPES", "fastnn.recipes.RECIPES"),
])
def test_the_import_paths_users_type_keep_working(old, new):
    """The paths the README and older scripts use name the very objects of their new homes."""
    def resolve(path):
        module, _, name = path.rpartition(".")
        return getattr(importlib.import_module(module), name)

    assert resolve(old) is resolve(new)
