"""A traced queue counts its puts and gets instead of logging each one: the C fast paths
stay on under a trace and add one to the queue's own counters (the recorder's counting
lane, Instrument.lane), the Python paths add to the recorder's; each flush samples every
channel's puts, gets and depth. The counts are exact whatever the ring dropped."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import plait
from plait._channels._queue_speedups import SPEEDUPS
from plait._core.instruments import hooks
from plait.testing import async_wait_parked
from plait.trace.export import load_parts
from plait.trace.recorder import COUNTS, PARK, RECEIVE, SEND, UNPARK, WAKE, Recorder


def _stream(n: int, maxsize: int = 0) -> None:
    """A producer -> consumer coroutine stream of ``n`` items on one new queue."""

    async def main() -> None:
        q: plait.Queue[int] = plait.Queue(maxsize)

        async def produce() -> None:
            for i in range(n):
                await q.async_put(i)

        async def consume() -> None:
            for _ in range(n):
                await q.async_get()

        await asyncio.gather(consume(), produce())

    asyncio.run(main())


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


def _last_samples(recorder: Recorder) -> dict[int, list[Any]]:
    """Each channel's newest COUNTS sample in the ring: ``[puts, gets, depth]``."""
    recorder._sample_channels()
    return {e[3]: e[4] for e in recorder._ring if e[0] == COUNTS}


def test_a_traced_coroutine_stream_counts_every_put_and_get_without_an_event_each(
    tmp_path: Path,
) -> None:
    recorder = Recorder(str(tmp_path), t0_ns=0, capacity=10_000)  # no flusher: read by hand
    calls = _counting(recorder)
    plait.add_instrument(recorder)
    try:
        assert hooks.lane is recorder.lane
        python_calls = []
        for maxsize in (0, 4):
            before = dict(calls)
            _stream(500, maxsize)
            python_calls.append({k: calls[k] - before[k] for k in calls})
        samples = _last_samples(recorder)
    finally:
        plait.remove_instrument(recorder)
    assert hooks.lane is None
    assert sorted(samples.values()) == [[500, 500, 0], [500, 500, 0]]  # one per queue
    assert not [e for e in recorder._ring if e[0] in (SEND, RECEIVE)]  # counted, not logged
    unbounded, bounded = python_calls
    if SPEEDUPS:  # the C fast paths count in the queue; what parks runs in Python
        assert unbounded["sent"] <= 2, python_calls
        assert bounded["sent"] < 250 and bounded["received"] < 250, python_calls
    else:
        assert python_calls == [{"sent": 500, "received": 500}] * 2


def test_each_sample_has_the_queue_depth_at_that_moment(tmp_path: Path) -> None:
    recorder = Recorder(str(tmp_path), t0_ns=0, capacity=10_000)
    seen: list[list[Any]] = []

    async def main() -> None:
        q: plait.Queue[int] = plait.Queue()
        for i in range(10):
            await q.async_put(i)
        seen.extend(_last_samples(recorder).values())
        for _ in range(4):
            await q.async_get()
        q.put(10)  # a thread-style put: the Python path, counted by the recorder
        seen.extend(_last_samples(recorder).values())
        seen.extend(_last_samples(recorder).values())  # unchanged: no new sample

    plait.add_instrument(recorder)
    try:
        asyncio.run(main())
    finally:
        plait.remove_instrument(recorder)
    assert seen == [[10, 0, 10], [11, 4, 7], [11, 4, 7]]
    assert sum(e[0] == COUNTS for e in recorder._ring) == 2


