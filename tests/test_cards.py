"""Cards (`@card`, `current.card`, `aioflow.cards`, `get_cards`, `aioflow card ...`), checked
against Metaflow's rules: which card `append` targets, an unknown id never raises, a card that
cannot be rendered never fails its task and is stored as an error card, `timeout` bounds
rendering, `refresh()` stores the card while the step runs.

Flows live at module level, so the process executor's workers import them by reference.
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import threading
import zlib
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aioflow import (
    FlowSpec,
    Parameter,
    Task,
    card,
    catch,
    current,
    resume_flow,
    retry,
    run_flow,
    step,
)
from aioflow.card_html import (
    CHART_MARK,
    VEGA_FILES,
    markdown,
    page,
    png_from_array,
    preview,
    row,
)
from aioflow.cards import (
    Artifact,
    CardContainer,
    Error,
    Image,
    JSONViewer,
    Markdown,
    MetaflowCardComponent,
    ProgressBar,
    PythonCode,
    Table,
    ValueBox,
    VegaChart,
    get_cards,
)
from aioflow.decorators import parse_with
from aioflow.exceptions import (
    FlowDefinitionError,
    InvalidPathspec,
    MetadataError,
    MetaflowNotFound,
)
from aioflow.store import Store
from tests.helpers import invoke
from tests.report.flows import bar_chart

#: A 1x1 PNG, as a file would hold it.
TINY_PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00"
    b"\x00\x00IEND\xaeB`\x82"
)


class DefaultCardFlow(FlowSpec):
    alpha = Parameter("alpha", default=0.5)

    @card
    @step
    def start(self) -> None:
        self.words = ["a", "b"]
        self.evil = "<script>alert(1)</script>"
        self.picture = np.zeros((4, 4, 3), dtype=np.uint8)
        self.png = TINY_PNG
        self._hidden = 1
        current.card.append(Markdown("# Report **bold**"))
        current.card.append(Table([[1, Markdown("*x*")]], headers=["n", "md"]))
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


async def test_the_default_card_shows_metadata_parameters_artifacts_dag_code_and_components(
    aioflow_root: Path,
) -> None:
    run = await run_flow(DefaultCardFlow, root=aioflow_root, quiet=True)
    task = run["start"].task
    cards = get_cards(task)
    assert isinstance(cards, CardContainer) and len(cards) == 1
    only = cards[0]
    assert (only.type, only.id, only.attempt) == ("default", None, 0)
    html = only.html
    assert html.startswith("<!DOCTYPE html>") and only.get() == html == cards.get()
    assert f"<td>{task.pathspec}</td>" in html and "<td>succeeded</td>" in html
    assert "<td>alpha</td><td><pre>0.5</pre>" in html
    assert "<td>words</td><td><pre>[&#x27;a&#x27;, &#x27;b&#x27;]</pre>" in html
    # Everything the user gave is escaped: no script of theirs reaches the page.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    assert "<td>_hidden</td>" not in html
    # Images are previews inline: a numpy image array is drawn, PNG bytes are shown.
    assert html.count('src="data:image/png;base64,') == 2
    assert "<h1>Report <strong>bold</strong></h1>" in html and "<em>x</em>" in html
    # The DAG is inline SVG with the task's step marked; the code is the step's.
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="aioflow-dag"' in html
    assert 'class="af-step af-current" data-step="start"' in html
    assert 'class="af-step" data-step="end"' in html
    assert "def start(self) -&gt; None:" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    # No chart, so none of the chart libraries: the card stays small.
    assert "<script" not in html and len(html) < 40_000
    # Steps without @card have none.
    assert len(get_cards(run["end"].task)) == 0


class SeveralCardsFlow(FlowSpec):
    @card(type="blank", id="first")
    @card(type="blank", id="second")
    @step
    def start(self) -> None:
        current.card.append(Markdown("lost"))  # two editable cards, none customized: dropped
        current.card["first"].append(Markdown("one"))
        current.card["second"].extend([Markdown("two"), Markdown("three")])
        current.card["missing"].append(Markdown("nowhere"))  # warns, never raises
        current.card["missing"] = [Markdown("nowhere")]
        self.next(self.custom)

    @card(type="blank", id="plain")
    @card(type="blank", id="chosen", customize=True)
    @step
    def custom(self) -> None:
        current.card.append(Markdown("to the customized one"))
        current.card["plain"] = [Markdown("replaced"), Markdown("kept")]
        current.card["plain"].pop()
        self.next(self.single)

    @card(type="blank", id="only")
    @step
    def single(self) -> None:
        current.card.extend([Markdown("cleared")])
        current.card.clear()
        current.card.append(Markdown("the only card takes appends"))
        self.next(self.end)

    @step
    def end(self) -> None:
        current.card.append(Markdown("no card here"))  # warns


def _text(card: Any) -> str:
    html: str = card.html
    return html[html.index("<main") :]


async def test_append_goes_to_the_one_editable_card_and_ids_choose_among_several(
    aioflow_root: Path,
) -> None:
    run = await run_flow(SeveralCardsFlow, root=aioflow_root, quiet=True)
    start = run["start"].task
    first, second = get_cards(start)
    assert (first.id, second.id) == ("second", "first")  # decorators apply bottom-up
    assert "<p>one</p>" in _text(get_cards(start, id="first")[0])
    both = _text(get_cards(start.pathspec, id="second")[0])
    assert "<p>two</p>" in both and "<p>three</p>" in both
    assert all("lost" not in _text(c) and "nowhere" not in _text(c) for c in get_cards(start))
    warnings = start.stderr
    assert "none is @card(customize=True)" in warnings
    assert "no editable card with id 'missing'" in warnings

    custom = run["custom"].task
    assert "to the customized one" in _text(get_cards(custom, id="chosen")[0])
    plain = _text(get_cards(custom, id="plain")[0])
    assert "replaced" in plain and "kept" not in plain and "customized" not in plain

    single = _text(get_cards(run["single"].task)[0])
    assert "the only card takes appends" in single and "cleared" not in single
    assert "the step has no @card" in run["end"].task.stderr
    assert len(get_cards(start, type="default")) == 0 and len(get_cards(start, type="blank")) == 2


class Broken(MetaflowCardComponent):
    def render(self) -> str:
        raise RuntimeError("this component cannot draw")


class ErrorCardFlow(FlowSpec):
    @card(type="blank", id="part")
    @card(type="fancy", id="unknown")
    @step
    def start(self) -> None:
        current.card["part"].append(Broken())
        current.card["part"].append(Markdown("still shown"))
        self.next(self.fails)

    @card
    @catch(var="failure")
    @step
    def fails(self) -> None:
        self.before = 1
        raise ValueError("the step failed")
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


async def test_a_card_that_fails_to_render_is_an_error_card_and_never_fails_its_task(
    aioflow_root: Path,
) -> None:
    run = await run_flow(ErrorCardFlow, root=aioflow_root, quiet=True)
    assert run.successful
    start = run["start"].task
    part = _text(get_cards(start, id="part")[0])
    assert "Broken could not be rendered" in part and "this component cannot draw" in part
    assert "<p>still shown</p>" in part
    unknown = get_cards(start, id="unknown")[0]
    assert unknown.type == "fancy"
    assert "The card could not be rendered." in unknown.html
    assert "unknown card type &#x27;fancy&#x27;" in unknown.html
    # A failed task's default card says so and shows the error.
    fails = get_cards(run["fails"].task)[0].html
    assert "<td>failed</td>" in fails and "ValueError: the step failed" in fails
    assert "<td>before</td>" in fails


RELEASE = threading.Event()


class Slow(MetaflowCardComponent):
    def render(self) -> str:
        RELEASE.wait(60)  # released by the test once the run is over
        return "late"


class TimeoutCardFlow(FlowSpec):
    @card(type="blank", timeout=0.2)
    @step
    def start(self) -> None:
        current.card.append(Slow())
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


async def test_timeout_bounds_rendering(aioflow_root: Path) -> None:
    RELEASE.clear()
    try:
        run = await run_flow(TimeoutCardFlow, root=aioflow_root, quiet=True)
    finally:
        RELEASE.set()
    assert run.successful
    html = get_cards(run["start"].task)[0].html
    assert "took longer than its timeout (0.2 s)" in html and "late" not in html


class LiveCardFlow(FlowSpec):
    @card(type="blank")
    @step
    def start(self) -> None:
        bar = ProgressBar(max=10, label="epochs", unit="epochs")
        current.card.append(bar)
        bar.update(3)
        current.card.refresh()
        # What a reader (the UI) sees while the task runs:
        self.live = get_cards(current.pathspec)[0].html
        current.card.refresh()  # within a second of the last: skipped
        self.after_second = get_cards(current.pathspec)[0].html
        bar.update(10)
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class LiveChartFlow(FlowSpec):
    @card(type="blank")
    @step
    def start(self) -> None:
        chart = VegaChart(bar_chart("first", [1]))
        current.card.append(chart)
        current.card.refresh()
        self.live = get_cards(current.pathspec)[0].html
        chart.update(bar_chart("second", [1, 2]))
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


async def test_an_updated_chart_is_drawn_with_its_new_spec(aioflow_root: Path) -> None:
    run = await run_flow(LiveChartFlow, root=aioflow_root, quiet=True)
    task = run["start"].task
    assert _spec_in(task["live"].data)["title"] == "first"
    final = get_cards(task)[0].html
    assert _spec_in(final)["title"] == "second" and final.count(CHART_MARK) == 1


async def test_refresh_stores_the_card_while_the_step_runs(aioflow_root: Path) -> None:
    run = await run_flow(LiveCardFlow, root=aioflow_root, quiet=True)
    task = run["start"].task
    assert "3 / 10 epochs" in task["live"].data
    assert task["after_second"].data == task["live"].data
    final = get_cards(task)[0]
    assert "10 / 10 epochs" in final.html


class PlainFlow(FlowSpec):
    @step
    def start(self) -> None:
        self.value = 42
        self.next(self.end)

    @step(executor="process")
    def end(self) -> None:
        current.card.append(Markdown("from a worker process"))


async def test_with_card_adds_a_card_to_every_step_in_threads_and_processes(
    aioflow_root: Path,
) -> None:
    run = await run_flow(PlainFlow, root=aioflow_root, quiet=True, with_decorators=["card"])
    assert "<td>value</td><td><pre>42</pre>" in get_cards(run["start"].task)[0].html
    assert "from a worker process" in get_cards(run["end"].task)[0].html
    run = await run_flow(
        PlainFlow, root=aioflow_root, quiet=True, with_decorators=["card:type=blank,id=x"]
    )
    (blank,) = get_cards(run["start"].task, id="x")
    assert blank.type == "blank"


async def test_cards_are_stored_in_a_memory_store_too() -> None:
    store = Store.memory()
    run = await run_flow(DefaultCardFlow, root=store, quiet=True, with_decorators=["card"])
    records = store.metadata.cards(int(run.id))
    assert [r.card_type for r in records] == ["default", "default"]
    assert "<td>words</td>" in store.load(records[0].key)
    assert store.metadata.cards(int(run.id), records[1].task_id) == [records[1]]
    assert store.metadata.cards(int(run.id) + 1) == []


async def test_a_card_the_store_refuses_is_a_warning_naming_it_and_the_task_succeeds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = Store.memory()

    def refuse(record: Any) -> None:
        raise MetadataError("the card table is gone")

    store.metadata.put_card = refuse  # type: ignore[method-assign]
    with pytest.warns(UserWarning) as caught:
        run = await run_flow(DefaultCardFlow, root=store, quiet=True)
    assert run.successful and run["start"].task.data.words == ["a", "b"]
    [warning] = [w for w in caught if w.category is UserWarning]
    assert str(warning.message) == (
        f"DefaultCardFlow/{run.id}/start/1: card 'default' was not stored "
        "(MetadataError: the card table is gone); the task goes on without it."
    )
    assert warning.filename == __file__
    assert warning.lineno == DefaultCardFlow.start.__code__.co_firstlineno
    assert "Traceback" not in capsys.readouterr().err


async def test_get_cards_by_task_or_pathspec_and_its_errors(aioflow_root: Path) -> None:
    run = await run_flow(DefaultCardFlow, root=aioflow_root, quiet=True)
    pathspec = run["start"].task.pathspec
    assert get_cards(pathspec)[0].html == get_cards(Task(pathspec))[0].html
    assert len(get_cards(pathspec, id="nope")) == 0
    with pytest.raises(InvalidPathspec, match="task pathspec"):
        get_cards("DefaultCardFlow/1/start")
    with pytest.raises(MetaflowNotFound, match="does not exist"):
        get_cards("DefaultCardFlow/99/start/1")
    with pytest.raises(TypeError):
        get_cards(3)  # type: ignore[arg-type]


def test_card_decorators_are_checked() -> None:
    with pytest.raises(FlowDefinitionError, match="two @card decorators with id 'a'"):

        class Twice(FlowSpec):
            @card(id="a")
            @card(id="a")
            @step
            def start(self) -> None:
                pass

    with pytest.raises(FlowDefinitionError, match="letters, digits and underscores"):
        card(id="no spaces")
    with pytest.raises(FlowDefinitionError, match="timeout"):
        card(timeout=0)
    (deco,) = parse_with(["card:type=blank,timeout=3"])
    assert deco.attributes["type"] == "blank" and deco.attributes["timeout"] == 3
    assert current.card is None  # outside a task


def test_components_render_escaped_self_contained_html() -> None:
    assert markdown("<img src=x onerror=alert(1)>") == ("<p>&lt;img src=x onerror=alert(1)&gt;</p>")
    assert "<a" not in markdown("[x](javascript:alert(1))")
    assert '<a href="https://a.b/c">x</a>' in markdown("[x](https://a.b/c)")
    assert "<ul><li>a</li><li>b</li></ul>" in markdown("- a\n- b")
    assert 'src="data:image/png;base64,' in Image(TINY_PNG, label="<l>").render()
    assert "&lt;l&gt;" in Image(TINY_PNG, label="<l>").render()
    with pytest.raises(ValueError, match="bytes of a PNG"):
        Image(b"not an image").render()
    assert "Image could not be rendered" in Image(b"nope").render_safely()
    assert "af-value" in ValueBox(title="acc", value=0.9, subtitle="<b>").render()
    vega = VegaChart({"title": "</script><!--"}).render()
    assert vega.count("</script>") == 1 and '"title":"\\u003c/script>\\u003c!--"' in vega
    assert "def _helper()" in PythonCode(_helper).render()
    assert "&quot;k&quot;: [" in JSONViewer({"k": [1]}).render()
    assert "ValueError: bad" in Error(ValueError("bad"), title="t").render()
    assert Artifact({"a": 1}, name="n").render() == "<h3>n</h3><pre>{&#x27;a&#x27;: 1}</pre>"
    long = preview("x" * 5000)
    assert "... (5,002 characters)" in long and len(long) < 2100


def _helper() -> int:
    return 1


class FakeAltairChart:
    """Shaped as Altair's charts are: a class of the altair package, with to_dict()."""

    def to_dict(self) -> dict[str, Any]:
        return bar_chart("from altair", [1, 2])


