"""SIGKILL storms on shared primitives (issue 11, deliver 2; issue 18, point 2).

For each shared kind, three process strands hammer one object -- ``with`` blocks and
bounded waits -- while the test SIGKILLs one of them at a seeded random moment and starts
a replacement, ``KILLS`` times. Then:

* every survivor's bounded call ended within its timeout (plus slack for a loaded
  machine), and every survivor stops when told (a ``with`` block never hangs);
* a fresh process finds the object usable, by the documented recovery policy
  (``_sync/_xproc.py``, ``_lock.py``): the first acquirer after a holder's death may get
  ``plait.BrokenResourceError`` naming that dead pid, once -- the object is free again
  after it; an Event's internal mutex is repaired silently;
* no child process and no ``/dev/shm`` name of the object is left.

The seed is the test id (``kind``, plus the tier), printed in every failure message.
"""

from __future__ import annotations

import faulthandler
import gc
import os
import random
import re
import signal
import sys
import threading
import time
from typing import Any

import _primitive_faults as pf
import pytest
from _faults import WAIT_S, assert_clean, ctx, reap

import plait

WORKERS = 3
CALL_TIMEOUT = 0.5  # every bounded wait in a worker
SLACK = 2.0  # a bounded call may overrun its timeout by this much on a loaded machine
STOP_S = 15.0  # a survivor told to stop must have ended by then
ROUND_S = 10.0  # a live worker that did no round in this long is wedged

# A worker's slot in the shared report array: rounds, late calls, broken reports, max overrun.
ROUNDS, LATE, BROKEN, WORST = range(4)
SLOT = 4


def _bounded(report: Any, base: int, fn: Any, *args: Any) -> Any:
    """Call ``fn(*args)`` (one wait bounded by CALL_TIMEOUT); record an overrun or an error."""
    start = time.monotonic()
    try:
        return fn(*args)
    except plait.BrokenResourceError:
        report[base + BROKEN] += 1
        return None
    except threading.BrokenBarrierError:
        return None
    finally:
        over = time.monotonic() - start - CALL_TIMEOUT
        report[base + WORST] = max(report[base + WORST], over)
        if over > SLACK:
            report[base + LATE] += 1


def storm_worker(kind: str, obj: Any, report: Any, index: int, stop: Any) -> None:
    """Hammer ``obj`` until ``stop`` is set; count rounds, late calls and broken reports."""
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test's view of a wedge
    base = index * SLOT
    while not stop.value:
        try:
            if kind in ("Lock", "RLock", "Semaphore", "BoundedSemaphore"):
                with obj:
                    time.sleep(0.0005)  # held a while: kills often land on a holder
                if _bounded(report, base, obj.acquire, True, CALL_TIMEOUT):
                    obj.release()
            elif kind == "Condition":
                with obj:
                    obj.notify_all()
                    _bounded(report, base, obj.wait, CALL_TIMEOUT * 0.01)
            elif kind == "Event":
                obj.set()
                _bounded(report, base, obj.wait, CALL_TIMEOUT)
                obj.clear()
            elif kind == "Barrier" and _bounded(report, base, obj.wait, CALL_TIMEOUT) is None:
                obj.reset()
        except plait.BrokenResourceError:
            report[base + BROKEN] += 1  # a `with` block told of a dead holder: allowed
        except threading.BrokenBarrierError:
            pass
        report[base + ROUNDS] += 1


def fresh_check(kind: str, obj: Any, killed: list[int], result: Any) -> None:
    """In a fresh process: is ``obj`` usable? ``result[0]``: 1 ok, 2 ok after one
    ``BrokenResourceError`` naming a killed pid; the exit code says what went wrong."""
    told = 0
    units = {"Semaphore": 2, "BoundedSemaphore": 2}.get(kind, 1)
    if kind in ("Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition"):
        # Take every unit (a dead holder's come back, told once), then give them back.
        held = 0
        try:
            while held < units:
                try:
                    if not obj.acquire(timeout=5.0):
                        os._exit(6)  # a unit never came back
                    held += 1
                except plait.BrokenResourceError as exc:
                    pids = {int(p) for p in re.findall(r"process (\d+)", str(exc))}
                    if told or not pids or not pids <= set(killed):
                        os._exit(3)  # told twice, or of a process we never killed
                    told += 1
        finally:
            for _ in range(held):
                obj.release()
    try:
        problem = pf.survivors_check(kind, obj, timeout=5.0)
    except plait.BrokenResourceError:
        os._exit(7)  # told again after the repair
    result[0] = 2 if told else 1
    if problem is not None:
        print(f"fresh check of a {kind}: {problem}", file=sys.stderr, flush=True)
        os._exit(4)
    os._exit(0)


