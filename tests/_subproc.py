"""Helpers the process tests share: the command line of a Python child, and how a child ended."""

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
