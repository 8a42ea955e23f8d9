"""`@catch`: turning a task's final failure into an outcome the run can go on from."""

from __future__ import annotations

from ..decorators import CatchDecorator
from ..exceptions import ExceptionWrapper
from ..graph import StepNode
from ..store.serde import pack
from ..transitions import Transition
from .artifacts import LargeBlobSink, encode_artifact, store_encoded
from .task import TaskOutcome


def caught(
    outcome: TaskOutcome, deco: CatchDecorator, node: StepNode, put_large: LargeBlobSink
) -> TaskOutcome:
    """The failed `outcome`, caught: the exception stored in `var`, the static transition taken.

    Artifacts the step set before failing stay. As in Metaflow, the task proceeds as if it had
    called `self.next()` with its static targets, which is why @catch is refused on foreach and
    switch steps (their targets depend on values the failed step may not have set).
    """
    assert outcome.error is not None
    record = outcome.error.to_record()
    var = deco.attributes["var"]
    if var:
        wrapper = ExceptionWrapper(record["type"], record["message"], record["traceback"])
        encoded = encode_artifact(var, wrapper, node.name)
        store_encoded(encoded, outcome.small, put_large)
        outcome.manifest = {**outcome.manifest, var: encoded.key}
    if node.type != "end":
        outcome.transition = Transition(tuple(node.out_funcs))
        outcome.transition_record = pack([list(node.out_funcs), None, None])
    outcome.caught = True
    return outcome
