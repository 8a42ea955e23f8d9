"""Helpers for testing flows: run one in a throwaway store and get its `Run` back.

With pytest, enable the plugin once (in `conftest.py`) and use its fixtures:

    pytest_plugins = ["aioflow.testing"]

    async def test_my_flow(flow_runner):
        run = await flow_runner(MyFlow, alpha=0.5)      # a fresh store per test, quiet
        assert run["end"].task.data.result == 42

    async def test_my_flow_fails(flow_runner):
        with pytest.raises(FlowFailed) as info:
            await flow_runner(MyFlow, alpha=-1)
        assert isinstance(info.value.__cause__, ValueError)

    async def test_events(flow_runner):
        async with flow_runner.start(MyFlow) as handle:  # start_flow in the same store
            events = [event async for event in handle.events()]

Fixtures:

- `aioflow_root`: a fresh store folder for the test, also set as `$AIOFLOW_ROOT`, so client
  objects (`Flow("MyFlow")`, `Run("MyFlow/1")`) read it too.
- `flow_runner`: a `FlowRunner` on that store: `await flow_runner(MyFlow, **parameters)` is
  `run_flow(MyFlow, root=<the store>, quiet=True, **parameters)`; `.start(...)` is `start_flow`,
  `.resume(...)` is `resume_flow`, `.sync(...)` is `run_flow_sync`, `.runs` lists the runs it
  returned, `.root` is the store folder.

Async tests need an async test runner (pytest-asyncio or anyio's pytest plugin). Without pytest,
`await run_in_temp_store(MyFlow, tmp_dir, **parameters)` does the same as `flow_runner`.

One step alone, without a store (a plain `def` test is enough):

    result = run_step(MyFlow, "train", artifacts={"rows": [1, 2]})    # a linear step
    result = run_step(MyFlow, "square", input=3, index=0)             # a foreach child
    result = run_step(MyFlow, "join", inputs=[{"y": 1}, {"y": 4}])    # a join
    result.artifacts["model"], result.next, result.foreach, result.items, result.stdout

The step runs as in a run (the same task code: `self.next` checks, `merge_artifacts`, foreach
frames); the errors a run would fail the task with are raised as they are.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .api import resume_flow, run_flow, run_flow_sync, start_flow
from .client import Run
from .exceptions import ParameterError
from .flowspec import FlowSpec
from .handle import FlowHandle
from .inputs import Frame, JoinInput
from .parameters import flow_parameters
from .runtime.config import RunConfig
from .runtime.logs import install as install_log_capture
from .runtime.logs import uninstall as uninstall_log_capture
from .runtime.one_task import Overlay, changed_artifacts, run_here, task_env
from .runtime.runner import prepare
from .runtime.task import TaskSpec

try:
    import pytest
except ImportError:  # pragma: no cover - pytest is only needed for the fixtures
    pytest = None  # type: ignore[assignment]


async def run_in_temp_store(
    flow_cls: type[FlowSpec], root: str | os.PathLike[str], **kwargs: Any
) -> Run:
    """`run_flow` with the store at `root` and the console quiet unless asked otherwise."""
    kwargs.setdefault("quiet", True)
    return await run_flow(flow_cls, root=root, **kwargs)


class FlowRunner:
    """Runs flows in one store (quietly unless `quiet=False` is given); see the module doc."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.runs: list[Run] = []

    def _options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs.setdefault("quiet", True)
        kwargs.setdefault("root", self.root)
        return kwargs

    async def __call__(self, flow_cls: type[FlowSpec], **kwargs: Any) -> Run:
        """`run_flow(flow_cls, **kwargs)` in this store; returns the Run or raises FlowFailed."""
        run = await run_flow(flow_cls, **self._options(kwargs))
        self.runs.append(run)
        return run

    def start(self, flow_cls: type[FlowSpec], **kwargs: Any) -> FlowHandle:
        """`start_flow(flow_cls, **kwargs)` in this store, for `async with`."""
        return start_flow(flow_cls, **self._options(kwargs))

    async def resume(self, flow_cls: type[FlowSpec], **kwargs: Any) -> Run:
        """`resume_flow(flow_cls, **kwargs)` in this store."""
        run = await resume_flow(flow_cls, **self._options(kwargs))
        self.runs.append(run)
        return run

    def sync(self, flow_cls: type[FlowSpec], **kwargs: Any) -> Run:
        """`run_flow_sync(flow_cls, **kwargs)` in this store (for plain `def` tests)."""
        run = run_flow_sync(flow_cls, **self._options(kwargs))
        self.runs.append(run)
        return run

    def __repr__(self) -> str:
        return f"<FlowRunner {self.root} ({len(self.runs)} runs)>"


_NO_INPUT: Any = object()


@dataclass
class StepResult:
    """What one step did (`run_step`): what it set and where it goes next."""

    #: the artifacts the step set or changed, by name (inherited ones unchanged are left out)
    artifacts: dict[str, Any]
    #: every artifact after the step: the inherited ones too
    data: dict[str, Any]
    #: the steps `self.next(...)` named (the chosen one for a switch); () for `end`
    next: tuple[str, ...]
    #: the foreach variable, when the step is a foreach split
    foreach: str | None = None
    #: the foreach items, one per task the split would start
    items: list[Any] | None = None
    #: the switch's condition variable, when the step is a conditional switch
    condition: str | None = None
    #: what the step printed, line by line
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)


