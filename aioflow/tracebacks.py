"""Exceptions formatted for users, also where the interpreter's own formatting fails.

Python 3.15's `traceback` looks behind every ModuleNotFoundError it formats for an extension
module built for another Python, by importing the parent package of the missing module's name.
When that parent cannot be imported (`import pkg.mod` with `sys.modules["pkg"] = None`, the
usual way to hide a package in a test), formatting raises a second ModuleNotFoundError instead
of returning (python/cpython#151631, open in 3.15.2). aioflow formats the errors of steps and
flow files to report them: there, such an error must be reported, not end the run with a
traceback of aioflow's own. What aioflow formats for users goes through these functions.
"""

from __future__ import annotations

import os
import traceback
from types import TracebackType

#: aioflow's own source files, whose frames `without_aioflow` leaves out.
_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def report(exc: BaseException, tb: TracebackType | None) -> traceback.TracebackException:
    """`traceback.TracebackException` of `exc` with the frames of `tb`."""
    try:
        return traceback.TracebackException(type(exc), exc, tb)
    except Exception:  # (a failure of formatting itself: see the module's doc)
        hidden = [(e, e.name) for e in _chained(exc) if isinstance(e, ModuleNotFoundError)]
        if not hidden:
            raise
    # Without their module names the errors get no hint, and nothing is imported.
    for error, _ in hidden:
        error.name = None
    try:
        return traceback.TracebackException(type(exc), exc, tb)
    finally:
        for error, name in hidden:
            error.name = name


def without_aioflow(shown: traceback.TracebackException) -> traceback.TracebackException:
    """`shown`, changed to leave out aioflow's own frames, unless no other would be left.

    A user's traceback shows their code: not the runner that called a step, `self.next()`
    raising a transition error, or the import hook that mapped a `metaflow` module.
    """
    user_frames = [frame for frame in shown.stack if not frame.filename.startswith(_PACKAGE)]
    if user_frames:
        shown.stack = traceback.StackSummary.from_list(user_frames)
    return shown


def format_exception(exc: BaseException) -> str:
    """`traceback.format_exception` of `exc` (with its own traceback), as one string."""
    return "".join(report(exc, exc.__traceback__).format())


def format_exception_only(exc: BaseException) -> str:
    """`traceback.format_exception_only` of `exc`, as one string."""
    return "".join(report(exc, None).format_exception_only())


def _chained(exc: BaseException) -> list[BaseException]:
    """`exc` and every exception chained to it (causes, contexts, a group's members)."""
    found: list[BaseException] = []
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        error = todo.pop()
        if not isinstance(error, BaseException) or id(error) in seen:
            continue
        seen.add(id(error))
        found.append(error)
        todo += [error.__cause__, error.__context__]
        members = getattr(error, "exceptions", None)  # an exception group's
        if isinstance(members, (tuple, list)):
            todo += members
    return found


__all__ = ["format_exception", "format_exception_only", "report", "without_aioflow"]
