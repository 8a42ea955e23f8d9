"""`Arrivals`: a join's inputs kept in shared columns read back as the `JoinInput`s they were."""

from __future__ import annotations

import tracemalloc

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


def test_each_arrival_keeps_only_the_keys_it_did_not_inherit() -> None:
    # Only "x" differs between arrivals; "k1" equal to the first arrival's but another string
    # object is kept as it came, and an arrival with other names (a switch) keeps its own keys.
    shared = {"a": "ka", "b": "kb", "c": "kc"}
    manifests = [{**shared, "x": f"x{i}"} for i in range(4)]
    manifests[2]["a"] = "".join(["k", "a"])  # equal to "ka", not the same object
    manifests[3] = {"other": "ko"}
    frames: list[Frame] = [(5, 4, i, "split", "items", f"item{i}") for i in range(4)]
    arrivals = Arrivals((frames[0],))
    names: tuple[str, ...] = ()
    for i in (1, 0, 3, 2):
        names = arrivals.add(i, "w", 20 + i, manifests[i], frames[i], names)
    assert [arrival.manifest for arrival in arrivals] == manifests
    for i, manifest in enumerate(manifests):
        assert arrivals.names_at(i) == tuple(manifest)
        assert [arrivals.key_at(i, j) for j in range(len(manifest))] == list(manifest.values())


def test_children_that_set_nothing_share_their_splits_manifest() -> None:
    # A child that sets no artifact finishes with its split's manifest itself (a snapshot
    # copies it at the first change only): such arrivals are the first one's, whatever order
    # they come in, and one that set something still keeps its own key.
    split = {"a": "ka", "items": "ki"}
    changed = {**split, "a": "ka2"}
    manifests = [split, split, changed, split]
    frames: list[Frame] = [(5, 4, i, "split", "items", f"item{i}") for i in range(4)]
    arrivals = Arrivals((frames[0],))
    names: tuple[str, ...] = ()
    for i in (3, 2, 0, 1):
        names = arrivals.add(i, "w", 20 + i, manifests[i], frames[i], names)
    assert [arrival.manifest for arrival in arrivals] == manifests
    assert [arrivals.key_at(i, 0) for i in range(4)] == ["ka", "ka", "ka2", "ka"]
    assert all(arrivals.names_at(i) is arrivals.names_at(3) for i in range(4))


def test_a_wide_foreach_costs_a_few_slots_per_arrival() -> None:
    # Bytes the arrivals of 10,000 children allocate, beyond the keys the children made: each
    # child passes three keys on and sets one artifact (the keys once cost a tuple each).
    count = 10_000
    shared = {"a": "ka", "b": "kb", "c": "kc"}
    manifests = [{**shared, "x": f"x{i}"} for i in range(count)]
    frames: list[Frame] = [(5, count, i, "split", "items", f"item{i}") for i in range(count)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        arrivals = Arrivals((frames[0],))
        names: tuple[str, ...] = ()
        for i in range(count):
            names = arrivals.add(i, "w", 2 + i, manifests[i], frames[i], names)
        cost = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # 8 bytes each for the task id, step, names, item key and the key of "x"
    assert arrivals.complete and cost < 44 * count


def test_views_keep_no_keys_and_read_them_when_a_value_is_read() -> None:
    count = 10_000
    frames: list[Frame] = [(5, count, i, "split", "items", f"item{i}") for i in range(count)]
    arrivals = Arrivals((frames[0],))
    names: tuple[str, ...] = ()
    for i in range(count):
        names = arrivals.add(i, "w", 2 + i, {"v": f"k{i}", "s": "ks"}, frames[i], names)
    inputs = Inputs(arrivals, lambda key: key)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        views = list(inputs)
        cost = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # a view (3 slots: 56 bytes), its index (32) and its place in two lists: no keys
    assert cost < 100 * count
    assert [view.v for view in views[:3]] == ["k0", "k1", "k2"] and views[9].s == "ks"
