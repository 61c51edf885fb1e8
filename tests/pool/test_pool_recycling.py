"""Workers are replaced between tasks: after ``maxtasksperchild`` tasks or past
``max_memory_per_child`` bytes of RSS; logged once."""

from __future__ import annotations

import logging

import poolhelpers as h
import pytest

from plait.pool import Pool


def test_maxtasksperchild(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="plait.pool")
    with Pool(2, maxtasksperchild=2) as p:
        pids = [p.apply(h.pid) for _ in range(8)]
    assert len(set(pids)) >= 4
    assert [pids.count(x) <= 2 for x in set(pids)] == [True] * len(set(pids))
    assert sum("maxtasksperchild" in r.message for r in caplog.records) == 1


def test_maxtasksperchild_with_map_chunks() -> None:
    with Pool(2, maxtasksperchild=1) as p:
        assert p.map(h.square, range(40), 5) == [x * x for x in range(40)]
        assert p.statistics().completed == 8


def test_max_memory_per_child(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="plait.pool")
    with Pool(1, max_memory_per_child=200 * 1024 * 1024) as p:
        first = p.apply(h.grow, (1,))
        assert p.apply(h.grow, (1,)) == first  # small: the same worker
        big = p.apply(h.grow, (300,))  # now over the limit: replaced after this task
        assert big == first
        assert p.apply(h.pid) != first
        p.apply(h.grow, (300,))
        p.apply(h.pid)
    assert sum("max_memory_per_child" in r.message for r in caplog.records) == 1
