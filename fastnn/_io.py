"""Atomic file writes, shared by every part of fastnn that writes a file (models, data sets, reports, plots).

``atomic_write(path)`` hands out a file object on a temporary file in ``path``'s folder.  When the
``with`` block ends without an exception the temporary is flushed, ``fsync``'d and renamed over ``path``
with ``os.replace``, so a reader sees the old file or the new one, never a half-written one, and a power
cut after the rename cannot leave a renamed but empty file.  On any exception (or a ``KeyboardInterrupt``)
the temporary is removed and ``path`` is left as it was.

A save that is killed outright (``SIGKILL``, a power cut, the machine running out of memory) cannot clean
up after itself, so every ``atomic_write`` first removes the temporaries that earlier, dead saves of the
same ``path`` left behind.  It must never remove the temporary of a save that is still running (in this
process or in another one), so:

* a temporary is named ``.<name>.<16 hex digits>.part`` and its writer holds an exclusive ``flock`` on it
  from its creation until it has been renamed.  The kernel drops the lock when the writer dies, however
  it dies, so an unlocked temporary of that name belongs to a dead save and is removed at once;
  a locked one is left alone however old it is (a writer may be stopped, or writing a big file slowly);
* temporaries named by fastnn before this scheme (``<name>.XXXXXXXX.tmp`` and ``.<name>.XXXXXXXX.tmp``,
  written without a lock) and, where ``flock`` is unavailable (Windows, some network file systems),
  any temporary, are removed only once they are older than ``STALE_TEMP_SECONDS``: a running save
  keeps touching its file, so one untouched that long is dead.

The lock is taken right after the temporary is created; a cleaner that removes the file in that short
window does so while holding the lock, and the writer, once it has the lock, sees the file has no name
left and starts again with a new one.  (On a network file system whose ``flock`` is not shared between
machines, a save on one machine can remove the live temporary of a save of the same file on another;
that save then fails with an error, and the old file is kept whole.)

A new file gets the mode the user's umask gives any new file (the temporary is created with 0o666 and
the kernel applies the umask and any default ACL); an existing file keeps its permission bits.  A writer can
refuse to replace a file that is read-only (``overwrite=False``: its mode gives its owner no write
permission, or this user cannot write it), as ``cp`` does; the rename itself would replace it, since it
needs only the folder to be writable.  A symbolic link at ``path`` is replaced by the new file (the file it
pointed to is left as it was); the mode kept, and the read-only test, are those of the file it points to.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; stale temporaries are recognised by their age alone
    fcntl = None

__all__ = ["STALE_TEMP_SECONDS", "TEMP_SUFFIX", "atomic_write", "atomic_savefig", "remove_stale_temporaries"]

#: A temporary of a save that nobody holds a lock on is removed as soon as the next save of the same
#: file starts.  One that cannot be tested with a lock (written by an older fastnn, or on a file system
#: without ``flock``) is removed only when it has not been modified for this many seconds.
STALE_TEMP_SECONDS = 600

#: Ending of the temporary files: ``.<name>.<16 hex digits>.part`` next to the file being written.
TEMP_SUFFIX = ".part"

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)


def _temp_patterns(name: str):
    escaped = re.escape(name)
    locked = re.compile(r"\." + escaped + r"\.[0-9a-f]{16}" + re.escape(TEMP_SUFFIX) + r"\Z")
    legacy = re.compile(r"\.?" + escaped + r"\.[a-z0-9_]{8}\.tmp\Z")  # tempfile.mkstemp names of earlier fastnn
    return locked, legacy


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _remove_if_stale(tmp: Path, lock_protected: bool, max_age: float, now: float) -> bool:
    try:
        st = os.lstat(tmp)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode):
        return False
    old = now - st.st_mtime > max_age
    if fcntl is None:
        if not old:
            return False
        with contextlib.suppress(OSError):
            os.unlink(tmp)
            return True
        return False
    try:
        fd = os.open(tmp, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
        if not _same_file(os.fstat(fd), st):
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a live save holds it
        except OSError:
            lock_protected = False  # no flock here: only the age tells
        if not (lock_protected or old):
            return False
        if not _same_file(os.lstat(tmp), st):
            return False
        os.unlink(tmp)  # still holding the lock: see the module docstring
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def remove_stale_temporaries(path, *, max_age: float = STALE_TEMP_SECONDS) -> list:
    """Remove the temporaries that dead saves of ``path`` left in its folder; return their paths.

    Only files named as ``atomic_write`` (or an older fastnn) names the temporaries of ``path`` are
    considered.  One whose writer is alive (it holds the file's lock) is never removed; see the module
    docstring for the files that cannot be tested with a lock, which must be older than ``max_age``
    seconds.  Errors (a folder that cannot be listed, a file of another user) are ignored.
    """
    path = Path(path)
    folder = path.parent
    locked, legacy = _temp_patterns(path.name)
    try:
        names = [e.name for e in os.scandir(folder)]
    except OSError:
        return []
    now = time.time()
    removed = []
    for name in names:
        if locked.match(name):
            protected = True
        elif legacy.match(name):
            protected = False
        else:
            continue
        if _remove_if_stale(folder / name, protected, max_age, now):
            removed.append(folder / name)
    return removed


def _create_temporary(path: Path):
    """Create and lock a new temporary next to ``path``; return (fd, its path)."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}{TEMP_SUFFIX}"
        try:
            # 0o666: the kernel applies the umask (or the folder's default ACL), as for any new file
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC | _O_NOFOLLOW | _O_BINARY, 0o666)
        except FileExistsError:
            continue
        if fcntl is None:
            return fd, tmp
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # blocks only while a cleaner that got here first removes it
        except OSError:
            return fd, tmp  # no flock on this file system: cleaners go by the age
        try:
            if os.fstat(fd).st_nlink > 0:
                return fd, tmp
        except OSError:
            pass
        os.close(fd)  # removed by a cleaner before we held the lock: take another name
    raise FileExistsError(f"{path}: could not create a temporary file next to it")


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every platform can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY | _O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