FakeAltairChart.__module__ = "altair.vegalite.v5.api"


def _spec_in(html: str) -> Any:
    found = re.search(r'<script type="application/json">(.*?)</script>', html)
    assert found is not None, html
    return json.loads(found.group(1))


def test_a_vega_chart_takes_a_dict_or_an_altair_chart_and_updates() -> None:
    values = [{"x": np.int64(1), "y": float("nan"), "when": date(2024, 1, 2), "z": np.arange(2)}]
    spec = {"mark": "bar", "data": {"values": values}}
    chart = VegaChart(spec)
    html = chart.render()
    assert html.startswith(CHART_MARK) and 'data-actions="false"' in html
    # What JSON cannot hold is made plain; NaN is a missing value (null) to Vega-Lite.
    expected = [{"x": 1, "y": None, "when": "2024-01-02", "z": [0, 1]}]
    assert _spec_in(html) == {"mark": "bar", "data": {"values": expected}}
    assert isinstance(values[0]["x"], np.int64)  # the caller's spec is left as it was
    assert 'data-actions="true"' in VegaChart(spec, show_controls=True).render()
    # An Altair chart, given as is or through from_altair_chart, is its to_dict().
    altair = FakeAltairChart()
    assert VegaChart(altair).spec == altair.to_dict()
    assert VegaChart.from_altair_chart(altair).spec == altair.to_dict()
    with pytest.raises(ValueError, match=r"^builtins\.dict is not an Altair chart\.$"):
        VegaChart.from_altair_chart(spec)
    # update: a new spec or chart for the next refresh; None keeps the one shown.
    chart.update(None)
    assert chart.spec is spec
    chart.update(altair)
    assert _spec_in(chart.render())["title"] == "from altair"
    # Anything else is refused when rendered, as an error box in the card.
    wrong = VegaChart([1, 2])
    with pytest.raises(TypeError, match=r"takes a Vega-Lite spec \(a dict\) or an Altair chart"):
        wrong.render()
    assert "VegaChart could not be rendered" in wrong.render_safely()


