"""plait.shared against plain dict/list models (hypothesis, stateful): every operation
through one of two replicas of the same shared object (as two processes have), with a tiny
log so that compaction into new generations happens all the time, and a tiny threshold for
"large" values so that many live in segments of their own."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from plait.shared import SharedDict, SharedList, _log

keys = st.one_of(st.integers(-3, 3), st.sampled_from(["a", "b", ("t", 1)]))
values = st.one_of(st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=3))


class _Killed(BaseException):
    """Stands for SIGKILL at a crash point of a write (the writer's replica goes with it)."""


def _second_replica(obj: Any) -> Any:
    other = type(obj).__new__(type(obj))
    other._attach(obj._prefix, obj._lock)
    return other


def _large_values_kept(obj: Any, kills: int) -> None:
    """A fresh replica reads every value (no segment was removed too soon), and no
    segment outlives its value but those of the writes "killed" before publishing."""
    fresh = _second_replica(obj)
    fresh.copy()
    held = {v.name for v in fresh._stored() if type(v) is _log.Blob and v.name is not None}
    head = obj._prefix + "v"
    names = {n for n in os.listdir("/dev/shm") if n.startswith(head)}
    assert held <= names
    assert len(names - held) <= kills


class DictModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.model: dict[Any, Any] = {}
        self.d = SharedDict()
        self.views = [self.d, _second_replica(self.d)]
        self.kills = 0

    @rule(v=st.integers(0, 1), k=keys, x=values)
    def set(self, v: int, k: Any, x: Any) -> None:
        self.views[v][k] = x
        self.model[k] = x

    @rule(v=st.integers(0, 1), k=keys)
    def delete(self, v: int, k: Any) -> None:
        if k in self.model:
            del self.views[v][k]
            del self.model[k]
        else:
            with pytest.raises(KeyError):
                del self.views[v][k]

    @rule(v=st.integers(0, 1), k=keys)
    def pop(self, v: int, k: Any) -> None:
        assert self.views[v].pop(k, "none") == self.model.pop(k, "none")

    @rule(v=st.integers(0, 1), items=st.dictionaries(keys, values, max_size=3))
    def update(self, v: int, items: dict[Any, Any]) -> None:
        self.views[v].update(items)
        self.model.update(items)

    @rule(v=st.integers(0, 1), k=keys)
    def increment(self, v: int, k: Any) -> None:
        self.views[v].update_with(k, lambda n: n + 1 if isinstance(n, int) else 0, 0)
        n = self.model.get(k, 0)
        self.model[k] = n + 1 if isinstance(n, int) else 0

    @precondition(lambda self: len(self.model) > 4)
    @rule(v=st.integers(0, 1))
    def clear(self, v: int) -> None:
        self.views[v].clear()
        self.model.clear()

    @rule(v=st.integers(0, 1), k=keys, x=values, stage=st.sampled_from(["appended", "publish"]))
    def killed_write(self, v: int, k: Any, x: Any, stage: str) -> None:
        def hook(at: str) -> None:
            if at == stage:
                raise _Killed

        _log.crash_hook = hook
        try:
            with pytest.raises(_Killed):
                self.views[v][k] = x
        finally:
            _log.crash_hook = None
        self.kills += 1
        # the "killed" process's replica is gone; a new process attaches in its place
        self.views[v] = _second_replica(self.views[1 - v])

    @invariant()
    def same_as_model(self) -> None:
        for view in self.views:
            assert view.copy() == self.model
            assert len(view) == len(self.model)
        _large_values_kept(self.d, self.kills)


class ListModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.model: list[Any] = []
        self.lst = SharedList()
        self.views = [self.lst, _second_replica(self.lst)]

    @rule(v=st.integers(0, 1), x=values)
    def append(self, v: int, x: Any) -> None:
        self.views[v].append(x)
        self.model.append(x)

    @rule(v=st.integers(0, 1), i=st.integers(-4, 4), x=values)
    def insert(self, v: int, i: int, x: Any) -> None:
        self.views[v].insert(i, x)
        self.model.insert(i, x)

    @rule(v=st.integers(0, 1), i=st.integers(-4, 4), x=values)
    def setitem(self, v: int, i: int, x: Any) -> None:
        try:
            self.model[i] = x
        except IndexError:
            with pytest.raises(IndexError):
                self.views[v][i] = x
        else:
            self.views[v][i] = x

    @rule(v=st.integers(0, 1), i=st.integers(-4, 4))
    def pop(self, v: int, i: int) -> None:
        try:
            expected = self.model.pop(i)
        except IndexError:
            with pytest.raises(IndexError):
                self.views[v].pop(i)
        else:
            assert self.views[v].pop(i) == expected

    @rule(v=st.integers(0, 1), a=st.integers(-3, 3), b=st.integers(-3, 3), x=st.lists(values))
    def setslice(self, v: int, a: int, b: int, x: list[Any]) -> None:
        self.views[v][a:b] = x
        self.model[a:b] = x

    @rule(v=st.integers(0, 1), x=st.lists(values, max_size=3))
    def extend(self, v: int, x: list[Any]) -> None:
        self.views[v].extend(x)
        self.model.extend(x)

    @invariant()
    def same_as_model(self) -> None:
        for view in self.views:
            assert view.copy() == self.model
        _large_values_kept(self.lst, 0)


_fast = settings(max_examples=12, stateful_step_count=25, deadline=None)


@pytest.fixture
def tiny_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_log, "MIN_LOG", 512)
    monkeypatch.setattr(_log, "BIG", 12)  # a pickled list of one or two ints, or more
    monkeypatch.setattr(_log, "_BIG_STR", 2)  # a str of 3 to 5 characters


@pytest.mark.usefixtures("tiny_log")
def test_dict_matches_a_plain_dict() -> None:
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(DictModel, settings=_fast)


@pytest.mark.usefixtures("tiny_log")
def test_list_matches_a_plain_list() -> None:
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(ListModel, settings=_fast)
