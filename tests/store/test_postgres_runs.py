"""Flows run with their metadata in PostgreSQL (a real server): the client reads them as it
reads SQLite's, with the same answers and the same errors, and several schedulers in separate
processes writing one database at once lose nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aioflow import FlowSpec, step
from aioflow.api import run_flow
from aioflow.client import Flow, Run
from aioflow.exceptions import MetaflowNotFound, TaggingError
from aioflow.loader import load_flow
from aioflow.store import FileBlobStore, Store
from aioflow.store.postgres import open_postgres_metadata

FOREACH = """
    from aioflow import FlowSpec, step

    class WideFlow(FlowSpec):
        @step
        def start(self):
            self.items = list(range(40))
            self.next(self.work, foreach="items")

        @step
        def work(self):
            self.x = self.input * 2
            self.next(self.join)

        @step
        def join(self, inputs):
            self.total = sum(i.x for i in inputs)
            self.next(self.end)

        @step
        def end(self):
            pass
"""


class SmallFlow(FlowSpec):
    @step
    def start(self):
        self.x = 41
        self.big = b"b" * 300_000  # larger than a small blob: goes to the blob store
        self.next(self.end)

    @step
    def end(self):
        self.x += 1


@pytest.fixture
def stores(postgres_url: str, tmp_path: Path) -> Iterator[dict[str, Store]]:
    """The same kind of store twice: SQLite and files, PostgreSQL and files."""
    made = {
        "sqlite": Store(tmp_path / "sqlite"),
        "postgres": Store(
            metadata=open_postgres_metadata(postgres_url), blobs=FileBlobStore(tmp_path / "b")
        ),
    }
    yield made
    for store in made.values():
        store.close()


def both(stores: dict[str, Store], read: Callable[[Store], Any]) -> tuple[Any, Any]:
    """What `read` gives (or raises, as (type, message)) on SQLite, then on PostgreSQL."""
    answers = []
    for store in (stores["sqlite"], stores["postgres"]):
        try:
            answers.append(read(store))
        except Exception as exc:
            answers.append((type(exc), str(exc)))
    return answers[0], answers[1]


async def test_the_client_reads_postgres_as_it_reads_sqlite(stores: dict[str, Store]) -> None:
    for store in stores.values():
        await run_flow(SmallFlow, root=store, quiet=True, tags=["blue"])

    def summary(store: Store) -> Any:
        flow = Flow("SmallFlow", _store=store)
        run = flow.latest_run
        end = run["end"].task
        assert run is not None
        return (
            run.id, run.successful, run.finished, sorted(run.user_tags), [s.id for s in run],
            end.data.x, len(end["big"].data), end.pathspec.split("/", 1)[1],
        )  # fmt: skip

    sqlite, postgres = both(stores, summary)
    assert sqlite == postgres == ("1", True, True, ["blue"], ["end", "start"], 42, 300_000,
                                  "1/end/2")  # fmt: skip

    # the same errors, in the same words
    for read in (
        lambda s: Run("SmallFlow/9", _store=s),
        lambda s: Run("Missing/1", _store=s),
        lambda s: Run("SmallFlow/1", _store=s)["nostep"],
        lambda s: Run("SmallFlow/1", _store=s).add_tag("x" * 600),  # too long
    ):
        sqlite, postgres = both(stores, read)
        assert sqlite == postgres and isinstance(sqlite, tuple)
    assert both(stores, lambda s: Run("SmallFlow/9", _store=s))[1][0] is MetaflowNotFound

    def retag(store: Store) -> Any:
        run = Run("SmallFlow/1", _store=store)
        run.replace_tag("blue", "green")
        run.add_tags(["a", "b"])
        with pytest.raises(TaggingError):
            run.remove_tag(next(t for t in run.system_tags if t.startswith("user:")))
        return sorted(Run("SmallFlow/1", _store=store).user_tags)

    assert both(stores, retag) == (["a", "b", "green"], ["a", "b", "green"])


def test_schedulers_in_separate_processes_lose_nothing(
    postgres_url: str, tmp_path: Path, write_flow: Callable[[str], Path]
) -> None:
    flow_file = write_flow(textwrap.dedent(FOREACH), "wide_flow.py")
    blobs = tmp_path / "blobs"
    script = textwrap.dedent(f"""
        from aioflow.api import run_flow_sync
        from aioflow.loader import load_flow
        from aioflow.store import FileBlobStore, Store
        from aioflow.store.postgres import open_postgres_metadata

        flow = load_flow({str(flow_file)!r})
        for _ in range(2):
            store = Store(metadata=open_postgres_metadata({postgres_url!r}),
                          blobs=FileBlobStore({str(blobs)!r}))
            print(run_flow_sync(flow, root=store, quiet=True).id, flush=True)
    """)
    schedulers = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    printed: list[str] = []
    for child in schedulers:
        out, _ = child.communicate(timeout=300)
        assert child.returncode == 0
        printed += out.split()

    store = Store(metadata=open_postgres_metadata(postgres_url), blobs=FileBlobStore(blobs))
    try:
        runs = list(Flow("WideFlow", _store=store))
        assert sorted(r.id for r in runs) == sorted(printed) and len(set(printed)) == 6
        for run in runs:
            assert run.successful, run
            assert len(list(run["work"])) == 40
            assert run["join"].task.data.total == 2 * sum(range(40))
        assert load_flow(flow_file).__name__ == "WideFlow"
    finally:
        store.close()