def test_only_a_page_with_a_chart_carries_the_chart_libraries() -> None:
    def card_page(*components: Any) -> str:
        body = "".join(row(c.render_safely()) for c in components)
        return page("t", body, card_type="blank", card_id=None)

    assert "<script" not in card_page(Markdown("# no chart"), Table([[1]]))
    # Text shaped like a chart's markup is escaped, so it brings no scripts either.
    assert "<script" not in card_page(Markdown(CHART_MARK + ">"), Table([[CHART_MARK]]))
    folder = resources.files("aioflow") / "cards_static"
    for charted in (
        card_page(VegaChart(bar_chart("t", [1]))),
        card_page(Table([["in a cell", VegaChart(bar_chart("t", [1]))]])),
    ):
        # vega, vega-lite, vega-embed and the lines that draw, at the end of the body.
        assert charted.count("<script>") == 4 and charted.endswith("</script></body></html>\n")
        assert "sourceMappingURL" not in charted
        for name in VEGA_FILES:
            text = (folder / name).read_text(encoding="utf-8")
            assert "</script" not in text.lower() and "<!--" not in text
            assert text.split("\n//# sourceMappingURL=")[0] in charted
    # The vendored libraries' licenses are in the package beside them.
    for name in ("vega", "vega-lite", "vega-embed"):
        license_text = (folder / f"LICENSE-{name}.txt").read_text(encoding="utf-8")
        assert "University of Washington Interactive Data Lab" in license_text
        assert "Redistribution and use in source and binary forms" in license_text
    assert "d3-array" in (folder / "THIRD_PARTY_LICENSES.txt").read_text(encoding="utf-8")


