"""The fastnn command line: `fastnn TASK [options]`; `fastnn TASK --help` describes each task.

Every task ends by printing its headline figures as `name: value` lines, so scripts can read them.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys


def _print_headline(headline: dict) -> None:
    """The task's headline figures as `name: value` lines (floats to 4 decimals, integers as integers)."""
    for key, value in headline.items():
        print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")


class _Version(argparse.Action):
    """--version: fastnn's version, the copy of the compiled core that this CPU loads and the team's size (the
    core is imported only when asked, so that building the parser stays light)."""

    def __init__(self, option_strings, version, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="show fastnn's version, the copy of its compiled core this CPU loads, and its threads"):
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)
        self.version = version

    def __call__(self, parser, namespace, values, option_string=None):
        from .functional import core_info

        info = core_info()
        print(f"fastnn {self.version} (core {info['core']} on an {info['cpu']} CPU, {info['threads']} threads)")
        parser.exit()


def _run(task, args) -> int:
    """Run one registered task and print its result (see fastnn.tasks.registry for the order)."""
    result = task.run(args)
    for line in task.lines(result) if task.lines else ():
        print(line)
    for line in task.notes(result) if task.notes else ():
        print(line, file=sys.stderr)
    if task.data_line:  # say which data the 36-class tasks trained on (after success: a failure stays one line)
        from .data import find_data_dir

        data_dir = find_data_dir(args.data)
        print("data: generated (synthetic fonts), not handwriting" if data_dir is None else f"data: hw36 at {data_dir}",
              file=sys.stderr)
    if getattr(args, "out", None) is not None:
        print(f"output: {os.path.abspath(args.out)}", file=sys.stderr)
    _print_headline(task.headline(result))
    return int(result.get("exit_status", 0)) if isinstance(result, dict) else 0


def build_parser() -> argparse.ArgumentParser:
    """The parser of every registered task (fastnn.tasks.registry), in the order of their names."""
    from . import __version__
    from .tasks.registry import load_tasks

    parser = argparse.ArgumentParser(prog="fastnn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action=_Version, version=__version__)
    sub = parser.add_subparsers(dest="task", required=True, metavar="TASK")
    for task in load_tasks().values():
        task.add_parser(sub).set_defaults(func=functools.partial(_run, task))
    return parser


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv=None) -> int:
    """Run one task; every failure is one line on stderr and a non-zero exit, never a traceback.

    Exit codes: 2 for input the task refuses (a file, an argument, a model that does not fit), 3 for an
    internal error (set FASTNN_DEBUG=1 to see its traceback), 130 when interrupted.
    """
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
    except ImportError as exc:  # a missing compiled core, whose message says how to fix it
        print(f"fastnn: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C while the tasks (numpy, the compiled core...) are being imported
        print("fastnn: interrupted", file=sys.stderr)
        return 130
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"fastnn {args.task}: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"fastnn {args.task}: error: out of memory (is an input file far larger than it should be?)",
              file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError, KeyError, OverflowError, ImportError) as exc:
        # ImportError: a missing compiled core or optional package, which the message says how to fix
        print(f"fastnn {args.task}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: still one line, with the way to the traceback
        if os.environ.get("FASTNN_DEBUG"):
            raise
        print(f"fastnn {args.task}: internal error: {type(exc).__name__}: {_one_line(exc)} "
              "(set FASTNN_DEBUG=1 to see the traceback)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
