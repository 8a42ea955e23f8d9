"""The static graph of a flow: its steps (nodes) and their `self.next()` transitions (edges).

This module owns reading a FlowSpec subclass *without running it*. Each `@step` method's source is
parsed with `ast`; the last statement of its body, when it is a `self.next(...)` call, gives the
step's transition. The result is a `FlowGraph` of `StepNode`s whose attributes follow Metaflow's
`DAGNode` (step types "start", "linear", "split", "foreach", "split-switch", "join", "end";
`in_funcs`/`out_funcs`, `split_parents`, `matching_join`, ...), with line numbers that are the flow
file's real lines. Checking that the graph is well formed is the job of `aioflow.lint`.
"""

from __future__ import annotations

import ast
import functools
import inspect
import linecache
import textwrap
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from .decorators import is_step
from .exceptions import LintError
from .transitions import PARALLEL_FOREACH, Transition

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef
SPLIT_TYPES = ("split", "foreach")


def _self_attr(expr: ast.expr | None) -> str | None:
    """Return `x` when `expr` is the expression `self.x`, else None."""
    if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):
        return expr.attr if expr.value.id == "self" else None
    return None


def _case_key(key: ast.expr | None) -> tuple[bool, Any]:
    """Read one switch case key: a literal constant, or `self.<config>.<key>` (Metaflow's form)."""
    if isinstance(key, ast.Constant):
        return True, key.value
    if isinstance(key, ast.Attribute):
        config = _self_attr(key.value) if isinstance(key.value, ast.Attribute) else None
        if config is not None:
            return True, f"config:{config}.{key.attr}"
    return False, None


