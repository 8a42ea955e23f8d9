"""`@step` and the step decorators that change how a step runs.

    @retry(times=2)
    @catch(var="error")
    @timeout(seconds=30)
    @resources(cpu=2, memory=4096)
    @environment(vars={"OMP_NUM_THREADS": "1"})
    @step(executor="process")
    def train(self): ...

Step decorators go above `@step` and attach themselves to the list `func.decorators`, where the
runtime finds them (`step_options`). `--with retry:times=2` attaches one to every step that does
not declare it (`parse_with`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple, TypeVar, overload

from .configs import ResolvedConfigs, evaluate_deferred, is_deferred
from .exceptions import FlowDefinitionError, ParameterError

F = TypeVar("F", bound=Callable[..., Any])

EXECUTORS = ("thread", "process", "dask")
#: Metaflow allows at most 6 attempts: the first, 4 retries and @catch's fallback.
MAX_RETRIES = 4


def _mark_step(func: Any, executor: str | None) -> Any:
    if not callable(func) or not hasattr(func, "__name__"):
        raise TypeError(f"@step decorates a method of a FlowSpec subclass, got {func!r}")
    if executor is not None and executor not in EXECUTORS:
        raise FlowDefinitionError(
            f"@step(executor={executor!r}) on step *{func.__name__}*: the executor is one of "
            f"{', '.join(EXECUTORS)}."
        )
    func.is_step = True
    func.name = func.__name__
    if not hasattr(func, "decorators"):
        func.decorators = []
    func.is_async = inspect.iscoroutinefunction(func)
    func.executor = executor
    return func


@overload
def step(func: F) -> F: ...


@overload
def step(*, executor: str | None = None) -> Callable[[F], F]: ...


def step(func: Any = None, *, executor: str | None = None) -> Any:
    """Mark a method of a FlowSpec subclass as a step.

    A plain `def` runs in a worker thread and an `async def` on the event loop.
    `@step(executor="process")` runs the step in the run's process pool instead: use it for
    CPU-bound Python code, which threads cannot run in parallel. `@step(executor="dask")` runs
    it on a Dask cluster (`pip install 'aioflow[dask]'`).
    """
    if func is None:
        return lambda f: _mark_step(f, executor)
    return _mark_step(func, executor)


def is_step(obj: Any) -> bool:
    """Return True when `obj` is a function marked with `@step`."""
    return callable(obj) and getattr(obj, "is_step", False) is True


class StepDecorator:
    """Base class of step decorators: `@deco`, `@deco(...)`, or `--with deco:attr=value`."""

    name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    #: True for decorators that ask for a remote compute layer (@kubernetes, @batch).
    remote: ClassVar[bool] = False

    def __init__(self, **attributes: Any) -> None:
        unknown = sorted(set(attributes) - set(self.defaults))
        if unknown:
            raise FlowDefinitionError(
                f"@{self.name} does not take {', '.join(unknown)}; it takes "
                f"{', '.join(self.defaults) or 'no arguments'}."
            )
        self.attributes = {**self.defaults, **attributes}
        # An attribute taken from a Config (`@retry(times=cfg.retries)`) has no value until a
        # run resolves its configs: the decorator is checked then, by `resolved`.
        self.given = attributes
        self.deferred = any(is_deferred(value) for value in attributes.values())
        if not self.deferred:
            self.validate()

    def validate(self) -> None:
        """Check the attributes (raise FlowDefinitionError)."""

    def resolved(self, configs: ResolvedConfigs | None) -> StepDecorator:
        """This decorator with its config-dependent attributes evaluated for one run (a new
        decorator, checked; the class's own is left as it is)."""
        if not self.deferred:
            return self
        if configs is None:
            raise FlowDefinitionError(f"{self!r} uses a Config, but the run resolved none.")
        given = {key: evaluate_deferred(value, configs) for key, value in self.given.items()}
        return type(self)(**given)

    def step_env(self) -> dict[str, str]:
        """Environment variables the decorator sets for its step's tasks (none by default)."""
        return {}

    def check_run(self) -> None:
        """Checks made when a run starts, before anything is stored (raise
        FlowDefinitionError); none by default."""

    def __call__(self, func: F) -> F:
        if not is_step(func):
            raise FlowDefinitionError(
                f"@{self.name} can be applied only to steps (functions decorated with @step): "
                f"put @step closest to the definition of {getattr(func, '__name__', func)!r}."
            )
        decos: list[StepDecorator] = func.decorators  # type: ignore[attr-defined]
        if any(d.name == self.name for d in decos):
            raise FlowDefinitionError(f"@{self.name} is applied twice to step *{func.__name__}*.")
        decos.append(self)
        return func

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.attributes.items())
        return f"@{self.name}({args})"