def test_a_full_ring_loses_no_put_or_get_and_counts_what_it_dropped(tmp_path: Path) -> None:
    recorder = Recorder(str(tmp_path), t0_ns=0, capacity=16)
    plait.add_instrument(recorder)
    try:
        _stream(300, 2)  # a bounded stream parks often: far more events than the ring holds
    finally:
        plait.remove_instrument(recorder)
    assert len(recorder._ring) == 16
    recorder.stop()  # the last flush: the final sample goes in after the ring's oldest fell out
    assert recorder.dropped > 0
    data = load_parts(str(tmp_path), complete=True)
    assert data["otherData"]["plait"]["dropped"] == recorder.dropped
    (row,) = data["otherData"]["plait"]["summary"]["channels"]
    assert (row["puts"], row["gets"]) == (300, 300)
    counters = [e for e in data["traceEvents"] if e["ph"] == "C"]
    assert counters[-2]["args"] == {"puts": 300, "gets": 300}
    assert counters[-1]["args"] == {"items": 0} and counters[-1]["name"].startswith("depth ")


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
        _stream(100, 8)
        samples = _last_samples(recorder)
    finally:
        plait.remove_instrument(recorder)
        plait.remove_instrument(counter)
    assert counter.puts == counter.gets == 200
    assert sorted(samples.values()) == [[100, 100, 0], [200, 200, 0]]


def test_a_new_trace_counts_a_queue_from_zero(tmp_path: Path) -> None:
    q: plait.Queue[int] = plait.Queue()

    async def twice() -> None:
        await q.async_put(1)
        await q.async_get()
        await q.async_put(2)

    counts = []
    for n in range(2):
        recorder = Recorder(str(tmp_path / str(n)), t0_ns=0, capacity=100)
        plait.add_instrument(recorder)
        try:
            asyncio.run(twice())
            counts.append(list(_last_samples(recorder).values()))
        finally:
            plait.remove_instrument(recorder)
    assert counts == [[[2, 1, 1]], [[2, 1, 2]]]


def _counting_waits(recorder: Recorder) -> dict[str, int]:
    """Count the recorder's Python park/unpark/wake hook calls (the event lane bypasses them),
    by hook, and by hook and strand sid (``"woke 3"``)."""
    calls = {"strand_parked": 0, "strand_unparked": 0, "woke": 0}
    for name in list(calls):
        hook = getattr(recorder, name)

        def counted(strand: Any, *args: Any, _hook: Any = hook, _name: str = name) -> None:
            calls[_name] += 1
            by_strand = f"{_name} {strand.sid}"
            calls[by_strand] = calls.get(by_strand, 0) + 1
            _hook(strand, *args)

        setattr(recorder, name, counted)
    return calls


def _bounded_stream(n: int, maxsize: int) -> tuple[int, dict[str, int]]:
    """A bounded producer -> consumer stream: the queue's id and the two strands' sids.

    After every fifth item the producer lets the loop run twice, so that the consumer, which
    lets the loop run once before it parks on an empty queue, finds it still empty and
    parks: both sides park and wake each other, about once per five items each.
    """
    sids: dict[str, int] = {}
    key = 0

    async def main() -> None:
        nonlocal key
        q: plait.Queue[int] = plait.Queue(maxsize)
        key = id(q)

        async def produce() -> None:
            sids["producer"] = plait.current_strand().sid
            for i in range(n):
                await q.async_put(i)
                if i % 5 == 4:
                    await asyncio.sleep(0)
                    await asyncio.sleep(0)

        async def consume() -> None:
            sids["consumer"] = plait.current_strand().sid
            for i in range(n):
                assert await q.async_get() == i

        async with plait.TaskGroup() as tg:
            tg.spawn(consume)
            tg.spawn(produce)

    plait.run(main)
    return key, sids


