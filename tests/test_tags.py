"""Tags: system tags on every run, user tags from --tag, and changing them afterwards with
`Run.add_tag/remove_tag/replace_tag(s)` and `aioflow tag add|remove|replace|list`.

Rules (Metaflow's): system tags cannot be removed; removal happens before addition; a tag is a
non-empty string of at most 500 characters; a run carries at most 50 user tags. Mutations are
atomic, so concurrent ones (threads here, processes in test_cross_process.py) lose nothing.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from aioflow import FlowSpec, Metaflow, Run, TaggingError, namespace, run_flow_sync, step
from aioflow.client.namespaces import _UNSET, _namespace
from aioflow.client.tags import MAX_USER_TAGS, format_tag_table, validate_tag, validate_tags
from aioflow.exceptions import ParameterError
from tests.helpers import invoke


@pytest.fixture(autouse=True)
def _namespace_reset() -> Iterator[None]:
    """Each test starts in the default namespace and leaves it so."""
    token = _namespace.set(_UNSET)
    yield
    _namespace.reset(token)


class TagFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


@pytest.fixture
def run(aioflow_root: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.setenv("AIOFLOW_USER", "tester")
    return run_flow_sync(TagFlow, quiet=True, tags=["blue", "green"])


def plain(text: str) -> str:
    """CLI output without rich's boxes and line wrapping."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


# -- system and user tags -----------------------------------------------------------------------


def test_every_run_carries_system_tags_and_its_user_tags(run: Run) -> None:
    import platform

    import aioflow

    assert run.user_tags == {"blue", "green"}
    assert run.system_tags == {
        "user:tester",
        "runtime:dev",
        f"python_version:{platform.python_version()}",
        f"aioflow_version:{aioflow.__version__}",
    }
    assert run.tags == run.user_tags | run.system_tags


def test_add_remove_replace(run: Run) -> None:
    run.add_tag("red")
    assert run.user_tags == {"blue", "green", "red"}
    run.add_tags(["x", "y", "x"])
    run.remove_tag("blue")
    run.remove_tags(["x", "never-there"])  # removing a missing tag is a no-op
    assert run.user_tags == {"green", "red", "y"}
    run.replace_tag("green", "teal")
    assert run.user_tags == {"red", "y", "teal"}
    run.replace_tags(["red", "y"], ["y", "z"])  # removal first, then addition: y stays
    assert run.user_tags == {"teal", "y", "z"}
    run.add_tag("user:tester")  # already a system tag: not added as a user tag
    assert "user:tester" not in run.user_tags and "user:tester" in run.tags
    assert Run(run.pathspec).user_tags == {"teal", "y", "z"}  # stored, not just on this object
    namespace("teal")
    assert Run(run.pathspec) == run  # a user tag is a namespace too


def test_flow_runs_with_every_tag_given(run: Run) -> None:
    from aioflow import Flow

    second = run_flow_sync(TagFlow, quiet=True, tags=["blue"])
    flow = Flow("TagFlow")
    assert [r.id for r in flow.runs("blue")] == [second.id, run.id]
    assert [r.id for r in flow.runs("blue", "green")] == [run.id]  # all must match
    assert [r.id for r in flow.runs("blue", "nope")] == []
    assert [r.id for r in flow.runs("user:tester", "blue")] == [second.id, run.id]
    assert [r.id for r in flow.runs()] == [second.id, run.id]


def test_system_tags_cannot_be_removed(run: Run) -> None:
    with pytest.raises(TaggingError) as info:
        run.replace_tags(["blue", "runtime:dev"], ["new"])
    assert "Cannot remove a tag that is an existing system tag (['runtime:dev'])" in str(info.value)
    assert run.user_tags == {"blue", "green"}  # nothing changed: not even the removal of blue
    assert info.value.headline == "Tagging error"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: r.add_tag(""), "Tags must not be empty"),
        (lambda r: r.add_tag("   "), "Tags must not be empty"),
        (lambda r: r.add_tag("x" * 501), "Tag is too long 501 > 500"),
        (lambda r: r.remove_tag("x" * 501), "Tag is too long 501 > 500"),
        (lambda r: r.add_tag(5), "Tags must be some kind of string"),
        (lambda r: r.add_tags("abc"), "tags_to_add may not be a string"),
        (lambda r: r.remove_tags("abc"), "tags_to_remove may not be a string"),
        (lambda r: r.add_tags(5), "tags_to_add must be iterable"),
        (lambda r: r.replace_tags([], []), "Must add or remove at least one tag"),
        (lambda r: r.add_tag(b"\xff"), "Tags must be UTF-8 decodable"),
        (lambda r: r.add_tag("\ud800"), "Tags must be UTF-8 encodable"),
    ],
)
def test_invalid_tags(run: Run, call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TaggingError) as info:
        call(run)
    assert message in str(info.value)
    assert run.user_tags == {"blue", "green"}


def test_a_tag_of_exactly_500_characters_is_fine(run: Run) -> None:
    run.add_tag("t" * 500)
    assert "t" * 500 in run.user_tags
    assert validate_tag(b"bytes") == "bytes"


