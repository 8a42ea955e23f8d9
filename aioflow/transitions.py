"""What a step's `self.next(...)` asked for, checked as Metaflow checks it.

`next_transition` reads the arguments of one `self.next()` call into a `Transition` and raises
TransitionError, in Metaflow's words, for a call that cannot be right: a second call, an
argument that is not a step, a foreach over something that is not an iterable artifact, a
switch whose condition has no case. `check_against_graph` then holds the transition against
the graph read from the flow's source: a step must go where static analysis said it would.
The runtime checks a step that returned without calling `self.next()` the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .exceptions import TransitionError

if TYPE_CHECKING:
    from .flowspec import FlowSpec, TaskState
    from .graph import StepNode

#: The foreach variable of `self.next(self.step, num_parallel=N)` (Metaflow's name): a
#: @parallel step is a foreach over its node indices, 0 to N - 1.
PARALLEL_FOREACH = "_parallel_ubf_iter"


@dataclass(slots=True)
class Transition:
    """What a step's `self.next(...)` asked for."""

    targets: tuple[str, ...]
    foreach: str | None = None
    items: list[Any] | None = None
    condition: str | None = None


def next_transition(
    flow: FlowSpec, state: TaskState, dsts: tuple[Any, ...], kwargs: dict[str, Any]
) -> Transition:
    """The transition `flow.next(*dsts, **kwargs)` asks for in the task `state` describes."""
    node = state.node
    if len(dsts) == 1 and not kwargs and state.transition is None:
        # The common `self.next(self.step)` to the one step the graph expects: every check
        # below would pass, so skip them (a task of a wide foreach feels each one).
        only = node.only_transition
        if (
            only is not None
            and getattr(getattr(dsts[0], "__func__", None), "__name__", None) == only.targets[0]
        ):
            return only
    step = node.name
    foreach = kwargs.pop("foreach", None)
    condition = kwargs.pop("condition", None)
    num_parallel = kwargs.pop("num_parallel", None)
    for kw in kwargs:
        raise TransitionError(
            f"Step *{step}* passes an unknown keyword argument '{kw}' to self.next()."
        )
    if state.transition is not None:
        raise TransitionError(
            f"Multiple self.next() calls detected in step *{step}*. Call self.next() only once."
        )
    if num_parallel is not None and (foreach is not None or condition is not None):
        raise TransitionError(
            f"Step *{step}* has an invalid self.next() transition. 'num_parallel' cannot be "
            "combined with 'foreach' or 'condition'."
        )
    if condition is not None:
        transition = _switch(flow, step, dsts, foreach, condition)
    elif len(dsts) == 1 and isinstance(dsts[0], dict):
        raise TransitionError(
            f"Step *{step}* has an invalid self.next() transition. Dictionary argument "
            "requires 'condition' parameter."
        )
    else:
        names = [_target(flow, step, dst, i) for i, dst in enumerate(dsts, 1)]
        if num_parallel is not None:
            transition = _parallel(step, names, num_parallel, state)
        elif foreach:
            items = _foreach_items(flow, step, foreach, names, state)
            transition = Transition(tuple(names), foreach=foreach, items=items)
        elif not names:
            raise TransitionError(
                f"Step *{step}* has an invalid self.next() transition. Specify at least "
                "one step function as an argument in self.next()."
            )
        else:
            transition = Transition(tuple(names))
    check_against_graph(node, transition)
    return transition


def _target(flow: FlowSpec, step: str, dst: Any, position: int) -> str:
    try:
        name: str = dst.__func__.__name__
    except AttributeError:
        raise TransitionError(
            f"In step *{step}* the {position}. argument in self.next() is not a function. "
            "Make sure all arguments in self.next() are methods of the Flow class."
        ) from None
    if not hasattr(type(flow), name):
        raise TransitionError(
            f"Step *{step}* specifies a self.next() transition to an unknown step, *{name}*."
        )
    return name


def _over_split_limit(children: str, state: TaskState) -> TransitionError:
    return TransitionError(
        f"{children} than the current maximum of {state.max_num_splits} children. You can "
        f"raise the maximum with {state.max_num_splits_name}."
    )


