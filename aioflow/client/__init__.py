"""The client API: read runs, steps, tasks and artifacts back from a store, as Metaflow's does.

`Flow("MyFlow").latest_run["end"].task.data.x`: each object is named by a pathspec
(`Flow/run_id/step/task_id[/artifact]`), reads only the store, and sees what any process stored,
including runs still in progress. Objects created from a parent share its store connection; the
store is the one `set_root` chose, else `$AIOFLOW_ROOT`, else the nearest `.aioflow` in the working
folder or its parents (`root=` on any object names another), opened once per process and folder.

Errors: a malformed pathspec raises InvalidPathspec (`Expects Run('FlowName/RunID')`), a missing
object MetaflowNotFound (`Run('F/9') does not exist`; a KeyError, so `obj[child]` raises
KeyError), an object outside the current namespace (see `namespaces.py`)
MetaflowNamespaceMismatch, and a store folder that does not exist StoreError naming it.

One module per level of the tree: `base.py` (pathspecs, errors, the shared store, the
MetaflowObject base), `flows.py` (Metaflow, Flow), `runs.py` (Run, Step), `tasks.py` (Task,
`tasks_at`) and `artifacts.py` (a task's data and artifacts views, DataArtifact), plus
`namespaces.py` (which runs are visible) and `tags.py` (tag rules and mutations). The levels'
modules import downward only, flows -> runs -> tasks -> artifacts -> base; upward (a Task's
Run) they look the class up in base. This package is the one place to import them from.
"""

from __future__ import annotations

from .artifacts import DataArtifact, MetaflowArtifacts, MetaflowData
from .base import MetaflowObject, set_root, shared_store
from .flows import Flow, Metaflow
from .metadata_provider import default_metadata, get_metadata, metadata
from .namespaces import default_namespace, get_namespace, namespace
from .runs import Run, Step
from .tasks import MAX_ATTEMPTS as MAX_ATTEMPTS
from .tasks import Task, tasks_at

__all__ = [
    "DataArtifact",
    "Flow",
    "Metaflow",
    "MetaflowArtifacts",
    "MetaflowData",
    "MetaflowObject",
    "Run",
    "Step",
    "Task",
    "default_metadata",
    "default_namespace",
    "get_metadata",
    "get_namespace",
    "metadata",
    "namespace",
    "set_root",
    "shared_store",
    "tasks_at",
]