class FakeFrame:
    """Duck-typed like a pandas DataFrame: columns, shape, head, itertuples."""

    columns = ["a", "b"]
    shape = (3, 2)

    def head(self, n: int) -> FakeFrame:
        return self

    def itertuples(self, index: bool = False) -> list[tuple[int, str]]:
        return [(1, "<x>"), (2, "y"), (3, "z")]


def test_previews_of_frames_and_image_arrays_are_duck_typed() -> None:
    table = preview(FakeFrame())
    assert "<th>a</th><th>b</th>" in table and "<td>&lt;x&gt;</td>" in table
    assert "3 rows x 2 columns" in table
    assert "<th>a</th>" in Table.from_dataframe(FakeFrame()).render()
    grey = np.arange(6, dtype=np.uint8).reshape(2, 3)
    png = png_from_array(grey)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height, depth, color = struct.unpack(">IIBB", png[16:26])
    assert (width, height, depth, color) == (3, 2, 8, 0)
    idat = png.index(b"IDAT")
    size = struct.unpack(">I", png[idat - 4 : idat])[0]
    assert zlib.decompress(png[idat + 4 : idat + 4 + size]) == b"\x00\x00\x01\x02\x00\x03\x04\x05"
    # A 2-D float array is data, not a picture.
    assert "<img" not in preview(np.zeros((3, 3)))


