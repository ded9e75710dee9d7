"""The fastnn command line: `fastnn TASK [options]`; `fastnn TASK --help` describes each task.

Every task ends by printing its headline figures as `name: value` lines, so scripts can read them.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import functools
import os
import select
import shutil
import sys

from ._io import WRITE_ERRNOS

#: Warnings that speak to programmers, not to the user of a command: kept out unless asked for (-W,
#: PYTHONWARNINGS, -X dev). Python's default filters hide them too, but not from code run as __main__
#: nor under a test runner; fastnn's own deprecations are still shown.
_PROGRAMMERS_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


def _headline_lines(headline: dict) -> list:
    """The task's headline figures as `name: value` lines (floats to 4 decimals, integers as integers)."""
    return [f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}" for key, value in headline.items()]


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


class _ReaderGone(Exception):
    """Standard output is a pipe whose reader has closed it (`fastnn ocr page.jpg | head -3`): stop quietly."""


def _print_out(lines) -> None:
    """Print ``lines`` on stdout; a failure (a full disk) is an OSError naming standard output, a closed pipe
    :class:`_ReaderGone`.  A line that is a binary file (``fastnn ocr --format pdf``) is copied as it is."""
    try:
        for line in lines:
            if hasattr(line, "read"):
                sys.stdout.flush()
                shutil.copyfileobj(line, sys.stdout.buffer)
                sys.stdout.buffer.flush()
                continue
            print(line)
        sys.stdout.flush()
    except OSError as exc:
        if exc.errno == errno.EPIPE:
            raise _ReaderGone() from exc
        raise OSError(exc.errno, exc.strerror or str(exc), "standard output") from exc


def _reader_gone(exc: BaseException) -> bool:
    """Whether ``exc`` is a write to a standard output whose reader has closed it (a task's own ``print``).

    A broken pipe of anything else (a subprocess, a socket) stays an error: a pipe or socket without a
    reader polls as an error or a hang-up.
    """
    if isinstance(exc, _ReaderGone):
        return True
    if not isinstance(exc, OSError) or exc.errno != errno.EPIPE:
        return False
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # no file descriptor: not a pipe
        return False
    if not hasattr(select, "poll"):  # Windows: trust the error
        return True
    poll = select.poll()
    poll.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poll.poll(0))


def _quiet_stdout() -> None:
    """Point standard output at os.devnull, so that Python's last flush at exit meets no closed pipe (which
    would print "Exception ignored ... BrokenPipeError")."""
    with contextlib.suppress(AttributeError, OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)


def _run(task, args) -> int:
    """Run one registered task and print its result (see fastnn.tasks.registry for the order)."""
    result = task.run(args)
    _print_out(task.lines(result) if task.lines else ())
    for line in task.notes(result) if task.notes else ():
        print(line, file=sys.stderr)
    if task.data_line:  # say which data the 36-class tasks trained on (after success: a failure stays one line)
        from .data import find_data_dir

        data_dir = find_data_dir(args.data)
        print("data: generated (synthetic fonts), not handwriting" if data_dir is None else f"data: hw36 at {data_dir}",
              file=sys.stderr)
    if getattr(args, "out", None) is not None:
        print(f"output: {os.path.abspath(args.out)}", file=sys.stderr)
    _print_out(_headline_lines(task.headline(result)))
    return int(result.get("exit_status", 0)) if isinstance(result, dict) else 0


