"""The flow linter: the structural checks run on a `FlowGraph` before every run.

This module owns the rules a flow's graph must follow. They are Metaflow's (2.19) checks, run in
Metaflow's order and raising `LintError` with Metaflow's wording, plus the step, file and line.
Where that wording misleads, the message says what is wrong instead: a join with no valid
`self.next()` is not called a split, a step meant to join a split but missing `inputs` is
reported at its own line rather than at `end`, and a misspelled step gets a "did you mean".
Where several steps break the same rule, the first one by name is reported, as in Metaflow
(whose graph iterates steps in `dir()` order). `@parallel` steps follow Metaflow's three rules:
`num_parallel=` leads to a @parallel step, a @parallel step is reached only that way, and it
leads to a join.

Each check is a function `check_*(graph)` registered in `CHECKS`; `lint(graph)` runs them all.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from types import CodeType
from typing import TYPE_CHECKING, NoReturn

from .exceptions import LintError

if TYPE_CHECKING:
    from .graph import FlowGraph, StepNode

Check = Callable[["FlowGraph"], None]
CHECKS: list[Check] = []
RESERVED_NAMES = frozenset({"name", "next", "input", "index", "cmd"})
_SplitStack = tuple[tuple[str, tuple[str, ...]], ...]


def check(func: Check) -> Check:
    """Register `func` as a lint check (checks run in the order they are registered)."""
    CHECKS.append(func)
    return func


def lint(graph: FlowGraph) -> None:
    """Run every check on `graph`; raise the `LintError` of the first rule it breaks."""
    for func in CHECKS:
        func(graph)


def _fail(graph: FlowGraph, msg: str, node: StepNode, line: int | None = None) -> NoReturn:
    """Raise a LintError about `node` (at its `def` line unless `line` is given)."""
    raise LintError(msg, step=node.name, file=node.file, line=line or node.lineno)


def _by_name(graph: FlowGraph) -> Iterator[StepNode]:
    """The steps in Metaflow's iteration order (alphabetical, as `dir()` lists them)."""
    for name in sorted(graph.nodes):
        yield graph[name]


@check
def check_reserved_words(graph: FlowGraph) -> None:
    """A step may not be named like a FlowSpec attribute Metaflow reserves."""
    for node in _by_name(graph):
        if node.name in RESERVED_NAMES:
            msg = f"Step name *{node.name}* is a reserved word. Choose another name for the step."
            _fail(graph, msg, node)


@check
def check_basic_steps(graph: FlowGraph) -> None:
    """The flow has a `start` and an `end` step."""
    for prefix, name in (("a", "start"), ("an", "end")):
        if name not in graph:
            raise LintError(
                f"Add {prefix} *{name}* step in your flow.",
                step=name,
                file=graph.file,
                line=graph.lineno,
            )


@check
def check_that_end_is_end(graph: FlowGraph) -> None:
    """`end` has no `self.next()` and is not a join."""
    node = graph["end"]
    if node.has_tail_next or node.invalid_tail_next:
        msg = "The *end* step should not have a step.next() transition. Just remove it."
        _fail(graph, msg, node, node.tail_next_lineno)
    if node.num_args > 1:
        msg = (
            "The *end* step should not be a join step (it gets an extra argument). "
            "Add a join step before it."
        )
        _fail(graph, msg, node)


@check
def check_step_names(graph: FlowGraph) -> None:
    """Step names use lowercase ascii letters, digits and underscores, not starting with _."""
    for node in _by_name(graph):
        if re.search("[^a-z0-9_]", node.name) or node.name.startswith("_"):
            msg = (
                f"Step *{node.name}* has an invalid name. Only lowercase ascii characters, "
                "underscores, and digits are allowed."
            )
            _fail(graph, msg, node)


