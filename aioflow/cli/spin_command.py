"""`python flow.py spin STEP` and `aioflow spin flow.py STEP`: one step again, in this process.

The command of a flow's group (`flow_commands.flow_group`), so both spellings are one entry, as
`run` is. The work is `runtime.spin.spin`; this module reads the options and the artifacts
file, and prints what the step did. The step's own output is not captured: it reaches the
terminal as it is printed, and `breakpoint()` stops in the step with the terminal's stdin.
"""

from __future__ import annotations

import pickle
import reprlib
import sys
import time
from pathlib import Path
from typing import Any

import click

from ..exceptions import AioflowException, ParameterError
from ..flowspec import FlowSpec
from .output import EXIT_FAILED, _echo

_SHORT = reprlib.Repr()
_SHORT.maxstring = 60
_SHORT.maxother = 60


def read_artifacts(path: str) -> dict[str, Any]:
    """The artifacts in a .json file (an object) or a pickle (a dict by name); a usage error
    naming the file for anything else."""
    import json  # (here: a run's command line needs none)

    file = Path(path)
    try:
        if file.suffix.lower() == ".json":
            values = json.loads(file.read_text(encoding="utf-8"))
        else:
            with open(file, "rb") as f:
                values = pickle.load(f)  # the user's own file, trusted as a flow file is
    except (OSError, ValueError, pickle.UnpicklingError, EOFError) as exc:
        raise click.BadParameter(f"cannot read {path}: {exc}", param_hint="--artifacts") from None
    if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
        raise click.BadParameter(
            f"{path} must hold an object of artifact names to values (a dict).",
            param_hint="--artifacts",
        )
    return values


def _report(result: Any, elapsed: float) -> None:
    outcome = result.outcome
    if outcome.error is not None:
        _echo(outcome.error.traceback.rstrip("\n"), err=True)
        _echo(f"Step {result.step} failed ({elapsed:.2f}s), spun from {result.origin}.", err=True)
        return
    _echo(f"Step {result.step} succeeded ({elapsed:.2f}s), spun from {result.origin}.", err=True)
    for name in result.changed:
        if name.startswith("_"):
            continue
        _echo(f"    {name} = {_SHORT.repr(result.value(name))}", err=True)
    transition = outcome.transition
    if transition is not None:
        where = ", ".join(transition.targets)
        if transition.foreach is not None and outcome.item_keys is not None:
            where += f" (foreach {transition.foreach}: {len(outcome.item_keys)} items)"
        _echo(f"    next: {where}", err=True)


def spin_command(flow_cls: type[FlowSpec]) -> click.Command:
    """The `spin` command of `flow_cls`'s group."""

    def callback(
        step: str,
        run_id: str | None,
        task: str | None,
        index: int | None,
        artifacts: str | None,
        persist: bool,
        root: str | None,
    ) -> None:
        from ..runtime.spin import spin

        if task is not None and index is not None:
            raise click.UsageError("Give --task or --index, not both.")
        given = read_artifacts(artifacts) if artifacts is not None else None
        started = time.perf_counter()
        try:
            result = spin(
                flow_cls, step, root=root, run_id=run_id, task_id=task, index=index,
                artifacts=given, persist=persist,
            )  # fmt: skip
        except ParameterError as exc:
            raise click.UsageError(str(exc)) from None
        except AioflowException as exc:
            _echo(f"{exc.headline}: {exc}", err=True)
            raise SystemExit(EXIT_FAILED) from None
        sys.stdout.flush()
        _report(result, time.perf_counter() - started)
        if result.run_id is not None:
            _echo(f"Stored as run {result.flow_name}/{result.run_id} (tag spin).", err=True)
        if not result.ok:
            raise SystemExit(EXIT_FAILED)

    return click.Command(
        "spin",
        callback=callback,
        params=[
            click.Argument(["step"]),
            click.Option(
                ["--run-id"],
                default=None,
                help="The past run whose task's inputs to use [default: the newest "
                "run with a task of STEP].",
            ),
            click.Option(["--task"], default=None, help="The task of STEP to spin (its id)."),
            click.Option(
                ["--index"],
                type=click.IntRange(min=0),
                default=None,
                help="The task of STEP at this foreach index.",
            ),
            click.Option(
                ["--artifacts"],
                default=None,
                metavar="FILE",
                help="Artifacts to set instead of the loaded ones: a .json object "
                "or a pickled dict.",
            ),
            click.Option(
                ["--persist"], is_flag=True, help="Store the task as a run of its own, tagged spin."
            ),
            click.Option(
                ["--root"],
                default=None,
                envvar="AIOFLOW_ROOT",
                show_envvar=True,
                show_default="./.aioflow or the nearest one above",
                help="Store folder.",
            ),
        ],
        help=(
            f"Run one step of {flow_cls.__name__} again, in this process, with the inputs a "
            "past task of it had; the step's code is the file as it is now, breakpoint() "
            "works, and nothing is stored unless --persist."
        ),
    )


__all__ = ["read_artifacts", "spin_command"]
