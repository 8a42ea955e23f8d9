"""How to run a flow: one `RunConfig`, built and checked in one place, `run_config`.

`run_flow`, `start_flow`, `resume_flow`, `run_flow_sync` and the CLI's `run` and `resume` all
build their configuration with `run_config`, so every option has one default (defined here)
and one check, whose messages name the option as its user spelled it: the command line's option
(`Invalid value for '--max-workers': 0 is not in the range x>=1.`) or the keyword argument of
`run_flow` (`Invalid value for keyword argument 'max_workers': ...`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ..decorators import EXECUTORS
from ..exceptions import ParameterError
from ..store import Store

if TYPE_CHECKING:
    from ..events import Listener

#: How many tasks run at once, unless told otherwise (`--max-workers`).
DEFAULT_MAX_WORKERS = 16
#: How many splits a foreach may create, unless told otherwise (`--max-num-splits`).
DEFAULT_MAX_NUM_SPLITS = 100
#: How the split limit is named to the user: as a command-line option, or a keyword argument.
SPLITS_OPTION = "--max-num-splits"
SPLITS_KEYWORD = "the keyword argument max_num_splits="
#: Where sync steps run unless a step says otherwise (`--executor`): one of EXECUTORS.
DEFAULT_EXECUTOR = "thread"

#: The longest a tag may be, in characters.
MAX_TAG_LENGTH = 500
#: The most user tags a run may carry.
MAX_USER_TAGS = 50


class RunConfig(NamedTuple):
    """How to run: where to store, how wide, with which tags and decorators, who listens.

    Build it with `run_config`, which checks the values; `RunConfig()` is every default.
    """

    #: The store folder (None: $AIOFLOW_ROOT or ./.aioflow), or a Store to run in (such as
    #: `Store.memory()`; the caller's to keep).
    root: str | os.PathLike[str] | Store | None = None
    max_workers: int = DEFAULT_MAX_WORKERS
    max_num_splits: int = DEFAULT_MAX_NUM_SPLITS
    #: How the user raises `max_num_splits`, in the words of the front end that started the
    #: run, for the message of a foreach over the limit.
    max_num_splits_name: str = SPLITS_KEYWORD
    #: User tags of the run (`--tag`).
    tags: tuple[str, ...] = ()
    #: Where sync steps run by default: "thread" or "process".
    executor: str = DEFAULT_EXECUTOR
    #: Decorators added to every step (`--with`), such as "retry:times=2".
    with_decorators: tuple[str, ...] = ()
    #: Print nothing: the front end adds no console listener.
    quiet: bool = False
    #: Called with every event of the run, on the event loop.
    listeners: tuple[Listener, ...] = ()
    #: A file the CLI writes the run id to as soon as the run is stored (`--run-id-file`).
    run_id_file: str | None = None
    #: For a resume: the run it resumes, and the step it re-runs from (None: what failed).
    origin_run_id: str | None = None
    resume_step: str | None = None
    #: Config values of the run by config name: files (`--config NAME FILE`) and values
    #: (`--config-value NAME JSON`, or a dict), as (name, given) pairs.
    config_files: tuple[tuple[str, str], ...] = ()
    config_values: tuple[tuple[str, Any], ...] = ()
    #: The @project branch (`--branch`) and whether the run is production (`--production`).
    branch: str | None = None
    production: bool = False
    #: The Dask scheduler "dask" steps run on (`--dask-address`; None: $AIOFLOW_DASK_ADDRESS,
    #: else a LocalCluster for the run), or a `distributed.Client(asynchronous=True)` the caller
    #: keeps open (`run_flow(dask_client=...)`), which wins over an address.
    dask_address: str | None = None
    dask_client: Any = None

    def listening(self, *listeners: Listener) -> RunConfig:
        """This configuration with `listeners` called too, after the ones it had."""
        return self._replace(listeners=(*self.listeners, *listeners))

    def resuming(self, origin_run_id: str, step: str | None) -> RunConfig:
        """This configuration for a resume of run `origin_run_id` from `step`."""
        return self._replace(origin_run_id=origin_run_id, resume_step=step)


def validate_tags(tags: Sequence[str]) -> list[str]:
    """User tags as given, checked: at most 50 non-empty strings of at most 500 characters."""
    checked = []
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip():
            raise ParameterError(f"Invalid tag {tag!r}: a tag must be a non-empty string.")
        if len(tag) > MAX_TAG_LENGTH:
            raise ParameterError(
                f"Invalid tag {tag[:40]!r}...: tags are at most {MAX_TAG_LENGTH} characters."
            )
        checked.append(tag)
    if len(set(checked)) > MAX_USER_TAGS:
        raise ParameterError(
            f"Too many tags: a run carries at most {MAX_USER_TAGS} user tags, "
            f"{len(set(checked))} were given."
        )
    return checked


def run_config(
    *,
    root: str | os.PathLike[str] | Store | None = None,
    max_workers: int = DEFAULT_MAX_WORKERS,
    max_num_splits: int = DEFAULT_MAX_NUM_SPLITS,
    tags: Sequence[str] = (),
    executor: str = DEFAULT_EXECUTOR,
    with_decorators: Sequence[str] = (),
    quiet: bool = False,
    listeners: Sequence[Listener] = (),
    run_id_file: str | None = None,
    config: Mapping[str, str | os.PathLike[str]] | None = None,
    config_value: Mapping[str, Any] | None = None,
    branch: str | None = None,
    production: bool = False,
    from_cli: bool = False,
    dask_address: str | None = None,
    dask_client: Any = None,
) -> RunConfig:
    """Check run options as the CLI checks its options, and build their RunConfig.

    Raises ParameterError naming the option (`--tag`, `--max-workers`, `--max-num-splits`,
    `--executor`, `--config`, `--config-value`), or with `from_cli` false the keyword argument
    (`tags`, `max_workers`, ...). The `--with` specs, config names and contents and the
    @project options are checked against the flow, by `prepare`.

    `config` maps config names to files and `config_value` to values (JSON text or a dict).
    """

    def named(option: str, keyword: str) -> str:
        return f"'{option}'" if from_cli else f"keyword argument '{keyword}'"

    config_files = _named_pairs(named("--config", "config"), config, os.fspath)
    config_values = _named_pairs(named("--config-value", "config_value"), config_value, _same)
    both = sorted({name for name, _ in config_files} & {name for name, _ in config_values})
    if both:
        given = "--config and with --config-value" if from_cli else "config= and config_value="
        raise ParameterError(f"Config '{both[0]}' is given both with {given}: give one.")
    if isinstance(tags, str):
        raise ParameterError(f"tags={tags!r}: give a list of tags, such as tags=[{tags!r}].")
    try:
        checked_tags = validate_tags(tags)
    except ParameterError as exc:
        raise ParameterError(f"Invalid value for {named('--tag', 'tags')}: {exc.message}") from None
    for option, value in (
        (named("--max-workers", "max_workers"), max_workers),
        (named("--max-num-splits", "max_num_splits"), max_num_splits),
    ):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ParameterError(f"Invalid value for {option}: {value!r} is not a valid integer.")
        if value < 1:
            raise ParameterError(f"Invalid value for {option}: {value} is not in the range x>=1.")
    if executor not in EXECUTORS:
        raise ParameterError(
            f"Invalid value for {named('--executor', 'executor')}: {executor!r} is not one of "
            f"{', '.join(EXECUTORS)}."
        )
    if run_id_file is not None and not Path(run_id_file).absolute().parent.is_dir():
        # Found before the run is stored: the run would start, then fail writing its id.
        raise ParameterError(
            f"Invalid value for {named('--run-id-file', 'run_id_file')}: the folder of "
            f"{run_id_file!r} does not exist."
        )
    return RunConfig(
        root=root,
        max_workers=max_workers,
        max_num_splits=max_num_splits,
        max_num_splits_name=SPLITS_OPTION if from_cli else SPLITS_KEYWORD,
        tags=tuple(checked_tags),
        executor=executor,
        with_decorators=tuple(with_decorators),
        quiet=quiet,
        listeners=tuple(listeners),
        run_id_file=run_id_file,
        config_files=config_files,
        config_values=config_values,
        branch=branch,
        production=bool(production),
        dask_address=_dask_address(dask_address, named("--dask-address", "dask_address")),
        dask_client=dask_client,
    )


def _dask_address(address: str | None, option: str) -> str | None:
    """A scheduler's address as given (`tcp://host:8786`, or `host:8786`), checked for shape."""
    if address is None:
        return None
    if not isinstance(address, str) or not address.strip() or " " in address.strip():
        raise ParameterError(
            f"Invalid value for {option}: {address!r} is not a Dask scheduler address "
            "(such as tcp://scheduler:8786)."
        )
    return address.strip()


def _same(value: Any) -> Any:
    return value


def _named_pairs(
    option: str, given: Mapping[str, Any] | None, convert: Callable[[Any], Any]
) -> tuple[tuple[str, Any], ...]:
    if given is None:
        return ()
    if not isinstance(given, Mapping):
        raise ParameterError(
            f"Invalid value for {option}: give a dict of config name -> value, not {given!r}."
        )
    for name in given:
        if not isinstance(name, str) or not name:
            raise ParameterError(f"Invalid value for {option}: {name!r} is not a config name.")
    return tuple((name, convert(value)) for name, value in given.items())


__all__ = [
    "DEFAULT_EXECUTOR",
    "DEFAULT_MAX_NUM_SPLITS",
    "DEFAULT_MAX_WORKERS",
    "MAX_TAG_LENGTH",
    "MAX_USER_TAGS",
    "RunConfig",
    "run_config",
    "validate_tags",
]