@check
def check_num_args(graph: FlowGraph) -> None:
    """A step takes `self`, a join step `self, inputs`; a join cannot also split."""
    for node in _by_name(graph):
        if node.num_args > 2:
            msg = (
                f"Step {node.name} has too many arguments. Normal steps take only 'self' as an "
                "argument. Join steps take 'self' and 'inputs'."
            )
            _fail(graph, msg, node)
        elif node.num_args == 2 and node.type not in ("join", None):
            # A step with no valid self.next() has no type: the transition checks below say
            # what is wrong with it, rather than calling it a split.
            msg = (
                f"Step *{node.name}* is both a join step (it takes an extra argument) and a "
                "split step (it transitions to multiple steps). This is not allowed. Add a new "
                "step so that split and join become separate steps."
            )
            _fail(graph, msg, node)
        elif node.num_args == 0:
            _fail(graph, f"Step *{node.name}* is missing the 'self' argument.", node)


@check
def check_static_transitions(graph: FlowGraph) -> None:
    """Every step but `end` ends with a `self.next()` call."""
    for node in _by_name(graph):
        if node.type != "end" and not node.has_tail_next:
            msg = (
                f"Step *{node.name}* is missing a self.next() transition to the next step. "
                "Add a self.next() as the last line in the function."
            )
            _fail(graph, msg, node)


@check
def check_valid_transitions(graph: FlowGraph) -> None:
    """The final `self.next()` has one of the supported shapes."""
    for node in _by_name(graph):
        if node.type != "end" and node.has_tail_next and node.invalid_tail_next:
            msg = (
                f"Step *{node.name}* specifies an invalid self.next() transition. Make sure the "
                "self.next() expression matches with one of the supported transition types:\n"
                "  • Linear: self.next(self.step_name)\n"
                "  • Fan-out: self.next(self.step1, self.step2, ...)\n"
                "  • Foreach: self.next(self.step, foreach='variable')\n"
                "  • Switch: self.next({\"key\": self.step, ...}, condition='variable')\n\n"
                "For switch statements, keys must be string literals, numbers or config "
                "expressions (self.config.key_name), not variables."
            )
            _fail(graph, msg, node, node.tail_next_lineno)


@check
def check_unknown_transitions(graph: FlowGraph) -> None:
    """Every transition goes to a step of the flow."""
    for node in _by_name(graph):
        unknown = [name for name in node.out_funcs if name not in graph]
        if unknown:
            import difflib  # for this message only

            close = difflib.get_close_matches(unknown[0], sorted(graph.nodes), n=1)
            msg = (
                f"Step *{node.name}* specifies a self.next() transition to an unknown step, "
                f"*{unknown[0]}*." + (f" Did you mean *{close[0]}*?" if close else "")
            )
            _fail(graph, msg, node, node.tail_next_lineno)


@check
def check_for_acyclicity(graph: FlowGraph) -> None:
    """The graph has no loop, except a switch case that goes back to its own step.

    The loop reported is the first one a depth-first walk finds, starting from each step in
    name order, written as the walk saw it (without the step it started from), as Metaflow does.
    """
    acyclic: set[str] = set()  # steps from which no loop can be reached
    for root in _by_name(graph):
        frames = [(root, iter(root.successors()))]
        path: list[str] = []  # the steps of frames[1:]
        while frames:
            node, children = frames[-1]
            for name in children:
                if name in path:
                    msg = (
                        f"There is a loop in your flow: *{'->'.join([*path, name])}*. Break the "
                        "loop by fixing self.next() transitions."
                    )
                    _fail(graph, msg, node, node.tail_next_lineno)
                if name not in acyclic:
                    path.append(name)
                    frames.append((graph[name], iter(graph[name].successors())))
                    break
            else:
                frames.pop()
                acyclic.add(node.name)
                if frames:
                    path.pop()


@check
def check_for_orphans(graph: FlowGraph) -> None:
    """Every step can be reached from `start`."""
    seen = {"start"}
    todo = ["start"]
    while todo:
        for name in graph[todo.pop()].out_funcs:
            if name not in seen:
                seen.add(name)
                todo.append(name)
    for node in graph:
        if node.name not in seen:
            msg = (
                f"Step *{node.name}* is unreachable from the start step. Add "
                f"self.next({node.name}) in another step or remove *{node.name}*."
            )
            _fail(graph, msg, node)


def _empty_foreach_message(foreach: str, join: str) -> str:
    """Metaflow's message for a foreach followed directly by its join."""
    return (
        f"Step *{foreach}* is a foreach split that has no children: it is followed "
        f"immediately by a join step, *{join}*. Add at least one step between the split and "
        "the join."
    )


