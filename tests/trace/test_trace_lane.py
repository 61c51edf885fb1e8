"""The C queue's coroutine fast paths stay on under a trace and write into the recorder's
lane (Instrument.lane): every put/get is recorded, by the right strand, with the ring's
bound and its count of dropped events intact."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import plait
from plait._channels._queue_speedups import SPEEDUPS
from plait._core.instruments import hooks
from plait.trace.recorder import RECEIVE, SEND, Recorder


def _stream(n: int, maxsize: int = 0) -> dict[str, int]:
    """A producer -> consumer coroutine stream of ``n`` items; the two strands' ids."""
    sids: dict[str, int] = {}

    async def main() -> None:
        q: plait.Queue[int] = plait.Queue(maxsize)

        async def produce() -> None:
            sids["producer"] = plait.current_strand().sid
            for i in range(n):
                await q.async_put(i)

        async def consume() -> None:
            sids["consumer"] = plait.current_strand().sid
            for _ in range(n):
                await q.async_get()

        await asyncio.gather(consume(), produce())

    asyncio.run(main())
    return sids


def _counting(recorder: Recorder) -> dict[str, int]:
    """Count the recorder's Python sent/received hook calls (the lane bypasses them)."""
    calls = {"sent": 0, "received": 0}
    for name in calls:
        hook = getattr(recorder, name)

        def counted(*args: Any, _hook: Any = hook, _name: str = name) -> None:
            calls[_name] += 1
            _hook(*args)

        setattr(recorder, name, counted)
    return calls


def test_a_traced_coroutine_stream_records_every_put_and_get_by_its_strand(
    tmp_path: Path,
) -> None:
    recorder = Recorder(str(tmp_path), t0_ns=0, capacity=10_000)  # no flusher: read by hand
    calls = _counting(recorder)
    plait.add_instrument(recorder)
    try:
        assert hooks.lane is recorder.lane
        python_calls = []
        for maxsize in (0, 4):
            recorder._ring.clear()
            before = dict(calls)
            sids = _stream(500, maxsize)
            python_calls.append({k: calls[k] - before[k] for k in calls})
            ring = list(recorder._ring)
            sends = [e for e in ring if e[0] == SEND]
            receives = [e for e in ring if e[0] == RECEIVE]
            assert len(sends) == len(receives) == 500
            assert {e[2] for e in sends} == {sids["producer"]}
            assert {e[2] for e in receives} == {sids["consumer"]}
            assert len({e[3] for e in sends + receives}) == 1  # one queue
            seqs = [e[5] for e in ring]
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
            times = [e[1] for e in ring]
            assert times == sorted(times)  # one clock, time.monotonic_ns()'s
    finally:
        plait.remove_instrument(recorder)
    assert hooks.lane is None
    unbounded, bounded = python_calls
    if SPEEDUPS:  # the C fast paths: the hook describes a strand once, the lane does the rest
        assert unbounded["sent"] <= 2 and unbounded["received"] <= 2, python_calls
        # bounded: a put that found the queue full parks in the Python code, which calls
        # the hook; the others take the lane
        assert bounded["sent"] < 250 and bounded["received"] < 250, python_calls
    else:
        assert python_calls == [{"sent": 500, "received": 500}] * 2


def test_the_lane_keeps_the_ring_bounded_and_counts_what_it_dropped(tmp_path: Path) -> None:
    recorder = Recorder(str(tmp_path), t0_ns=0, capacity=16)
    plait.add_instrument(recorder)
    try:
        _stream(300)
    finally:
        plait.remove_instrument(recorder)
    assert len(recorder._ring) == 16
    recorder.flush()
    assert recorder.dropped == next(recorder._seq) - 16  # every event numbered, 16 kept


def test_two_instruments_take_no_lane_and_both_hear_every_put_and_get(tmp_path: Path) -> None:
    class Counter(plait.Instrument):
        def __init__(self) -> None:
            self.puts = self.gets = 0

        def sent(self, strand: Any, channel: object, item: Any) -> None:
            self.puts += 1

        def received(self, strand: Any, channel: object, item: Any) -> None:
            self.gets += 1

    recorder = Recorder(str(tmp_path), t0_ns=0, capacity=10_000)
    counter = Counter()
    plait.add_instrument(recorder)
    plait.add_instrument(counter)
    try:
        assert hooks.lane is None
        _stream(200, 8)
        plait.remove_instrument(counter)
        assert hooks.lane is recorder.lane  # the only one again
    finally:
        plait.remove_instrument(recorder)
        plait.remove_instrument(counter)
    assert counter.puts == counter.gets == 200
    assert sum(e[0] == SEND for e in recorder._ring) == 200
    assert sum(e[0] == RECEIVE for e in recorder._ring) == 200
