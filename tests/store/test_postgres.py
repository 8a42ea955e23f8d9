"""Tests of aioflow.store.postgres: the metadata store in a real PostgreSQL server (started once
per session by the `postgres_server` fixture, a fresh database per test).

The same promises as the SQLite store: a schema aioflow creates and migrates and refuses to
lay over anything else, unique run ids from the database, batches all or nothing, atomic tag
changes, runs alive while their creator is, and one-line errors naming the URL without its
password.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from typing import Any

import psycopg
import pytest

from aioflow.exceptions import MetadataConnectionError, MetadataError, StoreError
from aioflow.store.postgres import (
    SCHEMA_VERSION,
    PostgresMetadataStore,
    open_postgres_metadata,
    redact,
    schema,
)
from aioflow.store.protocols import CardRecord, TaskRecord
from aioflow.store.serde import pack
from tests.postgres_server import PASSWORD, PostgresServer


@pytest.fixture
def pg(postgres_url: str) -> Any:
    store = open_postgres_metadata(postgres_url)
    yield store
    store.close()


def new_run(db: PostgresMetadataStore, flow: str = "F", **kw: Any) -> int:
    args: dict[str, Any] = {
        "user": "tester",
        "tags": ["t1"],
        "system_tags": ["user:tester"],
        "graph": pack({"steps": {}}),
        "origin_run_id": None,
    }
    args.update(kw)
    return db.create_run(flow, **args)


def task(run_id: int, task_id: int, attempt: int = 0, step: str = "start", **kw: Any) -> TaskRecord:
    fields: dict[str, Any] = dict.fromkeys(TaskRecord._fields)
    fields.update(run_id=run_id, task_id=task_id, attempt=attempt, step=step)
    fields.update(status="succeeded", started_at=1.0 + task_id, finished_at=2.0 + task_id)
    fields.update(kw)
    return TaskRecord(**fields)


def sql(url: str, statement: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement, args or None)
        return cur.fetchall() if cur.description else []


# -- the schema -------------------------------------------------------------------------------


def test_the_schema_is_created_versioned_and_reopened(pg: PostgresMetadataStore, postgres_url):
    tables = sql(
        postgres_url,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'aioflow'",
    )
    assert {t[0] for t in tables} == {"schema_version", "meta", "runs", "tasks", "blobs", "cards"}
    assert sql(postgres_url, "SELECT max(version) FROM aioflow.schema_version") == [
        (SCHEMA_VERSION,)
    ]
    run_id = new_run(pg)
    again = open_postgres_metadata(postgres_url, create=False)
    try:
        assert again.latest_run_id("F") == run_id
    finally:
        again.close()
    assert sql(postgres_url, "SELECT count(*) FROM aioflow.schema_version") == [(SCHEMA_VERSION,)]


def _open_at_once(url: str, count: int) -> list[BaseException]:
    """Open `url` from `count` threads released together; their errors."""
    start = threading.Barrier(count)
    errors: list[BaseException] = []
    opened: list[PostgresMetadataStore] = []

    def open_it() -> None:
        start.wait()
        try:
            opened.append(open_postgres_metadata(url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in opened:
        store.close()
    return errors


def test_openers_racing_on_a_new_database_all_succeed(postgres_server: PostgresServer) -> None:
    # Several rounds, since each round hits a given interleaving only sometimes.
    for _ in range(5):
        url = postgres_server.database()
        assert _open_at_once(url, 6) == []
        assert sql(url, "SELECT max(version) FROM aioflow.schema_version") == [(SCHEMA_VERSION,)]


def test_a_store_of_an_older_schema_is_migrated_once(
    pg: PostgresMetadataStore, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = new_run(pg)
    following = schema.SCHEMA_VERSION + 1
    later = {**schema.MIGRATIONS, following: ("ALTER TABLE aioflow.runs ADD COLUMN note text",)}
    monkeypatch.setattr(schema, "MIGRATIONS", later)
    monkeypatch.setattr(schema, "SCHEMA_VERSION", following)
    for _ in range(2):  # the second open finds it done
        open_postgres_metadata(postgres_url).close()
    assert sql(postgres_url, "SELECT version FROM aioflow.schema_version ORDER BY 1") == [
        (version,) for version in range(1, following + 1)
    ]
    assert sql(postgres_url, "SELECT note FROM aioflow.runs WHERE run_id = %s", run_id) == [(None,)]


def test_a_store_from_before_identity_keys_is_marked_and_an_older_aioflow_refuses_it(
    pg: PostgresMetadataStore, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A version-2 store (before identity keys): its runs stay, it is migrated to version 3...
    run_id = new_run(pg)
    sql(postgres_url, "DELETE FROM aioflow.schema_version WHERE version = 3")
    sql(postgres_url, "DELETE FROM aioflow.meta WHERE key = 'identity_keys'")
    open_postgres_metadata(postgres_url).close()
    assert sql(postgres_url, "SELECT max(version) FROM aioflow.schema_version") == [(3,)]
    assert sql(postgres_url, "SELECT value FROM aioflow.meta WHERE key = 'identity_keys'") == [
        ("yes",)
    ]
    assert sql(postgres_url, "SELECT count(*) FROM aioflow.runs WHERE run_id = %s", run_id) == [
        (1,)
    ]
    # ...which an aioflow knowing only version 2 refuses at once, instead of failing on the
    # first value kept in its key.
    monkeypatch.setattr(schema, "MIGRATIONS", {k: v for k, v in schema.MIGRATIONS.items() if k < 3})
    monkeypatch.setattr(schema, "SCHEMA_VERSION", 2)
    with pytest.raises(MetadataError, match=r"written by a newer aioflow \(schema version 3;"):
        open_postgres_metadata(postgres_url)


def test_another_programs_database_is_refused_untouched(postgres_url: str) -> None:
    sql(postgres_url, "CREATE TABLE invoices (id int)")
    with pytest.raises(MetadataError) as info:
        open_postgres_metadata(postgres_url)
    message = str(info.value)
    assert "is not an aioflow store's database (it holds public.invoices)" in message
    assert PASSWORD not in message and "\n" not in message
    assert sql(postgres_url, "SELECT 1 FROM pg_namespace WHERE nspname = 'aioflow'") == []


def test_a_newer_schema_is_refused(pg: PostgresMetadataStore, postgres_url: str) -> None:
    sql(postgres_url, "INSERT INTO aioflow.schema_version VALUES (%s, 0)", SCHEMA_VERSION + 1)
    with pytest.raises(
        MetadataError, match=rf"written by a newer aioflow \(schema version {SCHEMA_VERSION + 1};"
    ):
        open_postgres_metadata(postgres_url)


def test_reading_an_empty_database_creates_nothing(postgres_url: str) -> None:
    with pytest.raises(StoreError, match="No aioflow store in postgresql://postgres@127"):
        open_postgres_metadata(postgres_url, create=False)
    assert sql(postgres_url, "SELECT 1 FROM pg_namespace WHERE nspname = 'aioflow'") == []


# -- errors name the URL, never the password --------------------------------------------------


def test_a_refused_connection_is_one_line_without_the_password() -> None:
    with socket_nobody_listens() as port:
        url = f"postgresql://me:hunter2@127.0.0.1:{port}/db"
        with pytest.raises(MetadataConnectionError) as info:
            open_postgres_metadata(url)
    message = str(info.value)
    assert message.startswith(
        f"Cannot connect to the metadata database postgresql://me@127.0.0.1:{port}/db:"
    )
    assert "refused" in message.lower()
    assert "hunter2" not in message and "\n" not in message
    assert info.value.url == f"postgresql://me@127.0.0.1:{port}/db"


def test_a_wrong_password_is_named_as_such(postgres_server: PostgresServer) -> None:
    url = postgres_server.url(password="wrong-one")
    with pytest.raises(MetadataConnectionError) as info:
        open_postgres_metadata(url)
    message = str(info.value)
    assert 'password authentication failed for user "postgres"' in message
    assert "wrong-one" not in message and "\n" not in message


def test_urls_are_checked_and_redacted() -> None:
    assert redact("postgresql://u:pw@h:5/db?password=x&sslmode=require") == (
        "postgresql://u@h:5/db?sslmode=require"
    )
    with pytest.raises(StoreError, match="is not a PostgreSQL URL"):
        open_postgres_metadata("mysql://u:pw@h/db")
    with pytest.raises(StoreError, match="names no database"):
        open_postgres_metadata("postgresql://u:pw@h")


class socket_nobody_listens:
    """A 127.0.0.1 port bound but not listening, for the block: connecting is refused."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


