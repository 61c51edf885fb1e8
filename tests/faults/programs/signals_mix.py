"""A program for the signals suite: coroutine, thread, process and pool strands in one
``plait.TaskGroup`` under ``plait.run(main)``, until a signal ends it.

``python signals_mix.py GRACE``: prints ``ready`` when ``main`` starts (the test's random
moments count from there), ``interrupted`` and exit code 130 on ``KeyboardInterrupt``.
A thread strand sits in a blocking call plait cannot interrupt, so a Ctrl-C waits out the
grace; the pool's workers and the process strand are grandchildren the test looks for.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time

import plait


def blocked(seconds: float) -> None:
    time.sleep(seconds)  # not a plait call: cancellation cannot reach it


def busy(seconds: float) -> None:
    """A process strand: plait waits and plain work, until cancelled."""
    from plait import sleep  # (a reference to the module itself cannot be pickled by value)

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sleep(0.01)
        sum(range(1000))


def square(x: int) -> int:
    time.sleep(0.01)
    return x * x


async def ticker() -> None:
    while True:
        await asyncio.sleep(0.01)


async def pool_user(pool: plait.Pool) -> None:
    while True:
        await pool.async_map(square, range(8))


def pool_thread(pool: plait.Pool) -> None:
    while True:
        pool.map(square, range(4))


async def main(grace: float) -> None:
    print("ready", flush=True)
    with plait.Pool(2) as pool:
        async with plait.TaskGroup(grace=grace) as tg:
            tg.spawn(ticker)
            tg.spawn(blocked, 60)
            tg.spawn(busy, 60, on="process")
            tg.spawn(pool_user, pool)
            tg.spawn(pool_thread, pool)


if __name__ == "__main__":
    try:
        plait.run(main, float(sys.argv[1]))
    except KeyboardInterrupt:
        # Exiting now: a further Ctrl-C (the test's second may come after plait.run
        # returned) must not turn exit code 130 into death by SIGINT.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print("interrupted", flush=True)
        sys.exit(130)
