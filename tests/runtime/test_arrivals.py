"""`Arrivals`: a join's inputs kept in shared columns read back as the `JoinInput`s they were."""

from __future__ import annotations

import pytest

from aioflow.inputs import Frame, Inputs, JoinInput
from aioflow.runtime.arrivals import Arrivals

OUTER: Frame = (1, 2, 1, "start", "xs", "kx1")


def foreach_frame(index: int) -> Frame:
    return (5, 3, index, "split", "items", f"item{index}")


def test_arrivals_read_back_as_the_join_inputs_they_were() -> None:
    expected = [
        JoinInput.of("a", 10 + i, {"shared": "k0", "x": f"x{i}"}, (OUTER, foreach_frame(i)))
        for i in range(3)
    ]
    expected[1] = JoinInput.of("b", 11, {"only": "k9"}, (OUTER, foreach_frame(1)))  # a switch
    arrivals = Arrivals(expected[2].frames)
    names: tuple[str, ...] = ()
    for i in (2, 0, 1):  # in the order tasks finish, not their indexes'
        assert not arrivals.complete
        arrival = expected[i]
        names = arrivals.add(
            i, arrival.step, arrival.task_id, arrival.manifest, arrival.frames[-1], names
        )
    assert arrivals.complete and arrivals.arrived == 3 and len(arrivals) == 3
    assert list(arrivals) == expected
    assert arrivals[-1] == expected[2] and arrivals[1:] == expected[1:]
    with pytest.raises(IndexError):
        arrivals[3]
    assert arrivals.task_ids() == (10, 11, 12)
    assert arrivals.join_frames == (OUTER,)
    assert arrivals[0].names is arrivals[2].names  # one tuple for the inputs that match
    assert list(arrivals.steps()) == ["a", "b", "a"]


def test_a_static_split_has_no_items() -> None:
    frames: tuple[Frame, ...] = ((7, 2, 0, "fan", None, None),)
    arrivals = Arrivals(frames)
    arrivals.add(1, "right", 9, {}, (7, 2, 1, "fan", None, None), ())
    arrivals.add(0, "left", 8, {"v": "k"}, frames[-1], ())
    assert list(arrivals) == [
        JoinInput("left", 8, ("v",), ("k",), frames),
        JoinInput("right", 9, (), (), ((7, 2, 1, "fan", None, None),)),
    ]


def test_inputs_read_through_arrivals() -> None:
    arrivals = Arrivals((foreach_frame(0),))
    for i in range(3):
        arrivals.add(i, "w", 2 + i, {"v": f"k{i}"}, foreach_frame(i), ())
    loads: list[str] = []

    def load(key: str) -> object:
        loads.append(key)
        return [key]

    inputs = Inputs(arrivals, load)
    assert [view.v for view in inputs] == [["k0"], ["k1"], ["k2"]]
    assert inputs[1].v is inputs[1].v and loads == ["k0", "k1", "k2"]  # decoded once each
    assert [view.index for view in inputs] == [0, 1, 2]
    assert [view.input for view in inputs] == [["item0"], ["item1"], ["item2"]]
    assert repr(inputs[2]) == "<input from w/4>" and inputs.w is inputs[2]