def _uses_name(code: CodeType, name: str) -> bool:
    """True when `code` (or a comprehension or function inside it) reads the global `name`."""
    return name in code.co_names or any(
        isinstance(const, CodeType) and _uses_name(const, name) for const in code.co_consts
    )


def _join_without_inputs(graph: FlowGraph, split: str, roots: tuple[str, ...]) -> StepNode | None:
    """The step after `split` that was meant to join it but does not take `inputs`, if any.

    It is one that uses `inputs` without taking it, or, for a static split, the first step
    every branch leads to. Reporting it, rather than `end`, points at the line to fix.
    """
    reached: dict[str, set[str]] = {}  # step -> the branches that lead to it, in BFS order
    for root in roots:
        todo = [root]
        while todo:
            name = todo.pop(0)
            if name not in graph or root in reached.get(name, set()):
                continue
            reached.setdefault(name, set()).add(root)
            todo.extend(graph[name].successors())
    candidates = [graph[name] for name in reached if graph[name].type not in ("end", "join")]
    candidates = [node for node in candidates if node.num_args == 1]
    for node in candidates:
        code = getattr(inspect.unwrap(node.func), "__code__", None)
        if code is not None and _uses_name(code, "inputs"):
            return node
    if len(roots) > 1:
        return next((n for n in candidates if len(reached[n.name]) == len(roots)), None)
    return None


def _join_without_inputs_message(node: StepNode, split: str, roots: tuple[str, ...]) -> str:
    return (
        f"Step *{node.name}* closes the split at step *{split}* (branches *{', '.join(roots)}*) "
        f"but does not take the 'inputs' argument a join step needs. Declare it as "
        f"def {node.name}(self, inputs)."
    )


def _resolve_branch(graph: FlowGraph, name: str, split: str, join: str) -> str:
    """The branch of `split` through which step `name` reaches `join`."""
    if name == split:  # the split goes straight to the join (a static split: see _lineage)
        return join
    branches = graph[name].split_branches
    return branches[-1] if branches else name


def _lineage(graph: FlowGraph, name: str) -> tuple[str, ...]:
    """The splits enclosing step `name` (for a join, the ones left open after it)."""
    node = graph[name]
    return tuple(node.split_parents[:-1] if node.type == "join" else node.split_parents)


@check
def check_split_join_balance(graph: FlowGraph) -> None:
    """Every split is closed by one join, reached once from each of the split's branches.

    A switch adds no split: only one of its cases runs, so its paths meet again at a step that
    is not a join, or each reach the join of an enclosing split from the same branch.

    Where Metaflow 2.19 fails on a split that goes straight to its join (an IndexError, or a
    count naming the wrong steps), this check fails at the same step with a useful message:
    the empty-foreach one for a foreach, "unrelated splits" for a static split.
    """
    done: set[tuple[str, _SplitStack]] = set()
    todo: list[tuple[StepNode, _SplitStack]] = [(graph["start"], ())]
    while todo:  # depth-first, in the order of out_funcs
        node, stack = todo.pop()
        if (node.name, stack) in done:
            continue
        done.add((node.name, stack))
        if node.type in ("split", "foreach"):
            stack = (*stack, (node.name, tuple(node.out_funcs)))
        elif node.type == "end" and stack:
            meant = _join_without_inputs(graph, *stack[-1])
            if meant is not None:
                _fail(graph, _join_without_inputs_message(meant, *stack[-1]), meant)
            open_roots = ", ".join(stack[-1][1])
            msg = (
                f"Step *end* reached before a split started at step(s) *{open_roots}* were joined. "
                "Add a join step before *end*."
            )
            _fail(graph, msg, node)
        elif node.type == "join":
            if not stack:
                msg = (
                    f"Step *{node.name}* seems like a join step (it takes an extra input "
                    "argument) but it is not preceded by a split. Ensure that there is a "
                    "matching split for every join."
                )
                _fail(graph, msg, node)
            split, roots = stack[-1]
            stack = stack[:-1]
            if split in node.in_funcs and graph[split].type == "foreach":
                _fail(graph, _empty_foreach_message(split, node.name), graph[split])
            resolved = [_resolve_branch(graph, n, split, node.name) for n in node.in_funcs]
            paths = list(dict.fromkeys(resolved))
            if len(paths) != len(roots) or set(paths) ^ set(roots):
                msg = (
                    f"Step *{node.name}* seems like a join step (it takes an extra input "
                    f"argument) but an incorrect number of steps (*{', '.join(paths)}*) lead "
                    f"to it. This join was expecting {len(roots)} incoming paths, starting "
                    f"from split step(s) *{', '.join(roots)}*."
                )
                _fail(graph, msg, node)
            if len({_lineage(graph, n) for n in node.in_funcs}) > 1:
                msg = (
                    f"Step *{node.name}* joins steps from unrelated splits. Ensure that there "
                    "is a matching join for every split."
                )
                _fail(graph, msg, node)
        todo.extend((graph[name], stack) for name in reversed(node.successors()))


