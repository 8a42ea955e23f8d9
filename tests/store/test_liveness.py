"""Tests of aioflow.store.liveness: a run reads running exactly while its process holds its lock.

The runs are opened by real processes that the tests kill, and the killed process's pid is then
given to a live process (written into the row), as happens when the system reuses a pid: the
run must still read as abandoned. Windows' locking (msvcrt) is taken on any platform through a
stand-in with the same per-open semantics, with `sys.platform` reading "win32".
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from aioflow.exceptions import StoreError
from aioflow.store.liveness import RunLock, lock_is_held, lock_path
from aioflow.store.metadata import MetadataDB

pytestmark = pytest.mark.timeout(60)

#: POSIX's locking where there is POSIX, Windows' (or its stand-in) everywhere.
PLATFORMS = [
    pytest.param("posix", marks=pytest.mark.skipif(sys.platform == "win32", reason="POSIX")),
    "win32",
]

#: Windows' msvcrt.locking, as aioflow uses it, on POSIX: a lock of the file's first byte that
#: conflicts with any other open of the file (flock's), refused with EACCES as on Windows.
FAKE_MSVCRT = """
import errno, fcntl, os

LK_UNLCK, LK_LOCK, LK_NBLCK = 0, 1, 2

def locking(fd, mode, nbytes):
    if nbytes != 1 or os.lseek(fd, 0, os.SEEK_CUR) != 0:
        raise AssertionError("aioflow locks the first byte of the file")
    if mode == LK_UNLCK:
        fcntl.flock(fd, fcntl.LOCK_UN)
    elif mode == LK_NBLCK:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OSError(errno.EACCES, "Permission denied") from None
    else:
        raise AssertionError(f"aioflow never waits for a lock (mode {mode})")
"""

#: Opens a run in its own process and keeps it open until the test kills the process. With
#: a folder argument it runs as on Windows, with msvcrt's stand-in from that folder.
OPEN_A_RUN = """
import sys
import urllib.request  # (Path.as_uri imports it from 3.14 on, and on "win32" it wants _winapi)
from aioflow.store.metadata import MetadataDB

if len(sys.argv) > 2:
    sys.path.insert(0, sys.argv[2])
    sys.platform = "win32"  # after the imports: only aioflow's run lock takes Windows' way
db = MetadataDB(sys.argv[1])
run_id = db.create_run("F", user="u", tags=(), system_tags=(), graph=b"", origin_run_id=None)
print(run_id, flush=True)
sys.stdin.read()
"""


@contextmanager
def locking_of(platform: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process locks as aioflow does on `platform`: with msvcrt's stand-in for "win32"."""
    if platform != "win32" or sys.platform == "win32":
        yield
        return
    fake = types.ModuleType("msvcrt")
    exec(FAKE_MSVCRT, fake.__dict__)
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "msvcrt", fake)
        patch.setattr(sys, "platform", "win32")
        yield


@contextmanager
def open_run_elsewhere(path: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """A process holding a run open in the store of `path`: (the process, the run id)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", OPEN_A_RUN, str(path), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip().isdigit(), f"the process opened no run: {line!r}"
        yield proc, int(line)
    finally:
        proc.kill()
        proc.communicate()


def give_pid(path: Path, run_id: int, pid: int) -> None:
    """Write `pid` into the run's row, as if the system had reused the dead process's pid."""
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE runs SET pid = ? WHERE run_id = ?", (pid, run_id))
    conn.close()


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_killed_run_reads_abandoned_though_its_pid_names_a_live_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, platform: str
) -> None:
    path = tmp_path / "store" / "metadata.db"
    fake_windows = tmp_path / "fake-windows"
    fake_windows.mkdir()
    (fake_windows / "msvcrt.py").write_text(FAKE_MSVCRT)
    args = [str(fake_windows)] if platform == "win32" and sys.platform != "win32" else []
    reader = MetadataDB(path)
    with open_run_elsewhere(path, *args) as (proc, run_id):
        with locking_of(platform, monkeypatch):
            row = reader.run("F", run_id)
            assert row is not None and row.pid == proc.pid and row.run_lock == 1
            assert not reader.process_gone(row)  # alive: it holds the lock
            assert lock_path(path.parent, run_id).exists()
        proc.kill()
        proc.wait()
    give_pid(path, run_id, os.getpid())  # the dead run's pid, now a live process's
    with locking_of(platform, monkeypatch):
        row = reader.run("F", run_id)
        assert row is not None and row.status == "running" and row.pid == os.getpid()
        assert reader.process_gone(row)
        assert not lock_path(path.parent, run_id).exists()  # the probe removed what it left
        assert reader.process_gone(row)  # and the next probe says the same
    reader.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_outliving_its_killed_parent_does_not_keep_the_run(
    tmp_path: Path,
) -> None:
    # A forked child shares its parent's open files, the run's lock file among them.
    # The child says it is there once `os.fork` has returned in it, its fork hooks run.
    opens_and_forks = OPEN_A_RUN.replace(
        "print(run_id, flush=True)",
        "import os\nif os.fork() == 0:\n    print(run_id, os.getpid(), flush=True)\n"
        "    sys.stdin.read()\n    os._exit(0)",
    )
    path = tmp_path / "store" / "metadata.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", opens_and_forks, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    run_id, child = map(int, proc.stdout.readline().split())
    reader = MetadataDB(path)
    try:
        assert not reader.process_gone(reader.run("F", run_id))
        proc.kill()
        proc.wait()
        os.kill(child, 0)  # the child lives on (blocked reading the pipe this test holds)
        assert reader.process_gone(reader.run("F", run_id))
    finally:
        with suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
        proc.communicate()
        reader.close()


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_second_open_in_the_same_process_conflicts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, platform: str
) -> None:
    # One process runs many runs, and reads them too: its own reads must see its runs held.
    path = tmp_path / "7.lock"
    with locking_of(platform, monkeypatch):
        lock = RunLock.acquire(path)
        assert lock is not None
        assert lock_is_held(path)
        with pytest.raises(StoreError, match=r"7\.lock is locked by another process"):
            RunLock.acquire(path)
        assert lock_is_held(path) and path.exists()  # the failed attempt changed nothing
        lock.release()
        assert not path.exists() and not lock_is_held(path)
        lock.release()  # again: nothing more to do


@pytest.mark.skipif(sys.platform == "win32", reason="Windows has no shared locks")
def test_readers_probing_at_once_both_see_an_abandoned_run(tmp_path: Path) -> None:
    # Readers probe with a shared lock: one reader's probe is not taken for the run's lock.
    import fcntl

    path = tmp_path / "3.lock"
    path.touch()  # what a killed run leaves
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # another reader, mid-probe
        assert not lock_is_held(path)
    finally:
        os.close(fd)


def test_a_lock_file_that_cannot_be_created_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="Cannot create the run lock file"):
        RunLock.acquire(tmp_path / "no-such-folder" / "1.lock")
