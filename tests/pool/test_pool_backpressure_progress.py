"""``max_pending`` makes ``submit`` wait; ``progress=True`` shows a bar."""

from __future__ import annotations

import asyncio
import io
import threading
import time

import poolhelpers as h
import pytest

from plait.pool import Pool
from plait.pool._progress import PlainProgress, open_progress


def test_submit_waits_when_max_pending_is_reached() -> None:
    with Pool(1, max_pending=2) as p:
        first = [p.submit(h.nap, 0.2), p.submit(h.nap, 0.2)]
        entered = threading.Event()
        returned = threading.Event()

        def third() -> None:
            entered.set()
            p.submit(h.square, 2)
            returned.set()

        t = threading.Thread(target=third)
        t.start()
        assert entered.wait(5)
        assert not returned.wait(0.05)  # still waiting for room
        assert not all(f.done() for f in first)
        assert returned.wait(5)
        t.join()
        assert p.statistics().tasks_outstanding <= 2


def test_async_submit_waits_without_blocking_the_loop() -> None:
    async def main(p: Pool) -> list[float]:
        futures = [await p.async_submit(h.nap, 0.05) for _ in range(6)]
        return list(await asyncio.gather(*futures))

    with Pool(1, max_pending=2) as p:
        assert asyncio.run(main(p)) == [0.05] * 6


def test_plain_progress_draws_and_closes() -> None:
    out = io.StringIO()
    bar = PlainProgress(10, "square", stream=out)
    bar.update(10)
    bar.close()
    bar.close()
    assert "10/10 (100%)" in out.getvalue()
    assert out.getvalue().endswith("\n")


def test_progress_option_on_map_and_imap(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tqdm")
    with Pool(2) as p:
        assert p.map(h.square, range(50), progress=True) == [x * x for x in range(50)]
        assert list(p.imap(h.square, range(30), progress=True)) == [x * x for x in range(30)]
        assert sorted(p.imap_unordered(h.square, iter(range(30)), progress=True)) == sorted(
            x * x for x in range(30)
        )
    err = capsys.readouterr().err
    assert "50/50" in err and "30/30" in err


def test_open_progress_falls_back_without_tqdm() -> None:
    bar = open_progress(5, "x", use_tqdm=False)
    assert isinstance(bar, PlainProgress)
    bar.close()


def test_endless_generator_with_slow_consumer_stays_bounded() -> None:
    with Pool(2) as p:
        it = p.imap_unordered(h.square, h.endless())
        for _ in range(50):
            next(it)
        time.sleep(0.2)  # the consumer pauses; the pool must not read the input forever
        stats = p.statistics()
        assert stats.tasks_outstanding < 100
        p.terminate()


def test_callbacks_may_submit_past_max_pending() -> None:
    done = threading.Event()
    with Pool(1, max_pending=1) as p:

        def again(value: int) -> None:  # runs in the result thread, with the gate full
            p.apply_async(h.square, (value,), callback=lambda _: done.set())

        p.apply_async(h.square, (2,), callback=again)
        assert done.wait(10)