@functools.lru_cache(maxsize=8)
def _functions_by_start(source: str) -> dict[int, FunctionNode]:
    """The functions defined anywhere in a file's source, by their first line (the first
    decorator's, else the `def`'s); empty when the source does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return {}
    return {
        min([node.lineno, *(d.lineno for d in node.decorator_list)]): node
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    }


def _parse_source(func: Callable[..., Any], name: str) -> tuple[FunctionNode, int, str]:
    """Parse the source of a step function: its `def` node, the line offset, and its file."""
    target = inspect.unwrap(func)
    try:
        # `inspect.getsourcelines` is `findsource` and then `getblock`, whose tokenizer costs
        # milliseconds the first time (it compiles its expressions): the function is found in
        # the file's syntax tree instead, which `findsource` parses for the class anyway.
        lines, start = inspect.findsource(target)
        file = inspect.getsourcefile(target) or inspect.getfile(target)
    except (OSError, TypeError) as exc:
        raise LintError(
            f"Cannot read the source code of step *{name}* ({exc}). Steps must be defined "
            "in a file or a notebook cell so that their self.next() transitions can be read.",
            step=name,
        ) from exc
    found = _functions_by_start("".join(lines)).get(start + 1)
    if found is not None:
        return found, 0, file
    source, first = "".join(inspect.getblock(lines[start:])), start + 1
    try:
        tree, shift = ast.parse(textwrap.dedent(source)), first - 1
        body: list[ast.stmt] = tree.body
    except SyntaxError:
        # e.g. a multi-line string less indented than the def defeats dedent; nest it instead
        tree, shift = ast.parse("if 1:\n" + source), first - 2
        body = tree.body[0].body if isinstance(tree.body[0], ast.If) else []
    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return stmt, shift, file
    raise LintError(f"The source of step *{name}* is not a function definition.", step=name)


#: Types of steps whose single `self.next()` target still needs the full checks.
_FANNING = frozenset({"foreach", "split-switch"})


class StepNode:
    """One step of a flow, read statically from its source (Metaflow's `DAGNode`).

    `type` is one of "start", "linear", "split" (static branches), "foreach", "split-switch"
    (conditional), "join" or "end"; it is None when the step has no valid `self.next()`.
    `switch_cases` maps case values to step names (source order) and is None unless the step is
    a switch. Line numbers (`lineno`, `tail_next_lineno`) are lines of `file`.
    """

    def __init__(self, name: str, func: Callable[..., Any]) -> None:
        fn, shift, file = _parse_source(func, name)
        self.name = name
        self.func = func
        self.file: str = file
        self.lineno: int = fn.lineno + shift
        self.doc: str | None = inspect.cleandoc(func.__doc__) if func.__doc__ else None
        self.decorators: list[Any] = list(getattr(func, "decorators", []))
        #: True for a step decorated with @parallel (run N times by `num_parallel=N`)
        self.parallel_step: bool = any(
            getattr(d, "name", None) == "parallel" for d in self.decorators
        )
        self.is_async: bool = isinstance(fn, ast.AsyncFunctionDef)
        self.num_args: int = len(fn.args.args)
        self.is_join: bool = self.num_args == 2
        self.type: str | None = None
        self.out_funcs: list[str] = []
        self.foreach_param: str | None = None
        #: True for a step ending in `self.next(self.a, num_parallel=N)`
        self.parallel_foreach = False
        self.condition: str | None = None
        self.switch_cases: dict[Any, str] | None = None
        self.has_tail_next = False
        self.invalid_tail_next = False
        self.tail_next_lineno: int | None = None
        self._parse_tail(fn.body[-1], shift)
        if name == "end":
            self.type = "end"
        #: `Transition((step,))` for the one step `self.next(self.<step>)` may name, when every
        #: check of that call but the name itself would pass (no foreach, no switch):
        #: `next_transition`'s fast path. Made once; every task of the step that takes it
        #: shares it (nothing changes a transition without foreach items once it is made).
        self.only_transition: Transition | None = None
        # filled in by FlowGraph from the traversal starting at `start`
        self.in_funcs: list[str] = []
        self.split_parents: list[str] = []
        self.split_branches: list[str] = []
        self.matching_join: str | None = None
        self.is_inside_foreach = False

    @property
    def func_lineno(self) -> int:
        """Metaflow's name for `lineno`, the line of the step's `def`."""
        return self.lineno

    def warn(self, message: str) -> None:
        """Warn (UserWarning) at the step's code, its first line: each call warns, not once per
        process as `warnings.warn` from the same place would (each run may have its reason)."""
        code = getattr(self.func, "__code__", None)
        warnings.warn_explicit(
            message,
            UserWarning,
            filename=code.co_filename if code is not None else "<flow>",
            lineno=code.co_firstlineno if code is not None else 0,
            module=getattr(self.func, "__module__", None),
        )

    def _parse_tail(self, tail: ast.stmt, shift: int) -> None:
        """Read the transition from the last statement of the body, if it is `self.next()`.

        Valid shapes: `self.next(self.a)`, `self.next(self.a, self.b, ...)`,
        `self.next(self.a, foreach=<expression>)`, `self.next(self.a, num_parallel=<expression>)`
        (a foreach over node indices, as in Metaflow) and `self.next({case: self.a, ...},
        condition="literal")` with literal (or `self.config.key`) cases. Anything else sets
        `invalid_tail_next` and leaves `type` None.
        """
        if not (isinstance(tail, ast.Expr) and isinstance(tail.value, ast.Call)):
            return
        call = tail.value
        if _self_attr(call.func) != "next":
            return
        self.has_tail_next = True
        self.invalid_tail_next = True
        self.tail_next_lineno = tail.lineno + shift
        keywords = {kw.arg: kw.value for kw in call.keywords}
        if "condition" in keywords and len(call.args) == 1 and isinstance(call.args[0], ast.Dict):
            self._parse_switch(call.args[0], call.keywords)
            return
        targets = [_self_attr(arg) for arg in call.args]
        names = [t for t in targets if t is not None]
        if not names or len(names) != len(targets):
            return
        if not keywords:
            if len(names) > 1:
                self.type = "split"
            elif self.name == "start":
                self.type = "start"
            else:
                self.type = "join" if self.num_args > 1 else "linear"
        elif len(keywords) == 1 and len(names) == 1 and "foreach" in keywords:
            var = keywords["foreach"]
            # As in Metaflow, the variable may be any expression (`foreach=name` where `name`
            # holds the attribute's name); only a literal is known before the run.
            literal = var.value if isinstance(var, ast.Constant) else None
            self.type = "foreach"
            self.foreach_param = literal if isinstance(literal, str) else None
        elif len(keywords) == 1 and len(names) == 1 and "num_parallel" in keywords:
            self.type = "foreach"
            self.foreach_param = PARALLEL_FOREACH
            self.parallel_foreach = True
        else:
            return
        self.out_funcs = names
        self.invalid_tail_next = False

    def _parse_switch(self, mapping: ast.Dict, keywords: list[ast.keyword]) -> None:
        """Read `self.next({value: self.step, ...}, condition="attr")`."""
        if any(kw.arg != "condition" for kw in keywords):
            return
        var = keywords[0].value
        if not (isinstance(var, ast.Constant) and isinstance(var.value, str) and var.value):
            return
        cases: dict[Any, str] = {}
        for key, value in zip(mapping.keys, mapping.values, strict=True):
            ok, case = _case_key(key)
            target = _self_attr(value)
            if not ok or target is None:
                return
            cases[case] = target
        if not cases:
            return
        self.type, self.condition, self.switch_cases = "split-switch", var.value, cases
        self.out_funcs = list(dict.fromkeys(cases.values()))
        self.invalid_tail_next = False

    def successors(self) -> list[str]:
        """The steps this one transitions to, leaving out a switch case that loops to itself."""
        if self.type == "split-switch":
            return [n for n in self.out_funcs if n != self.name]
        return list(self.out_funcs)

    def __repr__(self) -> str:
        return f"<StepNode {self.name} {self.type} line {self.lineno} -> {self.out_funcs}>"


class FlowGraph:
    """The graph of a flow class: `graph[name]`, `name in graph`, iteration in line order.

    Building the graph never fails on a malformed flow (only on unreadable source); call
    `lint()` to check it. `nodes` maps step names to `StepNode`s, ordered by line number.
    """

    def __init__(self, flow_cls: type) -> None:
        self.flow_cls = flow_cls
        self.name: str = flow_cls.__name__
        self.doc: str | None = inspect.cleandoc(flow_cls.__doc__) if flow_cls.__doc__ else None
        steps = ((a, inspect.getattr_static(flow_cls, a, None)) for a in dir(flow_cls))
        found = sorted(
            (StepNode(a, obj) for a, obj in steps if is_step(obj)), key=lambda n: (n.lineno, n.name)
        )
        self.nodes: dict[str, StepNode] = {n.name: n for n in found}
        self.file, self.lineno = self._locate(flow_cls)
        self._traverse()

    def _locate(self, flow_cls: type) -> tuple[str | None, int | None]:
        """The file and line of the `class` statement.

        `inspect` needs the class's module in `sys.modules`; failing that (a notebook cell, a
        file loaded by path), the class is looked up in the file of a step it defines itself.
        """
        try:
            # (`inspect.getsourcelines(flow_cls)[1]` without tokenizing the class's block)
            return inspect.getsourcefile(flow_cls), inspect.findsource(flow_cls)[1] + 1
        except (OSError, TypeError):
            pass
        nodes = list(self.nodes.values())
        own = [n for n in nodes if n.name in vars(flow_cls)] or nodes
        if not own:
            return None, None
        file, line = own[0].file, own[0].lineno
        try:
            tree = ast.parse("".join(linecache.getlines(file)))
        except SyntaxError:
            return file, None
        starts = [
            c.lineno
            for c in ast.walk(tree)
            if isinstance(c, ast.ClassDef)
            and c.name == flow_cls.__name__
            and c.lineno <= line <= (c.end_lineno or 0)
        ]
        return file, max(starts, default=None)

    def _reachable(self) -> list[str]:
        """The steps reachable from `start` (known steps only), in depth-first order."""
        seen: dict[str, None] = {}
        todo = ["start"] if "start" in self.nodes else []
        while todo:
            name = todo.pop()
            if name not in seen:
                seen[name] = None
                todo.extend(n for n in reversed(self.nodes[name].successors()) if n in self.nodes)
        return list(seen)

    def _is_acyclic(self, names: list[str]) -> bool:
        """True when no loop (other than a switch case back to its own step) joins `names`."""
        state: dict[str, int] = {}  # 1: on the current path, 2: finished
        for root in names:
            frames = [(root, iter(self.nodes[root].successors()))]
            state.setdefault(root, 1)
            while frames:
                name, children = frames[-1]
                for child in children:
                    if child not in self.nodes or state.get(child) == 2:
                        continue
                    if state.get(child) == 1:
                        return False
                    state[child] = 1
                    frames.append((child, iter(self.nodes[child].successors())))
                    break
                else:
                    frames.pop()
                    state[name] = 2
        return True

    def _traverse(self) -> None:
        """Set in_funcs, split_parents, split_branches and matching_join from `start`.

        Follows Metaflow: split parents/branches of a step are those of the *last* path (in
        depth-first order over `out_funcs`) that reaches it, and a split's matching join is the
        join that last closed it. Walking the children in reverse and keeping the first value
        found gives the same answer without enumerating every path. (On a graph with a loop,
        which never passes lint, each step is simply visited once.)
        """
        reachable = self._reachable()
        incoming: dict[str, set[str]] = {name: set() for name in self.nodes}
        for name in reachable:
            for child in self.nodes[name].successors():
                if child in self.nodes:
                    incoming[child].add(name)
        by_state = self._is_acyclic(reachable)
        placed: set[str] = set()
        joined: set[str] = set()
        done: set[object] = set()

        def place(node: StepNode, parents: tuple[str, ...], branches: tuple[str, ...]) -> None:
            if node.name not in placed:
                placed.add(node.name)
                node.split_parents, node.split_branches = list(parents), list(branches)

        Item = tuple[StepNode, tuple[str, ...], tuple[str, ...]]
        todo: list[Item] = [(self.nodes["start"], (), ())] if reachable else []
        while todo:  # pre-order; children pushed first to last, so visited last to first
            node, parents, branches = todo.pop()
            key = (node.name, parents, branches) if by_state else node.name
            if key in done:
                continue
            done.add(key)
            add_branch = node.type in SPLIT_TYPES
            if add_branch:
                place(node, parents, branches)
                parents = (*parents, node.name)
            elif node.type == "join":
                if parents:
                    if parents[-1] not in joined:
                        joined.add(parents[-1])
                        self.nodes[parents[-1]].matching_join = node.name
                    place(node, parents, branches[:-1])
                    parents, branches = parents[:-1], branches[:-1]
            else:
                place(node, parents, branches)
            for child in node.successors():
                if child in self.nodes:
                    extra = (child,) if add_branch else ()
                    todo.append((self.nodes[child], parents, (*branches, *extra)))

        for node in self.nodes.values():
            out = node.out_funcs
            if len(out) == 1 and node.foreach_param is None and node.type not in _FANNING:
                node.only_transition = Transition((out[0],))
            node.in_funcs = sorted(incoming[node.name])
            foreaches = [p for p in node.split_parents if self.nodes[p].type == "foreach"]
            node.is_inside_foreach = any(
                self.nodes[f].matching_join != node.name for f in foreaches
            )

    def __getitem__(self, name: str) -> StepNode:
        return self.nodes[name]

    def __contains__(self, name: object) -> bool:
        return name in self.nodes

    def __iter__(self) -> Iterator[StepNode]:
        return iter(list(self.nodes.values()))

    def __len__(self) -> int:
        return len(self.nodes)

    def __repr__(self) -> str:
        return f"<FlowGraph {self.name}: {', '.join(self.nodes)}>"

    def lint(self) -> None:
        """Run every check of `aioflow.lint` in Metaflow's order; raise the first `LintError`."""
        from .lint import lint

        lint(self)

    def describe(self) -> str:
        """The text `aioflow show` prints, modelled on Metaflow's `show`.

        The flow's docstring (if any), then one block per step in line order: its decorators,
        `Step <name>`, its docstring (or "?") and `=> <next steps>` (except for `end`).
        """
        blocks = [self.doc] if self.doc else []
        for node in self:
            lines = [f"@{_deco_name(deco)}" for deco in node.decorators]
            lines.append(f"Step {node.name}")
            lines.extend("    " + line for line in (node.doc or "?").splitlines())
            if node.type != "end":
                lines.append("    => " + _describe_next(node))
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks) + "\n"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description of the graph, stored with each run.

        Switch case values that are not strings are written with `json.dumps` (1 -> "1").
        """
        steps = {}
        for node in self:
            cases = None
            if node.switch_cases is not None:
                cases = {_case_str(k): v for k, v in node.switch_cases.items()}
            steps[node.name] = {
                "type": node.type,
                "line": node.lineno,
                "file": node.file,
                "doc": node.doc,
                "next": list(node.out_funcs),
                "in": list(node.in_funcs),
                "foreach": node.foreach_param,
                "condition": node.condition,
                "cases": cases,
                "matching_join": node.matching_join,
                "is_async": node.is_async,
                "decorators": [_deco_name(d) for d in node.decorators],
            }
        return {"name": self.name, "doc": self.doc, "file": self.file, "steps": steps}


def _deco_name(deco: Any) -> str:
    """The name a step decorator is shown with."""
    return str(getattr(deco, "name", None) or type(deco).__name__)


def _case_str(value: Any) -> str:
    """A switch case value as a JSON object key."""
    if isinstance(value, str):
        return value
    import json  # (here: json is imported only by the flows that need it)

    return json.dumps(value, default=repr)


def _describe_next(node: StepNode) -> str:
    """The `=> ...` part of `describe()` for one step."""
    if node.type == "foreach":
        return f"{node.out_funcs[0]} (foreach over {node.foreach_param})"
    if node.type == "split-switch":
        return f"{' or '.join(node.out_funcs)} (switch on {node.condition})"
    return ", ".join(node.out_funcs) if node.out_funcs else "?"