#: The errors only a write gives (a full disk, a quota, a file size limit): an OSError of these that names no
#: file is about the file being written (the command line names its output options then).
WRITE_ERRNOS = frozenset(getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EFBIG") if hasattr(errno, name))


def _read_only(path: Path, st: os.stat_result) -> bool:
    """Whether the existing file ``path`` (of status ``st``) is read-only for this user."""
    return not st.st_mode & stat.S_IWUSR or not os.access(path, os.W_OK)


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb", *, encoding: str = "utf-8", newline=None, keep_mode: bool = True,
                 overwrite: bool = True):
    """Write ``path`` atomically: a ``with`` block writes a temporary file that replaces ``path`` at its end.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write.  Its folder must exist.
    mode : {'wb', 'w'}
        Binary, or text in ``encoding`` with ``newline`` (as for ``open``).
    keep_mode : bool
        An existing ``path`` keeps its permission bits (default); otherwise, and for a new file, the file
        gets the mode the umask gives a new file (0o644 for the usual umask 0o022).
    overwrite : bool
        Replace ``path`` even when it is read-only (default).  False refuses a read-only ``path`` with a
        ``PermissionError`` before anything is written: one whose mode gives its owner no write permission
        (checked by the bits, so that root is refused too) or that ``os.access`` says this user cannot write.
        The message names the file and says ``overwrite=True`` replaces it.

    Yields
    ------
    file object
        Writes go to the temporary; do not close it.

    Examples
    --------
    >>> with atomic_write("/tmp/report.json", "w") as fh:  # doctest: +SKIP
    ...     fh.write("{}\\n")
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode: expected 'wb' or 'w', got {mode!r}")
    path = Path(path)
    try:
        st = os.stat(path)
    except OSError:
        st = None
    if not overwrite and st is not None and stat.S_ISREG(st.st_mode) and _read_only(path, st):
        raise PermissionError(f"{path}: the file is read-only (mode {stat.S_IMODE(st.st_mode):#o}), so it was left "
                              "as it is; make it writable or pass overwrite=True to replace it")
    remove_stale_temporaries(path)
    keep = None
    if keep_mode and st is not None and stat.S_ISREG(st.st_mode):
        keep = stat.S_IMODE(st.st_mode) & 0o777
    fd, tmp = _create_temporary(path)
    try:
        if mode == "wb":
            fh = os.fdopen(fd, "wb")
        else:
            fh = os.fdopen(fd, "w", encoding=encoding, newline=newline)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    try:
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
            if keep is not None:
                if hasattr(os, "fchmod"):
                    os.fchmod(fh.fileno(), keep)
                else:
                    os.chmod(tmp, keep)
            if fcntl is None:
                fh.close()  # Windows cannot rename an open file; it has no lock to keep either
            os.replace(tmp, path)  # the lock (held by fh) is released only after the rename
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None and (exc.errno in WRITE_ERRNOS or exc.errno == errno.EIO):
            exc.filename = str(path)  # a write through fh (or a failing device under it) names no file: say which
        raise
    _fsync_folder(path.parent)


def atomic_savefig(fig, path, **savefig_kwargs) -> Path:
    """``fig.savefig`` of a matplotlib figure through :func:`atomic_write`; return ``path`` as a Path.

    The format is ``path``'s suffix (PNG when it has none); ``savefig_kwargs`` (``dpi=...``) go to ``savefig``.
    The figure is left open.
    """
    path = Path(path)
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format=path.suffix.lstrip(".").lower() or "png", **savefig_kwargs)
    return path
