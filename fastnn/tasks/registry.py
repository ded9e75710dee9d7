"""The tasks of the command line, each registered once: ``fastnn TASK`` is built from :data:`TASKS`.

How to add a task: write a module in ``fastnn/tasks/``, named after its command, with the task's
function and one :func:`register` call beside it.  Nothing else changes: :func:`load_tasks` imports every
module of the package, and ``fastnn.cli`` builds one subcommand per registered task, its ``--help``
included::

    from .common import out_folder, write_report
    from .registry import Option, positive_int, register

    def cnn(data=None, out="fastnn-output", *, seed=42, epochs=20, progress=None):
        '''Train the convolutional classifier; write its curves and report.'''
        from .. import data as data_sets
        from ..models import CNN
        ...
        return {"headline": {"test_accuracy": acc}, "plots": plots}

    register("cnn", cnn, help="train the convolutional 36-class classifier: curves and report",
             options=[Option("--epochs", type=positive_int, help="training epochs (default %(default)s)")],
             data_line=True)

Keep a task module's top-level imports light (the standard library, NumPy, ``.common``, ``.registry``):
the command line imports every task module to build its parser, so the compiled core, ``fastnn.models``,
``fastnn.train``, ``fastnn.data``, ``fastnn.ocr`` and matplotlib are imported inside the functions that
use them.  ``fastnn --help`` then works without the compiled core, and ``fastnn toy`` loads no more than
its own task needs (``tests/test_tasks.py`` checks which modules building the parser imports).

The options every task shares come from the function's signature, so that they are spelt and behave
alike wherever they apply:

- a parameter ``data`` gives ``--data DIR`` (the real data folder; default ``$FASTNN_DATA``);
- ``out`` gives ``--out DIR``, defaulting to the parameter's default (``None``: no files unless given);
- ``seed`` gives ``--seed N``, defaulting to the parameter's default;
- ``progress`` gives ``--progress`` / ``--no-progress``, passed as True / False (None when neither is
  given: bars on a terminal only).

Each :class:`Option` adds one argparse argument, passed to the function as the keyword named by its
destination (or ``param``).  Its default, unless given, is the function's default, so the two cannot
disagree; ``%(default)s`` in its help shows it.  ``convert`` turns the parsed value into the argument
when the task runs, inside the command line's error handling (``MLP.load`` of a ``--model`` path, so a
bad file is a one-line error, not an argparse usage message).  ``output=True`` marks an option naming a
file or folder the task writes, as ``--out`` does: the command line names them when a write fails
without saying where (a full disk, :meth:`Task.outputs`).

How ``fastnn.cli`` prints a task's result: ``lines(result)`` on stdout (confusion's most confused pairs,
the text of a page); ``notes(result)`` on stderr; with ``data_line=True``, which data the task trained on,
on stderr; ``output: DIR`` on stderr when the task wrote into ``--out``; last ``headline(result)``
(default ``result["headline"]``) as ``name: value`` lines on stdout, floats to 4 decimals, so that
scripts can read them.  The exit status is ``result["exit_status"]`` when the task sets one (``ocr``: 2
when an image of a batch could not be read, the others having been read), else 0.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import math
import pkgutil
from dataclasses import dataclass, field
from typing import Callable, Mapping

__all__ = ["Option", "Task", "TASKS", "register", "load_tasks", "positive_int", "positive_float"]

#: Every registered task by name, in registration order (see :func:`load_tasks`).
TASKS: dict = {}

#: The options the tasks share, in the order they appear in ``--help``, with their usual help text.
COMMON_OPTIONS = ("data", "out", "seed", "progress")
COMMON_HELP = {
    "data": "folder with the real data (hw36/, mnist/); default: $FASTNN_DATA, else the generated set",
    "out": "output folder for plots and reports (default %(default)s)",
    "seed": "random seed (default %(default)s)",
    "progress": ("always draw progress bars on stderr", "never draw progress bars"),  # --progress, --no-progress
}
#: Modules of the package that hold no task.
_NOT_TASKS = ("common", "registry")


def positive_int(text: str) -> int:
    """argparse type: an integer > 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (a learning rate: nan, inf and 0 are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


class Option:
    """One argument of a task: ``Option(*flags, param=None, convert=None, output=False, **add_argument_kwargs)``.

    ``param`` names the function's keyword (default: argparse's destination, ``--batch-size`` ->
    ``batch_size``); ``convert(value)`` is applied when the task runs; ``output=True``: the value is a file
    or folder the task writes (see :meth:`Task.outputs`).
    """

    def __init__(self, *flags: str, param: str | None = None, convert: Callable | None = None, output: bool = False,
                 **kwargs):
        if not flags:
            raise ValueError("Option: expected at least one flag or a positional name")
        self.flags = flags
        long = [f for f in flags if f.startswith("--")]
        self.dest = kwargs.get("dest") or (long[0][2:].replace("-", "_") if long else flags[0].lstrip("-"))
        self.param = param or self.dest
        self.convert = convert
        self.output = output
        self.kwargs = kwargs

    def __repr__(self):
        return f"Option({', '.join(map(repr, self.flags))}, param={self.param!r})"


@dataclass(frozen=True)
class Task:
    """A registered task; see :func:`register` for the fields."""

    name: str
    function: Callable
    help: str
    description: str
    options: tuple = ()
    common: tuple = ()
    common_help: Mapping = field(default_factory=dict)
    data_line: bool = False
    headline: Callable = None
    lines: Callable = None
    notes: Callable = None

    def __repr__(self):
        return f"Task({self.name!r}, {self.function.__module__}.{self.function.__qualname__})"

    def add_parser(self, subparsers) -> argparse.ArgumentParser:
        """Add this task's subcommand, with its common options and its own, to argparse ``subparsers``."""
        p = subparsers.add_parser(self.name, help=self.help, description=self.description)
        defaults = _defaults(self.function)
        for name in self.common:
            text = self.common_help.get(name, COMMON_HELP.get(name))
            if name == "progress":
                on, off = text
                g = p.add_mutually_exclusive_group()
                g.add_argument("--progress", action="store_true", help=on)
                g.add_argument("--no-progress", action="store_true", help=off)
            elif name == "seed":
                p.add_argument("--seed", type=int, default=defaults.get("seed"), help=text)
            else:  # a (metavar, help) pair names what the option takes when it is not a folder
                metavar, text = text if isinstance(text, tuple) else ("DIR", text)
                p.add_argument(f"--{name}", default=defaults.get(name), metavar=metavar, help=text)
        for opt in self.options:
            kwargs = dict(opt.kwargs)
            positional = not opt.flags[0].startswith("-")
            if not positional and "default" not in kwargs and kwargs.get("action") not in ("store_true",
                                                                                             "store_false"):
                kwargs["default"] = defaults.get(opt.param)
            p.add_argument(*opt.flags, **kwargs)
        return p

    def arguments(self, args: argparse.Namespace) -> dict:
        """The keyword arguments of ``function`` from the parsed ``args`` (``convert`` applied)."""
        kwargs = {}
        for name in self.common:
            if name == "progress":
                kwargs["progress"] = True if args.progress else (False if args.no_progress else None)
            else:
                kwargs[name] = getattr(args, name)
        for opt in self.options:
            value = getattr(args, opt.dest)
            kwargs[opt.param] = opt.convert(value) if opt.convert is not None else value
        return kwargs

    def outputs(self, args: argparse.Namespace) -> list:
        """The files and folders the parsed ``args`` tell the task to write, as (flag, value) pairs: ``--out``
        and the options marked ``output=True``, when given."""
        named = [("--out", getattr(args, "out", None))] if "out" in self.common else []
        named += [(opt.flags[0], getattr(args, opt.dest, None)) for opt in self.options if opt.output]
        return [(flag, value) for flag, value in named if value is not None]

    def run(self, args: argparse.Namespace):
        """Call the task's function with the parsed ``args``; return its result."""
        return self.function(**self.arguments(args))


def _defaults(function) -> dict:
    return {k: p.default for k, p in inspect.signature(function).parameters.items()
            if p.default is not inspect.Parameter.empty}


def register(name: str, function: Callable, *, help: str, description: str | None = None, options=(),
             common_help: Mapping | None = None, data_line: bool = False, headline: Callable | None = None,
             lines: Callable | None = None, notes: Callable | None = None) -> Task:
    """Register ``function`` as the task ``fastnn NAME``; return the :class:`Task`.

    Parameters
    ----------
    name : str
        The subcommand.
    function : callable
        Called with keyword arguments: the common options its signature takes (``data``, ``out``,
        ``seed``, ``progress``) and the ``options``.  Returns a dict (``result``).
    help : str
        One line for ``fastnn --help``; ``description`` (default: ``help`` as a sentence) heads
        ``fastnn NAME --help``.
    options : sequence of Option
        The task's own arguments.
    common_help : mapping, optional
        Help text of a common option where the usual one (:data:`COMMON_HELP`) is not true of this task;
        for ``data`` and ``out``, a ``(metavar, help)`` pair where the option is not a folder (``DIR``).
    data_line : bool
        Say on stderr which data the task trained on (the 36-class tasks fall back to generated data).
    headline, lines, notes : callable, optional
        ``result -> dict`` of the headline figures (default ``result["headline"]``); ``result -> list
        of str`` printed on stdout before the headline, and on stderr.

    Raises
    ------
    ValueError
        When a task of that name is already registered (by another function).
    """
    if name in TASKS and TASKS[name].function is not function:
        raise ValueError(f"task {name!r} is registered twice: {TASKS[name]!r} and {function!r}")
    params = inspect.signature(function).parameters
    options = tuple(options)
    for opt in options:
        if opt.param not in params:
            raise ValueError(f"task {name!r}: option {opt.flags[0]} passes {opt.param}=, which "
                             f"{function.__qualname__} does not take")
    task = Task(name=name, function=function, help=help,
                description=description or help[0].upper() + help[1:] + ".", options=options,
                common=tuple(k for k in COMMON_OPTIONS if k in params), common_help=dict(common_help or {}),
                data_line=data_line, headline=headline or (lambda result: result["headline"]), lines=lines,
                notes=notes)
    TASKS[name] = task
    return task


def load_tasks() -> dict:
    """Import every module of ``fastnn.tasks`` (each registers its tasks); return :data:`TASKS` by name.

    A command that sits above the tasks registers itself the same way from its own module, which
    ``fastnn.cli`` imports besides this (the ``sweep`` command, in a package of its own above the tasks: it
    runs them, so no task may import it); it is then in :data:`TASKS` too.
    """
    package = importlib.import_module(__package__)
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_") and info.name not in _NOT_TASKS:
            importlib.import_module(f"{__package__}.{info.name}")
    return dict(sorted(TASKS.items()))
