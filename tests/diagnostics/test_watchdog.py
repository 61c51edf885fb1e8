"""The blocked-loop watchdog reports a loop held by one callback while it is held, with the
stack of the code that holds it."""

from __future__ import annotations

import asyncio
import io
import time

import pytest

from plait.diagnostics import watch_loops

pytestmark = pytest.mark.timeout(30)


def blocking_call_in_a_coroutine() -> None:
    time.sleep(0.6)


def test_a_blocked_loop_is_reported_while_it_blocks_with_the_blocking_stack() -> None:
    out = io.StringIO()

    async def main() -> list[str]:
        dog = watch_loops(0.1, file=out)
        try:
            dog.watch(asyncio.get_running_loop())
            await asyncio.sleep(0.1)
            blocking_call_in_a_coroutine()
            seen_while_blocked = list(dog.reports)  # read the moment the block ends
            await asyncio.sleep(0.05)
            return seen_while_blocked
        finally:
            dog.stop()

    while_blocked = asyncio.run(main())
    assert len(while_blocked) == 1, out.getvalue()
    report = while_blocked[0]
    assert "has been blocked for" in report and "by task" in report
    assert "(blocking_call_in_a_coroutine)" in report
    assert report.strip().endswith("(blocking_call_in_a_coroutine)")  # innermost last
    assert out.getvalue() == report


def test_a_loop_that_keeps_yielding_is_not_reported() -> None:
    out = io.StringIO()

    async def main() -> None:
        dog = watch_loops(0.5, file=out)
        try:
            dog.watch(asyncio.get_running_loop())
            end = time.monotonic() + 0.6
            while time.monotonic() < end:
                await asyncio.sleep(0.01)
        finally:
            dog.stop()

    asyncio.run(main())
    assert out.getvalue() == ""


@pytest.mark.parametrize("bad", [0, -1, float("nan"), "0.1"])
def test_a_bad_threshold_is_a_clear_error(bad: object) -> None:
    with pytest.raises((ValueError, TypeError), match="threshold"):
        watch_loops(bad)  # type: ignore[arg-type]
