"""The strand registry and current_strand()."""

from __future__ import annotations

import asyncio
import threading

import plait
from plait._core import all_strands, current_strand


def test_main_thread_is_an_implicit_thread_strand() -> None:
    s = current_strand()
    assert s.kind == "thread"
    assert s is current_strand()
    assert s in all_strands()


def test_foreign_thread_strand_leaves_registry_when_thread_ends() -> None:
    box: list[plait.Strand] = []
    t = threading.Thread(target=lambda: box.append(current_strand()), name="foreign")
    t.start()
    t.join()
    (s,) = box
    assert s.name == "foreign"
    del t
    import gc

    gc.collect()
    assert s not in all_strands()


def test_each_asyncio_task_is_its_own_strand() -> None:
    async def who() -> plait.Strand:
        return current_strand()

    async def main() -> None:
        a, b = await asyncio.gather(who(), who())
        assert a is not b
        assert a.kind == b.kind == "async"
        me = current_strand()
        assert me is current_strand()
        assert a not in all_strands()  # their tasks are done

    asyncio.run(main())


def test_spawned_task_is_the_current_strand_inside_it() -> None:
    async def inside() -> plait.Strand:
        return current_strand()

    def inside_thread() -> plait.Strand:
        return current_strand()

    async def main() -> None:
        async with plait.TaskGroup() as tg:
            a = tg.spawn(inside, name="coro")
            b = tg.spawn(inside_thread, name="thr")
        assert a.result() is a
        assert b.result() is b
        assert (a.kind, a.name, b.kind, b.name) == ("async", "coro", "thread", "thr")

    plait.run(main)