# -- runs, batches, tags ----------------------------------------------------------------------


def test_run_ids_increase_across_writers(pg: PostgresMetadataStore, postgres_url: str) -> None:
    other = open_postgres_metadata(postgres_url)
    try:
        ids = [new_run(pg if i % 2 else other) for i in range(6)]
    finally:
        other.close()
    assert ids == sorted(set(ids))
    record = pg.run("F", ids[0])
    assert record is not None and record.status == "running" and record.tags == ("t1",)
    assert record.pid == os.getpid() and record.run_lock == 1
    assert pg.run("G", ids[0]) is None


def test_a_batch_is_stored_whole(pg: PostgresMetadataStore) -> None:
    run_id = new_run(pg)
    pg.write_batch(
        [task(run_id, 1, status="running"), task(run_id, 2, step="end")],
        [("k" * 64, b"\x01abc")],
        [(run_id, {"status": "succeeded", "finished_at": 5.0})],
    )
    pg.write_batch([task(run_id, 1)], [("k" * 64, b"\x01abc")])  # replaced, kept
    assert [t.status for t in pg.task_attempts(run_id)] == ["succeeded", "succeeded"]
    assert pg.get_blob("k" * 64) == b"\x01abc" and pg.blob_size("k" * 64) == 4
    assert pg.get_blob("z" * 64) is None and pg.blob_size("z" * 64) is None
    record = pg.run("F", run_id)
    assert record is not None and record.status == "succeeded" and record.finished_at == 5.0
    assert pg.steps(run_id) == [("start", 2.0), ("end", 3.0)]
    assert [t.task_id for t in pg.task_attempts_by_id(run_id, [2, 9])] == [2]
    assert [t.task_id for t in pg.task_attempts(run_id, "end")] == [2]
    with pytest.raises(ValueError, match="Cannot update the run fields"):
        pg.write_batch([], [], [(run_id, {"flow": "X"})])
    # A batch that fails part-way (a text where a number goes) leaves nothing behind.
    with pytest.raises(MetadataError, match="refused writing a batch"):
        pg.write_batch(
            [task(run_id, 3)], [("q" * 64, b"\x01q")], [(run_id, {"finished_at": "soon"})]
        )
    assert pg.get_blob("q" * 64) is None and len(pg.task_attempts(run_id)) == 2