def test_at_most_50_user_tags(run: Run) -> None:
    run.add_tags([f"t{i}" for i in range(MAX_USER_TAGS - 2)])
    assert len(run.user_tags) == MAX_USER_TAGS
    with pytest.raises(TaggingError) as info:
        run.add_tag("one-too-many")
    assert "Cannot increase size of tag set beyond 50" in str(info.value)
    run.replace_tag("t0", "swapped")  # the same size is fine
    assert len(run.user_tags) == MAX_USER_TAGS and "swapped" in run.user_tags
    # a set already too large may shrink
    assert validate_tags([f"t{i}" for i in range(52)], existing=[f"t{i}" for i in range(53)])
    with pytest.raises(TaggingError):
        validate_tags([f"t{i}" for i in range(52)], existing=[f"t{i}" for i in range(51)])


def test_run_tags_are_checked_before_anything_is_stored(
    aioflow_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIOFLOW_USER", "tester")
    for tags, message in [
        ([f"t{i}" for i in range(51)], "at most 50 user tags, 51 were given"),
        (["x" * 501], "tags are at most 500 characters"),
        ([""], "a tag must be a non-empty string"),
    ]:
        with pytest.raises(ParameterError, match=message):
            run_flow_sync(TagFlow, quiet=True, tags=tags)
    if (aioflow_root / "metadata.db").exists():
        namespace(None)
        assert Metaflow().flows == []  # nothing was stored
    run = run_flow_sync(TagFlow, quiet=True, tags=[f"t{i}" for i in range(50)])
    assert len(run.user_tags) == 50


def test_concurrent_mutations_lose_nothing(run: Run) -> None:
    def add(prefix: str) -> None:
        mine = Run(run.pathspec)  # each thread its own objects (and connection)
        for i in range(10):
            mine.add_tag(f"{prefix}{i}")

    threads = [threading.Thread(target=add, args=(p,)) for p in "abcd"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Run(run.pathspec).user_tags == {"blue", "green"} | {
        f"{p}{i}" for p in "abcd" for i in range(10)
    }


# -- aioflow tag ----------------------------------------------------------------------------------


def test_tag_add_remove_replace_list(run: Run) -> None:
    code, out, _ = invoke("tag", "add", run.pathspec, "red", "white")
    assert code == 0, out
    assert out.splitlines()[:3] == [
        "Operation successful. New tags:",
        run.pathspec,
        "    user tags:   blue, green, red, white",
    ]
    assert out.splitlines()[3].startswith("    system tags: aioflow_version:")
    code, out, _ = invoke("tag", "remove", run.pathspec, "blue", "white")
    assert code == 0 and "    user tags:   green, red" in out
    code, out, _ = invoke("tag", "replace", run.pathspec, "--remove", "red", "--add", "navy")
    assert code == 0 and "    user tags:   green, navy" in out
    assert Run(run.pathspec).user_tags == {"green", "navy"}
    code, out, _ = invoke("tag", "list", run.pathspec, "--hide-system-tags")
    assert code == 0 and out.splitlines() == [run.pathspec, "    user tags:   green, navy"]


def test_tag_list_of_a_flow(run: Run) -> None:
    second = run_flow_sync(TagFlow, quiet=True, tags=["green"])
    code, out, _ = invoke("tag", "list", "TagFlow", "--hide-system-tags")
    assert code == 0
    assert out.splitlines() == [
        second.pathspec,
        "    user tags:   green",
        run.pathspec,
        "    user tags:   blue, green",
    ]
    code, out, _ = invoke("tag", "list", "TagFlow", "--group-by-tag")
    assert out.splitlines() == [
        f"blue   {run.pathspec}",
        f"green  {second.pathspec}, {run.pathspec}",
    ]
    assert format_tag_table([]) == ["(no user tags)"]


def test_tag_commands_respect_the_namespace(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOFLOW_USER", "alice")  # not the run's user
    code, _, err = invoke("tag", "add", run.pathspec, "x")
    assert code == 1
    assert f"Run {run.pathspec} does not belong to namespace user:alice" in plain(err)
    assert invoke("tag", "add", run.pathspec, "x", "--namespace", "user:tester")[0] == 0
    assert invoke("tag", "add", run.pathspec, "y", "--namespace", "")[0] == 0
    namespace(None)
    assert Run(run.pathspec).user_tags == {"blue", "green", "x", "y"}


def test_tag_command_errors(run: Run) -> None:
    code, _, err = invoke("tag", "remove", run.pathspec, "user:tester")
    assert code == 1
    assert err.splitlines()[0] == "    Tagging error:"
    assert "Cannot remove a tag that is an existing system tag" in err
    code, _, err = invoke("tag", "add", run.pathspec, "")
    assert code == 1 and "Tags must not be empty" in err
    code, _, err = invoke("tag", "add", "TagFlow/99", "x")
    assert code == 1 and "Run('TagFlow/99') does not exist" in err
    code, _, err = invoke("tag", "add", "TagFlow", "x")
    assert code == 2 and "Expects Run('FlowName/RunID')" in plain(err)
    code, _, err = invoke("tag", "list", "NoFlow")
    assert code == 1 and "Flow('NoFlow') does not exist" in err
    for args, message in [
        ([], "Specify at least one tag to add (--add) and one tag to remove (--remove)"),
        (["--add", "a"], "Specify at least one tag to remove; else please use tag add"),
        (["--remove", "a"], "Specify at least one tag to add, else please use tag remove"),
    ]:
        code, _, err = invoke("tag", "replace", run.pathspec, *args)
        assert code == 2 and message in plain(err), err
    assert Run(run.pathspec).user_tags == {"blue", "green"}
