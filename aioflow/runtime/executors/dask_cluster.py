"""The Dask executor's side of a cluster: connecting, checking it can run the flow, watching it.

A run reaches a cluster one of three ways, the first given wins: a `distributed.Client` the
caller already has (`run_flow(dask_client=...)`, left open at the run's end), a scheduler's
address (`--dask-address`, `run_flow(dask_address=...)`, then `$AIOFLOW_DASK_ADDRESS`), or else
a `LocalCluster` started for the run and closed after it, as the process pool is.

Before any task is sent, `Cluster.check` turns what would otherwise go wrong late, or never end,
into one clear error: workers whose Python, aioflow or cloudpickle differ from this process's
(a flow pickled by value would not load, or load wrong), a local store the workers cannot reach,
and `@resources` no worker offers (such a task would wait forever).

While tasks run, `Cluster` watches the scheduler's events: a worker leaving with tasks of the
run still running (killed, out of memory) fails exactly those attempts, naming the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from ...exceptions import ClusterError, ParameterError
from . import dask_worker

#: Where the address of a Dask scheduler is read from when no other is given.
ADDRESS_VARIABLE = "AIOFLOW_DASK_ADDRESS"
#: How long a run waits for a first worker to join a scheduler that has none.
WORKER_WAIT = 60.0
#: The Dask worker resources `@resources(cpu=, memory=, gpu=)` ask for (memory in MB).
RESOURCE_NAMES = {"cpu": "CPU", "memory": "MEMORY", "gpu": "GPU"}
_LOOPBACK = ("127.", "::1", "localhost", "inproc:")


def import_distributed() -> ModuleType:
    """The `distributed` package, or a usage error naming the extra that installs it."""
    try:
        import distributed
    except ImportError:
        raise ParameterError(
            "The Dask executor needs the 'distributed' package: install it with "
            "pip install 'aioflow[dask]'."
        ) from None
    return distributed


def quiet_dask_logs(level: int = logging.WARNING) -> None:
    """Show only `distributed`'s warnings and errors (its INFO lines would flood the console
    a run prints to)."""
    for name in ("distributed", "distributed.scheduler", "distributed.worker", "distributed.nanny"):
        logging.getLogger(name).setLevel(max(level, logging.getLogger(name).level))


@dataclass
class Lost:
    """Why an attempt's worker went away, once known."""

    worker: str
    how: str


@dataclass
class Watched:
    """One attempt sent to the cluster, as the watcher follows it."""

    key: str
    #: called with each line the task prints, as (stream, time, line), in order per stream
    on_line: Callable[[str, float, str], None]
    #: lines passed to on_line so far, per stream
    counts: dict[str, int] = field(default_factory=lambda: {"stdout": 0, "stderr": 0})
    #: the worker running the body, once it said it started
    started_on: str | None = None
    #: the only worker the task may run on (a node of a @parallel step), if any
    pinned: str | None = None
    lost: Lost | None = None
    gone: asyncio.Event = field(default_factory=asyncio.Event)