def test_a_damaged_blob_is_repaired_by_storing_it_again(pg, postgres_url: str) -> None:
    pg.write_batch([], [("d" * 64, b"\x01good")])
    sql(postgres_url, "UPDATE aioflow.blobs SET data = 'bad' WHERE key = %s", "d" * 64)
    pg.write_batch([], [("d" * 64, b"\x01good")])
    assert pg.get_blob("d" * 64) == b"\x01good"


def test_run_listing_reads_as_on_sqlite(pg: PostgresMetadataStore) -> None:
    first = new_run(pg, "A")
    resumed = new_run(pg, "A", origin_run_id=str(first))
    other = new_run(pg, "B")
    new_run(pg, "a")
    assert pg.flows() == ["A", "B", "a"]  # by code point, as on SQLite
    pg.delete_runs([other + 1])
    assert [r.run_id for r in pg.run_page(None)] == [other, resumed, first]
    assert [r.run_id for r in pg.run_page("A", before=resumed)] == [first]
    assert [r.run_id for r in pg.run_page(None, limit=1)] == [other]
    assert pg.latest_run_id("A") == resumed
    assert pg.latest_run_id("A", resumed=False) == first
    assert pg.latest_run_id("A", resumed=True) == resumed
    assert pg.latest_run_id("Z") is None
    assert pg.first_run_time("A") == pg.run("A", first).created_at  # type: ignore[union-attr]
    assert pg.run_graph(first) == pack({"steps": {}}) and pg.run_params(first) is None