def _starting_state(
    flow_cls: type[FlowSpec], artifacts: Mapping[str, Any], overlay: Overlay
) -> tuple[Any, dict[str, str], tuple[str, ...], frozenset[str]]:
    """The graph, the run's base manifest (name, parameters, constants, configs), the parameter
    names and the read-only names, as `prepare` makes them for a run; parameters given in
    `artifacts` (by attribute name) are checked as a run checks them."""
    given = {p.name: artifacts[attr] for attr, p in flow_parameters(flow_cls) if attr in artifacts}
    prepared = prepare(flow_cls, given, RunConfig())
    base_values = {
        "name": flow_cls.__name__,
        **prepared.constants,
        **prepared.configs,
        **prepared.values,
    }
    base = overlay.encode(base_values, "start")
    readonly = frozenset([*prepared.values, *prepared.constants, *prepared.configs])
    return prepared.graph, base, tuple(prepared.values), readonly


def _foreach_frame(graph: Any, step: str, index: int, key: str | None) -> Frame:
    """The innermost foreach frame of a task of `step` at `index` (its split is its parent)."""
    node = graph[step]
    split = node.in_funcs[0] if node.in_funcs else step
    var = graph[split].foreach_param if split in graph else None
    return (0, index + 1, index, split, var or "items", key)


def run_step(
    flow_cls: type[FlowSpec],
    step: str,
    *,
    artifacts: Mapping[str, Any] | None = None,
    input: Any = _NO_INPUT,  # Metaflow's name: `self.input`
    index: int | None = None,
    inputs: Sequence[Mapping[str, Any]] | None = None,
) -> StepResult:
    """Run one step's body with the given state, in memory, and return what it did.

    `artifacts` are what the task starts with (for a join: what `self` reads besides the
    inputs, such as parameters); parameters not given take their defaults, checked as a run
    checks them. `input` and `index` make the task a foreach child (`self.input`,
    `self.index`); `inputs` are the artifacts of each task arriving at a join, in order (for
    a static split, one per branch, in the order the split names them). Errors the task would
    fail with in a run (the step's own, `MergeArtifactsException`, a bad `self.next`) are
    raised as they are.
    """
    artifacts = dict(artifacts or {})
    overlay = Overlay(None)
    graph, base, parameter_names, readonly = _starting_state(flow_cls, artifacts, overlay)
    if step not in graph:
        steps = ", ".join(node.name for node in graph)
        raise ParameterError(f"{flow_cls.__name__} has no step {step!r}. Its steps are: {steps}.")
    node = graph[step]
    frames: tuple[Frame, ...] = ()
    if input is not _NO_INPUT or index is not None:
        key = None if input is _NO_INPUT else overlay.encode({"input": input}, step)["input"]
        frame = _foreach_frame(graph, step, index or 0, key)
        frames = (frame,)
        var = frame[4] or "items"
        if var not in artifacts and var not in base:
            # A foreach child reads its item "from" the split's variable, which it inherits
            # (as Metaflow does): one holding the item at its index stands in for it.
            items = [None] * frame[1]
            items[frame[2]] = None if input is _NO_INPUT else input
            artifacts[var] = items
    own = overlay.encode(artifacts, step)
    spec = TaskSpec(1, step, frames, (), {**base, **own})
    if node.is_join:
        if inputs is None:
            raise ParameterError(f"Step {step} is a join: give its inputs (inputs=[{{...}}, ...]).")
        base = {**base, **own}
        joined: list[JoinInput] = []
        branches = node.in_funcs
        for i, values in enumerate(inputs):
            from_step = branches[i] if len(branches) == len(inputs) else branches[0]
            up_frames: tuple[Frame, ...] = ()
            if len(branches) == 1 and graph[from_step].is_inside_foreach:
                up_frames = (_foreach_frame(graph, from_step, i, None),)
            manifest = {**base, **overlay.encode(values, from_step)}
            joined.append(JoinInput.of(from_step, i + 2, manifest, up_frames))
        spec.inputs = joined
    env = task_env(
        flow_cls, graph, overlay, run_id="0", username="test", base=base,
        parameter_names=parameter_names, readonly=readonly,
    )  # fmt: skip
    before = dict(env.starting_manifest(spec))
    install_log_capture()  # what the step prints is its own, as in a run
    try:
        outcome = run_here(env, spec)
    finally:
        uninstall_log_capture()
    overlay.add(outcome.small)
    if outcome.error is not None:
        raise outcome.error.exception
    transition = outcome.transition
    log = outcome.log
    return StepResult(
        artifacts={
            n: overlay.load(outcome.manifest[n]) for n in changed_artifacts(outcome, before)
        },
        data={n: overlay.load(k) for n, k in outcome.manifest.items()},
        next=transition.targets if transition is not None else (),
        foreach=transition.foreach if transition is not None else None,
        items=[overlay.load(k) for k in outcome.item_keys]
        if outcome.item_keys is not None
        else None,
        condition=node.condition,
        stdout=[line for _, line in log.stdout] if log is not None else [],
        stderr=[line for _, line in log.stderr] if log is not None else [],
    )


if pytest is not None:

    @pytest.fixture
    def aioflow_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
        """A fresh store folder for one test, also set as $AIOFLOW_ROOT."""
        root = tmp_path / "aioflow-store"
        monkeypatch.setenv("AIOFLOW_ROOT", str(root))
        yield root

    @pytest.fixture
    def flow_runner(aioflow_root: Path) -> FlowRunner:
        """Runs flows in the test's own store: `run = await flow_runner(MyFlow, alpha=0.5)`."""
        return FlowRunner(aioflow_root)


__all__ = ["FlowRunner", "StepResult", "run_in_temp_store", "run_step"]