def _number(deco: str, attr: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise FlowDefinitionError(f"@{deco}({attr}={value!r}): {attr} must be a number.") from None
    if number < 0:
        raise FlowDefinitionError(f"@{deco}({attr}={value!r}): {attr} must not be negative.")
    return number


class RetryDecorator(StepDecorator):
    """Retry a failing task up to `times` more times; each attempt is stored and kept.

    `minutes_between_retries` is accepted for compatibility; local retries do not wait, as in
    Metaflow's local runtime.
    """

    name = "retry"
    defaults = {"times": 3, "minutes_between_retries": 2}

    def validate(self) -> None:
        """At most MAX_RETRIES retries, as in Metaflow."""
        times = _number("retry", "times", self.attributes["times"])
        if int(times) != times:
            raise FlowDefinitionError(
                f"@retry(times={self.attributes['times']!r}): times must be a whole number."
            )
        if times > MAX_RETRIES:
            raise FlowDefinitionError(
                f"The maximum number of retries is @retry(times={MAX_RETRIES})."
            )
        self.attributes["times"] = int(times)
        _number("retry", "minutes_between_retries", self.attributes["minutes_between_retries"])


class CatchDecorator(StepDecorator):
    """After retries are exhausted, store the exception in `var` and let the flow continue."""

    name = "catch"
    defaults = {"var": None, "print_exception": True}

    def validate(self) -> None:
        """`var` is an attribute name or None."""
        var = self.attributes["var"]
        if var is not None and (not isinstance(var, str) or not var.isidentifier()):
            raise FlowDefinitionError(f"@catch(var={var!r}): var must be an attribute name.")
        pe = self.attributes["print_exception"]
        if isinstance(pe, str):
            self.attributes["print_exception"] = pe.lower() not in ("false", "0", "no")


class TimeoutDecorator(StepDecorator):
    """Fail a task attempt that runs longer than the given duration (retryable, catchable)."""

    name = "timeout"
    defaults = {"seconds": 0, "minutes": 0, "hours": 0}

    def validate(self) -> None:
        """The total duration must be positive."""
        total = sum(
            _number("timeout", unit, self.attributes[unit]) * scale
            for unit, scale in (("seconds", 1), ("minutes", 60), ("hours", 3600))
        )
        if total <= 0:
            raise FlowDefinitionError("Specify a duration for @timeout.")
        self.seconds = total


class ResourcesDecorator(StepDecorator):
    """Reserve CPUs, memory (MB) and GPUs on this machine while a task of the step runs."""

    name = "resources"
    defaults = {"cpu": 1, "memory": 0, "gpu": 0, "disk": 0, "shared_memory": 0}

    def validate(self) -> None:
        """Amounts are non-negative numbers."""
        for attr in ("cpu", "memory", "gpu"):
            self.attributes[attr] = _number("resources", attr, self.attributes[attr])


class EnvironmentDecorator(StepDecorator):
    """Set environment variables for the step; the step then runs in a worker process."""

    name = "environment"
    defaults: ClassVar[dict[str, Any]] = {"vars": {}}

    def validate(self) -> None:
        """`vars` maps names to strings."""
        env = self.attributes["vars"]
        if not isinstance(env, dict) or not all(isinstance(k, str) for k in env):
            raise FlowDefinitionError("@environment(vars=...) takes a dict of name -> value.")
        self.attributes["vars"] = {k: str(v) for k, v in env.items()}


class ParallelDecorator(StepDecorator):
    """Mark the step a `self.next(self.step, num_parallel=N)` fans out to: N tasks of it run
    at once, each told its place by `current.parallel`; node 0 is the control task."""

    name = "parallel"


DECORATORS: dict[str, type[StepDecorator]] = {
    cls.name: cls
    for cls in (
        RetryDecorator,
        CatchDecorator,
        TimeoutDecorator,
        ResourcesDecorator,
        EnvironmentDecorator,
    )
}


def register(cls: type[StepDecorator]) -> type[StepDecorator]:
    """Make a step decorator defined in another module known to `--with` (returns `cls`)."""
    DECORATORS[cls.name] = cls
    return cls


def step_decorator(cls: type[StepDecorator]) -> Callable[..., Any]:
    """The user-facing `@name(...)` of a step decorator class (bare `@name` too)."""
    return _decorator(cls)


def _decorator(cls: type[StepDecorator]) -> Callable[..., Any]:
    def make(func: Any = None, **attributes: Any) -> Any:
        if func is not None and callable(func) and not attributes:
            return cls()(func)  # bare `@retry`
        if func is not None:
            raise TypeError(f"@{cls.name} takes keyword arguments only")
        return cls(**attributes)

    make.__name__ = cls.name
    make.__doc__ = cls.__doc__
    return make


retry = _decorator(RetryDecorator)
catch = _decorator(CatchDecorator)
timeout = _decorator(TimeoutDecorator)
resources = _decorator(ResourcesDecorator)
environment = _decorator(EnvironmentDecorator)
parallel = _decorator(ParallelDecorator)


class FlowDecorator:
    """Base class of flow decorators (`@project(name=...)` above the class): each one records
    itself on the class, where `flow_decorators` finds it. They cannot be given with --with."""

    name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **attributes: Any) -> None:
        unknown = sorted(set(attributes) - set(self.defaults))
        if unknown:
            raise FlowDefinitionError(
                f"@{self.name} does not take {', '.join(unknown)}; it takes "
                f"{', '.join(self.defaults) or 'no arguments'}."
            )
        self.attributes = {**self.defaults, **attributes}
        self.given = attributes
        self.deferred = any(is_deferred(value) for value in attributes.values())
        if not self.deferred:
            self.validate()

    def validate(self) -> None:
        """Check the attributes (raise FlowDefinitionError)."""

    def check_run(self) -> None:
        """Checks made when a run starts, before anything is stored (raise
        FlowDefinitionError); none by default."""

    def resolved(self, configs: ResolvedConfigs | None) -> FlowDecorator:
        """This decorator with its config-dependent attributes evaluated for one run."""
        if not self.deferred:
            return self
        if configs is None:
            raise FlowDefinitionError(f"{self!r} uses a Config, but the run resolved none.")
        return type(self)(**{k: evaluate_deferred(v, configs) for k, v in self.given.items()})

    def __call__(self, cls: type) -> type:
        if not isinstance(cls, type):
            raise FlowDefinitionError(f"@{self.name} decorates a flow class, not {cls!r}.")
        own = cls.__dict__.get("_aioflow_flow_decorators")
        if own is None:
            own = {}
            cls._aioflow_flow_decorators = own  # type: ignore[attr-defined]
        if self.name in own:
            raise FlowDefinitionError(f"@{self.name} is applied twice to {cls.__name__}.")
        own[self.name] = self
        return cls

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.attributes.items())
        return f"@{self.name}({args})"


