"""plait.shared: values over ``_log.BIG`` bytes live in segments of their own (the log
records their names), removed when overwritten or deleted, and never leaked."""

from __future__ import annotations

import gc
import os
import pickle
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import plait
from plait._errors import SerializationError
from plait.shared import SharedDict, SharedList, SharedValue, _log

sys.path.insert(0, str(Path(__file__).parent))
import _children

BIG = _log.BIG + 1


def _names(prefix: str) -> list[str]:
    return sorted(n for n in os.listdir("/dev/shm") if n.startswith(prefix))


def _values(prefix: str) -> list[str]:
    return [n for n in _names(prefix) if n.startswith(prefix + "v")]


def _run(target: Any, *args: Any) -> int:
    p = plait.Process(target=target, args=args)
    p.start()
    p.join(30)
    if p.is_alive():
        p.kill()
        p.join(5)
        raise AssertionError("child did not finish")
    return int(p.exitcode or 0)


def test_a_10mb_array_and_bytes_round_trip_across_processes_outside_the_log() -> None:
    d = SharedDict()
    prefix = d._prefix
    array = np.arange(1_250_000, dtype=np.float64)  # 10 MB
    d["array"] = array
    assert _run(_children.double_array, d) == 0
    assert np.array_equal(d["doubled"], array * 2)
    assert d["bytes"] == b"y" * 10_000_000
    assert d["array"] is not d["array"]  # a fresh copy per read, as for any mutable value
    assert d._seg is not None and d._seg.size <= 64 * 1024  # the log did not grow by 30 MB
    assert len(_values(prefix)) == 3
    del d
    gc.collect()
    assert _names(prefix) == []


def test_overwritten_and_deleted_large_values_are_removed_at_once() -> None:
    d = SharedDict(a=b"a" * BIG)
    prefix = d._prefix
    assert len(_values(prefix)) == 1
    d["a"] = b"b" * BIG
    d["b"] = [0] * BIG
    d.update(c="c" * BIG)
    assert len(_values(prefix)) == 3
    d["a"] = 1  # overwritten by a small value
    del d["b"]
    assert d.pop("c") == "c" * BIG
    assert _values(prefix) == []
    d.update(a=b"x" * BIG, b=b"y" * BIG)
    assert d.setdefault("a", b"z" * BIG) == b"x" * BIG  # the unused default is not kept
    assert d.popitem() == ("b", b"y" * BIG)
    assert len(_values(prefix)) == 1
    d.clear()
    assert _values(prefix) == []
    with pytest.raises(SerializationError):  # the second value fails: the first is not kept
        d.update([("x", b"x" * BIG), ("y", threading.Lock())])
    with pytest.raises(TypeError):
        d.update([("x", b"x" * BIG), ([], 1)])  # an unhashable key
    assert _values(prefix) == [] and d == {}
    v = SharedValue("O", b"v" * BIG)
    v.value = b"w" * BIG
    assert v.value == b"w" * BIG and len(_values(v._prefix)) == 1
    v.value = 0
    assert _values(v._prefix) == []


def test_a_list_keeps_large_values_outside_the_log_and_removes_them() -> None:
    big = b"l" * BIG
    lst = SharedList([big, 1])
    prefix = lst._prefix
    lst.append([2] * BIG)
    lst.insert(0, "s" * BIG)
    assert lst[0] == "s" * BIG and lst[1] == big and lst[3] == [2] * BIG
    assert len(_values(prefix)) == 3 and lst._seg is not None and lst._seg.size <= 64 * 1024
    with pytest.raises(IndexError):
        lst[10] = b"n" * BIG  # failed: its segment is not kept
    assert len(_values(prefix)) == 3
    lst[0] = 0  # overwritten
    assert lst.pop() == [2] * BIG  # deleted
    assert len(_values(prefix)) == 1
    lst *= 2  # the same large value in two places: kept while either holds it
    del lst[1]
    assert lst == [0, 1, 0, big, 1] and len(_values(prefix)) == 1
    lst.reverse()
    lst.sort(key=lambda v: isinstance(v, bytes))
    assert lst[4] == big and lst[:4] == [1, 0, 1, 0]
    lst.clear()
    assert _values(prefix) == []


def test_a_replica_behind_reads_the_newest_value_when_older_segments_are_gone() -> None:
    d = SharedDict()
    d["x"] = b"1" * BIG
    behind = SharedDict.__new__(SharedDict)  # a second replica that has replayed nothing
    behind._attach(d._prefix, d._lock)
    d["x"] = b"2" * BIG  # the first value's segment is removed now
    assert behind["x"] == b"2" * BIG
    mapped = SharedDict.__new__(SharedDict)
    mapped._attach(d._prefix, d._lock)
    assert mapped["x"] == b"2" * BIG
    d["x"] = b"3" * BIG  # removed while `mapped` still holds a mapping of it: still valid
    assert pickle.loads(mapped._d["x"].data) == b"2" * BIG  # (not caught up yet)
    assert mapped["x"] == b"3" * BIG
    assert len(_values(d._prefix)) == 1


@pytest.mark.parametrize("stage", ["appended", "publish"])
def test_a_writer_killed_writing_a_large_value_leaks_nothing(stage: str) -> None:
    d = SharedDict(a="before")
    prefix = d._prefix
    assert _run(_children.killed_writing_big, d, stage, 1_000_000) == -signal.SIGKILL
    assert d == {"a": "before"}  # not applied
    assert len(_values(prefix)) == 1  # the dead writer's segment, named by no record
    d["a"] = b"after" * BIG
    assert d["a"] == b"after" * BIG
    gen = d._word >> 40
    i = 0
    while d._word >> 40 == gen:  # until the log is compacted: that sweeps the orphan
        d["n"] = i
        i += 1
    assert _values(prefix) == [d._d["a"].name]
    del d
    gc.collect()
    assert _names(prefix) == []  # the dead writer's segment too
