"""Fault injection: hostile pathspecs, ids, blob keys, tags, logs and values.

Whatever a pathspec or id holds, the client answers with its own errors (InvalidPathspec,
MetaflowNotFound), never a crash of another kind; a blob key from the database never becomes a
path outside the store; reading logs never unpickles; what users stored is printed escaped; a
value whose pickling raises SystemExit is an encoding error naming it.
"""

from __future__ import annotations

import pickle
import sqlite3
from pathlib import Path

import pytest
from blake3 import blake3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aioflow import DataArtifact, Flow, FlowSpec, Run, Step, Task, step
from aioflow.api import resume_flow, run_flow_sync
from aioflow.cli.runs_table import runs_table
from aioflow.client.namespaces import scoped_namespace
from aioflow.client.tags import displayable, format_run_tags, format_tag_table
from aioflow.exceptions import (
    ArtifactEncodingError,
    BlobError,
    ClientError,
    FlowFailed,
    ParameterError,
    StoreError,
)
from aioflow.store import Store
from aioflow.store.serde import pack
from tests.helpers import invoke


class HostileFlow(FlowSpec):
    @step
    def start(self):
        self.x = 1
        print("a line")
        self.next(self.end)

    @step
    def end(self):
        pass


@pytest.fixture(scope="module")
def store_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile") / "store"
    run_flow_sync(HostileFlow, root=root, quiet=True, tags=["plain"])
    return root


def set_column(root: Path, sql: str, *args: object) -> None:
    conn = sqlite3.connect(root / "metadata.db")
    with conn:
        conn.execute(sql, args)
    conn.close()


# -- pathspecs and ids ----------------------------------------------------------------------------

#: A digit `int()` reads as 1 (U+FF11), which once made `F/<it>` read run 1.
FULLWIDTH_1 = "\uff11"

ids = st.one_of(
    st.text(max_size=30),
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.sampled_from(["1", FULLWIDTH_1, "٣", "¹", " 1", "1 ", "+1", "0x1", "1_0", "9" * 20]),
)
pathspecs = st.one_of(
    st.text(max_size=60),
    st.lists(ids, min_size=1, max_size=6).map("/".join),
    ids.map(lambda i: f"HostileFlow/{i}"),
    ids.map(lambda i: f"HostileFlow/1/start/{i}"),
    ids.map(lambda i: f"HostileFlow/{i}/start/1/x"),
)
LEVELS = [Flow, Run, Step, Task, DataArtifact]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pathspec=pathspecs, level=st.sampled_from(LEVELS))
def test_any_pathspec_gets_a_client_error_or_an_object(
    store_root: Path, pathspec: str, level: type
) -> None:
    with scoped_namespace(None):
        try:
            obj = level(pathspec, root=store_root)
        except ClientError:
            return
    assert obj.pathspec == pathspec


@pytest.mark.parametrize("run_id", ["9" * 20, FULLWIDTH_1, "٣", "¹", "-1", "1.0"])
def test_ids_the_store_cannot_hold_or_not_in_ascii_digits_name_nothing(
    store_root: Path, run_id: str
) -> None:
    pathspec = f"HostileFlow/{run_id}"
    with scoped_namespace(None):
        assert Run("HostileFlow/1", root=store_root).id == "1"
        with pytest.raises(ClientError, match="does not exist"):
            Run(pathspec, root=store_root)
        with pytest.raises(ClientError, match="does not exist"):
            Task(f"HostileFlow/1/start/{run_id}", root=store_root)
    code, _, err = invoke("tag", "list", pathspec, "--root", str(store_root), "--namespace", "")
    assert code == 1 and "does not exist" in err and "Traceback" not in err


def test_an_empty_root_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for args in (["runs"], ["logs", "F/1/start"], ["dump", "F/1/start"], ["tag", "list", "F"]):
        code, _, err = invoke(*args, "--root", "")
        assert code == 2 and "--root" in err, (args, err)
    with pytest.raises(StoreError, match="empty"):
        Store("")
    assert list(tmp_path.iterdir()) == []  # nothing made in the working folder


# -- blob keys and logs ---------------------------------------------------------------------------


@pytest.fixture
def own_store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    run_flow_sync(HostileFlow, root=root, quiet=True)
    return root


@pytest.mark.parametrize(
    "key", ["../../../../etc/hostname", "/etc/hostname", "AB" * 20, "ab" * 19, "ab" * 20 + "/"]
)
def test_a_key_that_is_not_a_hex_digest_never_becomes_a_path(own_store: Path, key: str) -> None:
    target = own_store.parent / "secret"
    target.write_text("not for aioflow's eyes")
    if key.startswith(".."):
        key = "../" * 4 + str(target.relative_to("/"))  # reaches `secret` from blobs/xx/
    set_column(own_store, "UPDATE tasks SET manifest = ? WHERE step = 'start'", pack({"x": key}))
    set_column(own_store, "UPDATE tasks SET stdout = ? WHERE step = 'start'", key)
    with scoped_namespace(None):
        task = Task("HostileFlow/1/start/1", root=own_store)
        with pytest.raises(BlobError, match="is not a blob key"):
            _ = task.data.x
        with pytest.raises(BlobError, match="is not a blob key"):
            _ = task.stdout
    code, _, err = invoke("dump", "HostileFlow/1/start", "--root", str(own_store))
    assert code == 1 and "is not a blob key" in err and "Traceback" not in err


