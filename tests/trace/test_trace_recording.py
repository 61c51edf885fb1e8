"""plait.trace() records every strand kind's life, waits, locks, channels and user spans."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from trace_helpers import events, load, tracks

import plait
from plait._core.instruments import hooks
from plait.testing import wait_parked
from plait.trace import TraceOutputError


async def _producer(q: plait.Queue[int], n: int) -> None:
    for i in range(n):
        await q.async_put(i)
    q.close()


async def _consumer(q: plait.Queue[int], lock: plait.Lock) -> None:
    async for _ in q:
        async with lock:
            pass


def test_coroutine_stream_is_recorded(tmp_path: Path) -> None:
    out = tmp_path / "out.json"

    async def main() -> None:
        q: plait.Queue[int] = plait.Queue(maxsize=2)
        lock = plait.Lock()
        async with plait.TaskGroup() as tg:
            tg.spawn(_producer, q, 30, name="producer")
            tg.spawn(_consumer, q, lock, name="consumer")

    with plait.trace(out) as session:
        plait.run(main)
    assert hooks.active == ()  # uninstalled: back to zero cost
    assert not (tmp_path / "out.json.parts").exists()
    data = load(out)
    meta = data["otherData"]["plait"]
    assert meta["partial"] is False and meta["dropped"] == 0 == session.dropped
    names = set(tracks(data).values())
    assert {"async producer", "async consumer"} <= names
    waits = events(data, ph="X", cat="wait")
    on_queue = [w for w in waits if w["args"]["object"].startswith("Queue")]
    assert on_queue, {w["args"]["object"] for w in waits}
    assert {w["args"]["outcome"] for w in on_queue} == {"woken"}
    summary = meta["summary"]
    assert summary["channels"] == [{"channel": summary["channels"][0]["channel"], "puts": 30,
                                    "gets": 30}]  # fmt: skip
    assert summary["locks"][0]["holds"] == 30
    assert any(e["name"].startswith("depth Queue") for e in events(data, ph="C"))
    assert {r["strand"] for r in summary["strands"]} >= {"async producer", "async consumer"}


def test_lock_contention_and_wake_flow_between_threads(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    lock = plait.Lock()
    took = threading.Event()

    def holder() -> None:
        with lock:
            took.set()
            wait_parked(on=lock, count=1, timeout=10)
        wait_parked(on=plait.current_strand(), count=1, timeout=10)  # main joins us

    def contender() -> None:
        assert took.wait(10)
        with lock:
            pass

    with plait.trace(out):
        a = plait.Thread(target=holder, name="holder")
        b = plait.Thread(target=contender, name="contender")
        a.start()
        b.start()
        a.join(10)
        b.join(10)
    data = load(out)
    by_name = {v: k for k, v in tracks(data).items()}
    holder_key, contender_key = by_name["thread holder"], by_name["thread contender"]
    wait = [w for w in events(data, ph="X", cat="wait") if (w["pid"], w["tid"]) == contender_key]
    assert len(wait) == 1 and wait[0]["args"]["outcome"] == "woken"
    assert wait[0]["args"]["owner"] == f"strand #{holder_key[1]}"  # who held it at park time
    starts = {e["id"]: e for e in events(data, ph="s")}
    ends = [e for e in events(data, ph="f") if (e["pid"], e["tid"]) == contender_key]
    assert ends, "no flow arrow into the woken strand"
    source = starts[ends[0]["id"]]
    assert (source["pid"], source["tid"]) == holder_key
    main_key = by_name["thread MainThread"]  # joined the holder: woken by its end
    joins = [e for e in events(data, ph="f") if (e["pid"], e["tid"]) == main_key]
    assert any((starts[e["id"]]["pid"], starts[e["id"]]["tid"]) == holder_key for e in joins)
    lock_row = data["otherData"]["plait"]["summary"]["locks"][0]
    assert lock_row["holds"] == 2 and lock_row["contended"] == 1


def test_exceptions_cancellation_and_user_spans(tmp_path: Path) -> None:
    out = tmp_path / "out.json"

    def boom() -> None:
        raise ValueError("boom")

    async def forever() -> None:
        await asyncio.sleep(60)

    async def main() -> None:
        with plait.trace_span("setup"):
            await asyncio.sleep(0)
        async with plait.TaskGroup() as tg:
            task = tg.spawn(forever, name="forever")
            await asyncio.sleep(0.01)
            task.cancel()

    with plait.trace(out):
        with pytest.raises(ExceptionGroup), plait.TaskGroup() as tg:
            tg.spawn(boom, on="thread", name="boom")
        plait.run(main)
    data = load(out)
    names = tracks(data)
    raised = [e for e in events(data, ph="i") if e["name"] == "exception ValueError"]
    assert [names[(e["pid"], e["tid"])] for e in raised] == ["thread boom"]
    cancelled = [e for e in events(data, ph="i") if e["name"] == "cancelled"]
    assert [names[(e["pid"], e["tid"])] for e in cancelled] == ["async forever"]
    spans = events(data, cat="span", name="setup")
    assert [e["ph"] for e in spans] == ["b", "e"]


def test_trace_span_costs_nothing_when_off() -> None:
    assert hooks.active == ()
    span = plait.trace_span("idle")
    with span:
        pass
    assert span._recorder is None


def test_bad_output_paths_fail_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(TraceOutputError, match="does not exist"):
        plait.trace(tmp_path / "missing" / "out.json")
    with pytest.raises(TraceOutputError, match="it is a folder"):
        plait.trace(tmp_path)
    with pytest.raises(TypeError, match="file path"):
        plait.trace(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="capacity"):
        plait.trace(tmp_path / "out.json", capacity=3)
    assert hooks.active == ()


def test_one_recording_at_a_time(tmp_path: Path) -> None:
    with (
        plait.trace(tmp_path / "a.json"),
        pytest.raises(RuntimeError, match="already"),
        plait.trace(tmp_path / "b.json"),
    ):
        pass
    assert hooks.active == ()
    assert (tmp_path / "a.json").exists()


def test_a_full_ring_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    from plait._core.strands import current_strand
    from plait.trace.export import load_parts
    from plait.trace.recorder import Recorder

    parts = tmp_path / "parts"
    parts.mkdir()
    recorder = Recorder(str(parts), t0_ns=0, capacity=16)  # no flusher: flushed by hand
    me, lock, channel = current_strand(), object(), object()
    for i in range(50):
        recorder.acquired(me, lock)
        recorder.released(me, lock)
        recorder.sent(me, channel, i)  # counted, not an event: never dropped
    assert len(recorder._ring) == 16
    recorder.flush()
    assert recorder.dropped == 84 + 1  # (the flush's count sample pushed one more out)
    data = load_parts(str(parts), complete=True)
    assert data["otherData"]["plait"]["dropped"] == 85
    assert data["otherData"]["plait"]["summary"]["channels"][0]["puts"] == 50
    # on disk too: a long run keeps about `capacity` events per process, the newest
    for _ in range(10):
        for _ in range(8):
            recorder.acquired(me, lock)
            recorder.released(me, lock)
        recorder.sent(me, channel, None)
        recorder.flush()
    data = load_parts(str(parts), complete=True)
    holds = [e for e in data["traceEvents"] if e["ph"] == "b" and e.get("cat") == "lock"]
    assert 8 <= len(holds) <= 16
    assert data["otherData"]["plait"]["summary"]["channels"][0]["puts"] == 60  # all of them
    assert data["otherData"]["plait"]["dropped"] == recorder.dropped