def flow_decorators(flow_cls: type) -> dict[str, FlowDecorator]:
    """The flow decorators of `flow_cls` by name, a subclass's replacing its bases'."""
    found: dict[str, FlowDecorator] = {}
    for klass in reversed(flow_cls.__mro__):
        found.update(klass.__dict__.get("_aioflow_flow_decorators", {}))
    return found


def flow_decorator(cls: type[FlowDecorator]) -> Callable[..., Any]:
    """The user-facing `@name(...)` of a flow decorator class (bare `@name` too)."""

    def make(flow_cls: Any = None, **attributes: Any) -> Any:
        if flow_cls is not None and isinstance(flow_cls, type) and not attributes:
            return cls()(flow_cls)
        if flow_cls is not None:
            raise TypeError(f"@{cls.name} takes keyword arguments only")
        return cls(**attributes)

    make.__name__ = cls.name
    make.__doc__ = cls.__doc__
    return make


class StepOptions(NamedTuple):
    """How the runtime runs one step, derived from its decorators."""

    retries: int = 0
    catch: CatchDecorator | None = None
    timeout: float | None = None
    cpu: float = 0
    memory: float = 0
    gpu: float = 0
    #: Environment variables the step's worker process sets (read-only: the default is shared).
    env: Mapping[str, str] = {}
    executor: str = "thread"
    #: The remote compute layer the step asks for (@kubernetes, @batch), or None.
    remote: str | None = None
    #: The step's @card decorators (several may have different ids), else --with card's.
    cards: tuple[StepDecorator, ...] = ()


