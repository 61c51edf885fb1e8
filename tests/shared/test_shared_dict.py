"""plait.shared: the dict and list shared by processes with no server process."""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import plait
import plait.testing
from plait._errors import ClosedError, SerializationError
from plait.shared import SharedDict, SharedList, _log

sys.path.insert(0, str(Path(__file__).parent))
import _children


def _names(prefix: str) -> list[str]:
    return [n for n in os.listdir("/dev/shm") if n.startswith(prefix)]


def _run(target: Any, *args: Any) -> int:
    p = plait.Process(target=target, args=args)
    p.start()
    p.join(30)
    if p.is_alive():
        p.kill()
        p.join(5)
        raise AssertionError("child did not finish")
    return int(p.exitcode or 0)


def test_dict_behaves_like_a_dict() -> None:
    d = SharedDict({"a": 1}, b=[1, 2])
    assert d == {"a": 1, "b": [1, 2]}
    d["c"] = "x"
    d.update({"e": 5}, f=6)
    assert d.setdefault("a", 9) == 1 and d.setdefault("g", 7) == 7
    assert d.pop("g") == 7 and d.pop("nope", None) is None
    del d["e"]
    assert sorted(d.keys(), key=str) == ["a", "b", "c", "f"]
    assert d.get("zz") is None and "a" in d and len(d) == 4
    b = d["b"]
    b.append(3)  # a copy: nothing shared changes
    assert d["b"] == [1, 2]
    assert d.popitem() == ("f", 6)
    with pytest.raises(KeyError):
        d["missing"]
    d.clear()
    assert d == {} and repr(d) == "{}"


def test_seed_manager_program_with_plait_processes() -> None:
    with plait.Manager() as manager:
        d = manager.dict()
        lst = manager.list(range(5))
        ps = [plait.Process(target=_children.seed_f, args=(d, lst, i)) for i in range(10)]
        for p in ps:
            p.start()
        for p in ps:
            p.join(30)
        assert all(p.exitcode == 0 for p in ps)
        assert d == {**{i: i for i in range(10)}, "name": "alvin"}
        assert sorted(lst) == sorted([*range(5), *range(10)])
        assert lst[:5] == [0, 1, 2, 3, 4]


def test_a_child_sees_and_changes_the_same_dict() -> None:
    d = SharedDict(x=1)
    assert _run(_children.set_item, d, "y", {"deep": [1]}) == 0
    assert d["y"] == {"deep": [1]} and d["x"] == 1


def test_pool_workers_share_the_dict() -> None:
    d = SharedDict()
    with plait.Pool(2) as pool:
        copies = pool.starmap(_children.set_item, [(d, i, i * i) for i in range(6)])
        assert pool.apply(_children.read_item, (d, 5)) == 25
    assert d == {i: i * i for i in range(6)}
    assert copies[-1][5] == 25


def test_the_unlocked_read_modify_write_race_loses_an_update() -> None:
    # Two processes read d["n"] before either writes: one increment is lost, as with the
    # Manager's dict (the seed's `num` race). Ordered by events, not by timing.
    d = SharedDict(n=0)
    read1, read2, go = plait.Event(), plait.Event(), plait.Event()
    p1 = plait.Process(target=_children.racy_increment, args=(d, "n", read1, go))
    p2 = plait.Process(target=_children.racy_increment, args=(d, "n", read2, go))
    p1.start()
    p2.start()
    try:
        assert read1.wait(30) and read2.wait(30)
        go.set()
    finally:
        p1.join(30)
        p2.join(30)
    assert p1.exitcode == 0 and p2.exitcode == 0
    assert d["n"] == 1  # two increments, one survives


@pytest.mark.parametrize("atomic", [True, False], ids=["update_with", "locked"])
def test_atomic_increments_from_processes_are_never_lost(atomic: bool) -> None:
    d = SharedDict(n=0)
    ps = [plait.Process(target=_children.add_many, args=(d, "n", 150, atomic)) for _ in range(3)]
    for p in ps:
        p.start()
    _children.add_many(d, "n", 150, atomic)
    for p in ps:
        p.join(30)
    assert [p.exitcode for p in ps] == [0, 0, 0]
    assert d["n"] == 600


def test_threads_of_one_process_increment_atomically() -> None:
    d = SharedDict(n=0)
    stop = threading.Event()

    def work() -> None:
        for _ in range(300):
            if stop.is_set():
                return
            d.update_with("n", lambda v: v + 1)

    ts = [threading.Thread(target=work, daemon=True) for _ in range(3)]
    try:
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
    finally:
        stop.set()
    assert d["n"] == 900


