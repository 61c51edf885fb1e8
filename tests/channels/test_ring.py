"""The byte ring of the cross-process transport: frames come out as they went in, across
wrap-arounds (with and without room for a wrap marker), and a full ring refuses a frame."""

from __future__ import annotations

import random
from collections import deque
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from plait._ipc.transport import Ring


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
                assert model or 16 + (size + 7) // 8 * 8 > capacity
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
        size = rnd.randrange(0, 241)  # 16 + 240 = 256: the largest frame that fits
        assert ring.push(1, b"x" * size)
        assert ring.pop() == (1, b"x" * size)
    ring.release()