def test_the_c_queue_records_parks_unparks_and_wakes_into_the_lane_as_the_hooks_would(
    tmp_path: Path,
) -> None:
    recorder = Recorder(str(tmp_path), t0_ns=0, capacity=10_000)
    calls = _counting_waits(recorder)
    plait.add_instrument(recorder)
    try:
        key, sids = _bounded_stream(400, 4)
    finally:
        plait.remove_instrument(recorder)
    waits = [e for e in recorder._ring if e[0] in (PARK, UNPARK, WAKE) and e[3] == key]
    counted = {code: sum(e[0] == code for e in waits) for code in (PARK, UNPARK, WAKE)}
    # Both sides park about once per 5 items (a full, then an empty queue), every park ends
    # woken, and every wake is one arrow from the other side.
    assert counted[PARK] == counted[UNPARK] == counted[WAKE] >= 100, counted
    assert len(recorder._objects) and key in recorder._objects
    other = {sids["producer"]: sids["consumer"], sids["consumer"]: sids["producer"]}
    for sid in sids.values():
        mine = [e for e in waits if e[2] == sid]
        parks = sum(e[0] == PARK for e in mine)
        assert parks >= 40 and [e[0] for e in mine if e[0] != WAKE] == [PARK, UNPARK] * parks
        assert {e[4] for e in mine if e[0] == PARK} == {None}  # a queue has no owner
        assert {e[4] for e in mine if e[0] == UNPARK} == {"woken"}
        assert {e[4] for e in mine if e[0] == WAKE} == {other[sid]}
    seqs = [e[5] for e in recorder._ring]
    times = [e[1] for e in recorder._ring]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # one sequence, C and Python
    assert times == sorted(times)  # one clock (time.monotonic_ns)
    every = {code: sum(e[0] == code for e in recorder._ring) for code in (PARK, UNPARK, WAKE)}
    consumer = sids["consumer"]
    heard = sum(calls.get(f"{name} {consumer}", 0) for name in ("strand_parked", "woke"))
    heard += calls.get(f"strand_unparked {consumer}", 0)
    if SPEEDUPS:  # the consumer parks in C and its C gets wake the producer: all in the lane
        assert heard <= 2, calls  # (but the first park: it describes the queue)
    else:  # every one through the recorder's hooks
        assert heard >= 3 * 40
        assert {k: v for k, v in calls.items() if " " not in k} == {
            "strand_parked": every[PARK],
            "strand_unparked": every[UNPARK],
            "woke": every[WAKE],
        }


def test_beside_another_instrument_every_park_unpark_and_wake_goes_through_the_hooks(
    tmp_path: Path,
) -> None:
    class Waits(plait.Instrument):
        def __init__(self) -> None:
            self.heard: list[tuple[str, int]] = []

        def strand_parked(self, strand: Any, on: object) -> None:
            self.heard.append((PARK, id(on)))

        def strand_unparked(self, strand: Any, on: object, outcome: str) -> None:
            self.heard.append((UNPARK, id(on)))

        def woke(self, strand: Any, woken: Any, on: object) -> None:
            self.heard.append((WAKE, id(on)))

    recorder = Recorder(str(tmp_path), t0_ns=0, capacity=10_000)
    calls = _counting_waits(recorder)
    other = Waits()
    plait.add_instrument(recorder)
    plait.add_instrument(other)
    try:
        key, _ = _bounded_stream(200, 4)
    finally:
        plait.remove_instrument(other)
        plait.remove_instrument(recorder)
    recorded = {
        code: sum(e[0] == code and e[3] == key for e in recorder._ring)
        for code in (PARK, UNPARK, WAKE)
    }
    heard = {code: other.heard.count((code, key)) for code in (PARK, UNPARK, WAKE)}
    assert recorded[PARK] >= 50 and recorded == heard
    every = {code: sum(e[0] == code for e in recorder._ring) for code in (PARK, UNPARK, WAKE)}
    assert {k: v for k, v in calls.items() if " " not in k} == {
        "strand_parked": every[PARK],
        "strand_unparked": every[UNPARK],
        "woke": every[WAKE],
    }  # every one through the recorder's hooks


def test_a_getter_cancelled_in_its_c_park_is_recorded_parked_then_unparked_cancelled(
    tmp_path: Path,
) -> None:
    recorder = Recorder(str(tmp_path), t0_ns=0, capacity=1_000)
    key = 0

    async def main() -> None:
        nonlocal key
        q: plait.Queue[int] = plait.Queue()
        key = id(q)
        for _ in range(2):  # the second park is the lane's (the first describes the queue)
            async with plait.TaskGroup() as tg:
                getter = tg.spawn(q.async_get)
                await async_wait_parked(on=q, count=1, timeout=10)
                getter.cancel()
            assert getter.cancelled()
        assert q.qsize() == 0 and not q._getters  # the wait is gone

    plait.add_instrument(recorder)
    try:
        plait.run(main)
    finally:
        plait.remove_instrument(recorder)
    waits = [(e[0], e[4]) for e in recorder._ring if e[0] in (PARK, UNPARK) and e[3] == key]
    assert waits == [(PARK, None), (UNPARK, "cancelled")] * 2