# -- the command line ---------------------------------------------------------------------------


async def test_aioflow_card_list_get_and_view(aioflow_root: Path, tmp_path: Path) -> None:
    run = await run_flow(SeveralCardsFlow, root=aioflow_root, quiet=True)
    start = run["start"].task.pathspec
    code, out, _ = invoke("card", "list", f"SeveralCardsFlow/{run.id}")
    assert code == 0
    assert [line.split("\t")[:3] for line in out.splitlines()] == [
        [start, "blank", "second"],
        [start, "blank", "first"],
        [run["custom"].task.pathspec, "blank", "chosen"],
        [run["custom"].task.pathspec, "blank", "plain"],
        [run["single"].task.pathspec, "blank", "only"],
    ]
    code, out, _ = invoke("card", "list", start, "--id", "first")
    assert code == 0 and len(out.splitlines()) == 1

    code, out, _ = invoke("card", "get", start, "--id", "first")
    assert code == 0 and out == get_cards(start, id="first")[0].html
    code, out, err = invoke("card", "get", start)
    assert code != 0 and "has 2 cards" in err and "choose one with --id" in err
    code, _, err = invoke("card", "get", start, "--id", "zzz")
    assert code != 0 and f"Task {start} has no card with id 'zzz'." in err

    target = tmp_path / "card.html"
    single_step = f"SeveralCardsFlow/{run.id}/single"
    code, out, _ = invoke("card", "view", single_step, "--output", str(target))
    assert code == 0 and str(target) in out
    assert "the only card takes appends" in target.read_text()
    code, _, err = invoke("card", "get", "nonsense")
    assert code != 0 and "Expects a step or a task" in err


