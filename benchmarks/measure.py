"""Measuring one run of one workload: a fresh child process, timed from spawn to exit.

Wall time is the whole process: interpreter start, imports, the run, and exit, the same for
every tool. Peak memory is the larger of two figures: the child's `ru_maxrss` from `os.wait4`
(the largest single process, its reaped descendants included) and the largest sum of resident
memory over the child's whole session sampled every 50 ms (tools that run tasks as processes,
or a server beside the flow, use several processes at once). Store size is how much the tool's
home folder grew on disk during the run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
SAMPLE_EVERY = 0.05


@dataclass
class Measurement:
    """One run: how long it took, how much memory and disk it used, and whether it worked."""

    wall_s: float
    peak_mb: float
    store_mb: float
    ok: bool
    error: str = ""
    notes: list[str] = field(default_factory=list)


def _session_rss(session: int) -> int:
    """Resident bytes of every process in a session (Linux /proc; 0 elsewhere)."""
    total = 0
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
            # Fields after the command name (which may hold spaces) start after the last ')'.
            fields = stat[stat.rindex(b")") + 2 :].split()
            if int(fields[3]) != session:  # field 6 of stat: the session id
                continue
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * _PAGE
        except (OSError, ValueError, IndexError):
            continue  # the process ended while we looked
    return total


class _Sampler(threading.Thread):
    """Samples a session's total resident memory until stopped; keeps the peak."""

    def __init__(self, session: int) -> None:
        super().__init__(daemon=True)
        self.session = session
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(SAMPLE_EVERY):
            self.peak = max(self.peak, _session_rss(self.session))


def disk_usage(root: Path) -> int:
    """Bytes of the files under `root` (allocated blocks, so sparse files count as stored)."""
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(folder, name))
                total += st.st_blocks * 512 if hasattr(st, "st_blocks") else st.st_size
    return total


def _tail(path: Path, lines: int = 12) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def run_child(
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    home: Path,
    log: Path,
    timeout: float,
) -> Measurement:
    """Run `argv` to completion as a new session and measure it (see the module docstring)."""
    notes = Path(env["BENCH_NOTES"]) if "BENCH_NOTES" in env else None
    if notes is not None:
        notes.unlink(missing_ok=True)
    before = disk_usage(home)
    with open(log, "wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        sampler = _Sampler(proc.pid)
        sampler.start()
        timer = threading.Timer(timeout, _kill_session, (proc.pid,))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            wall = time.perf_counter() - started
            timer.cancel()
            sampler.done.set()
        proc.returncode = os.waitstatus_to_exitcode(status)
    _kill_session(proc.pid)  # whatever the child left behind (a server, a worker)
    sampler.join()
    peak = max(usage.ru_maxrss * 1024, sampler.peak)  # ru_maxrss is in KiB on Linux
    grown = max(0, disk_usage(home) - before)
    ok = proc.returncode == 0
    error = ""
    if not ok:
        error = "timed out" if wall >= timeout else f"exit status {proc.returncode}"
        error += f"; log {log}:\n{_tail(log)}"
    found = []
    if notes is not None and notes.exists():
        found = list(dict.fromkeys(notes.read_text().splitlines()))
    return Measurement(wall, peak / 2**20, grown / 2**20, ok, error, found)


def _kill_session(session: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(session, signal.SIGKILL)
