"""A whole run: check the flow, store the run, schedule its tasks, record how it ended.

This is the one runtime behind the CLI, `run_flow`, `start_flow` and the tests. It knows nothing
of terminals: what happens is published as events to the listeners the caller passes in.

A run goes through three calls, each usable on its own:

    config = run_config(max_workers=4)              # how to run, checked (`config.py`)
    prepared = prepare(MyFlow, {"alpha": 0.5}, config)  # lint, parameters; nothing stored
    opened = await open_run(prepared, config)       # the run is stored: opened.run_id
    outcome = await opened.run()                    # tasks run; the end is recorded

`execute()` is the last two in one (the CLI and `run_flow`); `start_flow` awaits `open_run` to
hand out the run id at once and then `run()` in its own task. Blocking work (SQLite, files)
happens in worker threads, never on the event loop.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._version import __version__
from ..configs import ResolvedConfigs, resolve_configs
from ..current import current_username
from ..decorators import StepDecorator, StepOptions, flow_decorators, parse_with, step_options
from ..exceptions import FlowDefinitionError, ParameterError, StoreError, StoreFull
from ..flowspec import FlowSpec
from ..graph import FlowGraph, StepNode
from ..parameters import ParameterContext, flow_constants, flow_parameters, resolve_parameters
from ..project import ProjectDecorator, ProjectInfo, project_info
from ..store import Store, resolve_root
from ..store.keeper import StoreKeeper, store_keeper
from ..store.serde import Encoded, pack, unpack
from ..store.writer import is_full
from .artifacts import encode_artifact, store_encoded
from .config import RunConfig, validate_tags
from .executors import registry
from .graphs import linted_graph
from .lifecycle import OpenRun, RunOutcome, let_go, on_asyncio
from .offload import offload


@dataclass
class PreparedRun:
    """A flow that passed lint, with its parameters resolved; nothing stored yet."""

    flow_cls: type[FlowSpec]
    graph: FlowGraph
    values: dict[str, Any]
    constants: dict[str, Any]
    username: str
    options: dict[str, StepOptions] = field(default_factory=dict)
    #: The run's configs by attribute name (stored as artifacts, like parameters).
    configs: dict[str, Any] = field(default_factory=dict)
    #: The run's @project, if the flow has one.
    project: ProjectInfo | None = None


#: Where steps asking for a remote compute layer (@kubernetes, @batch) go when it is registered.
REMOTE_EXECUTOR = "dask"


def system_tags(username: str, project: ProjectInfo | None = None) -> list[str]:
    """Tags every run carries and no one can remove (with `project:` and `project_branch:`
    for a flow with @project)."""
    return [
        f"user:{username}",
        "runtime:dev",
        f"python_version:{platform.python_version()}",
        f"aioflow_version:{__version__}",
        *(project.system_tags() if project is not None else ()),
    ]


def prepare(
    flow_cls: type[FlowSpec],
    given: Mapping[str, Any],
    config: RunConfig | None = None,
    *,
    from_cli: bool = False,
) -> PreparedRun:
    """Lint the graph, resolve parameters and step options (`config`'s executor and `--with`
    decorators); nothing is stored.

    Raises LintError or FlowDefinitionError for the flow, ParameterError for what was given
    (parameters, `--with` specs, configs, @project options).

    The flow's configs are resolved first, once: the decorators' and parameter defaults'
    config-dependent values are evaluated against them.
    """
    config = config or RunConfig()
    graph = linted_graph(flow_cls)
    extra = parse_with(config.with_decorators)
    username = current_username()
    flow_name = flow_cls.__name__
    configs = resolve_configs(
        flow_cls,
        dict(config.config_files),
        dict(config.config_values),
        ParameterContext(flow_name, username, "", _log_to_stderr, "local"),
    )
    options = {node.name: _step_options(node, config.executor, extra, configs) for node in graph}
    flow_decos = {name: deco.resolved(configs) for name, deco in flow_decorators(flow_cls).items()}
    for deco in flow_decos.values():
        deco.check_run()
    project_deco = flow_decos.get("project")
    project = project_info(
        flow_name,
        project_deco if isinstance(project_deco, ProjectDecorator) else None,
        username=username,
        branch=config.branch,
        production=config.production,
    )
    flow_parameters(flow_cls)
    values = resolve_parameters(
        flow_cls,
        given,
        flow_name=flow_name,
        user_name=username,
        from_cli=from_cli,
        configs=configs,
    )
    constants = flow_constants(flow_cls, FlowSpec)
    options = _place_remote_steps(graph, options, _uses_dask(config))
    return PreparedRun(
        flow_cls, graph, values, constants, username, options, configs.values, project
    )


def _log_to_stderr(msg: str = "", **_: Any) -> None:
    print(msg, file=sys.stderr, flush=True)


def _uses_dask(config: RunConfig) -> bool:
    """True when the run was pointed at a Dask cluster, or runs its sync steps on Dask."""
    return bool(
        config.executor == REMOTE_EXECUTOR
        or config.dask_address
        or config.dask_client is not None
        or os.environ.get("AIOFLOW_DASK_ADDRESS")
    )


def _place_remote_steps(
    graph: FlowGraph, options: dict[str, StepOptions], remote_configured: bool
) -> dict[str, StepOptions]:
    """Steps asking for @kubernetes or @batch go to the Dask executor when the run has a Dask
    cluster (`_uses_dask`); otherwise they run here, and a warning says so, once for the run (a
    warning of its own each run, not one per process as `warnings.warn` would), pointing at the
    first such step."""
    remote = {name: opts.remote for name, opts in options.items() if opts.remote is not None}
    if not remote:
        return options
    if remote_configured and REMOTE_EXECUTOR in registry.names():
        placed = {name: options[name]._replace(executor=REMOTE_EXECUTOR) for name in remote}
        return {**options, **placed}
    steps = ", ".join(f"{name} (@{deco})" for name, deco in remote.items())
    graph[next(iter(remote))].warn(
        f"{graph.flow_cls.__name__}: no remote executor is configured, so the steps {steps} run "
        "on this machine."
    )
    return options


def prepare_resume(
    flow_cls: type[FlowSpec],
    config: RunConfig,
    *,
    origin_run_id: str | None,
    step: str | None,
) -> tuple[PreparedRun, RunConfig]:
    """Prepare a resume of `flow_cls` (the latest run, or `origin_run_id`) from `step`: the run
    takes the origin's parameters, and `config` becomes the resume's configuration.

    Raises ParameterError when there is no such run or no such step.
    """
    root = config.root
    owned = not isinstance(root, Store)  # a Store given as root stays open: it is the caller's
    store = root if isinstance(root, Store) else Store(root, create=False)
    from .resume import find_origin_run  # (here: only a resume reads an origin run)

    try:
        origin_id = find_origin_run(store, flow_cls.__name__, origin_run_id)
        given = _origin_parameters(store, flow_cls, origin_id, latest=origin_run_id is None)
    finally:
        if owned:
            store.close()
    prepared = prepare(flow_cls, given, config)
    if step is not None and step not in prepared.graph:
        steps = ", ".join(node.name for node in prepared.graph)
        raise ParameterError(
            f"Cannot resume from step {step!r}: {flow_cls.__name__} has no such step. "
            f"Its steps are: {steps}."
        )
    return prepared, config.resuming(origin_id, step)


def _origin_parameters(
    store: Store, flow_cls: type[FlowSpec], origin_id: str, *, latest: bool
) -> dict[str, Any]:
    """The parameter values the origin run was given, by parameter name.

    Raises ParameterError naming the run when one cannot be read (a run killed as it started,
    before this version stored a run's parameters ahead of its row, or a damaged store).
    """
    packed = store.metadata.run_params(int(origin_id))
    params = unpack(packed) if packed else {}
    given = {}
    for attr, parameter in flow_parameters(flow_cls):
        if attr not in params:
            continue
        try:
            given[parameter.name] = store.load(params[attr], artifact=attr)
        except (StoreError, KeyError):
            which = f"the latest run of {flow_cls.__name__}" if latest else "run"
            raise ParameterError(
                f"Cannot resume {which} {flow_cls.__name__}/{origin_id}: the value of its "
                f"parameter {parameter.name!r} is not in the store {store.location}"
                + (" (pick another run with --origin-run-id)." if latest else ".")
            ) from None
    return given


def _step_options(
    node: StepNode, executor: str, extra: list[StepDecorator], configs: ResolvedConfigs
) -> StepOptions:
    try:
        options = step_options(
            node.func,
            is_async=node.is_async,
            default_executor=executor,
            extra=extra,
            configs=configs,
        )
    except FlowDefinitionError as exc:
        raise FlowDefinitionError(f"Step *{node.name}*: {exc}") from None
    if options.catch is not None and node.type in ("foreach", "split-switch"):
        kind = "foreach split" if node.type == "foreach" else "conditional switch"
        raise FlowDefinitionError(
            f"@catch is defined for the step *{node.name}* but @catch is not supported in "
            f"{kind} steps."
        )
    return options


def _base_manifest(
    prepared: PreparedRun, small: list[tuple[str, bytes]], large: list[Encoded]
) -> dict[str, str]:
    manifest: dict[str, str] = {}
    artifacts = {
        "name": prepared.flow_cls.__name__,
        **prepared.constants,
        **prepared.configs,
        **prepared.values,
    }
    for name, value in artifacts.items():
        encoded = encode_artifact(name, value, "start")
        store_encoded(encoded, small, large.append)
        manifest[name] = encoded.key
    return manifest


async def execute(prepared: Preparing, config: RunConfig) -> RunOutcome:
    """Store a new run of a prepared flow and run it to the end (or failure/cancellation)."""
    opened = await open_run(prepared, config)
    return await opened.run()


#: A prepared run, or a function that prepares it (called in the worker thread that opens it).
Preparing = PreparedRun | Callable[[], PreparedRun]


async def open_run(prepared: Preparing, config: RunConfig) -> OpenRun:
    """Store a new run (and, for a resume, read its origin); no task starts yet.

    `prepared` may be `prepare`'s result or a function returning it: then preparing and opening
    take one trip to a worker thread instead of two. The caller must `await run()` on the
    result: that is what records how the run ended. Raises what `prepare` raises, and
    ParameterError for invalid tags, before anything is stored.
    """
    user_tags = validate_tags(config.tags)
    keeper = store_keeper() if on_asyncio() else None
    return await offload(_open_run, prepared, config, user_tags, keeper)


def _store_for(
    root: str | os.PathLike[str] | Store | None, prepared: PreparedRun, keeper: StoreKeeper | None
) -> Store:
    """The store a run goes to: the one given, or the one in the folder `root`."""
    if isinstance(root, Store):
        if root.root is None:  # worker processes open the store by its folder
            for name, step_options in prepared.options.items():
                if step_options.executor == "process":
                    raise ParameterError(
                        f"Step {name} runs in a worker process, which cannot reach a store in "
                        f"{root.location}: run it with a store folder (root=...)."
                    )
        return root
    folder = resolve_root(root)
    if keeper is not None:
        return keeper.run_store(folder)  # shared by the loop's runs in that folder
    return Store(folder, create=True)


def _open_run(
    preparing: Preparing,
    config: RunConfig,
    user_tags: list[str],
    keeper: StoreKeeper | None,
) -> OpenRun:
    prepared = preparing if isinstance(preparing, PreparedRun) else preparing()
    store = _store_for(config.root, prepared, keeper)
    try:
        small: list[tuple[str, bytes]] = []
        large: list[Encoded] = []
        base = _base_manifest(prepared, small, large)
        # The parameters' blobs are stored before the run's row, never after: a run killed
        # between the two would otherwise read as resumable and fail every resume.
        try:
            for encoded in large:
                store.blobs.put(encoded.key, encoded.chunks)
            if small:
                store.metadata.write_batch([], small, [])
        except Exception as exc:
            if not is_full(exc):
                raise
            what = f"the parameters of a new run of {prepared.flow_cls.__name__}"
            if isinstance(exc, StoreFull):  # the backend named the place and how to free it
                raise exc.storing(what) from exc
            raise StoreFull(what, location=store.location) from exc
        flow_name = prepared.flow_cls.__name__
        run_id = store.metadata.create_run(
            flow_name,
            user=prepared.username,
            tags=user_tags,
            system_tags=system_tags(prepared.username, prepared.project),
            graph=pack(prepared.graph.to_dict()),
            origin_run_id=config.origin_run_id,
            params=pack(base),
        )
        # Put again now that the run's row names them (and the run is in progress): a gc
        # between the first put and the row may have swept them (store/gc.py). Small ones
        # go again with the run's first batch (lifecycle.py).
        for encoded in large:
            store.blobs.put(encoded.key, encoded.chunks)
    except BaseException:
        let_go(store, None, keeper)
        raise
    try:
        origin = None
        if config.origin_run_id is not None:
            from .resume import Origin

            origin = Origin(
                store, flow_name, config.origin_run_id, prepared.graph, config.resume_step
            )
    except BaseException as exc:
        # The run row exists: record why it never started, so it does not read "running".
        error = {"pathspec": None, "type": type(exc).__name__, "message": str(exc),
                 "traceback": ""}  # fmt: skip
        store.metadata.write_batch(
            [], [], [(run_id, {"status": "failed", "finished_at": time.time(),
                               "error": pack(error)})]
        )  # fmt: skip
        let_go(store, run_id, keeper)
        raise
    return OpenRun(prepared, config, store, str(run_id), user_tags, base, small, origin)


__all__ = [
    "OpenRun",
    "PreparedRun",
    "RunOutcome",
    "execute",
    "open_run",
    "prepare",
    "prepare_resume",
    "system_tags",
]