# -- garbage collection -------------------------------------------------------------------------


async def test_gc_keeps_the_cards_of_kept_runs_and_deletes_those_of_deleted_ones(
    aioflow_root: Path,
) -> None:
    from aioflow.store import gc

    kept = await run_flow(SeveralCardsFlow, root=aioflow_root, quiet=True)
    gone = await run_flow(DefaultCardFlow, root=aioflow_root, quiet=True)
    store = Store(aioflow_root)
    try:
        keys = {r.run_id: r.key for r in store.metadata.cards(int(kept.id))[:1]}
        keys.update({r.run_id: r.key for r in store.metadata.cards(int(gone.id))})
        for key in keys.values():  # as if put long ago: only a reference keeps them now
            os.utime(store.blobs.path(key), (1_000_000, 1_000_000))
        gc.collect(store, [store.metadata.run("DefaultCardFlow", int(gone.id))])
        assert store.metadata.cards(int(gone.id)) == []
        assert not store.blobs.has(keys[int(gone.id)])
        assert store.blobs.has(keys[int(kept.id)])
        assert "<p>one</p>" in get_cards(kept["start"].task, id="first")[0].html
    finally:
        store.close()


# -- retries, resume, Metaflow's imports --------------------------------------------------------


class RetriedCardFlow(FlowSpec):
    @retry(times=1)
    @card(type="blank")
    @step
    def start(self) -> None:
        current.card.append(Markdown(f"attempt {current.retry_count}"))
        if current.retry_count == 0:
            raise RuntimeError("first attempt fails")
        self.next(self.end)

    @card(type="blank")
    @step
    def end(self) -> None:
        current.card.append(Markdown("end ran"))


async def test_the_latest_attempts_cards_are_read_and_a_resumed_clone_shows_its_origins(
    aioflow_root: Path,
) -> None:
    run = await run_flow(RetriedCardFlow, root=aioflow_root, quiet=True)
    (latest,) = get_cards(run["start"].task)
    assert latest.attempt == 1 and "<p>attempt 1</p>" in latest.html
    resumed = await resume_flow(
        RetriedCardFlow, root=aioflow_root, quiet=True, origin_run_id=run.id, step="end"
    )
    clone = resumed["start"].task
    assert clone.origin_pathspec == run["start"].task.pathspec
    assert get_cards(clone)[0].html == latest.html
    assert len(get_cards(clone, follow_resumed=False)) == 0
    assert "<p>end ran</p>" in get_cards(resumed["end"].task)[0].html


def test_an_unmodified_metaflow_flow_file_with_cards_runs(tmp_path: Path) -> None:
    flow = tmp_path / "mf_cards.py"
    flow.write_text(
        "from metaflow import FlowSpec, card, current, step\n"
        "from metaflow.cards import Markdown\n\n\n"
        "class MfCardFlow(FlowSpec):\n"
        "    @card(type='blank')\n"
        "    @step\n"
        "    def start(self):\n"
        "        current.card.append(Markdown('from metaflow'))\n"
        "        self.next(self.end)\n\n"
        "    @step\n"
        "    def end(self):\n"
        "        pass\n"
    )
    root = tmp_path / "store"
    done = subprocess.run(
        [sys.executable, "-m", "aioflow", "run", "--metaflow-imports", str(flow), "--quiet"],
        cwd=tmp_path,
        env={**os.environ, "AIOFLOW_ROOT": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (page,) = get_cards("MfCardFlow/1/start/1", root=root)
    assert "<p>from metaflow</p>" in page.html


class ForeachShapeFlow(FlowSpec):
    @step
    def start(self) -> None:
        self.items = [1, 2]
        self.next(self.each, foreach="items")

    @step
    def each(self) -> None:
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


def test_the_dag_draws_every_step_in_rows_and_labels_foreach_edges() -> None:
    from aioflow.card_default import dag_svg
    from aioflow.graph import FlowGraph

    svg = dag_svg(FlowGraph(ForeachShapeFlow), "each")
    assert svg.count("<rect") == 4 and svg.count("<line") == 3
    assert ">foreach items</text>" in svg
    assert 'class="af-step af-current" data-step="each"' in svg
    rows = {
        step: float(y)
        for step, y in re.findall(
            r'data-step="(\w+)"><title>[^<]*</title><rect x="[\d.]+" y="([\d.]+)"', svg
        )
    }
    assert rows["start"] < rows["each"] < rows["join"] < rows["end"]