@check
def check_switch_splits(graph: FlowGraph) -> None:
    """A switch names its condition and has at least two cases."""
    for node in _by_name(graph):
        if node.type != "split-switch":
            continue
        cases = node.switch_cases or {}
        if len(cases) < 2:
            msg = (
                f"Step *{node.name}* is a switch split but defines {len(cases)} transitions. "
                "Switch splits must define at least 2 transitions."
            )
            _fail(graph, msg, node)
        if not node.condition:
            msg = f"Step *{node.name}* is a switch split but has no condition variable."
            _fail(graph, msg, node)


@check
def check_empty_foreaches(graph: FlowGraph) -> None:
    """A foreach is not followed directly by a join."""
    for node in _by_name(graph):
        if node.type == "foreach":
            joins = [n for n in node.out_funcs if graph[n].type == "join"]
            if joins:
                _fail(graph, _empty_foreach_message(node.name, joins[0]), node)


@check
def check_ambiguous_joins(graph: FlowGraph) -> None:
    """No switch case goes directly to a join step."""
    for node in _by_name(graph):
        if node.type != "join":
            continue
        switches = [n for n in node.in_funcs if graph[n].type == "split-switch"]
        if switches:
            parents = ", ".join(f"*{n}*" for n in switches)
            msg = (
                "A conditional path cannot lead directly to a join step.\n"
                f"In your conditional step(s) {parents}, one or more of the possible paths "
                f"transition directly to the join step *{node.name}*.\n"
                "As a workaround, please introduce an intermediate, unconditional step on that "
                "specific path before joining."
            )
            _fail(graph, msg, node)


@check
def check_parallel_targets(graph: FlowGraph) -> None:
    """`self.next(self.x, num_parallel=N)` leads to a step decorated with @parallel."""
    for node in _by_name(graph):
        if node.parallel_foreach:
            for name in node.out_funcs:
                if name in graph and not graph[name].parallel_step:
                    msg = (
                        f"Step *{node.name}* calls self.next(self.{name}, num_parallel=...), "
                        f"but step *{name}* has no @parallel decorator. Add @parallel to it."
                    )
                    _fail(graph, msg, node, node.tail_next_lineno)


@check
def check_parallel_steps_are_reached_by_num_parallel(graph: FlowGraph) -> None:
    """A @parallel step is reached only through `num_parallel=`."""
    for node in _by_name(graph):
        if not node.parallel_step:
            continue
        for parent in node.in_funcs:
            if not graph[parent].parallel_foreach:
                msg = (
                    f"Step *{node.name}* has a @parallel decorator, but step *{parent}* calls "
                    f"it without num_parallel. Use self.next(self.{node.name}, num_parallel=N)."
                )
                _fail(graph, msg, graph[parent], graph[parent].tail_next_lineno)


@check
def check_parallel_steps_lead_to_a_join(graph: FlowGraph) -> None:
    """The step after a @parallel step is a join, which receives the N tasks as `inputs`."""
    for node in _by_name(graph):
        if node.parallel_step and node.out_funcs and graph[node.out_funcs[0]].type != "join":
            msg = (
                f"A @parallel step must be followed by a join step. Step *{node.out_funcs[0]}* "
                f"follows the @parallel step *{node.name}* but is not a join: add an `inputs` "
                "argument to it."
            )
            _fail(graph, msg, node, node.tail_next_lineno)
