"""Whether a run is still being run: an OS lock its process holds on the run's lock file.

While a run is open, its process holds an exclusive lock on `running/<run_id>.lock` in the
store folder. The lock is taken before the run's row is committed and let go after its end is
committed, and the operating system drops it when the process dies, however it dies. So "the
lock is held" is exactly "a process is running the run", which a pid cannot tell: once a
process is gone, the system hands its pid to the next process that starts.

POSIX uses flock: its lock belongs to one open file, so a second open conflicts even within the
same process (lockf's locks belong to the process, and any close in it drops them). Windows uses
msvcrt.locking on the file's first byte, which also conflicts between two opens. Readers probe
with a shared lock where the system has one, so that two readers never take each other for the
run. A reader that finds the lock free removes the file its dead run left behind.

Each open run keeps one file descriptor: a process running a hundred runs at once holds a
hundred lock files, each removed when its run closes.

Runs stored by an aioflow without run locks go by their pid and host (`pid_gone`, `this_host`).

A process that dies of a fatal error (a segfault in a C extension) cannot record it in the
database. While it holds run locks, `faulthandler` writes such an error's traceback to a file of
the store, named after each open run (`faults/<run_id>.log`, hard links to one file, since the
handler has one file per process); a reader of a dead run finds it there (`fault_report`). The
file is removed when its run closes, so only dead runs leave one.
"""

from __future__ import annotations

import errno
import faulthandler
import os
import platform
import sys
import threading
from contextlib import suppress
from pathlib import Path
from typing import IO

from ..exceptions import StoreError

#: The folder of the store holding the lock files of open runs.
LOCK_FOLDER = "running"

#: The folder of the store holding the fatal-error reports of open (and dead) runs.
FAULT_FOLDER = "faults"

#: Errors of a file system that does not support locks (some network file systems).
_NO_LOCKS = frozenset(
    {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)}
)


def lock_path(root: Path, run_id: int) -> Path:
    """The lock file of run `run_id` in the store folder `root`."""
    return root / LOCK_FOLDER / f"{run_id}.lock"


def fault_path(root: Path, run_id: int) -> Path:
    """Where a fatal error of the process running run `run_id` is written (`faulthandler`)."""
    return root / FAULT_FOLDER / f"{run_id}.log"


def _report_of(lock: Path) -> Path | None:
    """The fault report of the run whose lock file is `lock` (None for another lock file)."""
    if lock.parent.name != LOCK_FOLDER or not lock.stem.isdigit():
        return None
    return fault_path(lock.parent.parent, int(lock.stem))


def _try_lock(fd: int, *, exclusive: bool) -> bool:
    """Lock the file open as `fd` without waiting; False when another open file holds it."""
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)  # msvcrt locks bytes from the current position
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # no shared locks on Windows
        except OSError as exc:
            if exc.errno == errno.EACCES:  # what a byte locked by another open reports
                return False
            raise
        return True
    import fcntl

    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(fd: int) -> None:
    if sys.platform == "win32":
        import msvcrt

        # Windows may take its time to drop the lock of a closed file: unlock it first.
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_UN)


class RunLock:
    """The lock this process holds on one open run's lock file; `release()` when it is over."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def acquire(cls, path: Path) -> RunLock | None:
        """Create and lock `path` (in an existing folder); None if the file system cannot lock.

        Raises StoreError when another open file holds the lock already.
        """
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"Cannot create the run lock file {path}: {exc}") from exc
        try:
            locked = _try_lock(fd, exclusive=True)
        except OSError as exc:
            os.close(fd)
            with suppress(OSError):
                os.unlink(path)
            if exc.errno in _NO_LOCKS:
                return None
            raise StoreError(f"Cannot lock the run lock file {path}: {exc}") from exc
        if not locked:
            os.close(fd)
            raise StoreError(
                f"The run lock file {path} is locked by another process. Was the store's "
                "metadata.db removed while a run was in progress?"
            )
        lock = cls(path, fd)
        with _held_guard:
            _held.add(lock)
            _faults.attach(_report_of(path))
        return lock

    def release(self) -> None:
        """Let go of the lock and remove the file (idempotent)."""
        with _held_guard:
            if self not in _held:
                return
            _held.discard(self)
            _faults.detach(_report_of(self.path))
        with suppress(OSError):
            _unlock(self._fd)
        os.close(self._fd)
        # On Windows a file open elsewhere (a reader probing it) cannot be removed; the next
        # reader that finds it free removes it.
        with suppress(OSError):
            os.unlink(self.path)


def lock_is_held(path: Path) -> bool:
    """True when some process holds the lock of `path`; a free lock file found is removed.

    Raises OSError when the file cannot be probed (a file system without locks).
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        if not _try_lock(fd, exclusive=False):
            return True
        _unlock(fd)
    finally:
        os.close(fd)
    # Nobody runs the run any more: its process died without cleaning up.
    with suppress(OSError):
        os.unlink(path)
    return False