def build_parser() -> argparse.ArgumentParser:
    """The parser of every registered task (fastnn.tasks.registry), in the order of their names: the tasks of
    fastnn.tasks, and ``fastnn sweep`` (fastnn.sweep.command), which sits above the tasks it runs."""
    from . import __version__
    from .sweep import command  # noqa: F401  (registers `fastnn sweep`)
    from .tasks.registry import load_tasks

    parser = argparse.ArgumentParser(prog="fastnn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action=_Version, version=__version__)
    sub = parser.add_subparsers(dest="task", required=True, metavar="TASK")
    for task in load_tasks().values():
        task.add_parser(sub).set_defaults(func=functools.partial(_run, task), registered_task=task)
    return parser


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


class _OneLineWarnings(contextlib.AbstractContextManager):
    """While a command runs, every warning is one line on stderr, ``fastnn TASK: warning: MESSAGE``, each
    distinct line once; so are the log records of the readers (tifffile...) that no logging handler takes.

    Python's full form (file, line number, source line) says nothing to the user, and a message's own
    newlines would break "one line". The warnings in :data:`_PROGRAMMERS_WARNINGS` are kept out unless
    the user's options ask for warnings (``-W``, ``PYTHONWARNINGS``, ``-X dev``); ``-W error`` still makes
    a warning an error. Nothing changes under FASTNN_DEBUG=1. Everything is restored on exit.
    """

    def __init__(self):
        self.prefix = "fastnn"  # "fastnn TASK" once the command line is parsed
        self._shown = set()
        self._stack = None

    def __enter__(self):
        if os.environ.get("FASTNN_DEBUG"):
            return self
        import logging
        import warnings

        stack = contextlib.ExitStack()
        stack.enter_context(warnings.catch_warnings())
        if not (sys.warnoptions or sys.flags.dev_mode):
            for category in _PROGRAMMERS_WARNINGS:
                warnings.filterwarnings("ignore", category=category)
            warnings.filterwarnings("default", category=DeprecationWarning, module=r"fastnn(\.|$)")
        warnings.showwarning = self._showwarning
        show = self._show

        class LastResort(logging.Handler):
            """logging's handler of the records (WARNING and above) that no other handler takes."""

            def emit(self, record):
                try:
                    show(record.getMessage())
                except Exception:
                    self.handleError(record)

        stack.callback(setattr, logging, "lastResort", logging.lastResort)
        logging.lastResort = LastResort(logging.WARNING)
        self._stack = stack
        return self

    def __exit__(self, *exc_info):
        if self._stack is not None:
            self._stack.close()
            self._stack = None
        return False

    def _showwarning(self, message, category, filename, lineno, file=None, line=None):
        self._show(message, file)

    def _show(self, message, stream=None):
        text = _one_line(message)
        if text.startswith("fastnn: "):  # fastnn's own messages name it already
            text = text[len("fastnn: "):]
        line = f"{self.prefix}: warning: {text}"
        if line in self._shown:
            return
        self._shown.add(line)
        stream = stream if stream is not None else sys.stderr
        if stream is None:  # pythonw: no stderr
            return
        try:
            over_a_bar = stream.isatty()  # a progress bar may be drawn on this line: clear it (it is redrawn)
        except (AttributeError, ValueError, OSError):
            over_a_bar = False
        with contextlib.suppress(OSError, ValueError):  # a closed or full stderr loses the warning, as in Python
            stream.write(("\r\033[K" if over_a_bar else "") + line + "\n")
            stream.flush()


def _file_name(name) -> str:
    return os.fsdecode(name) if isinstance(name, (str, bytes, os.PathLike)) else str(name)


def _os_error(exc: OSError, task, args) -> str:
    """An OSError in words that name its file: the exception's own, else the outputs the command writes.

    ``[Errno 28] No space left on device`` names no file when the failing write went through a file object
    (the exception then carries no ``filename``); a full disk, a quota or a file size limit only fail writes,
    so the command's output options (``--out``, ``--out-dir``...) name what was being written.
    """
    if exc.strerror is None:  # fastnn's own message, which says which file
        return _one_line(exc)
    if exc.filename is not None:
        where = _file_name(exc.filename)
        if exc.filename2 is not None:
            where += f" -> {_file_name(exc.filename2)}"
        return f"{where}: {exc.strerror}"
    outputs = task.outputs(args) if exc.errno in WRITE_ERRNOS else []
    if outputs:
        return f"{exc.strerror} (writing {' or '.join(f'{flag} {value}' for flag, value in outputs)})"
    return _one_line(exc)


def main(argv=None) -> int:
    """Run one task; every failure is one line on stderr and a non-zero exit, never a traceback, and every
    warning one line ``fastnn TASK: warning: ...`` (see :class:`_OneLineWarnings`).

    Exit codes: 2 for input the task refuses (a file, an argument, a model that does not fit; a warning that
    ``-W error`` made an error), 3 for an internal error (set FASTNN_DEBUG=1 to see its traceback), 130 when
    interrupted; 0, with no message, when stdout is a pipe whose reader closed it early (``| head -3``).
    """
    with _OneLineWarnings() as warnings_shown:
        return _main(argv, warnings_shown)


def _main(argv, warnings_shown) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
    except ImportError as exc:  # a missing compiled core, whose message says how to fix it
        print(f"fastnn: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C while the tasks (numpy, the compiled core...) are being imported
        print("fastnn: interrupted", file=sys.stderr)
        return 130
    warnings_shown.prefix = f"fastnn {args.task}"
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"fastnn {args.task}: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"fastnn {args.task}: error: out of memory (is an input file far larger than it should be?)",
              file=sys.stderr)
        return 2
    except (OSError, _ReaderGone) as exc:
        if _reader_gone(exc):  # the reader of a pipe has what it wanted (`| head`): normal use, no error
            _quiet_stdout()
            return 0
        print(f"fastnn {args.task}: error: {_os_error(exc, args.registered_task, args)}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, KeyError, OverflowError, ImportError) as exc:
        # ImportError: a missing compiled core or optional package, which the message says how to fix
        print(f"fastnn {args.task}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Warning as exc:  # a warning that -W error (or PYTHONWARNINGS) made an error
        print(f"fastnn {args.task}: error: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: still one line, with the way to the traceback
        if os.environ.get("FASTNN_DEBUG"):
            raise
        print(f"fastnn {args.task}: internal error: {type(exc).__name__}: {_one_line(exc)} "
              "(set FASTNN_DEBUG=1 to see the traceback)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
