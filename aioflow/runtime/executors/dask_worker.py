"""The worker side of the Dask executor: one task attempt, run in a Dask worker's thread.

A Dask worker gets the same `WorkerSetup` and `TaskRequest` a worker process of the process
executor gets, and runs the task with the same code (`process_worker.execute`): it reads its
inputs from the blob store, writes its large outputs there, and returns the new name -> key map,
the small blobs and what the task printed. Values never travel through the scheduling process.

Differences from a worker process, and why:

- A Dask worker runs several tasks at once, in threads, and may serve several runs: each run is
  loaded once per worker (by its token) and kept among the few latest; file descriptors 1 and
  2 are not captured (they are the worker's, shared by its threads).
- Lines a task prints are sent as they are printed, as Dask events on the run's topic, so the
  console shows them while the step runs; the reply still carries them all, so none is lost
  when an event arrives after the task's end.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections import OrderedDict
from typing import Any

import cloudpickle

from ... import _version
from .. import logs
from ..process_worker import TaskReply, TaskRequest, WorkerRun, WorkerSetup, execute, load_run

#: How many runs a worker keeps loaded (a worker serving many runs drops the oldest).
KEPT_RUNS = 8

#: The "stream" of the event a task sends as its body starts, with its worker's address.
STARTED = "started"

#: A body still running after this many seconds is announced as started on its worker.
ANNOUNCE_AFTER = 0.05


class _Announcer:
    """Says which bodies started where, once they have run `ANNOUNCE_AFTER` seconds.

    The scheduling process fails an attempt whose worker dies only when its body was said to
    have started there: a task merely queued on that worker is given to another one by Dask
    and must not fail. Announcing every task costs a message through the scheduler each (10%
    of a trivial task's round trip); announcing the ones that run a while costs next to
    nothing, and a worker dying within 50 ms of starting a silent body only has Dask run it
    again.
    A body that prints is announced before its first line. One daemon thread per worker
    process, asleep while nothing is due.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: dict[str, tuple[float, Any, str]] = {}
        self._thread: threading.Thread | None = None

    def add(self, key: str, worker: Any, topic: str) -> None:
        """Announce attempt `key` on `topic` unless it ends within ANNOUNCE_AFTER seconds."""
        with self._cond:
            self._due[key] = (time.monotonic() + ANNOUNCE_AFTER, worker, topic)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="aioflow-dask-announcer", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def remove(self, key: str) -> None:
        """The attempt ended: nothing to announce any more."""
        with self._cond:
            self._due.pop(key, None)

    def now(self, key: str) -> None:
        """Announce attempt `key` at once, if it is still due (it printed its first line)."""
        with self._cond:
            due = self._due.pop(key, None)
        if due is not None:
            _, worker, topic = due
            worker.log_event(topic, [key, STARTED, 0, time.time(), worker.address])

    def _run(self) -> None:
        with self._cond:
            while True:
                if not self._due:
                    self._cond.wait()
                    continue
                now = time.monotonic()
                for key, (due, worker, topic) in list(self._due.items()):
                    if due <= now:
                        del self._due[key]
                        # (thread-safe: from another thread it is handed to the worker's loop)
                        worker.log_event(topic, [key, STARTED, 0, time.time(), worker.address])
                if self._due:
                    self._cond.wait(min(due for due, _, _ in self._due.values()) - now)


_announcer = _Announcer()
_lock = threading.Lock()
_runs: OrderedDict[str, WorkerRun] = OrderedDict()


class _Attempt(threading.local):
    """The attempt the calling thread runs: where its printed lines go, and how many went."""

    topic: str | None = None
    key: str = ""
    counts: dict[str, int]

    def __init__(self) -> None:
        self.counts = {"stdout": 0, "stderr": 0}


_attempt = _Attempt()


def lines_topic(token: str) -> str:
    """The Dask event topic carrying the printed lines of the run with this token."""
    return f"aioflow-lines-{token}"


def _send_line(pathspec: str, stream: str, line: str) -> None:
    """A run's line sink in a worker: each line goes to the run's topic as it is printed."""
    topic = _attempt.topic
    if topic is None:
        return
    index = _attempt.counts[stream]
    _attempt.counts[stream] = index + 1
    if index == 0 and not _attempt.counts["stdout" if stream == "stderr" else "stderr"]:
        _announcer.now(_attempt.key)  # a body that printed has started: said before the line
    worker = _current_worker()
    if worker is not None:
        # (attempt key, stream, index within the stream, time, line): msgpack-able values only.
        worker.log_event(topic, [_attempt.key, stream, index, time.time(), line])


def _current_worker() -> Any:
    from distributed import get_worker

    try:
        return get_worker()
    except ValueError:  # not in a worker's task (cannot happen while a task runs)
        return None


def _run_for(setup: WorkerSetup, token: str) -> WorkerRun:
    with _lock:
        found = _runs.get(token)
        if found is not None:
            _runs.move_to_end(token)
            return found
        loaded = load_run(setup, _send_line)
        _runs[token] = loaded
        while len(_runs) > KEPT_RUNS:
            _runs.popitem(last=False)
        return loaded


def run_on_worker(setup: WorkerSetup, token: str, key: str, request: TaskRequest) -> TaskReply:
    """Run one task attempt of the run `token` in this Dask worker (the Dask task's function).

    `setup` arrives once per worker, as the run's scattered data; `key` names the attempt in
    the lines it streams.
    """
    run = _run_for(setup, token)
    _attempt.topic, _attempt.key = lines_topic(token), key
    _attempt.counts = {"stdout": 0, "stderr": 0}
    worker = _current_worker()
    if worker is not None:
        _announcer.add(key, worker, _attempt.topic)
    # print() goes to the task's log while it runs. Counted, and undone after the task: a
    # worker in the scheduling process (LocalCluster(processes=False)) leaves its streams as
    # the run found them.
    logs.install()
    try:
        return execute(run, request, capture_fds=False)
    finally:
        _announcer.remove(key)
        _attempt.topic = None
        sys.stdout.flush()
        logs.uninstall()


def forget(token: str) -> bool:
    """Drop the run `token` from this worker and close its store (called on every worker as
    the run ends, while the scheduling process still has the store open: a worker's
    connection is then never the database's last, whose close would checkpoint the run's
    write-ahead log from here). True when the run was loaded here."""
    with _lock:
        run = _runs.pop(token, None)
    if run is None:
        return False
    run.reader.store.close()
    return True


def hold(setup: WorkerSetup) -> WorkerSetup:
    """The run's setup, as the result of a Dask task (which Dask can compute again)."""
    return setup


def versions() -> dict[str, str]:
    """What must match between the scheduling process and its workers, as found here."""
    return {
        "python": ".".join(map(str, sys.version_info[:2])),
        "aioflow": _version.__version__,
        "cloudpickle": cloudpickle.__version__,
    }


def describe(dask_worker: Any = None) -> dict[str, Any]:
    """This worker as the scheduling process checks it: versions, host name, resources.

    Called by `Client.run`, which passes the worker as `dask_worker`.
    """
    resources = {} if dask_worker is None else dict(dask_worker.state.total_resources)
    return {"versions": versions(), "host": socket.gethostname(), "resources": resources}


__all__ = [
    "ANNOUNCE_AFTER",
    "KEPT_RUNS",
    "STARTED",
    "describe",
    "forget",
    "hold",
    "lines_topic",
    "run_on_worker",
    "versions",
]
