"""Flow arrows from whoever woke a strand -- an Event.set, a Condition.notify -- to the
strand it woke, in the Chrome trace (a flow start on the waker's track, its end on the
woken strand's track, where its wait ends)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from trace_helpers import events, load, tracks

import plait
from plait.testing import async_wait_parked, wait_parked


def _flows_into(data: dict[str, Any], key: tuple[int, int]) -> list[tuple[int, int]]:
    """The tracks the flow arrows into track ``key`` start from, with their names."""
    starts = {e["id"]: e for e in events(data, ph="s")}
    return [
        (starts[e["id"]]["pid"], starts[e["id"]]["tid"])
        for e in events(data, ph="f")
        if (e["pid"], e["tid"]) == key and e["id"] in starts
    ]


def _wait_end(data: dict[str, Any], key: tuple[int, int], prefix: str) -> float:
    waits = [
        w
        for w in events(data, ph="X", cat="wait")
        if (w["pid"], w["tid"]) == key and w["args"]["object"].startswith(prefix)
    ]
    assert len(waits) == 1 and waits[0]["args"]["outcome"] == "woken", waits
    return float(waits[0]["ts"] + waits[0]["dur"])


def test_event_set_draws_an_arrow_from_the_setter_to_each_thread_it_woke(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    event = plait.Event()

    def waiter() -> None:
        assert event.wait(10)

    def setter() -> None:
        wait_parked(on=event, count=2, timeout=10)
        event.set()

    with plait.trace(out):
        threads = [plait.Thread(target=waiter, name=f"waiter{i}") for i in range(2)]
        threads.append(plait.Thread(target=setter, name="setter"))
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    data = load(out)
    by_name = {v: k for k, v in tracks(data).items()}
    setter_key = by_name["thread setter"]
    waited = {
        (w["pid"], w["tid"])
        for w in events(data, ph="X", cat="wait")
        if w["args"]["object"].startswith("Event")
    }
    assert {tracks(data)[k] for k in waited} == {"thread waiter0", "thread waiter1"}
    for key in waited:
        assert _flows_into(data, key) == [setter_key], key
        end = next(e for e in events(data, ph="f") if (e["pid"], e["tid"]) == key)
        assert abs(end["ts"] - _wait_end(data, key, "Event")) < 0.01  # where its wait ends
        start = next(e for e in events(data, ph="s") if e["id"] == end["id"])
        assert start["ts"] <= end["ts"] and start["name"] == end["name"]


Coroutine = Callable[[], Awaitable[None]]


def _condition() -> tuple[Coroutine, Coroutine, str]:
    """The waiter waits on a Condition; a notify wakes it."""
    cond = plait.Condition()
    ready: list[int] = []

    async def waiter() -> None:
        async with cond:
            await cond.async_wait_for(lambda: bool(ready))

    async def waker() -> None:
        await async_wait_parked(on=cond, count=1, timeout=10)
        async with cond:
            ready.append(1)
            cond.notify()

    return waiter, waker, "Condition"


def _empty_queue() -> tuple[Coroutine, Coroutine, str]:
    """The waiter parks on an empty queue (the C park, under a trace too); a put wakes it."""
    q: plait.Queue[int] = plait.Queue()

    async def waiter() -> None:
        assert await q.async_get() == 1

    async def waker() -> None:
        await async_wait_parked(on=q, count=1, timeout=10)
        await q.async_put(1)

    return waiter, waker, "Queue"


def _full_queue() -> tuple[Coroutine, Coroutine, str]:
    """The waiter parks on a full queue; a get (the C fast path) wakes it."""
    q: plait.Queue[int] = plait.Queue(1)
    q.put_nowait(0)

    async def waiter() -> None:
        await q.async_put(1)

    async def waker() -> None:
        await async_wait_parked(on=q, count=1, timeout=10)
        assert await q.async_get() == 0

    return waiter, waker, "Queue"


@pytest.mark.parametrize(
    "case",
    [_condition, _empty_queue, _full_queue],
    ids=["condition-notify", "queue-put-wakes-a-getter", "queue-get-wakes-a-putter"],
)
def test_a_wake_draws_an_arrow_from_the_waker_to_the_coroutine_it_woke(
    tmp_path: Path, case: Callable[[], tuple[Coroutine, Coroutine, str]]
) -> None:
    # The queue's own wake (on the loop's thread, in C or Python) reports who woke whom too.
    out = tmp_path / "out.json"

    async def main() -> None:
        waiter, waker, _ = case()
        async with plait.TaskGroup() as tg:
            tg.spawn(waiter, name="waiter")
            tg.spawn(waker, name="waker")

    with plait.trace(out):
        plait.run(main)
    data = load(out)
    by_name = {v: k for k, v in tracks(data).items()}
    waiter_key, waker_key = by_name["async waiter"], by_name["async waker"]
    end = _wait_end(data, waiter_key, case()[2])
    flows = _flows_into(data, waiter_key)
    if case is _condition:  # (re-taking the lock may draw an arrow from its release too)
        assert waker_key in flows
    else:
        assert flows == [waker_key]
        (arrow,) = [e for e in events(data, ph="f") if (e["pid"], e["tid"]) == waiter_key]
        assert abs(arrow["ts"] - end) < 0.01  # where its wait ends