def _memory_mb(distributed: ModuleType) -> int:
    """This machine's memory (or the process's limit, if lower), in MB as @resources count."""
    return int(distributed.system.MEMORY_LIMIT // 2**20)


class Cluster:
    """A run's connection to a Dask cluster, and what it watches there."""

    def __init__(self, client: Any, cluster: Any, owns_client: bool, token: str) -> None:
        self.client = client
        self._cluster = cluster  # a LocalCluster started for the run, else None
        self._owns_client = owns_client
        self.token = token
        self.workers: dict[str, dict[str, Any]] = {}
        self._watched: dict[str, Watched] = {}
        self._memory: dict[str, int] = {}  # worker -> RSS when its nanny restarted it
        self._topics: list[str] = []

    @classmethod
    async def connect(cls, address: str | None, client: Any, slots: int, token: str) -> Cluster:
        """Reach the cluster the run was pointed at (see the module's docstring)."""
        distributed = import_distributed()
        quiet_dask_logs()
        if client is not None:
            if not getattr(client, "asynchronous", False):
                raise ParameterError(
                    "Invalid value for 'dask_client': give a Client(asynchronous=True) made "
                    "on the event loop the flow runs on."
                )
            return cls(client, None, False, token)
        address = address or os.environ.get(ADDRESS_VARIABLE) or None
        if address is not None:
            try:
                made = await asyncio.wait_for(
                    distributed.Client(address, asynchronous=True), WORKER_WAIT
                )
            except (OSError, asyncio.TimeoutError) as exc:
                raise ClusterError(
                    f"Cannot reach the Dask scheduler at {address}: {exc or type(exc).__name__}."
                ) from None
            return cls(made, None, True, token)
        local = await distributed.LocalCluster(
            n_workers=max(1, slots),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            # Even without a dashboard a scheduler serves HTTP (health, metrics), on port 8787
            # unless told: with another Dask on this machine holding it, that is a warning and
            # a server on every interface. A free port on loopback instead.
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            asynchronous=True,
            silence_logs=logging.WARNING,
            # Each worker offers the machine, as @resources reserve it for the thread and
            # process executors: a request this machine cannot meet fails before it waits.
            resources={"CPU": os.cpu_count() or 1, "MEMORY": _memory_mb(distributed)},
        )
        try:
            made = await distributed.Client(local, asynchronous=True)
        except BaseException:
            await local.close()
            raise
        return cls(made, local, True, token)

    async def check(self, store_root: str | None, requests: Mapping[str, dict[str, float]]) -> None:
        """Refuse, with one error, a cluster that cannot run this flow (see the docstring).

        `store_root` is the run's local store folder (None when its blobs are shared);
        `requests` the Dask resources each step on the cluster asks for.
        """
        client = self.client
        try:
            await client.wait_for_workers(1, timeout=WORKER_WAIT)
        except (asyncio.TimeoutError, TimeoutError):
            raise ClusterError(
                f"No Dask worker joined the scheduler at {client.scheduler.address} within "
                f"{WORKER_WAIT:g} s."
            ) from None
        try:
            described = await client.run(dask_worker.describe)
        except (ImportError, AttributeError) as exc:
            raise ClusterError(
                f"The Dask workers cannot load aioflow ({type(exc).__name__}: {exc}): install "
                "the same aioflow on the workers as here."
            ) from None
        self.workers = described
        self._check_versions(described)
        if store_root is not None:
            self._check_store(store_root, described)
        for step, wanted in requests.items():
            self._check_resources(step, wanted, described)

    @staticmethod
    def _check_versions(described: Mapping[str, dict[str, Any]]) -> None:
        here = dask_worker.versions()
        for worker, info in sorted(described.items()):
            differ = [
                f"{name} {here[name]} here, {info['versions'][name]} on the worker"
                for name in here
                if info["versions"].get(name) != here[name]
            ]
            if differ:
                raise ClusterError(
                    f"The Dask worker {worker} does not match this process: "
                    f"{'; '.join(differ)}. Run the workers with the same versions."
                )

    @staticmethod
    def _check_store(store_root: str, described: Mapping[str, dict[str, Any]]) -> None:
        here = socket.gethostname()
        for worker, info in sorted(described.items()):
            host = worker.split("://", 1)[-1]
            if host.startswith(_LOOPBACK) or worker.startswith("inproc:"):
                continue
            if info.get("host") == here:
                continue
            raise ClusterError(
                f"The Dask worker {worker} runs on another host ({info.get('host')}), which "
                f"cannot read this run's local store {store_root}: use a shared blob store "
                "for runs on a cluster."
            )

    @staticmethod
    def _check_resources(
        step: str, wanted: Mapping[str, float], described: Mapping[str, dict[str, Any]]
    ) -> None:
        offered = {worker: info.get("resources", {}) for worker, info in described.items()}
        if any(all(have.get(n, 0) >= v for n, v in wanted.items()) for have in offered.values()):
            return
        asked = ", ".join(f"{name}={value:g}" for name, value in wanted.items())
        found = "; ".join(
            f"{worker}: {', '.join(f'{n}={v:g}' for n, v in have.items()) or 'none'}"
            for worker, have in sorted(offered.items())
        )
        raise ClusterError(
            f"Step *{step}* asks for Dask resources {asked} (@resources), which no worker "
            f"offers ({found}). Start workers with --resources, such as dask worker "
            f"--resources '{asked.replace(', ', ',')}'."
        )

    def watch(self, lines_topic: str) -> None:
        """Follow the run's printed lines and the workers that leave."""
        client = self.client
        client.subscribe_topic(lines_topic, self._on_line)
        client.subscribe_topic("all", self._on_cluster_event)
        client.subscribe_topic("worker-restart-memory", self._on_memory)
        self._topics = [lines_topic, "all", "worker-restart-memory"]

    def follow(self, watched: Watched) -> None:
        """Start following one attempt (before it is submitted)."""
        self._watched[watched.key] = watched

    def unfollow(self, key: str) -> None:
        """Stop following an attempt: lines it printed that arrive later are dropped (its reply
        carries them)."""
        self._watched.pop(key, None)

    def _on_line(self, event: tuple[float, Any]) -> None:
        key, stream, index, ts, line = event[1]
        watched = self._watched.get(key)
        if stream == dask_worker.STARTED:
            if watched is not None:
                watched.started_on = line
            return
        # Events of one worker arrive in order; one out of order (a line dropped on the way) is
        # left to the reply, which carries every line.
        if watched is not None and watched.counts.get(stream) == index:
            watched.counts[stream] = index + 1
            watched.on_line(stream, ts, line)

    def _on_memory(self, event: tuple[float, Any]) -> None:
        msg = event[1]
        if isinstance(msg, dict) and "worker" in msg:
            self._memory[msg["worker"]] = int(msg.get("rss", 0))

    def _on_cluster_event(self, event: tuple[float, Any]) -> None:
        msg = event[1]
        if not isinstance(msg, dict) or msg.get("action") != "remove-worker":
            return
        worker = msg.get("worker", "?")
        for key in msg.get("processing-tasks", ()):
            watched = self._watched.get(key)
            # Only a body that started there died with the worker; Dask gives a task that was
            # only queued there to another worker.
            if watched is not None and watched.lost is None and watched.started_on == worker:
                watched.lost = Lost(worker, self._how(worker, msg))
                watched.gone.set()
        # ... unless the task may run nowhere else: then it would wait for that worker forever.
        for watched in self._watched.values():
            if watched.lost is None and watched.pinned == worker:
                how = self._how(worker, msg)
                if watched.started_on != worker:
                    how += ", before the task (placed there as a node of a @parallel step) started"
                watched.lost = Lost(worker, how)
                watched.gone.set()

    def _how(self, worker: str, msg: Mapping[str, Any]) -> str:
        rss = self._memory.pop(worker, None)
        if rss is not None:
            return (
                f"was restarted by its nanny for using too much memory ({rss / 2**20:.0f} MB, "
                "over 95% of its memory limit)"
            )
        if msg.get("expected"):
            return "was shut down (retired or closed) while running it"
        return (
            "was lost: its process ended (killed, out of memory, crashed) or its connection "
            f"to the scheduler broke ({msg.get('stimulus_id', 'no reason given')})"
        )

    async def aclose(self) -> None:
        """Stop watching; close the client and cluster the run started (not the caller's)."""
        for topic in self._topics:
            with contextlib.suppress(Exception):
                self.client.unsubscribe_topic(topic)
        self._topics = []
        if self._owns_client:
            with contextlib.suppress(Exception):
                await self.client.close()
        if self._cluster is not None:
            await self._cluster.close()


__all__ = [
    "ADDRESS_VARIABLE",
    "RESOURCE_NAMES",
    "WORKER_WAIT",
    "Cluster",
    "Lost",
    "Watched",
    "import_distributed",
    "quiet_dask_logs",
]
