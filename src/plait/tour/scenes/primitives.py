"""Primitives (seed S3-S8): the race and its lock, deadlock, RLock, Event, Semaphore.

The seed's programs, shortened (its 0.1 s / 2 s / 5 s sleeps become milliseconds), and
each one braided a little: plait's primitives serve threads and coroutines at once, so
several scenes put a coroutine among the threads, waiting on the very same object.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from plait._sync import Event, Lock, RLock, Semaphore
from plait.tour._framework import Scene, stamp

__all__ = ["SCENES"]


def say(line: str) -> None:
    """Print ``line`` in one write, so lines from two threads never interleave."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _thread(target: Callable[..., Any], *args: Any, name: str | None = None) -> threading.Thread:
    import plait

    cls = getattr(plait, "Thread", threading.Thread)
    thread: threading.Thread = cls(target=target, args=args, name=name)
    thread.start()
    return thread


def _join(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join()


# -- S3/S4: the race, then the lock -----------------------------------------------------


def _race() -> None:
    state = {"num": 100}

    def sub_unsafe() -> None:
        temp = state["num"]
        time.sleep(0.01)  # the seed's sleep(0.1): every thread reads before anyone writes
        state["num"] = temp - 1

    t0 = time.perf_counter()
    _join([_thread(sub_unsafe) for _ in range(100)])
    say(f"without a lock: 100 threads each subtract 1 from 100 -> final num: {state['num']}")
    say(f"  {race_verdict(state['num'])}  {stamp(t0)}")

    state["num"] = 100
    lock = Lock()

    def sub_locked() -> None:
        with lock:
            temp = state["num"]
            time.sleep(0.002)
            state["num"] = temp - 1

    t0 = time.perf_counter()
    _join([_thread(sub_locked) for _ in range(100)])
    elapsed = time.perf_counter() - t0
    say(f"with plait.Lock around read-sleep-write -> final num: {state['num']} ({stamp(t0)})")
    say(f"  {race_verdict(state['num'])}")
    if elapsed >= 100 * 0.002:
        say(f"  {elapsed:.2f} s, at least 100 x 2 ms: the critical sections ran one at a time")
    else:
        say(f"  only {elapsed:.2f} s, less than 100 x 2 ms: some critical sections overlapped")


def race_verdict(final: int, start: int = 100) -> str:
    """How many of the ``start`` subtractions a final value says were lost."""
    lost = final  # every applied update lowers num by 1, so what is left was lost
    if lost == 0:
        return f"all {start} updates applied, none lost"
    return f"{lost} of the {start} updates were lost (only {start - lost} applied)"


# -- S5: deadlock, shown with an acquire timeout ----------------------------------------


def _deadlock() -> None:
    mutex_a, mutex_b = Lock(), Lock()
    both_hold = threading.Barrier(2)
    t0 = time.perf_counter()

    gave_up: list[str] = []

    def worker(first: Lock, second: Lock, names: tuple[str, str]) -> None:
        me = threading.current_thread().name
        with first:
            say(f"  {me} got {names[0]}  {stamp(t0)}")
            both_hold.wait()
            if second.acquire(timeout=0.3):
                say(f"  {me} got {names[1]}  {stamp(t0)}")
                second.release()
            else:
                gave_up.append(me)
                say(f"  {me} gave up waiting for {names[1]} after 0.3 s  {stamp(t0)}")

    say("two threads take mutexA and mutexB in opposite orders:")
    _join(
        [
            _thread(worker, mutex_a, mutex_b, ("mutexA", "mutexB"), name="thread-1"),
            _thread(worker, mutex_b, mutex_a, ("mutexB", "mutexA"), name="thread-2"),
        ]
    )
    if len(gave_up) == 2:
        say("both gave up: each held the lock the other wanted -- a deadlock. With no timeout")
        say("both threads would wait forever; acquire(timeout=...) makes the hang visible.")
    elif gave_up:
        say(f"only {gave_up[0]} gave up; the other got both locks once it let go -- the")
        say("deadlock was broken by the timeout (with no timeout both would wait forever).")
    else:
        say("no deadlock this time: each thread got both locks within 0.3 s.")


# -- S6: RLock, and the Account transfer ------------------------------------------------


class Account:
    """The seed's account: ``drawcash`` takes the lock and calls ``withdraw``, which
    takes it again -- fine with an RLock, a self-deadlock with a Lock."""

    def __init__(self, name: str, balance: float) -> None:
        self.name = name
        self.balance = balance
        self.lock = RLock()

    def withdraw(self, amount: float) -> None:
        with self.lock:
            self.balance -= amount

    def deposit(self, amount: float) -> None:
        with self.lock:
            self.balance += amount

    def drawcash(self, amount: float) -> None:
        with self.lock:
            self.withdraw(amount + amount * 0.05)


def _transfer(src: Account, dst: Account, amount: float) -> None:
    src.withdraw(amount)
    dst.deposit(amount)


def _rlock() -> None:
    mutex = RLock()
    got = []

    def fun() -> None:
        with mutex, mutex:  # mutexA, then mutexB: the same RLock, re-entered
            got.append(threading.current_thread().name)

    t0 = time.perf_counter()
    _join([_thread(fun) for _ in range(10)])
    say(
        f"the deadlock program with mutexA = mutexB = RLock(): {len(got)}/10 threads "
        f"finished ({stamp(t0)})"
    )

    alex, yuan = Account("alex", 1000), Account("yuan", 1000)
    _join([_thread(_transfer, alex, yuan, 100), _thread(_transfer, yuan, alex, 200)])
    total = alex.balance + yuan.balance
    kept = "still 2000: no money lost" if total == 2000 else f"{total:g}, not 2000: money LOST"
    say(
        f"after transfer(alex->yuan, 100) and transfer(yuan->alex, 200) in two threads: "
        f"alex {alex.balance:g}, yuan {yuan.balance:g} (total {kept})"
    )
    alex.drawcash(100)
    say(
        f"alex.drawcash(100) takes the RLock twice (drawcash -> withdraw) and pays 5% "
        f"interest: alex {alex.balance:g}"
    )

    async def coroutine_side() -> float:
        async with alex.lock, alex.lock:  # the same RLock, re-entered by a coroutine
            alex.balance += 5
        return alex.balance

    say(
        f"a coroutine re-enters the same RLock with `async with`: alex "
        f"{asyncio.run(coroutine_side()):g}"
    )


# -- S7: Boss and workers with an Event --------------------------------------------------


def event_explained(before_first_set: bool, before_second_set: bool) -> list[str]:
    """What the two ``is_set()`` values the boss printed mean (the seed prints them too,
    each one *before* its ``set()``, which puzzles readers who expect True)."""
    first = (
        "printed before the boss's first set(): nobody had set it yet, so the workers "
        "were still waiting"
        if not before_first_set
        else "something had set it before the boss did"
    )
    second = (
        "each worker clear()ed it after waking, so they waited again until the boss's second set()"
        if not before_second_set
        else "the workers had not cleared it yet"
    )
    return [
        f'first "event set: {before_first_set}": {first}',
        f'second "event set: {before_second_set}": {second}',
    ]


def _event() -> None:
    event = Event()
    t0 = time.perf_counter()
    woken: list[str] = []
    seen: list[bool] = []

    def worker(n: int) -> None:
        event.wait()
        woken.append("first")
        say(f"  worker {n}: sigh, overtime...  {stamp(t0)}")
        time.sleep(0.02)
        event.clear()
        event.wait()
        woken.append("second")
        say(f"  worker {n}: OhYeah!  {stamp(t0)}")

    async def coroutine_worker() -> None:
        await event.async_wait()
        woken.append("coroutine")
        say(f"  coroutine worker: woken by the same event  {stamp(t0)}")

    def boss() -> None:
        seen.append(event.is_set())
        say(f"  BOSS: overtime until 22:00 tonight (event set: {seen[-1]})")
        event.set()
        time.sleep(0.2)
        seen.append(event.is_set())
        say(f"  BOSS: <22:00> you can go home (event set: {seen[-1]})")
        event.set()

    loop_thread = _thread(asyncio.run, coroutine_worker())
    workers = [_thread(worker, n) for n in range(5)]
    time.sleep(0.02)
    _join([_thread(boss), *workers, loop_thread])
    for line in event_explained(*seen):
        say(line)
    say(
        f"one plait.Event woke {woken.count('first')} thread workers and "
        f"{woken.count('coroutine')} coroutine at the first set(), and "
        f"{woken.count('second')} thread workers at the second ({stamp(t0)})"
    )


# -- S8: a connection pool of 5 with a Semaphore -----------------------------------------


def _semaphore() -> None:
    pool = Semaphore(5)
    guard = threading.Lock()
    inside = {"now": 0, "most": 0, "served": 0}
    t0 = time.perf_counter()

    def enter() -> None:
        with guard:
            inside["now"] += 1
            inside["most"] = max(inside["most"], inside["now"])

    def leave() -> None:
        with guard:
            inside["now"] -= 1
            inside["served"] += 1

    def thread_client() -> None:
        with pool:
            enter()
            time.sleep(0.05)  # "using the connection"
            leave()

    async def coroutine_client() -> None:
        async with pool:
            enter()
            await asyncio.sleep(0.05)
            leave()

    async def coroutines() -> None:
        await asyncio.gather(*(coroutine_client() for _ in range(10)))

    threads = [_thread(thread_client) for _ in range(20)]
    threads.append(_thread(asyncio.run, coroutines()))
    _join(threads)
    elapsed = time.perf_counter() - t0
    say("20 threads and 10 coroutines share a pool of 5 connections (Semaphore(5)),")
    cap = "the cap held" if inside["most"] <= 5 else "the cap was EXCEEDED"
    say(
        f"each holding one for 50 ms: at most {inside['most']} in use at once ({cap}); "
        f"{inside['served']} of 30 served in {elapsed:.2f} s (the floor: 30/5 x 50 ms = 0.30 s)"
    )
    say(
        f"the semaphore at the end: {pool.statistics().value} permits free, "
        f"{pool.statistics().waiting} waiting"
    )


SCENES: list[Scene] = [
    Scene(
        "primitives-race",
        "the race, and plait.Lock",
        "100 threads lose updates to a shared counter; a plait.Lock makes the result exact",
        _race,
        seed="S3, S4",
    ),
    Scene(
        "primitives-deadlock",
        "deadlock, seen through an acquire timeout",
        "two threads taking two locks in opposite orders wait on each other; "
        "acquire(timeout=) reports it instead of hanging",
        _deadlock,
        seed="S5",
    ),
    Scene(
        "primitives-rlock",
        "RLock and the Account transfer",
        "a re-entrant lock lets "
        "the deadlock program and nested Account methods run, from threads and "
        "coroutines",
        _rlock,
        seed="S6",
    ),
    Scene(
        "primitives-event",
        "Boss and workers with an Event",
        "one Event wakes thread workers and a coroutine together",
        _event,
        seed="S7",
    ),
    Scene(
        "primitives-semaphore",
        "a connection pool of 5",
        "Semaphore(5) caps threads and coroutines together at 5 connections",
        _semaphore,
        seed="S8",
    ),
]
