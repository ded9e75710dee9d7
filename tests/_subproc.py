"""Helpers the process tests share: the command line of a Python child, how a child ended, and a failure
message about it."""

import shlex
import signal
import sys


def python_command(script, *args):
    """The command line that runs ``script`` (a string) with the test's interpreter (the installed fastnn's)."""
    return [sys.executable, "-c", script, *map(str, args)]


def how_it_ended(proc) -> str:
    """'exited with N', or 'was killed by SIGNAME (returncode -N)' for a child a signal ended."""
    rc = proc.returncode
    if rc is not None and rc < 0:
        try:
            return f"was killed by {signal.Signals(-rc).name} (returncode {rc})"
        except ValueError:
            return f"was killed by signal {-rc} (returncode {rc})"
    return f"exited with {rc}"


def describe(proc, heading, problem="") -> str:
    """A failure message: ``heading`` ("process 'x'"), how the process ended (a signal by name), ``problem``,
    its command (at most 2,000 characters), stdout and stderr."""
    return (f"{heading} {how_it_ended(proc)}{problem}\n$ {shlex.join(map(str, proc.args))[:2000]}\n"
            f"--- stdout:\n{proc.stdout}\n--- stderr:\n{proc.stderr}")
