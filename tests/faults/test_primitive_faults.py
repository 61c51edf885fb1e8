"""Faults on shared primitives (issue 18, points 1-3; issue 10, defect 8).

* ``tg.cancel()`` of process strands hammering a shared object (SIGTERM in the child)
  never leaves it taken: every survivor's call ends within its timeout.
* A process SIGKILLed while it holds a shared Lock/RLock/Semaphore/Condition: the next
  acquirer gets :class:`plait.BrokenResourceError` naming the dead pid, and the object is
  usable again; ``acquire(timeout=)`` never just times out for ever.
* A dead waiter of a shared Condition costs ``notify()`` a liveness check, not a stall.
"""

from __future__ import annotations

import asyncio
import pickle
import random
import threading
import time
from typing import Any

import _primitive_faults as pf
import pytest

import plait
from plait._ipc.context import get_context


def _cancel_rounds(kind: str, cancellations: int) -> list[str]:
    """Cancel ``cancellations`` hammering process strands (two per group); return what the
    survivors found wrong after each round."""
    ctx = get_context()
    problems = []
    rng = random.Random(kind)
    for round_no in range(cancellations // 2):
        obj = pf.make(kind)
        started = ctx.Value("i", 0)
        with plait.TaskGroup(grace=10) as tg:
            tasks = [tg.spawn(pf.hammer, kind, obj, started, on="process") for _ in range(2)]
            deadline = time.monotonic() + 30
            while started.value < 2:
                assert time.monotonic() < deadline, "the children never got going"
                time.sleep(0.002)
            time.sleep(rng.random() * 0.02)
            tg.cancel()
        assert all(t.cancelled() for t in tasks), [t.exception() for t in tasks]
        problem = pf.survivors_check(kind, obj)
        if problem is not None:
            problems.append(f"round {round_no}: {problem}")
    return problems


@pytest.mark.parametrize("kind", pf.KINDS)
def test_cancelled_process_strands_leave_nothing_taken(kind: str) -> None:
    assert _cancel_rounds(kind, 20) == []


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("kind", pf.KINDS)
def test_cancelled_process_strands_leave_nothing_taken_many(kind: str) -> None:
    assert _cancel_rounds(kind, 200) == []
