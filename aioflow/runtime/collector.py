"""Full garbage collections kept off the event loop while runs are active.

CPython's collector walks every object the process holds in a full (generation 2) collection,
with the GIL held: on a loop running 1,000 runs at once (about 200,000 live objects) each one
stopped the loop for 100-500 ms, nine times per batch of runs, and in a service or a notebook
the host's own objects are walked too. Almost everything a run allocates dies by reference
counting; the few cycles it makes die young, in the cheap collections of generations 0 and 1.

So while any run of the process is active, objects that survived so far are moved out of the
collector's generations (`gc.freeze()`) every `FREEZE_EVERY` finished tasks, and full
collections find next to nothing to walk. When the last run ends they are put back
(`gc.unfreeze()`), and the collector goes on as before, cycles left by the runs included. A
process that is never idle is put back every `UNFREEZE_EVERY` freezes, so the cycles that did
survive are collected then: one full collection per about 64,000 tasks instead of one per few
thousand. Nothing is done when the host froze objects itself (`gc.get_freeze_count()`), which
this could not tell apart from its own, or turned the collector off.

Python 3.12.1 starts with objects frozen already (375 of its own tuples): those found frozen
when the guard is made, at import, are not taken for the host's, and are thawed with the rest
at the end of the first busy period. (A host that freezes objects does so after its imports.)
"""

from __future__ import annotations

import gc
import threading

#: Finished tasks between two freezes (about one generation-1 collection's worth of objects).
FREEZE_EVERY = 1024
#: Freezes between two thaws in a process that always has a run active.
UNFREEZE_EVERY = 64


class CollectorGuard:
    """Counts the process's active runs and freezes the collector's survivors while any is."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._managing = False
        self._tasks = 0
        self._freezes = 0
        #: objects frozen when the guard was made (the interpreter's own, on Python 3.12.1),
        #: until the guard first thaws them
        self._frozen_at_start = gc.get_freeze_count()

    def run_started(self) -> None:
        """A run begins (any thread): the first one freezes what the process holds now."""
        with self._lock:
            self._active += 1
            if self._active > 1:
                return
            # Counting the frozen objects walks them: done once per busy period, when the
            # host froze none it is free. Of those found frozen at start some may have died
            # since (a frozen object still dies with its last reference): fewer are not the
            # host's either; more are.
            frozen = gc.get_freeze_count()
            self._managing = gc.isenabled() and frozen <= self._frozen_at_start
            self._tasks = self._freezes = 0
            if self._managing:
                gc.freeze()

    def task_finished(self) -> None:
        """A task ended (on its run's loop): every FREEZE_EVERY, freeze the survivors."""
        if not self._managing:
            return
        self._tasks += 1  # a lost update between loops only delays a freeze
        if self._tasks % FREEZE_EVERY:
            return
        with self._lock:
            if not self._managing:
                return
            self._freezes += 1
            if self._freezes % UNFREEZE_EVERY:
                gc.freeze()
            else:
                self._unfreeze()  # let the cycles that survived be collected, now and then

    def run_ended(self) -> None:
        """A run ended (any thread): the last one gives the collector everything back."""
        with self._lock:
            self._active -= 1
            if self._active == 0 and self._managing:
                self._managing = False
                self._unfreeze()

    def _unfreeze(self) -> None:
        gc.unfreeze()
        self._frozen_at_start = 0  # thawed with the rest: objects frozen from now are the host's


_guard = CollectorGuard()


def collector_guard() -> CollectorGuard:
    """The process's guard (the collector is one per process)."""
    return _guard


__all__ = ["FREEZE_EVERY", "UNFREEZE_EVERY", "CollectorGuard", "collector_guard"]