def this_host() -> str:
    """The name of this machine, as runs record it (on POSIX `os.uname().nodename`, as before)."""
    return platform.node()


def pid_gone(pid: int) -> bool:
    """True when no process has `pid` (for runs stored by an aioflow without run locks).

    A pid is reused once its process is gone, so this may take a dead run for a live one.
    """
    if sys.platform == "win32":
        # os.kill on Windows ends the process (signal 0 is CTRL_C_EVENT). aioflow never ran on
        # Windows without run locks, so a row of this host needing the pid is not from it.
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


class _FaultLog:
    """`faulthandler` pointed at a file of the store while this process holds run locks.

    The handler writes to one file per process, so every open run's name for it is a hard link
    to that one file. A store on another file system than the first run's gets no report (a
    hard link cannot cross file systems). The host's own handler (`pytest` enables one) gets
    `sys.__stderr__` back when the last run closes.
    """

    def __init__(self) -> None:
        self._file: IO[str] | None = None
        self._names: set[Path] = set()
        self._host_enabled = False

    def attach(self, name: Path | None) -> None:
        """Give the open run whose report is `name` a name for the process's file."""
        if name is None:
            return
        with suppress(OSError):  # a store that cannot keep reports still runs
            name.parent.mkdir(exist_ok=True)
            with suppress(FileNotFoundError):
                os.unlink(name)  # left by a dead run whose id the database handed out again
            if self._file is None:
                self._file = open(name, "w", encoding="utf-8")  # noqa: SIM115 (held open)
                self._host_enabled = faulthandler.is_enabled()
                faulthandler.enable(file=self._file, all_threads=True)
            else:
                os.link(next(iter(self._names)), name)
            self._names.add(name)

    def detach(self, name: Path | None) -> None:
        """The run whose report is `name` closed: remove its name; the last one disables."""
        if name is None or name not in self._names:
            return
        self._names.discard(name)
        with suppress(OSError):
            os.unlink(name)
        if not self._names and self._file is not None:
            faulthandler.disable()
            self._file.close()
            self._file = None
            if self._host_enabled and sys.__stderr__ is not None:
                faulthandler.enable(file=sys.__stderr__, all_threads=True)

    def forget_in_child(self) -> None:
        """In a forked child: stop reporting into the parent's runs' file."""
        if self._file is not None:
            faulthandler.disable()
        self._file = None
        self._names = set()


_faults = _FaultLog()

#: The signals `faulthandler` names in its report ("Fatal Python error: Segmentation fault").
_FATAL_SIGNALS = {
    "Segmentation fault": "SIGSEGV",
    "Floating point exception": "SIGFPE",
    "Aborted": "SIGABRT",
    "Bus error": "SIGBUS",
    "Illegal instruction": "SIGILL",
}


def fault_report(root: Path, run_id: int) -> str | None:
    """What `faulthandler` wrote when the process running a run died (None: nothing written).

    Only meaningful for a run whose process is gone: an open run's file is empty.
    """
    try:
        text = fault_path(root, run_id).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return text or None


def fatal_signal(report: str) -> str | None:
    """The signal a fault report names, as `SIGSEGV (Segmentation fault)`, else None."""
    for line in report.splitlines():
        if line.startswith("Fatal Python error: "):
            what = line.removeprefix("Fatal Python error: ").strip()
            name = _FATAL_SIGNALS.get(what)
            return f"{name} ({what})" if name else what
    return None


#: Every lock this process holds, so that a forked child can let go of its copies.
_held: set[RunLock] = set()
_held_guard = threading.Lock()


def _forget_locks_in_child() -> None:
    # A forked child shares its parent's open files, and an flock stays held while any copy is
    # open: a child outliving its killed parent would keep the parent's runs reading as
    # running. The child closes its copies (the parent's locks stay) and forgets them; the
    # guard may have been held by another thread of the parent at the fork, so it is replaced.
    global _held_guard
    for lock in _held:
        with suppress(OSError):
            os.close(lock._fd)
    _held.clear()
    _held_guard = threading.Lock()
    _faults.forget_in_child()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_forget_locks_in_child)