class Planted:
    """What a planted store would hold: a pickle that runs code when loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (Path.write_text, (self.marker, "code ran"))


def test_reading_logs_never_unpickles(own_store: Path) -> None:
    marker = own_store.parent / "marker"
    blob = b"P" + pickle.dumps([[1.0, Planted(marker)]], protocol=5)
    key = blake3(blob).hexdigest(length=20)
    set_column(own_store, "INSERT INTO blobs VALUES (?, ?)", key, blob)
    set_column(own_store, "UPDATE tasks SET stdout = ? WHERE step = 'start'", key)
    code, _, err = invoke("logs", "HostileFlow/1/start", "--root", str(own_store))
    assert code == 1 and "was refused" in err and "Traceback" not in err
    with scoped_namespace(None), pytest.raises(BlobError, match="was refused"):
        _ = Task("HostileFlow/1/start/1", root=own_store).stdout
    assert not marker.exists()


def test_logs_with_a_line_msgpack_cannot_take_are_still_read(tmp_path: Path) -> None:
    class Surrogate(FlowSpec):
        @step
        def start(self):
            print("bytes that were not UTF-8: \udcff")
            self.next(self.end)

        @step
        def end(self):
            pass

    run = run_flow_sync(Surrogate, root=tmp_path, quiet=True)
    assert run["start"].task.stdout == "bytes that were not UTF-8: \udcff\n"


# -- tags and other stored strings on display ----------------------------------------------------


@given(st.text(max_size=40))
def test_displayable_text_has_only_printable_characters(text: str) -> None:
    shown = displayable(text)
    assert shown.isprintable()
    if text.isprintable():
        assert shown == text


@given(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=5))
def test_tag_listings_are_one_line_per_row_whatever_the_tags(tags: list[str]) -> None:
    lines = format_run_tags("F/1", tags, ["user:x"], hide_system=False)
    lines += format_tag_table([("F/1", tags)])
    assert all(line.isprintable() for line in lines)


HOSTILE_TAGS = ["two\nlines", "\x1b[2J\x1b[Hcleared", "right\u202eleft", "bell\a"]


def test_runs_and_tag_list_print_hostile_tags_escaped(tmp_path: Path) -> None:
    run_flow_sync(HostileFlow, root=tmp_path, quiet=True, tags=HOSTILE_TAGS)
    code, out, err = invoke("runs", "--root", str(tmp_path), "--namespace", "")
    assert code == 0, err
    assert len(out.splitlines()) == 2 and out.replace("\n", "").isprintable()
    assert "two\\nlines" in out
    code, out, err = invoke(
        "tag", "list", "HostileFlow/1", "--root", str(tmp_path), "--namespace", ""
    )
    assert code == 0, err
    assert out.replace("\n", "").isprintable() and "\\x1b[2J" in out
    code, out, err = invoke(
        "tag", "list", "HostileFlow", "--group-by-tag", "--root", str(tmp_path), "--namespace", ""
    )
    assert code == 0 and len(out.splitlines()) == len(HOSTILE_TAGS)
    with scoped_namespace(None):
        lines = runs_table(Store(tmp_path, create=False))
    assert all(line.isprintable() for line in lines)


# -- values ---------------------------------------------------------------------------------------


class Stops:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __reduce__(self) -> tuple[object, ...]:
        raise self.exc


@pytest.mark.parametrize("exc", [SystemExit(3), KeyboardInterrupt(), GeneratorExit()])
def test_a_value_whose_pickling_raises_a_base_exception_is_an_encoding_error(
    tmp_path: Path, exc: BaseException
) -> None:
    class StopFlow(FlowSpec):
        @step
        def start(self):
            self.stopper = Stops(exc)
            self.next(self.end)

        @step
        def end(self):
            pass

    with pytest.raises(FlowFailed) as info:
        run_flow_sync(StopFlow, root=tmp_path, quiet=True)
    cause = info.value.__cause__
    assert isinstance(cause, ArtifactEncodingError)
    assert cause.artifact == "stopper" and type(exc).__name__ in str(cause)
    assert info.value.run is not None and info.value.run.status == "failed"


@pytest.mark.parametrize("column", ["tags", "system_tags"])
def test_tags_that_are_not_msgpack_strings_are_one_error_never_unpickled(
    own_store: Path, column: str
) -> None:
    marker = own_store.parent / "marker"
    planted = pickle.dumps([Planted(marker)], protocol=5)
    for bad in (planted, pack([1, 2]), pack("one string")):
        set_column(own_store, f"UPDATE runs SET {column} = ?", bad)
        for args in (["runs"], ["tag", "list", "HostileFlow/1"]):
            code, _, err = invoke(*args, "--root", str(own_store), "--namespace", "")
            lines = [line for line in err.splitlines() if line.strip()]
            assert code == 1 and len(lines) == 2, (args, err)
            assert "The tags of run 1 of 'HostileFlow' cannot be read" in lines[1]
    assert not marker.exists()


@pytest.mark.parametrize("origin", ["9" * 20, FULLWIDTH_1, "-1", "1.0"])
async def test_resume_from_an_id_that_names_no_run_is_a_usage_error(
    own_store: Path, origin: str
) -> None:
    with pytest.raises(ParameterError, match="does not exist"):
        await resume_flow(HostileFlow, root=own_store, origin_run_id=origin, quiet=True)
