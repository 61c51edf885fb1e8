"""plait.shared's published word: a plain view on x86, acquire/release (C) elsewhere, and a
clear refusal on a weakly ordered CPU without the C module."""

from __future__ import annotations

import importlib.util
import mmap
import os

import pytest

from plait.shared import SharedDict, _log


def test_the_ordered_word_module_is_active_where_it_is_built() -> None:
    if importlib.util.find_spec("plait.shared._ordered") is None:
        pytest.skip("plait.shared._ordered was not built here (no compiler)")
    assert _log._ordered is not None
    word = _log._ordered.Word(mmap.mmap(-1, 64))
    assert word[0] == 0
    word[0] = (5 << 40) | 1234
    assert word[0] == (5 << 40) | 1234
    word[0] = -1
    assert word[0] == -1
    with pytest.raises(IndexError):
        word[1]
    with pytest.raises(ValueError, match="aligned"):
        _log._ordered.Word(bytearray(4))


def test_this_cpu_gets_the_word_view_it_needs() -> None:
    d = SharedDict(a=1)
    if _log._TSO:
        assert isinstance(d._hdr, memoryview)
    else:
        assert type(d._hdr).__name__ == "Word"


def test_a_weakly_ordered_cpu_uses_the_c_word(monkeypatch: pytest.MonkeyPatch) -> None:
    if _log._ordered is None:
        pytest.skip("plait.shared._ordered was not built here (no compiler)")
    monkeypatch.setattr(_log, "_TSO", False)
    d = SharedDict(a=1)
    assert type(d._hdr) is _log._ordered.Word
    for i in range(3000):  # across generations
        d[i] = i
    del d[0]
    assert len(d) == 3000 and d[2999] == 2999 and d["a"] == 1


def test_a_weakly_ordered_cpu_without_the_c_word_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_log, "_TSO", False)
    monkeypatch.setattr(_log, "_ordered", None)
    before = set(os.listdir("/dev/shm"))
    with pytest.raises(RuntimeError, match="weakly ordered"):
        SharedDict(a=b"x" * (_log.BIG + 1))
    assert {n for n in set(os.listdir("/dev/shm")) - before if n.startswith("plait_dict")} == set()