def parse_with(specs: Sequence[str]) -> list[StepDecorator]:
    """Decorators from `--with name[:attr=value,attr=value]` specs; usage errors name the spec."""
    if specs:
        from . import card_decorator  # noqa: F401  (@card registers itself; imported lazily)

    decos = []
    for spec in specs:
        name, _, rest = spec.partition(":")
        cls = DECORATORS.get(name.strip())
        if cls is None:
            raise ParameterError(
                f"Invalid value for '--with': unknown decorator {name!r}. Valid decorators: "
                f"{', '.join(sorted(DECORATORS))}."
            )
        attributes: dict[str, Any] = {}
        for pair in filter(None, rest.split(",")):
            key, eq, value = pair.partition("=")
            if not eq or key.strip() not in cls.defaults:
                raise ParameterError(
                    f"Invalid value for '--with': {spec!r}: @{name} takes "
                    f"{', '.join(cls.defaults)} (as attr=value)."
                )
            attributes[key.strip()] = value.strip()
        try:
            decos.append(cls(**attributes))
        except FlowDefinitionError as exc:
            raise ParameterError(f"Invalid value for '--with': {spec!r}: {exc}") from None
    return decos


def _amount(decos: dict[str, StepDecorator], attr: str) -> float:
    # As in Metaflow, @kubernetes/@batch and @resources together ask for the larger amount.
    # Only what a remote decorator was given counts here: its defaults size a cluster's pod,
    # not a reservation on this machine.
    amounts = [
        _number(d.name, attr, value)
        for d in decos.values()
        for value in [d.attributes.get(attr) if d.name == "resources" else d.given.get(attr)]
        if (d.name == "resources" or d.remote) and value is not None
    ]
    return max(amounts, default=0)


def step_options(
    func: Any,
    *,
    is_async: bool,
    default_executor: str,
    extra: Sequence[StepDecorator] = (),
    configs: ResolvedConfigs | None = None,
) -> StepOptions:
    """The options of one step: its own decorators, plus `extra` (--with) it does not declare,
    with attributes taken from the run's `configs` evaluated."""
    decos = {d.name: d.resolved(configs) for d in getattr(func, "decorators", [])}
    for deco in extra:
        decos.setdefault(deco.name, deco)
    # Cards are the one decorator a step may carry several times (with different ids).
    cards = tuple(d.resolved(configs) for d in getattr(func, "decorators", []) if d.name == "card")
    if not cards:
        cards = tuple(d for d in extra if d.name == "card")
    retry_deco = decos.get("retry")
    timeout_deco = decos.get("timeout")
    env_deco = decos.get("environment")
    executor = getattr(func, "executor", None)
    env = dict(env_deco.attributes["vars"]) if env_deco else {}
    for deco in decos.values():
        deco.check_run()
        env.update(deco.step_env())
    remote = next((d.name for d in decos.values() if d.remote), None)
    if executor is None:
        executor = "loop" if is_async else default_executor
    if env and executor != "dask":
        executor = "process"  # threads share os.environ; a process has its own
    return StepOptions(
        retries=int(retry_deco.attributes["times"]) if retry_deco else 0,
        catch=decos.get("catch"),
        timeout=timeout_deco.seconds if isinstance(timeout_deco, TimeoutDecorator) else None,
        cpu=_amount(decos, "cpu"),
        memory=_amount(decos, "memory"),
        gpu=_amount(decos, "gpu"),
        env=env,
        executor=executor,
        remote=remote,
        cards=cards,
    )
