"""An Event joins plait.select / async_select (issue 4: select over gets, puts, events, tasks)."""

from __future__ import annotations

import asyncio
import threading

import pytest

import plait
from plait.testing import wait_parked


def test_set_event_is_ready_at_once() -> None:
    ev = plait.Event()
    q: plait.Queue[int] = plait.Queue()
    assert plait.select(q.get_op(), ev, default=None).index == -1
    ev.set()
    r = plait.select(q.get_op(), ev, default=None)
    assert (r.index, r.value) == (1, True)


def test_thread_select_wakes_on_set_and_takes_nothing_from_the_queue() -> None:
    ev = plait.Event()
    q: plait.Queue[int] = plait.Queue()
    got: list[plait.Selected] = []
    t = threading.Thread(target=lambda: got.append(plait.select(q.get_op(), ev, timeout=10)))
    t.start()
    wait_parked(count=1)
    ev.set()
    t.join(10)
    assert (got[0].index, got[0].value) == (1, True)
    q.put(5)
    assert q.get_nowait() == 5  # nothing was taken by the select


def test_async_select_event_or_queue() -> None:
    async def main() -> None:
        ev = plait.Event()
        q: plait.Queue[int] = plait.Queue()
        loop = asyncio.get_running_loop()
        loop.call_soon(q.put_nowait, 7)
        r = await plait.async_select(ev, q.get_op(), timeout=10)
        assert (r.index, r.value) == (1, 7)
        loop.call_soon(ev.set)
        r = await plait.async_select(q.get_op(), ev, timeout=10)
        assert (r.index, r.value) == (1, True)

    asyncio.run(main())


def test_select_timeout_with_only_an_unset_event() -> None:
    with pytest.raises(TimeoutError):
        plait.select(plait.Event(), timeout=0.01)