def _foreach_items(
    flow: FlowSpec, step: str, var: Any, names: list[str], state: TaskState
) -> list[Any]:
    if not isinstance(var, str):
        raise TransitionError(
            f"Step *{step}* has an invalid self.next() transition. The argument to "
            "'foreach' must be a string."
        )
    if len(names) != 1:
        raise TransitionError(
            f"Step *{step}* has an invalid self.next() transition. Specify exactly one "
            "target for 'foreach'."
        )
    try:
        value = getattr(flow, var)
    except Exception:
        raise TransitionError(
            f"Foreach variable *self.{var}* in step *{step}* does not exist. Check your variable."
        ) from None
    try:
        items = list(value)
    except Exception as exc:
        raise TransitionError(
            f"Foreach variable *self.{var}* in step *{step}* is not iterable. "
            f"Please check details: {exc}"
        ) from None
    if not items:
        raise TransitionError(
            f"Foreach iterator over *{var}* in step *{step}* produced zero splits. "
            "Check your variable."
        )
    if len(items) > state.max_num_splits:
        raise _over_split_limit(
            f"Foreach in step *{step}* yielded {len(items)} child steps which is more", state
        )
    return items


def _parallel(step: str, names: list[str], num_parallel: Any, state: TaskState) -> Transition:
    """`self.next(self.step, num_parallel=N)`: N tasks of one step, told apart by index."""
    invalid = f"Step *{step}* has an invalid self.next() transition. "
    if len(names) != 1:
        raise TransitionError(invalid + "Specify exactly one target for 'num_parallel'.")
    if isinstance(num_parallel, bool) or not isinstance(num_parallel, int) or num_parallel < 1:
        raise TransitionError(
            invalid + f"'num_parallel' must be a positive integer, not {num_parallel!r}."
        )
    if num_parallel > state.max_num_splits:
        raise _over_split_limit(
            f"Step *{step}* asks for {num_parallel} parallel tasks, more", state
        )
    return Transition((names[0],), foreach=PARALLEL_FOREACH, items=list(range(num_parallel)))


def _switch(
    flow: FlowSpec, step: str, dsts: tuple[Any, ...], foreach: Any, condition: Any
) -> Transition:
    invalid = f"Step *{step}* has an invalid self.next() transition. "
    if len(dsts) != 1 or not isinstance(dsts[0], dict) or not dsts[0]:
        raise TransitionError(
            invalid + "When using 'condition', the transition must be to a single, "
            "non-empty dictionary mapping condition values to step methods."
        )
    if not isinstance(condition, str):
        raise TransitionError(invalid + "The argument to 'condition' must be a string.")
    if foreach is not None:
        raise TransitionError(
            invalid + "Switch statements cannot be combined with foreach or num_parallel."
        )
    cases = dsts[0]
    try:
        value = getattr(flow, condition)
    except AttributeError:
        raise TransitionError(
            f"Condition variable *self.{condition}* in step *{step}* does not exist. "
            f"Make sure you set self.{condition} in this step."
        ) from None
    try:
        chosen = cases[value]
    except (KeyError, TypeError):
        # Metaflow raises a plain RuntimeError here; so do we.
        raise RuntimeError(
            f"Switch condition variable '{condition}' has value '{value}' which is not "
            f"in the available cases: {list(cases)}"
        ) from None
    try:
        name: str = chosen.__func__.__name__
    except AttributeError:
        raise TransitionError(
            f"Step *{step}* specifies a switch transition that is not a function. Make "
            "sure the value in the dictionary is a method of the Flow class."
        ) from None
    if not hasattr(type(flow), name):
        raise TransitionError(
            f"Step *{step}* specifies a switch transition to an unknown step, *{name}*."
        )
    return Transition((name,), condition=condition)


def check_against_graph(node: StepNode, transition: Transition) -> None:
    """The run-time transition must be the one the graph was read with (Metaflow's check)."""
    actual = list(transition.targets)
    if transition.condition is not None:
        expected = list(node.out_funcs)
        if actual[0] not in expected:
            raise TransitionError(
                f"Switch step *{node.name}* transitioned to unexpected step *{actual[0]}*. "
                f"Expected one of: {', '.join(expected)}"
            )
        return
    foreach = transition.foreach or None
    if node.type == "foreach" and node.foreach_param is None:
        # `foreach=<expression>`: the graph knows a foreach happens, not over what.
        foreach_matches = foreach is not None
    else:
        foreach_matches = foreach == node.foreach_param
    if actual != list(node.out_funcs) or not foreach_matches:
        raise TransitionError(
            f"Based on static analysis of the code, step *{node.name}* was expected to "
            f"transition to step(s) *{', '.join(node.out_funcs)}*. However, when the code "
            f"was executed, self.next() was called with *{', '.join(actual)}*. Make sure "
            "there is only one unconditional self.next() call in the end of your step. "
        )