def test_a_plain_set_waits_for_a_locked_block_of_another_strand() -> None:
    # The fast write (the lock's robust mutex only) must not slip into another strand's
    # locked() block: it waits, and lands after the block.
    d = SharedDict(a=0)
    done = threading.Event()

    def writer() -> None:
        d["a"] = "writer"
        done.set()

    t = threading.Thread(target=writer, daemon=True)
    try:
        with d.locked():
            t.start()
            plait.testing.wait_parked(on=d._lock, count=1, timeout=10)
            assert not done.is_set()
            d["a"] = "block"
        assert done.wait(10)
        assert d["a"] == "writer"
    finally:
        t.join(10)


def test_many_fast_writes_across_generations_from_two_processes() -> None:
    d = SharedDict()
    ps = [plait.Process(target=_children.set_many, args=(d, i, 3000)) for i in range(2)]
    for p in ps:
        p.start()
    _children.set_many(d, 2, 3000)
    for p in ps:
        p.join(30)
    assert [p.exitcode for p in ps] == [0, 0]
    assert d.copy() == {(i, j): j for i in range(3) for j in range(3000)}


def test_locked_block_is_reentrant_and_update_with_needs_a_default() -> None:
    d = SharedDict()
    with d.locked(), d.locked():
        d["a"] = 1
        d.update_with("a", lambda v: v + 1)
    assert d["a"] == 2
    with pytest.raises(KeyError):
        d.update_with("b", lambda v: v)
    assert d.update_with("b", lambda v: [*v, 1], []) == [1]


def test_grows_without_a_size_and_reclaims_deleted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_log, "MIN_LOG", 4096)
    d = SharedDict()
    other = SharedDict.__new__(SharedDict)  # a second replica, as another process has
    other._attach(d._prefix, d._lock)
    big = "x" * 1000
    for i in range(300):
        d[i] = big + str(i)
    assert other[299] == big + "299" and len(other) == 300
    assert d._seg is not None and d._seg.size >= 300 * 1000
    for i in range(300):
        del d[i]
    d["last"] = 1
    gen0 = d._word >> 40
    for i in range(1000):
        d["last"] = big + str(i)
    assert (d._word >> 40) > gen0  # compacted: the overwritten values were reclaimed
    assert d._seg.size <= 8192
    assert other.copy() == {"last": big + "999"}
    assert len(_names(d._prefix)) == 2  # the anchor and the current generation


def test_bad_input_raises_at_the_call_and_changes_nothing() -> None:
    d = SharedDict(a=1)
    with pytest.raises(SerializationError):
        d["b"] = threading.Lock()
    with pytest.raises(SerializationError):
        d[threading.Lock()] = 1  # hashable but not picklable
    with pytest.raises(TypeError):
        d[[1]] = 1
    with pytest.raises(SerializationError):
        d.update_with("a", lambda v: threading.Lock())
    assert d == {"a": 1}


def test_use_after_manager_shutdown_is_a_clear_error() -> None:
    manager = plait.Manager()
    d = manager.dict(a=1)
    lst = manager.list([1])
    manager.shutdown()
    with pytest.raises(ClosedError, match="shut down"):
        d["a"]
    with pytest.raises(ClosedError):
        lst.append(2)
    with pytest.raises(ClosedError):
        manager.dict()
    manager.shutdown()  # idempotent


@pytest.mark.parametrize(
    ("stage", "in_block"),
    [("appended", False), ("publish", False), ("publish", True)],
)
def test_writer_killed_mid_update_leaves_it_unapplied(stage: str, in_block: bool) -> None:
    d = SharedDict(a="before", b="before")
    prefix = d._prefix
    code = _run(_children.killed_at, d, stage, in_block)
    assert code == -signal.SIGKILL
    assert d == {"a": "before", "b": "before"}  # readable; the update is not applied
    # the others go on: the lock the dead writer held is free, the next write lands
    assert _run(_children.set_item, d, "c", 1) == 0
    d["a"] = "after"
    assert d == {"a": "after", "b": "before", "c": 1}
    del d
    gc.collect()
    assert _names(prefix) == []  # the last user removed every name


def test_list_behaves_like_a_list() -> None:
    lst = SharedList([3, 1, 2])
    lst.append([9])
    lst.extend([5, 6])
    lst.insert(0, 0)
    lst[1] = 4
    del lst[-1]
    assert lst == [0, 4, 1, 2, [9], 5]
    assert lst.pop() == 5 and lst.pop(0) == 0
    lst.remove([9])
    lst[0:1] = ["a", "b"]
    assert lst == ["a", "b", 1, 2] and lst[1:3] == ["b", 1]
    del lst[:2]
    lst.sort(reverse=True)
    assert lst == [2, 1] and len(lst) == 2 and 2 in lst and lst.index(1) == 1
    lst += [7]
    assert lst.update_with(2, lambda v: v * 2) == 14
    with pytest.raises(IndexError):
        lst[5] = 1
    with pytest.raises(IndexError):
        SharedList().pop()
    assert lst == [2, 1, 14]
