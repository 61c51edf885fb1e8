"""How a green strand starts and ends: on its group's own loop the hub starts its greenlet
and reports its end straight to its Task (no asyncio task drives it); a timeout, or a
spawn from another thread, still goes through a driving coroutine. Both must give the same
Task API: result, error, cancellation before it ran, while parked, and by itself.
"""

from __future__ import annotations

import contextvars
import threading
from typing import Any

import pytest

import plait
import plait.testing

pytest.importorskip("greenlet", reason="green strands need the greenlet extra (plait[green])")

pytestmark = pytest.mark.timeout(30)


def test_a_green_strand_cancelled_before_it_ran_never_runs() -> None:
    ran: list[int] = []

    async def main() -> Any:
        async with plait.TaskGroup() as tg:
            task = tg.spawn(ran.append, 1, on="green")
            assert task.cancel()  # (the loop has not run it yet)
        return task

    task = plait.run(main)
    assert task.cancelled()
    assert ran == []


def test_a_green_strand_that_cancels_itself_stops_at_its_next_wait() -> None:
    q: plait.Queue[int] = plait.Queue()
    steps: list[str] = []

    def body() -> None:
        me: Any = plait.current_strand()
        assert me.cancel()
        steps.append("after cancel")  # (runs on: the cancellation comes at the next wait)
        try:
            q.get()
        except plait.Cancelled:
            steps.append("cancelled at the wait")
            raise

    async def main() -> Any:
        async with plait.TaskGroup() as tg:
            task = tg.spawn(body, on="green")
        return task

    task = plait.run(main)
    assert task.cancelled()
    assert steps == ["after cancel", "cancelled at the wait"]


def test_a_green_strand_that_catches_its_cancellation_returns_its_result() -> None:
    q: plait.Queue[int] = plait.Queue()

    def body() -> str:
        try:
            q.get()
        except plait.Cancelled:
            return "caught"
        return "got"

    async def main() -> Any:
        async with plait.TaskGroup() as tg:
            task = tg.spawn(body, on="green")
            await plait.testing.async_wait_parked(on=q, count=1, timeout=10)
            task.cancel()
        return task

    task = plait.run(main)
    assert not task.cancelled()
    assert task.result() == "caught"


def test_a_green_strand_cancelled_from_another_thread_ends_cancelled_at_its_wait() -> None:
    q: plait.Queue[int] = plait.Queue()

    async def main() -> Any:
        async with plait.TaskGroup() as tg:
            task = tg.spawn(q.get, on="green")

            def canceller() -> None:
                plait.testing.wait_parked(on=q, count=1, timeout=10)
                assert task.cancel("from a thread")

            tg.spawn(canceller, on="thread")
        return task

    task = plait.run(main)
    assert task.cancelled()
    with pytest.raises(plait.Cancelled):
        task.result()


def test_a_failing_green_strand_fails_its_group_with_its_error() -> None:
    def body() -> None:
        raise ValueError("boom")

    async def main() -> None:
        async with plait.TaskGroup() as tg:
            tg.spawn(body, on="green")

    with pytest.raises(BaseExceptionGroup) as info:
        plait.run(main)
    assert [type(e) for e in info.value.exceptions] == [ValueError]


def test_green_strands_spawned_from_a_thread_and_with_a_timeout_run_as_well() -> None:
    results: list[Any] = []

    async def main() -> Any:
        async with plait.TaskGroup() as tg:
            timed = tg.spawn(lambda: "timed", on="green", timeout=10)
            spawned: list[Any] = []

            def from_thread() -> None:  # (a thread strand: not on the group's loop)
                assert threading.current_thread() is not threading.main_thread()
                spawned.append(tg.spawn(lambda x: x * 2, 21, on="green"))

            await tg.spawn(from_thread, on="thread")  # (spawns while the group is open)
        results.extend([timed.result(), spawned[0].result(), spawned[0].kind])
        return results

    assert plait.run(main) == ["timed", 42, "green"]


def test_a_finished_green_strand_leaves_no_strand_behind() -> None:
    async def main() -> Any:
        async with plait.TaskGroup() as tg:
            tasks = [tg.spawn(lambda: None, on="green") for _ in range(50)]
        return tasks

    tasks = plait.run(main)
    live = {id(s) for s in plait.all_strands()}
    assert all(t.state == "done" and id(t) not in live for t in tasks)


# A group's first green strand finds its loop's hub; the group keeps it, and every later
# spawn starts its strand inline (TaskGroup.spawn's green fast path). These run both ways.


async def _in_a_warm_group(body: Any) -> Any:
    """``body(tg)`` in a group whose first green strand was already spawned."""
    async with plait.TaskGroup() as tg:
        tg.spawn(int, on="green")  # (the first: the group finds its loop's hub)
        return body(tg)


def _spawn_after_a_first(body: Any) -> Any:
    return plait.run(_in_a_warm_group, body)


def test_a_later_green_strand_cancelled_before_it_ran_never_runs() -> None:
    ran: list[int] = []

    def body(tg: plait.TaskGroup) -> Any:
        task = tg.spawn(ran.append, 1, on="green")
        assert task.cancel()  # (the loop has not run it yet)
        return task

    task = _spawn_after_a_first(body)
    assert task.cancelled()
    assert ran == []


def test_later_green_strands_keep_their_args_names_and_outcomes() -> None:
    spawned: list[plait.Task[Any]] = []

    def fail() -> None:
        raise KeyError("boom")

    def body(tg: plait.TaskGroup) -> None:
        spawned.append(tg.spawn(divmod, 7, 2, on="green", name="div"))
        spawned.append(tg.spawn(fail, on="green"))

    with pytest.raises(ExceptionGroup) as caught:
        _spawn_after_a_first(body)
    assert [type(e) for e in caught.value.exceptions] == [KeyError]
    div, failed = spawned
    assert (div.name, div.kind, div.result()) == ("div", "green", (3, 1))
    assert isinstance(failed.exception(), KeyError)


def test_later_green_strands_see_a_copy_of_the_spawners_context() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    def strand(value: str) -> tuple[str, str]:
        seen = var.get()
        var.set(value)  # (its own copy: neither the spawner nor a sibling sees this)
        return seen, var.get()

    def body(tg: plait.TaskGroup) -> Any:
        var.set("spawner")
        return [tg.spawn(strand, f"strand {i}", on="green") for i in range(3)]

    async def main() -> Any:
        tasks = await _in_a_warm_group(body)
        return [t.result() for t in tasks], var.get()

    results, after = plait.run(main)
    assert results == [("spawner", f"strand {i}") for i in range(3)]
    assert after == "spawner"


def test_a_finished_green_strand_forgets_its_context() -> None:
    from plait._core import strands

    def body(tg: plait.TaskGroup) -> Any:
        return [tg.spawn(lambda: None, on="green", name=f"n{i}") for i in range(20)]

    tasks = _spawn_after_a_first(body)
    assert all(t.done() and t.name.startswith("n") for t in tasks)
    assert not any(s in tasks for s in strands.green_by_context.values())


def test_a_later_plain_function_marked_as_returning_an_awaitable_is_refused() -> None:
    from plait._core.awaitables import returns_awaitable_mark

    @returns_awaitable_mark
    def fetch() -> Any:
        return None

    def body(tg: plait.TaskGroup) -> None:
        with pytest.raises(TypeError, match="awaitable"):
            tg.spawn(fetch, on="green")

    _spawn_after_a_first(body)
