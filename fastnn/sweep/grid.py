"""The grid of a sweep: its axes from text (each value checked as the task's own option checks it), the key of
each run, and the task by name."""

from __future__ import annotations

import hashlib
import inspect
import re

from ..tasks.registry import load_tasks

__all__ = ["RESERVED", "parse_grid", "parse_values", "check_name", "value_text", "run_key", "resolve_task"]

#: Parameters a grid or ``fixed`` cannot set: the sweep sets them for every run.
RESERVED = ("out", "progress", "dataset")


def _literal(text: str):
    """A grid value with no declared type: an integer, else a number, else True/False/None, else the text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def _converter(function, name: str, options=()):
    """How the text of option ``name`` becomes the value passed to ``function``.

    The task's command-line option when it has one (its ``type`` and ``choices``: ``lr=-1`` is refused as
    ``fastnn classify --lr -1`` is), else the type of the parameter's default, else :func:`_literal`.
    """
    for opt in options:
        if opt.param == name and ("type" in opt.kwargs or "choices" in opt.kwargs):
            kind, choices = opt.kwargs.get("type"), opt.kwargs.get("choices")

            def convert(text, kind=kind, choices=choices):
                value = kind(text) if kind is not None else text
                if choices is not None and value not in choices:
                    raise ValueError(f"expected one of {', '.join(map(str, choices))}, got {text!r}")
                return value
            return convert
    default = inspect.signature(function).parameters[name].default
    if isinstance(default, bool):
        def convert(text):
            value = _literal(text)
            if not isinstance(value, bool):
                raise ValueError(f"expected true or false, got {text!r}")
            return value
        return convert
    if isinstance(default, (int, float, str)):
        return type(default)
    return _literal


def check_name(function, name: str, what: str, task_name: str) -> str:
    """The parameter ``name`` (dashes as underscores) of ``function``, or a ValueError listing those it takes."""
    param = name.strip().replace("-", "_")
    params = inspect.signature(function).parameters
    takes = [p for p, v in params.items() if p not in RESERVED and v.kind in (v.KEYWORD_ONLY, v.POSITIONAL_OR_KEYWORD)]
    if param in RESERVED:
        raise ValueError(f"{what} {name}: the sweep sets {param} itself for every run")
    if param not in takes:
        raise ValueError(f"{what} {name}: {task_name} takes no option {param!r}; it takes {', '.join(takes)}")
    return param


def parse_values(function, param: str, texts, *, options=(), what="--grid") -> list:
    """The values of ``param`` from their texts, each checked as the task's option checks it (ValueError)."""
    convert = _converter(function, param, options)
    values = []
    for text in texts:
        try:
            values.append(convert(text.strip()))
        except Exception as exc:  # ValueError, or argparse.ArgumentTypeError from the task's option type
            raise ValueError(f"{what} {param}={text.strip()}: {exc}") from None
    return values


def parse_grid(specs, function, *, task_name=None, options=(), what="--grid") -> dict:
    """``["lr=0.001,0.002", "hidden=32,64"]`` -> ``{"lr": [0.001, 0.002], "hidden": [32, 64]}``.

    Each spec is ``NAME=V1,V2,...``: ``NAME`` a keyword of ``function`` (``batch-size`` is ``batch_size``),
    the values separated by commas, each converted and checked like the task's own command-line option
    (see :func:`parse_values`).  ValueError, naming the spec, for a spec without ``=``, an empty or repeated
    value, a name given twice or one the task does not take.
    """
    task_name = task_name or getattr(function, "__name__", "the task")
    grid = {}
    for spec in specs:
        name, sep, rest = spec.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{what} {spec}: expected NAME=VALUE,VALUE,... (e.g. lr=0.001,0.002)")
        param = check_name(function, name, what, task_name)
        if param in grid:
            raise ValueError(f"{what} {spec}: {param} is given twice; give all its values in one {what}")
        texts = rest.split(",")
        if any(not t.strip() for t in texts):
            raise ValueError(f"{what} {spec}: an empty value (values are separated by single commas)")
        values = parse_values(function, param, texts, options=options, what=what)
        if len(set(map(repr, values))) != len(values):
            raise ValueError(f"{what} {spec}: a value is given twice")
        grid[param] = values
    return grid


def value_text(value) -> str:
    """``value`` as the sweep writes it (run keys, the table, the headline): a float in ``%g`` form when that is
    exact (``0.002``, ``1e-05``), anything else as ``str``."""
    return f"{value:g}" if isinstance(value, float) and repr(value) == repr(float(f"{value:g}")) else str(value)


def run_key(point: dict) -> str:
    """The file name (without ``.json``) of the run at grid ``point``: ``lr=0.002_hidden=64_seed=0``.

    Characters other than letters, digits and ``.=+_-`` become ``-``; a short hash of the point is added
    when that changed anything (or a value holds ``_`` or ``=``), so that two points never share a key.
    """
    texts = [value_text(v) for v in point.values()]
    raw = "_".join(f"{k}={t}" for k, t in zip(point, texts)) or "run"
    safe = re.sub(r"[^A-Za-z0-9.=+_-]", "-", raw)
    if safe != raw or len(safe) > 150 or any("_" in t or "=" in t for t in texts):
        safe = safe[:150] + "-" + hashlib.sha1(raw.encode()).hexdigest()[:8]
    return safe


def resolve_task(task):
    """(function, name, command-line options) of a registered task's name or of a function; ValueError for an
    unknown name."""
    if callable(task):
        return task, getattr(task, "__name__", str(task)), ()
    tasks = load_tasks()
    if task not in tasks or task == "sweep":
        names = [n for n in tasks if n != "sweep"]
        raise ValueError(f"task {task!r}: expected one of {', '.join(names)}")
    return tasks[task].function, task, tasks[task].options