def _prefixes(obj: Any) -> list[str]:
    found = []
    for part in (obj, getattr(obj, "_lock", None), getattr(obj, "_cond", None)):
        shared = getattr(part, "_shared", None)
        if shared is not None and getattr(shared, "prefix", None):
            found.append(shared.prefix)
    return found


def _wait_running(report: Any, slots: list[int], seed: str) -> None:
    """Until every live worker has done a round (so a kill lands in the hammering)."""
    deadline = time.monotonic() + ROUND_S
    while not all(report[i * SLOT + ROUNDS] for i in slots):
        if time.monotonic() > deadline:
            raise _Wedged(f"[seed {seed}] a worker did no round in {ROUND_S} s")
        time.sleep(0.002)


class _Wedged(Exception):
    pass


def _storm(kind: str, kills: int, seed: str) -> dict[str, Any]:
    rng = random.Random(seed)
    c = ctx()
    obj = pf.make(kind)
    report = c.Array("d", WORKERS * SLOT * (kills + WORKERS), lock=False)
    stop = c.Value("b", 0, lock=False)
    slots = iter(range(kills + WORKERS))
    live: list[tuple[Any, int]] = []
    every: list[Any] = []
    killed: list[int] = []

    def start() -> None:
        i = next(slots)
        p = c.Process(target=storm_worker, args=(kind, obj, report, i, stop))
        p.start()
        live.append((p, i))
        every.append(p)

    started = time.monotonic()
    try:
        for _ in range(WORKERS):
            start()
        prefixes = _prefixes(obj)
        wedged = []
        for _ in range(kills):
            try:
                _wait_running(report, [i for _p, i in live], seed)
            except _Wedged as exc:
                for p, _i in live:
                    os.kill(p.pid, signal.SIGUSR1)  # their stacks, on stderr
                time.sleep(1)
                wedged.append(f"{exc} after {len(killed)} kills")
                break
            # the moment: a few ms to a few hundred ms into the hammering
            time.sleep(rng.choice((rng.uniform(0.0, 0.02), rng.uniform(0.02, 0.2))))
            victim, _i = live.pop(rng.randrange(len(live)))
            os.kill(victim.pid, signal.SIGKILL)
            victim.join(WAIT_S)
            assert victim.exitcode == -signal.SIGKILL, f"[seed {seed}] {victim.exitcode}"
            killed.append(victim.pid)
            start()
        stop.value = 1
        deadline = time.monotonic() + STOP_S
        for p, i in live:
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                wedged.append(f"worker {i} (pid {p.pid}) did not stop in {STOP_S} s")
            elif p.exitcode != 0:
                wedged.append(f"worker {i} (pid {p.pid}) exited {p.exitcode}")
        survivors = [i for _p, i in live]
        late = {i: report[i * SLOT + LATE] for i in survivors if report[i * SLOT + LATE]}
        worst = max(report[i * SLOT + WORST] for i in range(len(every)))
        broken = sum(report[i * SLOT + BROKEN] for i in range(len(every)))
        rounds = sum(report[i * SLOT + ROUNDS] for i in range(len(every)))
        if wedged:
            for p, _i in live:
                p.kill()  # (the survivors' stacks are on stderr above)
        result = c.Array("i", 1, lock=False)
        checker = c.Process(target=fresh_check, args=(kind, obj, killed, result))
        checker.start()
        checker.join(WAIT_S)
        fresh = (checker.exitcode, result[0])
        every.append(checker)
    finally:
        stop.value = 1
        reap(every)
    pids = [p.pid for p in every]
    obj = None  # the last user here: its names go
    gc.collect()
    assert_clean(prefixes, pids)
    return {
        "wedged": wedged,
        "late": late,
        "fresh": fresh,
        "kills": len(killed),
        "rounds": int(rounds),
        "broken": int(broken),
        "worst_overrun_s": round(worst, 3),
        "seconds": round(time.monotonic() - started, 1),
    }


def _check(kind: str, kills: int, seed: str) -> None:
    out = _storm(kind, kills, seed)
    print(f"storm {seed}: {out}")
    assert out["wedged"] == [], f"[seed {seed}] survivors hung: {out}"
    assert out["kills"] == kills
    assert out["late"] == {}, f"[seed {seed}] bounded calls overran: {out}"
    assert out["fresh"][0] == 0 and out["fresh"][1] in (1, 2), (
        f"[seed {seed}] a fresh process found the object unusable: {out}"
    )
    if kind == "Event":
        assert out["fresh"][1] == 1, f"[seed {seed}] an Event repairs silently: {out}"


@pytest.mark.parametrize("kind", pf.KINDS)
def test_kill_storm_leaves_the_object_usable(kind: str) -> None:
    _check(kind, 20, f"{kind}-20")


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("kind", pf.KINDS)
def test_kill_storm_leaves_the_object_usable_many(kind: str) -> None:
    _check(kind, 200, f"{kind}-200")
