"""`aioflow dump`: each artifact of a task (or of every task of a step) with its stored size,
type and value, cut to --max-value-size; private ones with --private; a few with --include.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import aioflow.cli.dump as dump_module
from aioflow import FlowSpec, Run, step
from aioflow.cli.dump import dump_task, peek_type, short_repr, summarize, type_name
from aioflow.client.namespaces import _namespace
from aioflow.store import SMALL
from aioflow.testing import run_in_temp_store
from tests.helpers import invoke

LINE = re.compile(r"^(\S+) \[size: (\d+) type: (\S+)\](?: = (.*))?$")


class Thing:
    def __init__(self, n: int) -> None:
        self.n = n

    def __repr__(self) -> str:
        return f"Thing({self.n})"


class Broken:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


class DumpFlow(FlowSpec):
    @step
    def start(self):
        self.number = 7
        self.text = "hello"
        self.long_list = list(range(10_000))
        self.pair = (1, "two")
        self.thing = Thing(3)
        self.blob = b"\x01" * (SMALL + 100)
        self.broken = Broken()
        self._private = {"secret": True}
        self.items = [1, 2]
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.doubled = self.input * 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


@pytest.fixture(autouse=True)
def _everyone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AIOFLOW_USER", "tester")
    token = _namespace.set(None)
    yield
    _namespace.reset(token)


@pytest.fixture
async def run(aioflow_root: Path) -> Run:
    return await run_in_temp_store(DumpFlow, aioflow_root)


def parsed(out: str) -> dict[str, tuple[int, str, str | None]]:
    rows = {}
    for line in out.splitlines():
        match = LINE.match(line)
        assert match, line
        rows[match.group(1)] = (int(match.group(2)), match.group(3), match.group(4))
    return rows


def test_dump_a_task(run: Run) -> None:
    task = run["start"].task
    code, out, err = invoke("dump", task.pathspec)
    assert code == 0, err
    assert err == f"Dumping output of {task.pathspec}\n"
    rows = parsed(out)
    names = list(rows)
    assert names == sorted(names)  # sorted by name
    assert set(names) == {
        "blob", "broken", "items", "long_list", "name", "number", "pair", "text", "thing",
    }  # fmt: skip
    assert rows["number"] == (task["number"].size, "int", "7")
    assert rows["text"] == (task["text"].size, "str", "'hello'")
    assert rows["pair"][1:] == ("tuple", "(1, 'two')")
    assert rows["thing"][1:] == ("test_dump.Thing", "Thing(3)")
    assert rows["name"][2] == "'DumpFlow'"
    assert rows["broken"][2].startswith("<Broken instance at 0x")  # a failing repr is no error
    size, kind, value = rows["long_list"]
    assert kind == "list" and size == task["long_list"].size
    assert value is not None and value.startswith("[0, 1, 2, ") and len(value) <= 1003
    assert rows["blob"][0] == task["blob"].size > SMALL and rows["blob"][1] == "bytes"


def test_dump_options(run: Run) -> None:
    task = run["start"].task
    code, out, _ = invoke("dump", task.pathspec, "--private", "--include", "_private,number")
    assert code == 0 and list(parsed(out)) == ["_private", "number"]
    assert parsed(out)["_private"][1:] == ("dict", "{'secret': True}")
    code, out, _ = invoke("dump", task.pathspec, "--include", "_private")
    assert list(parsed(out)) == ["_private"]  # named, so shown without --private too
    code, out, _ = invoke("dump", task.pathspec, "--private")
    assert "_private" in parsed(out)
    code, out, _ = invoke("dump", task.pathspec, "--max-value-size", "5", "--include", "text")
    assert parsed(out)["text"][2] == "'hell..."
    code, out, _ = invoke("dump", task.pathspec, "--max-value-size", "0")
    rows = parsed(out)
    assert all(value is None for _, _, value in rows.values())  # names, sizes, types only
    assert rows["thing"][1] == "test_dump.Thing"


def test_dump_a_step_dumps_each_task(run: Run) -> None:
    code, out, err = invoke("dump", f"{run.pathspec}/each", "--include", "doubled")
    assert code == 0
    tasks = sorted(run["each"], key=lambda t: int(t.id))
    assert err.splitlines() == [f"Dumping output of {t.pathspec}" for t in tasks]
    assert [line.split(" = ")[1] for line in out.splitlines()] == [
        str(t.data.doubled) for t in tasks
    ]


def test_dump_errors(run: Run, tmp_path: Path) -> None:
    task = run["start"].task
    code, _, err = invoke("dump", task.pathspec, "--include", "nope,number")
    assert code == 1 and err.splitlines()[1] == "    Object not found:"
    assert f"No artifact named nope in {task.pathspec}" in err
    code, _, err = invoke("dump", run.pathspec)
    assert code == 2 and "Expects a step or a task" in " ".join(err.split())
    code, _, err = invoke("dump", "DumpFlow/99/start")
    assert code == 1 and "Run('DumpFlow/99') does not exist" in err
    code, _, err = invoke("dump", f"{run.pathspec}/start", "--max-value-size", "-1")
    assert code == 2
    code, _, err = invoke("dump", f"{run.pathspec}/start", "--root", str(tmp_path / "x"))
    assert code == 1 and "No aioflow store at" in err


def test_large_values_are_described_without_being_loaded(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = run["start"].task
    store = task._store
    monkeypatch.setattr(dump_module, "LOAD_LIMIT", 10)

    def refuse(key: str) -> object:
        raise AssertionError("a large value was loaded")

    monkeypatch.setattr(store, "load", refuse)
    rows = {r.name: r for r in dump_task(task, include=["blob", "long_list", "thing"])}
    assert rows["blob"].type_name == "bytes"
    assert rows["blob"].value == f"<not loaded: {rows['blob'].size} bytes stored>"
    assert rows["long_list"].type_name == "list"  # read from the blob's first bytes
    assert rows["thing"].type_name == "test_dump.Thing"
    assert rows["thing"].line().startswith(f"thing [size: {rows['thing'].size} type: ")


def test_types_read_from_the_first_bytes(run: Run) -> None:
    task = run["start"].task
    store = task._store
    for name, kind in [("number", "int"), ("text", "str"), ("long_list", "list"),
                       ("pair", "object"), ("thing", "test_dump.Thing"), ("blob", "bytes"),
                       ("_private", "dict")]:  # fmt: skip
        assert peek_type(store, task.manifest[name]) == kind, name
    assert summarize(store, "number", task.manifest["number"], 0).value is None


def test_short_repr_and_type_names() -> None:
    cut = short_repr("x" * 50, 10)
    assert cut.startswith("'x") and len(cut) <= 13
    assert short_repr(list(range(10**6)), 40).startswith("[0, 1, 2")
    assert len(short_repr(list(range(10**6)), 40)) <= 43
    assert short_repr({"a": 1}, 100) == "{'a': 1}"
    assert type_name(1) == "int" and type_name(Thing(1)) == "test_dump.Thing"