def test_tag_changes_from_many_writers_are_all_kept(pg, postgres_url: str) -> None:
    run_id = new_run(pg)
    stores = [open_postgres_metadata(postgres_url) for _ in range(4)]
    start = threading.Barrier(len(stores))

    def add_tags(store: PostgresMetadataStore, n: int) -> None:
        start.wait()
        for i in range(10):
            store.update_run_tags("F", run_id, lambda user, system, i=i: [*user, f"w{n}-{i}"])

    threads = [threading.Thread(target=add_tags, args=(s, n)) for n, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    record = pg.run("F", run_id)
    assert record is not None and len(record.tags) == 41
    assert pg.update_run_tags("F", 999, lambda user, system: user) is None

    def refuse(user: list[str], system: list[str]) -> list[str]:
        raise ValueError("no")

    with pytest.raises(ValueError):
        pg.update_run_tags("F", run_id, refuse)
    assert len(pg.run("F", run_id).tags) == 41  # type: ignore[union-attr]


# -- liveness ---------------------------------------------------------------------------------


def test_a_run_is_alive_until_its_creator_closes(pg, postgres_url: str) -> None:
    reader = open_postgres_metadata(postgres_url)
    try:
        run_id = new_run(pg)
        running = reader.run("F", run_id)
        assert running is not None and not reader.process_gone(running)
        pg.close()
        assert reader.process_gone(running)
        # the store reconnects when used again; an ended run is never "gone"
        ended = new_run(pg)
        pg.write_batch([], [], [(ended, {"status": "succeeded"})])
        pg.end_run(ended)
        assert not reader.process_gone(reader.run("F", ended))  # type: ignore[arg-type]
    finally:
        reader.close()


def test_a_killed_scheduler_leaves_its_run_abandoned(pg: PostgresMetadataStore, postgres_url):
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from aioflow.store.postgres import open_postgres_metadata
            store = open_postgres_metadata({postgres_url!r})
            print(store.create_run("F", user="u", tags=[], system_tags=[], graph=b"",
                                   origin_run_id=None), flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        run_id = int(child.stdout.readline())
        running = pg.run("F", run_id)
        assert running is not None and not pg.process_gone(running)
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate()
    # The server ends the dead client's session as soon as it reads the closed socket.
    deadline = time.monotonic() + 30
    while not pg.process_gone(running):
        assert time.monotonic() < deadline, "the killed scheduler's run still reads alive"
        time.sleep(0.01)  # polling the server, not a synchronisation delay


def test_a_lost_session_is_reopened_with_its_locks(pg: PostgresMetadataStore, postgres_url):
    run_id = new_run(pg)
    sql(
        postgres_url,
        "SELECT pg_terminate_backend(pid, 30000) FROM pg_locks WHERE locktype = 'advisory' "
        "AND objid = %s AND objsubid = 2",
        run_id,
    )
    running = pg.run("F", run_id)
    assert running is not None and pg.process_gone(running)
    pg.write_batch([task(run_id, 1)], [])  # the next batch reconnects and locks again
    assert not pg.process_gone(running)


def test_a_session_lost_while_idle_is_replaced_before_a_new_run(pg, postgres_url: str) -> None:
    first = new_run(pg)
    sql(
        postgres_url,
        "SELECT pg_terminate_backend(pid, 30000) FROM pg_locks WHERE locktype = 'advisory' "
        "AND objid = %s AND objsubid = 2",
        first,
    )
    second = new_run(pg)  # found lost by a ping, replaced, the first run locked again
    for run_id in (first, second):
        record = pg.run("F", run_id)
        assert record is not None and not pg.process_gone(record)


# -- deleting (aioflow runs delete, aioflow gc) -----------------------------------------------


def test_deleting_runs_and_sweeping_their_blobs(pg: PostgresMetadataStore) -> None:
    keep, drop = new_run(pg), new_run(pg)
    pg.write_batch(
        [task(keep, 1, manifest=pack({"x": "a" * 64})), task(drop, 1)],
        [("a" * 64, b"\x01kept"), ("b" * 64, b"\x01swept!")],
    )
    card = CardRecord(drop, 1, 0, 0, "summary", "blank", "d" * 64, 1.0)
    pg.put_card(card)
    assert pg.delete_runs([drop, 12345]) == 1
    assert pg.run("F", drop) is None and pg.task_attempts(drop) == []
    assert pg.cards(drop) == []  # a run's cards go with it

    def referenced() -> set[str]:
        # read through the store, as gc does, while the sweep holds writers off
        return {"a" * 64} if pg.task_attempts(keep) else set()

    assert pg.sweep_blobs(referenced) == (1, 7)
    assert pg.get_blob("a" * 64) == b"\x01kept" and pg.get_blob("b" * 64) is None
    pg.compact()
    assert pg.task_attempts(keep)[0].task_id == 1


def test_a_batch_committed_during_a_sweep_lands_after_it(pg: PostgresMetadataStore) -> None:
    run_id = new_run(pg)
    in_sweep = threading.Event()
    done: list[BaseException | None] = []

    def write() -> None:
        in_sweep.wait(30)
        try:
            pg.write_batch([task(run_id, 1)], [("c" * 64, b"\x01new")])
            done.append(None)
        except BaseException as exc:
            done.append(exc)

    writer = threading.Thread(target=write)
    writer.start()

    def referenced() -> set[str]:
        in_sweep.set()  # the writer now waits for the sweep's commit
        return set()

    pg.sweep_blobs(referenced)
    writer.join(60)
    assert done == [None]
    assert pg.get_blob("c" * 64) == b"\x01new"


def test_a_store_dropped_unclosed_closes_its_connections(postgres_url: str) -> None:
    store = open_postgres_metadata(postgres_url)
    new_run(store)  # the locking session and an idle connection are open
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        del store
        gc.collect()  # psycopg would warn of each connection deleted while open (pytest
        # reports a warning raised in __del__ as an unraisable exception: a failure)


def test_cards_are_stored_replaced_and_read_in_order(pg: PostgresMetadataStore) -> None:
    run_id = new_run(pg)
    second = CardRecord(run_id, 2, 0, 0, None, "default", "b" * 64, 2.0)
    first = CardRecord(run_id, 1, 0, 1, "chart", "blank", "a" * 64, 1.0)
    pg.put_card(second)
    pg.put_card(first)
    refreshed = first._replace(key="c" * 64, updated_at=3.0)
    pg.put_card(refreshed)  # a refresh replaces the card at its place
    assert pg.cards(run_id) == [refreshed, second]
    assert pg.cards(run_id, task_id=2) == [second]
    assert pg.cards(run_id + 1) == []
