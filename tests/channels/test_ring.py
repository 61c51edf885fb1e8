"""The byte ring of the cross-process transport: frames come out as they went in, across
wrap-arounds (with and without room for a wrap marker), and a full ring refuses a frame.
The store of LIFO and priority queues gives frames back in its order."""

from __future__ import annotations

import pickle
import random
from collections import deque
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plait._ipc.ordered import LIFO, PRIORITY, Store
from plait._ipc.transport import INT, INT_MAX, INT_MIN, Ring, decode, int_frame


def _ring(capacity: int) -> Ring:
    segment: Any = SimpleNamespace(buf=memoryview(bytearray(Ring.size_for(capacity))))
    return Ring(segment)


@settings(max_examples=200, deadline=None)
@given(
    capacity=st.sampled_from([64, 72, 120, 256]),
    ops=st.lists(st.tuples(st.booleans(), st.integers(0, 60)), max_size=200),
)
def test_frames_come_out_in_order(capacity: int, ops: list[tuple[bool, int]]) -> None:
    ring = _ring(capacity)
    model: deque[tuple[int, bytes]] = deque()
    for i, (push, size) in enumerate(ops):
        if push or not model:
            payload = bytes([i % 251]) * size
            if ring.push(i % 4, payload):
                model.append((i % 4, payload))
            else:  # refused only when it cannot fit now: an empty ring takes what fits at all
                assert model or 8 + (size + 7) // 8 * 8 > capacity
        else:
            assert ring.pop() == model.popleft()
        assert ring.hdr[Ring.COUNT] == len(model)
    while model:
        assert ring.pop() == model.popleft()
    assert ring.hdr[Ring.COUNT] == 0
    ring.release()


def test_an_empty_ring_takes_any_frame_that_fits() -> None:
    rnd = random.Random(4)
    ring = _ring(256)
    for _ in range(2000):
        size = rnd.randrange(0, 249)  # 8 + 248 = 256: the largest frame that fits
        assert ring.push(1, b"x" * size)
        assert ring.pop() == (1, b"x" * size)
    ring.release()


def test_ints_travel_as_their_own_frame() -> None:
    ring = _ring(64)
    values = [0, -1, 7, INT_MIN, INT_MAX]
    for v in values * 3:  # through wrap-arounds
        assert ring.push(INT, int_frame(v))
        kind, payload = ring.pop()
        assert kind == INT and decode(kind, payload) == v
    ring.release()


# -- the store of LIFO and priority queues ------------------------------------------------


def _store(capacity: int, slots: int, order: int) -> Store:
    segment: Any = SimpleNamespace(buf=memoryview(bytearray(Store.size_for(capacity, slots))))
    return Store(segment, order, slots)


@settings(max_examples=200, deadline=None)
@given(
    order=st.sampled_from([LIFO, PRIORITY]),
    capacity=st.sampled_from([64, 120, 256, 512]),
    slots=st.sampled_from([2, 5, 64]),
    ops=st.lists(st.tuples(st.booleans(), st.integers(0, 40), st.integers(0, 9)), max_size=200),
)
def test_store_gives_frames_back_in_its_order(
    order: int, capacity: int, slots: int, ops: list[tuple[bool, int, int]]
) -> None:
    """LIFO: the newest first; priority: the lowest item first -- through holes and
    compactions; a push is refused only when the bytes or the slots are used up."""
    store = _store(capacity, slots, order)
    model: list[tuple[tuple[int, int, bytes], bytes]] = []  # (item, payload)
    for seq, (push, size, key) in enumerate(ops):
        if push or not model:
            item = (key, seq, b"x" * size)
            payload = pickle.dumps(item)  # what a priority store compares, unpickled
            live = sum((len(p) + 7) // 8 * 8 for _i, p in model)
            fits = len(model) < slots and live + (len(payload) + 7) // 8 * 8 <= capacity
            assert store.push(0, payload, item) == fits
            if fits:
                model.append((item, payload))
        else:
            if order == LIFO:
                _item, payload = model.pop()
            else:
                best = min(model)
                model.remove(best)
                _item, payload = best
            assert store.pop() == (0, payload)
        assert store.hdr[Ring.COUNT] == len(model)
    store.release()


def test_store_refuses_an_item_it_cannot_order_without_a_change() -> None:
    store = _store(256, 8, PRIORITY)
    for item in (1, 3):
        assert store.push(0, pickle.dumps(item), item)
    before = (bytes(store.idx), store.hdr[Ring.COUNT], store.hdr[Ring.TAIL])
    with pytest.raises(TypeError, match="comparable"):
        store.push(0, pickle.dumps("three"), "three")
    assert (bytes(store.idx), store.hdr[Ring.COUNT], store.hdr[Ring.TAIL]) == before
    assert [store.pop(), store.pop()] == [(0, pickle.dumps(1)), (0, pickle.dumps(3))]
    store.release()
